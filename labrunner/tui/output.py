"""Output lines on their way from a worker thread to the output pane, in batches.

A command can print hundreds of thousands of lines in seconds. Posting one
message per line would bury the learner's keypresses under them, so the
worker appends lines to this buffer and posts a single "output ready" message
only when none is already waiting; the screen then takes everything at once.
However fast lines arrive, the UI handles at most one batch per turn of its
message loop. The buffer is bounded like the pane itself: when the UI falls
behind, the oldest lines go first (they would scroll out of the pane anyway)
and are counted, so the pane can say how many it never showed.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

LineKind = Literal["out", "command", "note", "error"]
OutputItem = tuple[LineKind, str]


@dataclass(frozen=True)
class Batch:
    """Lines taken from the buffer in one go, and how many were dropped before them."""

    items: list[OutputItem]
    dropped: int


class OutputBuffer:
    """A bounded, thread-safe queue of output lines that wakes its reader once per batch."""

    def __init__(self, wake: Callable[[], object], *, capacity: int) -> None:
        self._wake = wake
        self._items: deque[OutputItem] = deque(maxlen=capacity)
        self._capacity = capacity
        self._dropped = 0
        self._waiting = False
        self._lock = threading.Lock()

    def push(self, kind: LineKind, text: str) -> None:
        """Add one line (any thread); wakes the reader if it is not already awake."""
        with self._lock:
            if len(self._items) == self._capacity:
                self._dropped += 1
            self._items.append((kind, text))
            if self._waiting:
                return
            self._waiting = True
        self._wake()

    def drain(self) -> Batch:
        """Everything buffered so far (UI thread); the next push wakes the reader again."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
            dropped, self._dropped = self._dropped, 0
            self._waiting = False
        return Batch(items, dropped)
