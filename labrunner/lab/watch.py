"""Notice when lab files change on disk (for ``labrunner run --watch``).

A polling thread, not an OS file watch: a workshop has a few dozen small lab
files, so a ``stat`` of each every few tenths of a second costs nothing
measurable, needs no extra dependency, and behaves the same on every
platform, editor and file system (network mounts and containers included,
where inotify events often never arrive). A changed size, modification time or
inode only triggers a read; the file counts as changed when its SHA-256
differs, so an editor that rewrites a file without changing it (or touches it)
reloads nothing. A file is read only once its ``stat`` has stayed the same for
one round, so a save caught halfway is not reported as a broken lab; a file
that disappears for a moment (write-to-temp-then-rename) is looked at again on
the next round.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

INTERVAL = 0.3
"""Seconds between two looks at the files."""

Signature = tuple[int, int, int]


def _stat(path: Path) -> Signature | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino)


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class LabFileWatcher:
    """Calls ``on_change(path)`` from its own thread when a watched file's content changes."""

    def __init__(
        self,
        paths: Iterable[Path],
        on_change: Callable[[Path], None],
        *,
        interval: float = INTERVAL,
    ) -> None:
        self.on_change = on_change
        self.interval = interval
        self._lock = threading.Lock()
        self._known: dict[Path, tuple[Signature | None, str | None]] = {}
        self._settling: dict[Path, Signature] = {}
        for path in paths:
            self.watch(path)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, path: Path) -> None:
        """Start watching ``path`` (its current content is the baseline)."""
        with self._lock:
            self._known[path] = (_stat(path), _digest(path))

    def start(self) -> LabFileWatcher:
        """Start the polling thread (a daemon: it never keeps the process alive)."""
        self._thread = threading.Thread(target=self._loop, name="labrunner-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling and wait for the thread (safe to call twice)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def poll(self) -> list[Path]:
        """Look at every file once; returns (and reports) those whose content changed."""
        changed = []
        with self._lock:
            known = list(self._known.items())
        for path, (signature, digest) in known:
            now = _stat(path)
            if now is None or now == signature:
                self._settling.pop(path, None)
                continue
            if self._settling.get(path) != now:  # still being written? look again next round
                self._settling[path] = now
                continue
            del self._settling[path]
            content = _digest(path)
            with self._lock:
                self._known[path] = (now, content)
            if content is not None and content != digest:
                changed.append(path)
        for path in changed:
            self.on_change(path)
        return changed

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()
