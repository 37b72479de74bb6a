"""Container logs for ``GET .../pods/P/log``: the current run and the one before a restart.

There is no container runtime, so a test (or the simulation) says what each container printed.
Lines keep the time they were written, which is what ``timestamps``, ``sinceSeconds`` and
``sinceTime`` filter on; ``tailLines`` and ``limitBytes`` cut the result like the kubelet.
A restart moves the current log to ``previous``, so ``kubectl logs --previous`` shows the crash.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

LogKey = tuple[str, str, str]  # namespace, pod, container


def _stamp(epoch: float) -> str:
    whole = datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%S")
    nanos = round((epoch - int(epoch)) * 1e9)
    return f"{whole}.{min(nanos, 999_999_999):09d}Z"


@dataclass
class _Run:
    """The log lines of one run of a container."""

    lines: list[tuple[float, str]] = field(default_factory=list)

    def add(self, text: str, at: float) -> None:
        if not text:
            return
        parts = text.splitlines(keepends=True)
        if self.lines and not self.lines[-1][1].endswith("\n"):
            first = parts.pop(0)
            when, tail = self.lines[-1]
            self.lines[-1] = (when, tail + first)
        self.lines.extend((at, p) for p in parts)


@dataclass
class _Container:
    """A container's current run and the one before it (``--previous``)."""

    current: _Run = field(default_factory=_Run)
    previous: _Run | None = None


class PodLogs:
    """What every container of every pod has printed (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logs: dict[LogKey, _Container] = {}

    def set(self, key: LogKey, text: str, *, previous: bool = False) -> None:
        """Replace a container's current (or previous) log with ``text``."""
        run = _Run()
        run.add(text, time.time())
        with self._lock:
            entry = self._logs.setdefault(key, _Container())
            if previous:
                entry.previous = run
            else:
                entry.current = run

    def append(self, key: LogKey, text: str) -> None:
        """Add output to a container's current log."""
        with self._lock:
            self._logs.setdefault(key, _Container()).current.add(text, time.time())

    def restart(self, key: LogKey, text: str = "") -> None:
        """The container restarted: its log becomes ``previous`` and a new one starts."""
        with self._lock:
            entry = self._logs.setdefault(key, _Container())
            entry.previous = entry.current
            entry.current = _Run()
            entry.current.add(text, time.time())

    def has_previous(self, key: LogKey) -> bool:
        """Whether a previous run's log exists."""
        with self._lock:
            entry = self._logs.get(key)
            return entry is not None and entry.previous is not None

    def forget_pod(self, namespace: str, pod: str) -> None:
        """Drop every log of a pod (it was deleted)."""
        with self._lock:
            for key in [k for k in self._logs if k[:2] == (namespace, pod)]:
                del self._logs[key]

    def clear(self) -> None:
        """Drop every log."""
        with self._lock:
            self._logs.clear()

    def read(
        self,
        key: LogKey,
        *,
        previous: bool = False,
        tail_lines: int | None = None,
        timestamps: bool = False,
        limit_bytes: int | None = None,
        since: float | None = None,
    ) -> bytes:
        """The log as the kubelet returns it, filtered and cut as asked."""
        with self._lock:
            entry = self._logs.get(key)
            run = None if entry is None else (entry.previous if previous else entry.current)
            lines = list(run.lines) if run is not None else []
        if since is not None:
            lines = [(at, text) for at, text in lines if at >= since]
        if tail_lines is not None:
            lines = lines[-tail_lines:] if tail_lines > 0 else []
        body = "".join(f"{_stamp(at)} {text}" if timestamps else text for at, text in lines)
        data = body.encode()
        if limit_bytes is not None and limit_bytes >= 0:
            data = data[:limit_bytes]
        return data


__all__ = ["LogKey", "PodLogs"]
