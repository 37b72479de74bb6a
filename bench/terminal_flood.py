"""A flood through the embedded terminal: time, memory, and how the UI thread keeps up.

Targets: while the lab shell prints 200,000 lines, a callback scheduled on the
UI thread runs within 100 ms (p95), and the process stays under 200 MB.

A headless Textual app holds only the terminal pane, attached to a real bash
on a PTY; ``seq 200000`` is typed into it. While the lines stream, a side
thread asks the UI thread to run a callback every 5 ms
(``App.call_from_thread``) and measures how long each waits — what a key
binding or a timer of the lab screen would wait. The flood ends when the
shell's end-of-command mark arrives and the pane shows the last line and the
prompt. Resident memory comes from /proc/self/status (VmHWM is the peak).

    python bench/terminal_flood.py [--lines N] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time

from _common import Figure, p95_ms, report
from _terminal_app import PaneApp, pane_shell

INTERVAL = 0.005


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process, in MB."""
    values = {}
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, amount, _ = line.split()
                values[key] = int(amount) / 1024
    return values["VmRSS:"], values["VmHWM:"]


def ping(app: PaneApp, flooding: threading.Event, latencies: list[float]) -> None:
    """While ``flooding``, time how long the UI thread takes to run a callback."""

    def record(sent: float) -> None:
        latencies.append(time.perf_counter() - sent)

    while flooding.is_set():
        app.call_from_thread(record, time.perf_counter())
        time.sleep(INTERVAL)


async def measure(lines: int, rounds: int) -> dict[str, object]:
    latencies: list[float] = []
    durations: list[float] = []
    with pane_shell() as shell:
        app = PaneApp(shell)
        async with app.run_test(size=(120, 35)) as pilot:
            view = app.view
            while "lab$" not in "".join(view.frame.text()):
                await pilot.pause(0.01)
            last = str(lines)
            for _ in range(rounds):
                flooding = threading.Event()
                flooding.set()

                before = shell.tracker.commands_finished
                pinger = threading.Thread(target=ping, args=(app, flooding, latencies), daemon=True)
                started = time.perf_counter()
                pinger.start()
                shell.pump.send(f"seq {lines}\r")
                while not (
                    shell.tracker.commands_finished > before
                    and view.frame.text()[-3:-1] == [str(lines - 1), last]
                ):
                    await asyncio.sleep(0.005)
                    if time.perf_counter() - started > 300:
                        raise SystemExit("the flood did not end within 300 s")
                durations.append(time.perf_counter() - started)
                flooding.clear()
                await asyncio.to_thread(pinger.join)
            stats = view.emulator.stats
    current, peak = rss_mb()
    return {
        "latencies": latencies,
        "duration": statistics.median(durations),
        "rss": current,
        "peak": peak,
        "skipped": stats.skipped / max(1, stats.received),
        "frames": stats.frames,
    }


def run(lines: int = 200_000, rounds: int = 3) -> list[Figure]:
    """Flood the pane ``rounds`` times and report UI latency, duration and memory."""
    result = asyncio.run(measure(lines, rounds))
    latencies = result["latencies"]
    assert isinstance(latencies, list)
    note = (
        f"{len(latencies)} UI callbacks over {rounds} floods of {lines:,} lines; the emulator "
        f"skipped {float(str(result['skipped'])):.1%} of the bytes and drew "
        f"{result['frames']} frames"
    )
    return [
        Figure(
            "terminal flood: UI callback latency p95",
            p95_ms(latencies),
            "ms",
            "< 100 ms",
            note=note,
        ),
        Figure("terminal flood: UI callback latency max", max(latencies) * 1000, "ms"),
        Figure(
            f"terminal flood: {lines:,} lines to the prompt, median",
            float(str(result["duration"])),
            "s",
        ),
        Figure("terminal flood: peak RSS (VmHWM)", float(str(result["peak"])), "MB", "< 200 MB"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    report(run(args.lines, args.rounds))


if __name__ == "__main__":
    main()
