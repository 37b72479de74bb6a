"""What people reach for (issue 13 item 6): copy a command, search the output,
see the whole workshop's progress, and learn what comes next at a lab's end."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable

from labrunner.doctor import Finding, Topic, cluster
from labrunner.lab.model import Workshop
from labrunner.state.store import ProgressStore
from labrunner.tui.app import LabrunnerApp
from labrunner.tui.screens.home import HomeScreen
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
        # the output log's search; with the terminal pane, `/` searches the terminal's
        # scrollback instead (tests/tui/test_terminal_pane.py)
        app = build(terminal_pane=False)
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


def test_the_home_screen_shows_the_whole_workshops_progress(
    build: Callable[..., LabrunnerApp], workshop: Workshop
) -> None:
    store = ProgressStore.memory()
    for step_id in ("hello", "fix-me", "ask", "slow"):
        store.record("basics", step_id, "passed")
    for name, text in {"made.txt": "ready", "fixed.txt": "", "name.txt": "hello, you"}.items():
        (workshop.root / name).write_text(text + "\n")  # so the re-check finds them passing
    (workshop.root / "slow.txt").write_text("")

    async def scenario() -> None:
        app = build(store=store)
        async with app.run_test(size=(100, 30)) as pilot:
            await idle(pilot, app)
            if not isinstance(app.screen, HomeScreen):
                await pilot.press("escape")
            line = str(app.home.query_one("#workshop-progress").render())
            total = sum(len(lab.steps) for lab in workshop.labs)
            assert f"1/{len(workshop.labs)} labs done · 4/{total} steps" in line

    asyncio.run(scenario())


def test_time_spent_adds_up_the_gaps_between_records(workshop: Workshop) -> None:
    from labrunner.state.rules import lab_progress, workshop_progress
    from labrunner.state.store import StepRecord

    def at(minute: int) -> StepRecord:
        return StepRecord("passed", f"2026-01-01T10:{minute:02d}:00Z")

    records = {"basics": {"hello": at(0), "fix-me": at(5), "ask": at(12)}}
    records["after-basics"] = {"done": at(50)}  # a lab on its own: no gap to count
    summary = workshop_progress(workshop, records, lab_progress(workshop, records))
    assert summary.seconds == 12 * 60
    assert "about 12 min spent" in summary.label


def finish_basics(workshop: Workshop) -> None:
    """Three of the four steps passed, the files of all four in place."""
    given_progress(workshop, "basics", "hello", "fix-me", "ask", at="slow")
    for name, text in {"made.txt": "ready", "fixed.txt": "", "name.txt": "hello, you"}.items():
        (workshop.root / name).write_text(text + "\n")
    (workshop.root / "slow.txt").write_text("")


def test_the_end_of_a_lab_says_what_comes_next(
    build: Callable[..., LabrunnerApp], workshop: Workshop
) -> None:
    async def scenario() -> None:
        finish_basics(workshop)
        app = build()
        async with app.run_test(size=(100, 30)) as pilot:
            await idle(pilot, app)
            await pilot.press("c")
            await notified(pilot, app, "Lab complete")
            await notified(pilot, app, "Next: “Talk to the cluster”")

    asyncio.run(scenario())


def test_without_a_cluster_the_end_of_a_lab_says_how_to_make_one(
    build: Callable[..., LabrunnerApp], workshop: Workshop
) -> None:
    no_context = Finding(
        "kube context",
        False,
        "no kubeconfig",
        cluster.FIXES["kubeconfig"],
        required=True,
        topic=Topic.CONTEXT,
    )

    async def scenario() -> None:
        finish_basics(workshop)
        app = build(doctor=lambda: [no_context])
        async with app.run_test(size=(100, 30)) as pilot:
            await idle(pilot, app)
            await wait_for(pilot, lambda: app.environment.checked, "the doctor")
            await pilot.press("c")
            await notified(pilot, app, "Lab complete")
            await notified(pilot, app, f"needs a cluster; {cluster.CREATE_CLUSTER_FIX}.")
            assert cluster.CREATE_CLUSTER_FIX in cluster.FIXES["kubeconfig"]  # doctor's words

    asyncio.run(scenario())


def test_the_first_screen_ends_the_start_up_pause_of_the_collector(
    build: Callable[..., LabrunnerApp],
) -> None:
    # the console script pauses the cyclic collector while the TUI's modules load
    # (labrunner.startup); the app turns it back on once its first screen is up
    import gc

    from labrunner import startup

    async def scenario() -> None:
        app = build()
        startup.pause()
        try:
            assert not gc.isenabled()
            async with app.run_test(size=(100, 30)) as pilot:
                await idle(pilot, app)
                assert app.ready.is_set()
                assert gc.isenabled() and gc.get_freeze_count() > 0
        finally:
            startup.resume()  # a no-op when the app did it; this process's own state back
            gc.unfreeze()

    asyncio.run(scenario())
