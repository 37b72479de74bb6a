"""Shared helpers for the benchmark scripts: timing, medians and a figure record.

Every benchmark module exposes ``run() -> list[Figure]`` so ``bench/run_all.py``
can print one table, and a ``main()`` that prints its own figures.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@dataclass
class Figure:
    """One measured figure, with the peer approach's value when there is one."""

    name: str
    value: float
    unit: str
    target: str = ""
    peer: float | None = None
    note: str = ""

    def line(self) -> str:
        """A human-readable line."""
        text = f"{self.name}: {self.value:.3f} {self.unit}"
        if self.peer is not None:
            ratio = self.peer / self.value if self.value else float("inf")
            text += f" (peer {self.peer:.3f} {self.unit}, {ratio:.1f}x)"
        if self.target:
            text += f" [target {self.target}]"
        if self.note:
            text += f" — {self.note}"
        return text

    def as_dict(self) -> dict[str, object]:
        """Plain data for JSON output."""
        return asdict(self)


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    """Wall-clock seconds of ``repeat`` calls to ``fn``."""
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def median_ms(samples: list[float]) -> float:
    """Median of samples in seconds, as milliseconds."""
    return statistics.median(samples) * 1000


def p95_ms(samples: list[float]) -> float:
    """95th percentile of samples in seconds, as milliseconds."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000


def report(figures: list[Figure]) -> None:
    """Print figures one per line."""
    for figure in figures:
        print(figure.line())
