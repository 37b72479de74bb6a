"""What saving progress costs: a 1,000-step lab with and without ``--no-save``.

Saving must cost O(step), not O(progress file): each step appends one line to
the workshop's progress journal (``labrunner.state.journal``) instead of
rewriting a whole file. ``labrunner verify`` runs a lab of N steps (each runs
``true`` and checks one environment variable and one file) as a real
subprocess, in a fresh state directory, once saving progress and once with
``--no-save``, back to back (alternating which goes first); the overhead is
the median over the rounds of each pair's difference over its ``--no-save``
time.
Target: at most 20 % for 1,000 steps (before the journal: 12.3 s vs 7.6 s,
62 %). Also reports the cost per saved step, how long ``labrunner list``
takes to read the resulting progress, and what a large progress file of the
first format (one file for every workshop, here ~50 MB of other labs) costs
``list``: the first start reads it once, later starts must not (before: a
52 MB file made a 2-step run take 4.5 s).

    python bench/progress_writes.py [--steps N] [--repeat R]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import Figure, report
from engine_overhead import write_lab

TARGET = "<= 20 %"


def _run(root: Path, state: Path, *args: str) -> float:
    # no kube context: the first-format file below is the one of "no context"
    env = dict(os.environ, LABRUNNER_STATE_DIR=str(state), NO_COLOR="1")
    env["KUBECONFIG"] = str(state / "no-such-kubeconfig")
    env.pop("LABRUNNER_LABS", None)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "labrunner", "--labs", str(root), *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"labrunner {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return elapsed


def measure(steps: int, repeat: int) -> dict[str, float]:
    """Median seconds of verify with and without saving, and of list afterwards."""
    saving: list[float] = []
    not_saving: list[float] = []
    listing: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        # a labs folder not named labs/ is its own workshop root: the marker sits beside the lab
        root = Path(tmp) / "workshop"
        root.mkdir()
        write_lab(root, steps)
        for round_no in range(repeat):
            state = Path(tmp) / f"state-{round_no}"
            # a fresh state directory has no compiled-lab cache: fill it first, so both timed
            # runs read the lab the same way and the difference is only the progress writes
            _run(root, state, "validate")
            # alternate the order so neither run always gets the warmer caches
            if round_no % 2:
                not_saving.append(_run(root, state, "verify", "-q", "--no-save"))
                saving.append(_run(root, state, "verify", "-q"))
            else:
                saving.append(_run(root, state, "verify", "-q"))
                not_saving.append(_run(root, state, "verify", "-q", "--no-save"))
            listing.append(_run(root, state, "list", "--no-steps"))
        old_first, old_later = _first_format(root, Path(tmp) / "state-old")
    return {
        "save": statistics.median(saving),
        "no_save": statistics.median(not_saving),
        # each round's two runs are a pair, back to back: the median of the pairs' ratios
        # follows the machine's load less than the ratio of two separate medians
        "ratio": statistics.median(s / n for s, n in zip(saving, not_saving, strict=True)),
        "list": statistics.median(listing),
        "old_first": old_first,
        "old_later": old_later,
    }


def _first_format(root: Path, state: Path) -> tuple[float, float]:
    """``list`` beside a ~50 MB first-format progress file of other labs: first, then later."""
    labs = {
        f"other-{i}": {
            "steps": {
                f"s{j}": {"status": "passed", "at": "2026-01-01T00:00:00Z", "cwd": "/x" * 20}
                for j in range(100)
            }
        }
        for i in range(4000)
    }
    old = state / "progress" / "no-context.json"
    old.parent.mkdir(parents=True)
    old.write_text(json.dumps({"version": 1, "context": None, "labs": labs}))
    _run(root, state, "validate")
    first = _run(root, state, "list", "--no-steps")
    later = statistics.median(_run(root, state, "list", "--no-steps") for _ in range(3))
    return first, later


def run(steps: int = 1000, repeat: int = 5) -> list[Figure]:
    """The figures for bench/run_all.py."""
    result = measure(steps, repeat)
    overhead = (result["ratio"] - 1) * 100
    per_step = (result["ratio"] - 1) * result["no_save"] / steps * 1000
    return [
        Figure(
            f"saving progress: overhead of a {steps:,}-step verify over --no-save",
            overhead,
            "%",
            target=TARGET,
            note=(
                f"verify {result['save']:.2f} s saving, {result['no_save']:.2f} s with "
                f"--no-save (medians of {repeat} paired rounds); before the journal: "
                "12.3 s vs 7.6 s"
            ),
        ),
        Figure(f"saving progress: cost per saved step ({steps:,} steps)", per_step, "ms/step"),
        Figure(
            f"labrunner list after a {steps:,}-step run (loading the lab included)",
            result["list"] * 1000,
            "ms",
        ),
        Figure(
            "labrunner list beside a ~50 MB first-format progress file of other labs, later starts",
            result["old_later"] * 1000,
            "ms",
            note=f"the first start reads the file once: {result['old_first'] * 1000:.0f} ms",
        ),
    ]


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    report(run(args.steps, args.repeat))


if __name__ == "__main__":
    main()
