"""Progress across runs: resume where the learner was, stale steps everywhere, skip, reset.

These tests use the real file-backed progress store in the per-test state
directory (``LABRUNNER_STATE_DIR`` from the suite's autouse fixture), so
"quit and reopen" goes through the file exactly as it would for a learner.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from labrunner.lab.model import Workshop
from labrunner.state.rules import StepState
from labrunner.state.store import ProgressStore
from labrunner.tui.app import LabrunnerApp
from labrunner.tui.dialogs.confirm import ConfirmDialog
from labrunner.tui.screens.home import HomeScreen
from labrunner.tui.widgets.step_list import StepList

from .helpers import (
    given_progress,
    idle,
    lab_screen,
    notified,
    saved,
    step_label,
    text,
    wait_for,
)


def test_reopening_returns_to_the_same_place(
    build: Callable[..., LabrunnerApp], workshop: Workshop
) -> None:
    async def first_run() -> None:
        app = build()
        async with app.run_test(size=(100, 30)) as pilot:
            assert isinstance(app.screen, HomeScreen)
            await pilot.press("enter")
            screen = lab_screen(app)
            await pilot.press("r")
            await wait_for(pilot, lambda: screen.states["hello"] is StepState.PASSED, "pass")
            await pilot.press("n")
            assert screen.selected.id == "fix-me"
            await pilot.press("q")

    async def second_run() -> None:
        app = build()
        async with app.run_test(size=(100, 30)) as pilot:
            screen = lab_screen(app)
            assert screen.lab.id == "basics"
            assert screen.selected.id == "fix-me"
            steps = screen.query_one(StepList)
            assert steps.item("hello").has_class("-passed")
            assert steps.item("fix-me").has_class("-todo")
            # the passed step is re-checked in the background, and still passes
            await idle(pilot, app)
            assert not steps.item("hello").has_class("-stale")
            # escape goes back to the lab list, which shows the progress
            await pilot.press("escape")
            assert isinstance(app.screen, HomeScreen)
            meta = app.screen.query_one("#lab-basics .lab-meta")
            assert "1/4 steps" in str(meta.render())

    asyncio.run(first_run())
    assert ProgressStore.for_workshop(workshop, context=None).position() == ("basics", "fix-me")
    asyncio.run(second_run())


def test_a_step_that_no_longer_passes_is_stale_everywhere(
    build: Callable[..., LabrunnerApp], workshop: Workshop
) -> None:
    given_progress(workshop, "basics", "hello", "fix-me", at="ask")
    (workshop.root / "made.txt").write_text("ready\n")  # hello still passes; fixed.txt is gone

    async def scenario() -> None:
        app = build()
        async with app.run_test(size=(100, 30)) as pilot:
            screen = lab_screen(app)
            await wait_for(
                pilot, lambda: screen.states["fix-me"] is StepState.STALE, "the stale step"
            )
            await idle(pilot, app)
            steps = screen.query_one(StepList)
            # the step list: its own glyph, word and class, no longer the tick
            assert steps.item("fix-me").has_class("-stale")
            assert not steps.item("fix-me").has_class("-passed")
            assert step_label(app, "fix-me") == "⚠ 2. Create fixed.txt yourself (stale)"
            assert step_label(app, "hello").startswith("✔ 1.")
            # the header's counter does not count it as done
            assert "1/4 steps (1 stale)" in text(app, "#lab-title")
            # the heading says so, and why
            steps.select_step("fix-me")
            await pilot.pause()
            heading = text(app, "#step-heading")
            assert "[stale]" in heading
            assert "No longer passes: a file this lab made is gone: fixed.txt" in heading

            # a passed step that fails when checked with `c` turns stale just the same
            (workshop.root / "made.txt").unlink()
            steps.select_step("hello")
            await pilot.pause()
            await pilot.press("c")
            await wait_for(
                pilot, lambda: screen.states["hello"] is StepState.STALE, "hello to turn stale"
            )
            assert steps.item("hello").has_class("-stale")
            assert "0/4 steps (2 stale)" in text(app, "#lab-title")
            assert (
                saved(workshop)
                .steps("basics")["hello"]
                .stale.startswith("a file this lab made is gone")
            )
            assert saved(workshop).steps("basics")["hello"].status == "passed"  # kept

            # the lab list agrees
            await pilot.press("escape")
            assert isinstance(app.screen, HomeScreen)
            assert "0/4 steps (2 stale)" in text(app, "#lab-basics .lab-meta")
            assert text(app, "#lab-basics .lab-title").startswith("⚠")

            # a passing check clears the flag everywhere
            await pilot.press("enter")
            screen = lab_screen(app)
            await idle(pilot, app)
            (workshop.root / "made.txt").write_text("ready\n")
            screen.query_one(StepList).select_step("hello")
            await pilot.pause()
            await pilot.press("c")
            await wait_for(
                pilot, lambda: screen.states["hello"] is StepState.PASSED, "hello to pass"
            )
            assert "1/4 steps (1 stale)" in text(app, "#lab-title")

    asyncio.run(scenario())


def test_skip_runs_the_solution_only_when_confirmed_and_records_skipped(
    build: Callable[..., LabrunnerApp], workshop: Workshop
) -> None:
    given_progress(workshop, "basics", "hello", at="fix-me")
    (workshop.root / "made.txt").write_text("ready\n")

    async def scenario() -> None:
        app = build()
        async with app.run_test(size=(100, 30)) as pilot:
            screen = lab_screen(app)
            await idle(pilot, app)
            await pilot.press("k")
            assert isinstance(app.screen, ConfirmDialog)
            assert "touch fixed.txt" in str(app.screen.query_one(".dialog-body").render())
            await pilot.press("n")
            assert app.screen is screen
            await idle(pilot, app)
            assert not (workshop.root / "fixed.txt").exists()
            assert "fix-me" not in saved(workshop).steps("basics")

            await pilot.press("k")
            await pilot.press("y")
            await wait_for(pilot, lambda: screen.states["fix-me"] is StepState.SKIPPED, "skip")
            assert (workshop.root / "fixed.txt").exists()
            assert saved(workshop).steps("basics")["fix-me"].status == "skipped"
            assert screen.query_one(StepList).item("fix-me").has_class("-skipped")
            await notified(pilot, app, "recorded as skipped")

    asyncio.run(scenario())


def test_a_skip_that_does_not_pass_is_not_recorded(
    build: Callable[..., LabrunnerApp], workshop: Workshop
) -> None:
    given_progress(workshop, "after-basics", "done")
    given_progress(workshop, "basics", "hello", "fix-me", "ask", "slow", at="hello")
    (workshop.root / "made.txt").mkdir()  # the solution's printf cannot write a directory

    async def scenario() -> None:
        app = build()
        async with app.run_test(size=(100, 30)) as pilot:
            screen = lab_screen(app)
            await idle(pilot, app)
            await pilot.press("k", "y")
            await wait_for(pilot, lambda: "hello" in screen.failed, "the failure")
            await notified(pilot, app, "solution did not run")
            assert saved(workshop).steps("basics")["hello"].status == "passed"  # untouched

            await pilot.press("escape")
            app.home.highlighted = "after-basics"
            await pilot.pause()
            await pilot.press("enter")
            screen = lab_screen(app)
            assert screen.lab.id == "after-basics" and screen.selected.id == "bad-solution"
            await idle(pilot, app)
            await pilot.press("k", "y")
            await wait_for(pilot, lambda: "bad-solution" in screen.failed, "the failure")
            await notified(pilot, app, "the solution ran, but the checks still fail")
            assert "bad-solution" not in saved(workshop).steps("after-basics")
            assert screen.states["bad-solution"] is StepState.TODO

    asyncio.run(scenario())


def test_reset_asks_first_then_forgets_the_step_or_the_lab(
    build: Callable[..., LabrunnerApp], workshop: Workshop
) -> None:
    given_progress(workshop, "basics", "hello", "fix-me", at="fix-me")
    (workshop.root / "made.txt").write_text("ready\n")
    (workshop.root / "fixed.txt").write_text("")

    async def scenario() -> None:
        app = build()
        async with app.run_test(size=(100, 30)) as pilot:
            screen = lab_screen(app)
            await idle(pilot, app)
            assert screen.selected.id == "fix-me"
            await pilot.press("ctrl+r")
            assert isinstance(app.screen, ConfirmDialog)
            await pilot.press("escape")
            await idle(pilot, app)
            assert saved(workshop).completed("basics") == {"hello", "fix-me"}

            await pilot.press("ctrl+r", "y")
            await wait_for(pilot, lambda: screen.states["fix-me"] is StepState.TODO, "reset")
            assert saved(workshop).completed("basics") == {"hello"}
            assert (workshop.root / "fixed.txt").exists()  # files are the learner's; kept

            await pilot.press("R")
            assert isinstance(app.screen, ConfirmDialog)
            await pilot.press("y")
            await wait_for(pilot, lambda: screen.states["hello"] is StepState.TODO, "reset")
            assert saved(workshop).completed("basics") == set()
            assert screen.query_one(StepList).item("fix-me").has_class("-locked")

    asyncio.run(scenario())


def test_live_mode_passes_the_step_when_the_learner_fixes_it(
    build: Callable[..., LabrunnerApp], workshop: Workshop
) -> None:
    given_progress(workshop, "basics", "hello", at="fix-me")
    (workshop.root / "made.txt").write_text("ready\n")

    async def scenario() -> None:
        app = build(live_interval=0.1)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = lab_screen(app)
            await idle(pilot, app)
            await pilot.press("l")
            assert screen.live and screen.query_one("#lab-title").has_class("-live")
            await wait_for(
                pilot,
                lambda: (
                    screen.query_one("#checks").children
                    and "does not exist" in screen.query_one("#checks").children[0].message
                ),
                "a live check",
            )
            (workshop.root / "fixed.txt").write_text("")
            await wait_for(pilot, lambda: screen.states["fix-me"] is StepState.PASSED, "pass")
            await notified(pilot, app, "is unlocked")
            await pilot.press("l")
            assert not screen.live
            await app.workers.wait_for_complete()
            assert app.driver is not None and not app.driver.live

    asyncio.run(scenario())
