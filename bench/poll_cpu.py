"""CPU used while a check stays pending (target: near idle).

A step's check waits for a file that a background process creates after a
few seconds. The engine backs off between polls, so labrunner's own CPU use
over the wait should be a small fraction of one core.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from pathlib import Path

from _common import Figure, report

from labrunner.engine import Engine, RunOptions
from labrunner.lab.loader import load_workshop
from labrunner.state import ProgressStore
from labrunner.verify.registry import builtin_registry

WAIT = 4.0

LAB = f"""\
apiVersion: labrunner/v1
id: pending
title: Pending check
steps:
  - id: wait
    title: Wait for a file
    run:
      - (sleep {WAIT}; touch ready) >/dev/null 2>&1 &
    check:
      - file: {{path: ready}}
    within: 20s
"""


def run() -> list[Figure]:
    """Labrunner's CPU seconds per wall second while a check is pending."""
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "pending.yaml").write_text(LAB)
        workshop = load_workshop(Path(tmp), builtin_registry()).workshop
        assert workshop is not None
        engine = Engine(
            workshop,
            registry=builtin_registry(),
            store=ProgressStore.memory(),
            emit=lambda e: None,
            options=RunOptions(save=False),
            base_env=dict(os.environ),
        )
        before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        summary = engine.verify(workshop.labs)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
        assert summary.ok
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return [
        Figure(
            "CPU while a check is pending",
            cpu / wall * 100,
            "% of one core",
            "near idle (< 5 %)",
            note=f"{wall:.1f} s wait",
        ),
    ]


def main() -> None:
    """Print the figures."""
    report(run())


if __name__ == "__main__":
    main()
