"""The wheel carries the whole bundled workshop.

``labrunner init DIR`` copies the workshop a wheel installed under
``share/labrunner/workshop``; what ``[tool.setuptools.data-files]`` does not
list is silently missing from that copy, and a lab that applies it fails on the
learner's machine only. Setuptools expands those globs itself, so this test
expands them the same way (``glob``, no recursion) and compares with the files
the checkout's workshop holds.
"""

from __future__ import annotations

import glob
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORKSHOP_DIRS = ("labs", "manifests", "certs")
DEST = "share/labrunner/workshop"


def _packaged() -> dict[str, str]:
    """Each packaged source file (relative to the checkout) → where the wheel puts it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    placed: dict[str, str] = {}
    for dest, patterns in config["tool"]["setuptools"]["data-files"].items():
        for pattern in patterns:
            for found in glob.glob(pattern, root_dir=ROOT):
                if (ROOT / found).is_file():
                    placed[found] = f"{dest}/{Path(found).name}"
    return placed


def _workshop_files() -> list[str]:
    files = []
    for top in WORKSHOP_DIRS:
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                files.append(path.relative_to(ROOT).as_posix())
    return files


def test_every_workshop_file_is_in_the_wheel_at_its_own_path() -> None:
    placed = _packaged()
    missing = [f for f in _workshop_files() if f not in placed]
    assert not missing, f"add these to [tool.setuptools.data-files]: {missing}"
    moved = {src: dest for src, dest in placed.items() if dest != f"{DEST}/{src}"}
    assert not moved, f"packaged under another path than in the checkout: {moved}"


def test_every_manifest_a_lab_names_exists_in_the_checkout() -> None:
    labs = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "labs").glob("*.yaml"))
    named = set()
    for word in labs.replace('"', " ").replace("'", " ").split():
        # ``${ISTIO_HOME}/manifests/...`` is the Istio release's, not ours.
        if "manifests/" in word and "ISTIO" not in word[: word.index("manifests/")]:
            tail = word[word.index("manifests/") :].rstrip(";,)")
            if tail.endswith((".yaml", ".yml", ".sh")):
                named.add(tail)
    assert named, "the bundled labs apply manifests"
    placed = _packaged()
    absent = sorted(n for n in named if n not in placed)
    assert not absent, f"labs name manifests the wheel does not carry: {absent}"
