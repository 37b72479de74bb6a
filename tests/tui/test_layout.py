"""The lab screen fits: a real six-command step at 120×35 and at 80×24.

The bundled cluster-free lab's first step has six commands and two checks.
Every command row, every check row and the terminal must be on screen
together, judged by where Textual placed each widget (its region, clipped
by the scrolling containers around it), not by a picture. The idle terminal
takes a few rows; focused, it opens and gives them back when left.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widget import Widget
from textual.widgets import Footer

from labrunner.lab.model import Workshop
from labrunner.tui.app import LabrunnerApp
from labrunner.tui.screens.lab import LabScreen
from labrunner.tui.widgets.checks_panel import ChecksPanel
from labrunner.tui.widgets.command_block import CommandBlock
from labrunner.tui.widgets.terminal_pane import TerminalPane

from .helpers import (
    MESH_LAB,
    find_pids,
    footer_actions,
    given_progress,
    idle,
    lab_screen,
    mesh_workshop,
    notified,
    wait_for,
)

needs_mesh_lab = pytest.mark.skipif(
    not MESH_LAB.is_file(), reason="the bundled cluster-free lab is not here"
)


def fully_shown(screen: LabScreen, widget: Widget) -> bool:
    """True when all of ``widget`` is painted: inside the screen, above the footer, and not
    clipped by a scrolling container."""
    geometry = screen.find_widget(widget)
    region = geometry.region
    footer = screen.query_one(Footer).region
    return (
        region.height > 0
        and geometry.visible_region == region
        and screen.region.contains_region(region)
        and not region.overlaps(footer)
    )


def terminal_ready(screen: LabScreen) -> bool:
    """The pane shows the lab shell at its prompt."""
    pane = screen.query_one(TerminalPane)
    view, shell = pane.view, pane.shell
    if view is None or shell is None or shell.tracker is None:
        return False
    return shell.tracker.at_empty_prompt and any(
        line.rstrip().endswith("$") for line in view.frame.text()
    )


@needs_mesh_lab
@pytest.mark.parametrize("size", [(120, 35), (80, 24)])
def test_every_command_check_and_the_terminal_fit_together(
    build: Callable[..., LabrunnerApp], tmp_path: Path, size: tuple[int, int]
) -> None:
    workshop = mesh_workshop(tmp_path)
    step = workshop.lab("mesh-security-basics").steps[0]
    assert len(step.run) == 6 and len(step.check) == 2  # the step this test is about

    async def scenario() -> None:
        app = build(workshop=workshop, lab="mesh-security-basics")
        async with app.run_test(size=size) as pilot:
            screen = lab_screen(app)
            await wait_for(pilot, lambda: terminal_ready(screen), "the lab shell's prompt")
            await pilot.pause()
            blocks = list(screen.query(CommandBlock))
            rows = screen.query_one(ChecksPanel).rows()
            assert len(blocks) == 6 and len(rows) == 2
            pane = screen.query_one(TerminalPane)
            for widget in [*blocks, *rows, pane]:
                assert fully_shown(screen, widget), (widget, screen.find_widget(widget))
            view = pane.view
            assert view is not None and fully_shown(screen, view)
            assert fully_shown(screen, screen.query_one("#step-heading"))
            assert fully_shown(screen, screen.query_one("#step-text"))  # the instructions
            # idle, the terminal is a few rows: its prompt, with the last lines above it
            assert not pane.has_class("-open") and view.region.height <= 4
            shown = [view.render_line(y).text.rstrip() for y in range(view.size.height)]
            assert any(line.endswith("$") for line in shown), shown
            # every command takes one row except the current one (shown in full)
            assert all(b.region.height == 1 for b in blocks[1:])
            # focused, it opens; given back, it shrinks again and the checks are back in view
            await pilot.press("i")
            await wait_for(pilot, lambda: view.region.height >= 8, "the pane to open")
            assert pane.has_class("-open")
            await pilot.press("ctrl+right_square_bracket")
            await wait_for(pilot, lambda: not pane.has_class("-open"), "the pane to close")
            await pilot.pause()
            for widget in [*blocks, *rows, pane]:
                assert fully_shown(screen, widget), widget

    asyncio.run(scenario())


def test_the_footer_offers_cancel_only_while_a_command_runs(
    build: Callable[..., LabrunnerApp], workshop: Workshop, reap: list[int]
) -> None:
    given_progress(workshop, "basics", "hello", "fix-me", "ask", at="slow")

    async def scenario() -> None:
        app = build()
        async with app.run_test(size=(120, 35)) as pilot:
            screen = lab_screen(app)
            await idle(pilot, app)
            assert "run_step" in footer_actions(screen)
            assert "cancel" not in footer_actions(screen)
            await pilot.press("r")
            await wait_for(pilot, lambda: find_pids("sleep 600"), "sleep to start")
            reap.extend(find_pids("sleep 600"))
            await wait_for(pilot, lambda: "cancel" in footer_actions(screen), "x Cancel")
            await pilot.press("x")
            await wait_for(pilot, lambda: screen.job is None, "the job to end")
            await wait_for(pilot, lambda: "cancel" not in footer_actions(screen), "no Cancel")
            await pilot.press("ctrl+c")  # nothing runs: Ctrl+C says so
            await notified(pilot, app, "Nothing is running.")

    asyncio.run(scenario())
