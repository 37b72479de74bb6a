"""What a verifier can see and use while it evaluates one check.

A check runs with the environment the learner's lab shell had after the
step's commands (so ``export``-ed variables are visible; ``KUBECONFIG`` is
always the run's pinned kubeconfig), inside the workshop's working directory, with a
deadline it must respect and a cancel flag it should honour. Objects that are
expensive to build (a Kubernetes API client, a port-forward) are cached per
run in ``cache`` so repeated polls reuse them; closers registered with
``on_close`` run when the lab run ends.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from labrunner import procs
from labrunner.fsutil import which

TYPE_CHECKING = False  # as typing's, without importing typing (a start-up cost)
if TYPE_CHECKING:
    from typing import Any, TypeVar

    T = TypeVar("T")


@dataclass
class RunResources:
    """Per-run cache of shared objects, closed together when the run ends."""

    _items: dict[str, Any] = field(default_factory=dict)
    _closers: list[Callable[[], None]] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def get(self, key: str, factory: Callable[[], T]) -> T:
        """The cached object under ``key``, built by ``factory`` on first use."""
        with self._lock:
            if key not in self._items:
                self._items[key] = factory()
            value: T = self._items[key]
            return value

    def drop(self, key: str) -> None:
        """Forget a cached object (after it turned out to be broken)."""
        with self._lock:
            self._items.pop(key, None)

    def on_close(self, closer: Callable[[], None]) -> None:
        """Run ``closer`` when the run ends, last registered first."""
        with self._lock:
            self._closers.append(closer)

    def close(self) -> None:
        """Run every closer once, swallowing their errors."""
        with self._lock:
            closers, self._closers = self._closers, []
            self._items.clear()
        for closer in reversed(closers):
            try:
                closer()
            except Exception:  # noqa: S110 - a closer failing must not hide the others
                pass


@dataclass
class CheckContext:
    """Everything one check evaluation may use."""

    env: Mapping[str, str]
    cwd: Path
    workdir: Path
    lab_id: str = ""
    step_id: str = ""
    deadline: float = field(default_factory=lambda: time.monotonic() + 30.0)
    cancel: threading.Event = field(default_factory=threading.Event)
    resources: RunResources = field(default_factory=RunResources)
    kube_context: str | None = None
    attempt: int = 1

    def remaining(self, cap: float | None = None) -> float:
        """Seconds left before the deadline (at least a small floor), capped."""
        left = max(self.deadline - time.monotonic(), 0.05)
        return min(left, cap) if cap is not None else left

    def path(self, value: str | os.PathLike[str]) -> Path:
        """Resolve a path parameter relative to the shell's working directory."""
        p = Path(os.path.expanduser(os.fspath(value)))
        return p if p.is_absolute() else self.cwd / p

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        stdin: bytes | None = None,
    ) -> procs.ProcResult:
        """Run a program with the lab's environment, bounded by the deadline.

        Raises ``procs.ToolNotFound`` when the program is not installed.
        """
        limit = self.remaining() if timeout is None else min(timeout, self.remaining())
        return procs.run(
            argv,
            timeout=limit,
            env=self.env,
            cwd=self.cwd,
            stdin=stdin,
            cancel=self.cancel,
        )

    def which(self, program: str) -> str | None:
        """Where ``program`` is on the lab shell's PATH, if anywhere."""
        return which(program, path=self.env.get("PATH", os.defpath))
