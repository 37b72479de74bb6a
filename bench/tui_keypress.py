"""Keypress latency and memory while a command floods the output pane.

Targets: a keypress is handled within 100 ms (p95) while a step's command
prints 200,000 lines, and the process stays under 200 MB RSS.

The app runs in-process (headless, 100×30) with the real engine and a real
bash, on a one-step lab whose command is ``seq 200000``. While the lines
stream, the benchmark sends the ``f`` key (toggle follow) every 5 ms the way
the terminal driver would, and measures from sending the key to the moment
the screen's action handler runs. The step runs several times in the same
app so the sample is large enough for a p95. RSS comes from /proc/self/status
(current and peak), sampled throughout.

    python bench/tui_keypress.py [--lines N] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import textwrap
import time
from pathlib import Path

from _common import Figure, p95_ms, report
from textual import events

INTERVAL = 0.005

LAB = """\
apiVersion: labrunner/v1
kind: Lab
id: flood
title: A flood of output
steps:
  - id: flood
    title: Print many lines
    run:
      - cmd: seq {lines}
        timeout: 10m
    check:
      - command: {{run: "true", exit_code: 0}}
"""


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process, in MB."""
    values = {}
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, amount, _ = line.split()
                values[key] = int(amount) / 1024
    return values["VmRSS:"], values["VmHWM:"]


async def measure(lines: int, root: Path, rounds: int) -> dict[str, object]:
    from labrunner.lab.loader import load_workshop
    from labrunner.state.store import ProgressStore
    from labrunner.tui.app import make_app
    from labrunner.tui.screens.lab import LabScreen
    from labrunner.tui.widgets.output_pane import OutputPane
    from labrunner.verify.registry import builtin_registry

    labs = root / "labs"
    labs.mkdir()
    (labs / "flood.yaml").write_text(LAB.format(lines=lines))
    workshop = load_workshop(labs, builtin_registry()).workshop
    assert workshop is not None
    app = make_app(workshop, store=ProgressStore.memory(), doctor=list, lab="flood")
    latencies: list[float] = []
    rss_samples: list[float] = []
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, LabScreen)
        handled: list[float] = []
        toggle = screen.action_toggle_follow

        def timed_toggle() -> None:
            handled.append(time.perf_counter())
            toggle()

        screen.action_toggle_follow = timed_toggle  # type: ignore[method-assign]
        await app.workers.wait_for_complete()
        driver = app._driver
        assert driver is not None

        def send(name: str) -> None:
            key = events.Key(name, name)
            key.set_sender(app)
            driver.send_message(key)

        pane = screen.query_one(OutputPane)
        durations = []
        for _ in range(rounds):
            started = time.perf_counter()
            send("r")
            while screen.job is None and time.perf_counter() - started < 5:
                await asyncio.sleep(0.001)
            while screen.job is not None:
                before = len(handled)
                sent = time.perf_counter()
                send("f")
                while len(handled) == before:
                    await asyncio.sleep(0.0005)
                    if time.perf_counter() - sent > 5:
                        raise SystemExit("a keypress was not handled within 5 s")
                latencies.append(handled[-1] - sent)
                rss_samples.append(rss_mb()[0])
                await asyncio.sleep(INTERVAL)
            durations.append(time.perf_counter() - started)
        elapsed = statistics.median(durations)
        await pilot.pause()
        shown = pane.line_count
        passed = screen.states["flood"].complete
        await pilot.press("q")
    current, peak = rss_mb()
    return {
        "latencies": latencies,
        "elapsed": elapsed,
        "rss_max": max([*rss_samples, current]),
        "rss_peak": peak,
        "pane_lines": shown,
        "passed": passed,
    }


def run(lines: int = 200_000, rounds: int = 5) -> list[Figure]:
    """Run the flood ``rounds`` times and report latency, duration and memory."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ.setdefault("LABRUNNER_STATE_DIR", str(root / "state"))
        os.environ["KUBECONFIG"] = str(root / "no-kubeconfig")
        result = asyncio.run(measure(lines, root, rounds))
    latencies = result["latencies"]
    assert isinstance(latencies, list)
    note = (
        f"{len(latencies)} keypresses over {rounds} runs of {lines} lines; "
        f"pane kept {result['pane_lines']} lines; step passed: {result['passed']}"
    )
    return [
        Figure("keypress latency p95 during flood", p95_ms(latencies), "ms", "< 100 ms", note=note),
        Figure("keypress latency max during flood", max(latencies) * 1000, "ms"),
        Figure("flood duration, median (key r to step passed)", float(str(result["elapsed"])), "s"),
        Figure("RSS, highest sampled", float(str(result["rss_max"])), "MB", "< 200 MB"),
        Figure("RSS, peak (VmHWM)", float(str(result["rss_peak"])), "MB", "< 200 MB"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=textwrap.dedent(__doc__ or "").splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    report(run(args.lines, args.rounds))


if __name__ == "__main__":
    main()
