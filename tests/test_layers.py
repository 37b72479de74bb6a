"""The package's layers hold: an import-linter contract, run like the other quality tools.

``pyproject.toml`` declares the layers (faces → engine → parts → model →
libraries) and three forbidden imports (``labrunner.testing``, ``kubernetes``
outside ``cluster/``, Textual outside ``tui/``). Function-level imports count,
so a lazy import cannot dodge the contract; the second test proves that the
tool, as configured here, sees them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _lint_imports() -> str:
    found = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert found is not None, "import-linter is missing: pip install -e '.[test]'"
    return found


def test_the_layer_contracts_are_kept() -> None:
    proc = subprocess.run(
        [_lint_imports(), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout
    assert "faces → engine → parts → model → libraries KEPT" in proc.stdout


def test_a_function_level_import_up_the_layers_breaks_the_contract(tmp_path: Path) -> None:
    package = tmp_path / "layered"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "high.py").write_text("VALUE = 1\n")
    (package / "low.py").write_text(
        textwrap.dedent(
            """\
            def sneaky():
                from layered import high  # hidden in a function

                return high.VALUE
            """
        )
    )
    (tmp_path / ".importlinter").write_text(
        textwrap.dedent(
            """\
            [importlinter]
            root_package = layered

            [importlinter:contract:layers]
            name = high over low
            type = layers
            layers =
                layered.high
                layered.low
            """
        )
    )
    proc = subprocess.run(
        [_lint_imports(), "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(tmp_path), "PATH": str(Path(sys.executable).parent)},
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "layered.low -> layered.high (l.2)" in proc.stdout


def test_every_module_of_the_package_has_a_layer() -> None:
    """A module left out of the layers contract is checked by nothing: name each one."""
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c for c in config["contracts"] if c["id"] == "layers"]
    named = {part.strip() for layer in layers["layers"] for part in layer.split("|")}
    package = REPO / "labrunner"
    modules = {
        f"labrunner.{path.stem if path.is_file() else path.name}"
        for path in package.iterdir()
        if (path.suffix == ".py" and path.stem != "__init__")
        or (path.is_dir() and (path / "__init__.py").exists())
    }
    aside = {"labrunner.testing"}  # held apart by its own forbidden contract
    assert modules - aside - named == set()
