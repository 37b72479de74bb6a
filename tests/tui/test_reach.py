"""What people reach for (issue 13 item 6): copy a command, search the output,
see the whole workshop's progress, and learn what comes next at a lab's end."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable

from labrunner.lab.model import Workshop
from labrunner.tui.app import LabrunnerApp
from labrunner.tui.widgets.output_pane import OutputPane

from .helpers import given_progress, idle, lab_screen, notified, output, wait_for


def test_copy_emits_the_command_as_osc_52(
    build: Callable[..., LabrunnerApp], workshop: Workshop
) -> None:
    async def scenario() -> None:
        given_progress(workshop, "basics", at="hello")
        app = build()
        async with app.run_test(size=(100, 30)) as pilot:
            await idle(pilot, app)
            written: list[str] = []
            driver = app._driver
            assert driver is not None
            driver.write = written.append  # type: ignore[method-assign]
            await pilot.press("y")
            payload = base64.b64encode(b"echo hello-from-step\n").decode()
            await wait_for(
                pilot, lambda: f"\x1b]52;c;{payload}\x07" in written, "the OSC 52 sequence"
            )
            await notified(pilot, app, "Copied: echo hello-from-step")
            await pilot.press("1")  # the first block succeeds: y now copies the second
            screen = lab_screen(app)
            await wait_for(pilot, lambda: screen.block_states.get(0), "block 1")
            await idle(pilot, app)
            await pilot.press("y")
            second = base64.b64encode(b"printf 'ready\\n' > made.txt\n").decode()
            await wait_for(pilot, lambda: f"\x1b]52;c;{second}\x07" in written, "the second")

    asyncio.run(scenario())


def test_slash_searches_the_whole_output_scrollback(
    build: Callable[..., LabrunnerApp], workshop: Workshop
) -> None:
    async def scenario() -> None:
        given_progress(workshop, "basics", at="hello")
        app = build()
        async with app.run_test(size=(100, 30)) as pilot:
            await idle(pilot, app)
            screen = lab_screen(app)
            pane = screen.query_one(OutputPane)
            pane.append([("out", f"line {n}") for n in range(500)])
            pane.append([("out", "\x1b[31mneedle\x1b[0m in red"), ("out", "the end")])
            pane.append([("out", f"after {n}") for n in range(300)])
            await pilot.press("slash")
            await pilot.press(*"NEEDLE", "enter")
            await wait_for(pilot, lambda: pane.marked == 500, "the match")
            assert not pane.follow
            assert pane.scroll_y <= 500 < pane.scroll_y + pane.size.height  # in view
            assert "Line 501 of 802" in str(screen.query_one("#search-label").render())
            await pilot.press("ctrl+u", *"line 49", "enter")
            await wait_for(pilot, lambda: pane.marked == 499, "the newest 'line 49…'")
            await pilot.press("enter")
            await wait_for(pilot, lambda: pane.marked == 498, "the next older match")
            await pilot.press("escape")
            await wait_for(pilot, lambda: pane.marked is None, "the search to close")
            assert not screen.query_one("#search-row").has_class("-shown")
            assert output(app)  # the pane still holds everything

    asyncio.run(scenario())
