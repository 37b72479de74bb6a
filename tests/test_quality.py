"""The code stays typed, linted and formatted, and the repository stays clean.

These run the same tools a developer runs (ruff, mypy --strict on the
package) so CI catches a lapse, and check that nothing committed names a path
of one developer's machine or contains a private key.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip(f"{name} is not installed in this environment (pip install -e '.[test]')")
    return found


def test_ruff_lint_is_clean() -> None:
    proc = subprocess.run([_tool("ruff"), "check", "."], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format_is_clean() -> None:
    proc = subprocess.run(
        [_tool("ruff"), "format", "--check", "."], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict_on_the_package() -> None:
    proc = subprocess.run([_tool("mypy")], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _tracked_files() -> list[Path]:
    if not (REPO / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    return [REPO / name.decode() for name in out if name]


# Built from parts so this file does not match itself.
MACHINE_PATHS = re.compile(
    b"|".join(
        re.escape(p.encode())
        for p in ("/" + "work/main", "/" + "work/shared", "/" + "root/", "/tmp/" + "pytest-of-")
    )
    + rb"|/home/[a-z]+/"
)
PRIVATE_KEY = re.compile(rb"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----\s*\n[A-Za-z0-9+/]{40}")


def test_no_machine_paths_or_private_keys_are_committed() -> None:
    offenders = []
    for path in _tracked_files():
        if not path.is_file() or (path.suffix in (".svg",) and "__snapshots__" in path.parts):
            continue
        data = path.read_bytes()
        if MACHINE_PATHS.search(data):
            offenders.append(f"{path.relative_to(REPO)}: names a machine path")
        if PRIVATE_KEY.search(data):
            offenders.append(f"{path.relative_to(REPO)}: contains a private key")
    assert not offenders, "\n".join(offenders)
