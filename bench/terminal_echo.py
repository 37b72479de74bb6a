"""Keypress to echo in the embedded terminal: from the key event to the character on screen.

Target: p95 under 30 ms over 200 keys in an idle pane.

A headless Textual app holds only the terminal pane, attached to a real
interactive bash (readline on) on a PTY. Each key is posted to the app the
way the terminal driver posts it; the clock stops when the emulator's
thread publishes a frame whose cursor row shows the line typed so far — so
the figure covers Textual's dispatch, the key encoder, the pump's writer,
the kernel, readline's echo, the pump's reader, the escape filter and pyte.
Keys go one at a time with a short pause between them (an idle pane, a
person typing).

    python bench/terminal_echo.py [--keys N]
"""

from __future__ import annotations

import argparse
import asyncio
import string
import threading
import time

from _common import Figure, median_ms, p95_ms, report
from _terminal_app import PaneApp, pane_shell
from textual import events

from labrunner.tui.terminal.emulator import Frame

PAUSE = 0.01
COLUMNS = 240


async def measure(keys: int) -> list[float]:
    latencies: list[float] = []
    with pane_shell() as shell:
        app = PaneApp(shell)
        async with app.run_test(size=(COLUMNS, 20)) as pilot:
            view = app.view
            while "lab$" not in "".join(view.frame.text()):
                await pilot.pause(0.01)
            emulator = view.emulator
            forward = emulator.on_frame
            expected = ""
            echoed = threading.Event()
            seen_at = 0.0

            def on_frame(frame: Frame) -> None:
                nonlocal seen_at
                if forward is not None:
                    forward(frame)
                if frame.cursor is None or echoed.is_set():
                    return
                if frame.line_text(frame.cursor[1]).rstrip().endswith(expected):
                    seen_at = time.perf_counter()
                    echoed.set()

            emulator.on_frame = on_frame
            driver = app._driver
            assert driver is not None
            letters = string.ascii_lowercase
            typed = ""
            for i in range(keys):
                if len(typed) >= COLUMNS - 20:
                    shell.pump.send(b"\x15")  # Ctrl+U: start the line again
                    while view.frame.contains(typed):
                        await asyncio.sleep(0.005)
                    typed = ""
                char = letters[i % len(letters)]
                typed += char
                expected = "lab$ " + typed
                echoed.clear()
                key = events.Key(char, char)
                key.set_sender(app)
                sent = time.perf_counter()
                driver.send_message(key)
                while not echoed.is_set():
                    await asyncio.sleep(0.0005)
                    if time.perf_counter() - sent > 5:
                        raise SystemExit(f"no echo of key {i} within 5 s")
                latencies.append(seen_at - sent)
                await asyncio.sleep(PAUSE)
    return latencies


def run(keys: int = 200) -> list[Figure]:
    """Type ``keys`` keys and report the echo latency."""
    latencies = asyncio.run(measure(keys))
    note = f"{len(latencies)} keys into a real bash (readline) through the pane"
    return [
        Figure("terminal keypress to echo, p95", p95_ms(latencies), "ms", "< 30 ms", note=note),
        Figure("terminal keypress to echo, median", median_ms(latencies), "ms"),
        Figure("terminal keypress to echo, max", max(latencies) * 1000, "ms"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--keys", type=int, default=200)
    report(run(parser.parse_args().keys))


if __name__ == "__main__":
    main()
