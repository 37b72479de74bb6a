"""Engine overhead per step in ``labrunner verify`` (target: < 20 ms per step).

A lab of N steps, each running ``true`` and checking one ``env`` and one
``file`` expectation, runs through the real engine; overhead is the wall time
beyond the commands' own run time, divided by N. Also reports how load +
validate + verify cost grows for 10, 100 and 1,000 steps, which should be no
worse than linear.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from _common import Figure, report

from labrunner.engine import Engine, RunOptions
from labrunner.engine import events as ev
from labrunner.lab.loader import load_workshop
from labrunner.state import ProgressStore
from labrunner.verify.registry import builtin_registry


def write_lab(directory: Path, steps: int) -> None:
    """A lab of ``steps`` steps (``true``, an env and a file check) and its marker file."""
    lines = [
        "apiVersion: labrunner/v1",
        "id: overhead",
        "title: Engine overhead",
        "env: {MARK: ok}",
        "steps:",
    ]
    for i in range(steps):
        lines += [
            f"  - id: s{i}",
            f"    title: Step {i}",
            "    run: ['true']",
            "    check:",
            "      - env: {name: MARK, equals: ok}",
            "      - file: {path: marker}",
        ]
    (directory / "overhead.yaml").write_text("\n".join(lines) + "\n")
    (directory / "marker").write_text("x")


def measure(steps: int) -> dict[str, float]:
    """Seconds to load+validate, to verify, and the commands' own share."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        write_lab(directory, steps)
        start = time.perf_counter()
        result = load_workshop(directory, builtin_registry())
        loaded = time.perf_counter()
        assert result.workshop is not None, result.problems
        command_time = 0.0

        def emit(event: ev.Event) -> None:
            nonlocal command_time
            if isinstance(event, ev.CommandFinished):
                command_time += event.duration

        engine = Engine(
            result.workshop,
            registry=builtin_registry(),
            store=ProgressStore.memory(),
            emit=emit,
            options=RunOptions(save=False),
            base_env=dict(os.environ),
        )
        summary = engine.verify(result.workshop.labs)
        done = time.perf_counter()
        assert summary.ok
        return {
            "load": loaded - start,
            "verify": done - loaded,
            "commands": command_time,
        }


def run() -> list[Figure]:
    """Overhead per step at 100 steps, and the growth table."""
    figures = []
    costs = {}
    for steps in (10, 100, 1000):
        m = measure(steps)
        overhead = (m["verify"] - m["commands"]) / steps * 1000
        costs[steps] = m["load"] + m["verify"] - m["commands"]
        figures.append(
            Figure(
                f"{steps}-step lab: load+validate / engine overhead per step",
                overhead,
                "ms/step",
                "< 20 ms/step" if steps == 100 else "",
                note=(
                    f"load+validate {m['load'] * 1000:.0f} ms, "
                    f"commands {m['commands'] * 1000:.0f} ms"
                ),
            )
        )
    growth = costs[1000] / costs[10] / 100
    figures.append(
        Figure(
            "cost growth 10→1000 steps, relative to linear",
            growth,
            "x linear",
            "<= 1.0 (no worse than linear)",
        )
    )
    return figures


def main() -> None:
    """Print the figures."""
    report(run())


if __name__ == "__main__":
    main()
