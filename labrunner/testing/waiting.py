"""A bounded wait on a condition, for tests and tools that have no event to wait on.

Tests wait on events where one exists (a callback, a process exit, a watch).
Where only a state can be observed (a file appears, a PID disappears), they
poll it through this one helper with a short interval and a hard deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def wait_for(predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Poll ``predicate`` until it is truthy or ``timeout`` passes; returns its last verdict."""
    end = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        if predicate():
            return True
        if time.monotonic() >= end:
            return bool(predicate())
        pause.wait(interval)
