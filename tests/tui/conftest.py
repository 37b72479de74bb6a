"""Fixtures for the TUI tests: a private copy of the test workshop, fakes, clean-up.

Each test runs the lab files from ``tests/tui/labs`` out of its own temporary
directory (commands write files into the workshop folder), with the real
engine and a real bash. Waiting is always on a condition with a deadline,
checked between short pauses of the app's own event loop (see helpers.py).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from labrunner.lab.model import Workshop
from labrunner.tui.app import LabrunnerApp, make_app

from .helpers import FINDINGS, copy_workshop, load


@pytest.fixture
def workshop(tmp_path: Path) -> Workshop:
    """The test workshop, in a private directory (commands run there)."""
    return load(copy_workshop(tmp_path / "ws"))


@pytest.fixture
def build(workshop: Workshop) -> Callable[..., LabrunnerApp]:
    """Build the app for the test workshop with quick, offline fakes."""

    def builder(**options: Any) -> LabrunnerApp:
        options.setdefault("doctor", lambda: list(FINDINGS))
        options.setdefault("live_interval", 0.2)
        target = options.pop("workshop", workshop)
        return make_app(target, **options)

    return builder


@pytest.fixture
def reap() -> Iterator[list[int]]:
    """Pids a test wants dead at the end, whatever happens."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
