"""What the learner sees, as SVG snapshots (pytest-textual-snapshot).

Each snapshot waits for the app to settle (the doctor answered, background
re-checks done) and clears notifications first, so nothing depends on
timing. Paths and timestamps never reach the screen in these views: the
doctor is a fake with fixed findings and the progress store is in memory.
Both themes are covered, and the small 80×24 terminal as well as 100×30.

Regenerate after an intended change with ``pytest tests/tui --snapshot-update``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from labrunner.lab.model import Workshop
from labrunner.state.store import ProgressStore
from labrunner.tui.app import LabrunnerApp
from labrunner.tui.screens.lab import LabScreen
from labrunner.tui.widgets.terminal_pane import TerminalPane

from .helpers import MESH_LAB, mesh_workshop, wait_for

SnapCompare = Callable[..., bool]


@pytest.fixture(autouse=True)
def colour(monkeypatch: pytest.MonkeyPatch, workshop: Workshop) -> None:
    """Snapshots show colours (the suite sets NO_COLOR), and step 1's file exists."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    (workshop.root / "made.txt").write_text("ready\n")


def settled(
    *keys: str, until: Callable[[LabrunnerApp], object] | None = None, home: bool = False
) -> Callable[[Pilot[Any]], Any]:
    """A ``run_before`` that presses keys, waits for the app to be idle, and clears toasts."""

    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, LabrunnerApp)
        await wait_for(pilot, lambda: app.environment.checked, "the doctor")
        await app.workers.wait_for_complete()
        if home and isinstance(app.screen, LabScreen):
            await pilot.press("escape")
        for key in keys:
            await pilot.press(key)
            await app.workers.wait_for_complete()
            await pilot.pause()
        if until is not None:
            await wait_for(pilot, lambda: until(app), "the view to settle")
        await app.workers.wait_for_complete()
        await wait_for(pilot, lambda: terminal_settled(app), "the terminal to settle")
        await pilot.pause()
        app.clear_notifications()
        await pilot.pause()

    return run_before


def terminal_settled(app: LabrunnerApp) -> bool:
    """True off the lab screen, or when its terminal shows the shell's idle prompt."""
    screen = app.screen
    if not isinstance(screen, LabScreen) or not screen.terminal_pane:
        return True
    pane = screen.query_one(TerminalPane)
    view, shell = pane.view, pane.shell
    if view is None or shell is None or shell.tracker is None:
        return False
    lines = [line.rstrip() for line in view.frame.text() if line.strip()]
    shown = str(pane.query_one("#terminal-status").render())
    return (
        shell.tracker.at_empty_prompt
        and bool(lines)
        and lines[-1].endswith("$")
        and "running" not in shown  # the status row caught up with the shell
        and pane.has_class("-open") == pane.in_use  # and the pane's size with its use
    )


def midway_store() -> ProgressStore:
    store = ProgressStore.memory()
    store.record("basics", "hello", "passed")
    store.record(
        "basics", "fix-me", "failed", message="not done after 0s: fixed.txt does not exist yet"
    )
    return store


def hint_shown(app: LabrunnerApp) -> bool:
    """Step 2 failed and its first hint is revealed."""
    screen = app.screen
    return isinstance(screen, LabScreen) and screen.hints_shown.get("fix-me") == 1


def test_home_dark(snap_compare: SnapCompare, build: Callable[..., LabrunnerApp]) -> None:
    app = build(store=midway_store())
    assert snap_compare(app, terminal_size=(100, 30), run_before=settled(home=True))


def test_home_light_small(snap_compare: SnapCompare, build: Callable[..., LabrunnerApp]) -> None:
    app = build(store=midway_store())
    app.theme = "textual-light"
    assert snap_compare(app, terminal_size=(80, 24), run_before=settled(home=True))


def test_lab_midway_dark(snap_compare: SnapCompare, build: Callable[..., LabrunnerApp]) -> None:
    app = build(store=midway_store())
    assert snap_compare(app, terminal_size=(100, 30), run_before=settled())


def test_lab_midway_light_small(
    snap_compare: SnapCompare, build: Callable[..., LabrunnerApp]
) -> None:
    app = build(store=midway_store())
    app.theme = "textual-light"
    assert snap_compare(app, terminal_size=(80, 24), run_before=settled())


def test_failed_check_with_hint(
    snap_compare: SnapCompare, build: Callable[..., LabrunnerApp]
) -> None:
    app = build(store=midway_store())
    assert snap_compare(
        app, terminal_size=(100, 30), run_before=settled("r", "h", until=hint_shown)
    )


def test_lab_terminal_pane(snap_compare: SnapCompare, build: Callable[..., LabrunnerApp]) -> None:
    """The pane at 120×35, focused, after a command typed into it."""
    app = build(store=midway_store())

    async def typed(pilot: Pilot[Any]) -> None:
        await settled()(pilot)
        await pilot.press("i", *"echo typed", "enter")
        screen = app.screen
        assert isinstance(screen, LabScreen)
        view = screen.query_one(TerminalPane).view
        assert view is not None

        def echoed() -> bool:
            assert view is not None
            return any(line.strip() == "typed" for line in view.frame.text())

        await wait_for(pilot, echoed, "the echo")
        await wait_for(pilot, lambda: terminal_settled(app), "the prompt")
        status = screen.query_one("#terminal-status")
        await wait_for(pilot, lambda: "✔ exit 0" in str(status.render()), "the status row")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 35), run_before=typed)


def test_lab_terminal_pane_small(
    snap_compare: SnapCompare, build: Callable[..., LabrunnerApp]
) -> None:
    """The pane at 80×24: the footer still shows Quit, Help and the focus key."""
    app = build(store=midway_store())
    assert snap_compare(app, terminal_size=(80, 24), run_before=settled())


def test_help_screen(snap_compare: SnapCompare, build: Callable[..., LabrunnerApp]) -> None:
    app = build(store=ProgressStore.memory())
    assert snap_compare(app, terminal_size=(100, 30), run_before=settled("question_mark"))


def test_home_wide(snap_compare: SnapCompare, build: Callable[..., LabrunnerApp]) -> None:
    """120×35: the workshop's progress line above the labs."""
    app = build(store=midway_store())
    assert snap_compare(app, terminal_size=(120, 35), run_before=settled(home=True))


def test_lab_wide(snap_compare: SnapCompare, build: Callable[..., LabrunnerApp]) -> None:
    """120×35: instructions, every command and the checks together; no output yet, so
    the output pane is collapsed to its title."""
    app = build(store=midway_store())
    assert snap_compare(app, terminal_size=(120, 35), run_before=settled())


def test_failed_check_with_hint_small(
    snap_compare: SnapCompare, build: Callable[..., LabrunnerApp]
) -> None:
    """80×24 after a failed run: output shown, the hint in view, Help and Quit in the footer."""
    app = build(store=midway_store())
    assert snap_compare(app, terminal_size=(80, 24), run_before=settled("r", "h", until=hint_shown))


@pytest.mark.skipif(not MESH_LAB.is_file(), reason="the bundled cluster-free lab is not here")
@pytest.mark.parametrize("size", [(120, 35), (80, 24)], ids=["wide", "small"])
def test_lab_six_commands(
    snap_compare: SnapCompare,
    build: Callable[..., LabrunnerApp],
    tmp_path: Path,
    size: tuple[int, int],
) -> None:
    """The bundled lab's first step: six commands (one row each but the current one), two
    checks and the idle terminal, together on one screen."""
    app = build(
        workshop=mesh_workshop(tmp_path), lab="mesh-security-basics", store=ProgressStore.memory()
    )
    assert snap_compare(app, terminal_size=size, run_before=settled())
