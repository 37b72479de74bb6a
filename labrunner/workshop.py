"""Find the workshop to run: ``--labs``, ``LABRUNNER_LABS``, ``./labs``, or the bundled one."""

from __future__ import annotations

import os
from pathlib import Path

import labrunner

PACKAGE_DIR = Path(labrunner.__file__).resolve().parent


def bundled_labs_dir() -> Path:
    """The workshop that ships with labrunner (the checkout's ``labs/``)."""
    for candidate in (PACKAGE_DIR.parent / "labs", PACKAGE_DIR / "_workshop" / "labs"):
        if candidate.is_dir():
            return candidate
    return PACKAGE_DIR.parent / "labs"


def find_labs_dir(option: str | os.PathLike[str] | None = None) -> Path:
    """The labs directory to use, in order of precedence."""
    if option:
        return Path(option).expanduser().resolve()
    env = os.environ.get("LABRUNNER_LABS")
    if env:
        return Path(env).expanduser().resolve()
    local = Path.cwd() / "labs"
    if (local / "workshop.yaml").is_file() and local.resolve() != bundled_labs_dir().resolve():
        return local.resolve()
    return bundled_labs_dir().resolve()
