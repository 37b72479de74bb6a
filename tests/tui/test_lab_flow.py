"""Driving a lab through the TUI with the real engine and a real bash.

A learner's path: run a step and watch its output, fail a check and get its
hint, fix the problem themselves, pass and move on; answer a prompt; cancel
a command that would run for ten minutes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from textual.widgets import Markdown

from labrunner.engine import events as ev
from labrunner.engine.events import StepStatus
from labrunner.lab.model import Workshop
from labrunner.state.rules import StepState
from labrunner.tui import messages as msg
from labrunner.tui.app import LabrunnerApp
from labrunner.tui.dialogs.confirm import ConfirmDialog
from labrunner.tui.messages import JobKind
from labrunner.tui.widgets.checks_panel import ChecksPanel
from labrunner.tui.widgets.command_block import CommandBlock
from labrunner.tui.widgets.output_pane import OutputPane
from labrunner.tui.widgets.step_list import StepList

from .helpers import (
    find_pids,
    given_progress,
    idle,
    lab_screen,
    notified,
    output,
    pid_alive,
    wait_for,
)


def test_a_learner_works_through_the_basics(
    build: Callable[..., LabrunnerApp], workshop: Workshop
) -> None:
    root = workshop.root

    async def scenario() -> None:
        app = build()
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("enter")
            screen = lab_screen(app)
            assert screen.lab.id == "basics"
            steps = screen.query_one(StepList)
            assert steps.item("hello").has_class("-todo")
            assert steps.item("fix-me").has_class("-locked")

            # Run the first step: output streams into the pane, the check passes.
            await pilot.press("r")
            await wait_for(pilot, lambda: screen.states["hello"] is StepState.PASSED, "pass")
            assert "hello-from-step" in output(app)
            assert "$ echo hello-from-step" in output(app)
            assert (root / "made.txt").read_text() == "ready\n"
            await notified(pilot, app, "is unlocked; press n to go there")
            assert steps.item("fix-me").has_class("-todo")

            # Next step: its check fails, and says why; the hint is one key away.
            await pilot.press("n")
            assert screen.selected.id == "fix-me"
            await pilot.press("h")
            await notified(pilot, app, "Hints unlock after a check fails")
            await pilot.press("r")
            await wait_for(pilot, lambda: screen.states["fix-me"] is StepState.FAILED, "failure")
            assert steps.item("fix-me").has_class("-failed")
            row = screen.query_one(ChecksPanel).rows()[0]
            assert row.has_class("-failed")
            assert "fixed.txt does not exist yet" in row.message
            assert "touch fixed.txt" in str(row.render())
            await notified(pilot, app, "Press h for a hint")
            await pilot.press("h")
            hints = screen.query_one("#hints", Markdown).source
            assert "Hint 1 of 2: The file goes into the workshop folder" in hints
            assert "Hint 2 of 2" not in hints
            await pilot.press("h")
            assert "Hint 2 of 2" in screen.query_one("#hints", Markdown).source

            # The learner fixes it in their own terminal; checking again passes.
            (root / "fixed.txt").write_text("")
            await pilot.press("c")
            await wait_for(pilot, lambda: screen.states["fix-me"] is StepState.PASSED, "pass")
            assert row.has_class("-passed")
            assert steps.item("ask").has_class("-todo")
            assert app.settings.store.steps("basics")["fix-me"].status == "passed"
            await idle(pilot, app)

    asyncio.run(scenario())


def test_commands_run_one_block_at_a_time(
    build: Callable[..., LabrunnerApp], workshop: Workshop
) -> None:
    async def scenario() -> None:
        app = build()
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("enter")
            screen = lab_screen(app)
            blocks = screen._blocks()
            await pilot.press("e")
            await wait_for(pilot, lambda: blocks[0].has_class("-ok"), "first block")
            assert not (workshop.root / "made.txt").exists()
            assert screen.states["hello"] is StepState.TODO
            await idle(pilot, app)
            await pilot.press("2")
            await wait_for(pilot, lambda: screen.states["hello"] is StepState.PASSED, "pass")
            assert blocks[1].has_class("-ok")
            assert output(app)[:2] == ["$ echo hello-from-step", "hello-from-step"]

    asyncio.run(scenario())


def test_a_prompt_is_answered_through_the_input_line(
    build: Callable[..., LabrunnerApp], workshop: Workshop
) -> None:
    async def scenario() -> None:
        given_progress(workshop, "basics", "hello", "fix-me", at="ask")
        app = build()
        (workshop.root / "made.txt").write_text("ready\n")
        (workshop.root / "fixed.txt").write_text("")
        async with app.run_test(size=(100, 30)) as pilot:
            screen = lab_screen(app)
            assert screen.selected.id == "ask"
            await idle(pilot, app)
            await pilot.press("r")
            await wait_for(
                pilot, lambda: screen.query_one("#prompt-row").has_class("-shown"), "the prompt"
            )
            assert "Your name:" in str(screen.query_one("#prompt-label").render())
            # Textual moves focus on its next turn (``focus()`` is deferred), so wait for it.
            field = screen.query_one("#prompt-input")
            await wait_for(pilot, lambda: field.has_focus, "the input line to take focus")
            await pilot.press(*"ada", "enter")
            await wait_for(pilot, lambda: screen.states["ask"] is StepState.PASSED, "pass")
            assert (workshop.root / "name.txt").read_text() == "hello, ada\n"
            assert "› ada" in output(app)
            assert not screen.query_one("#prompt-row").has_class("-shown")
            record = app.settings.store.steps("basics")["ask"]
            assert record.exports == {"LEARNER": "ada"}

    asyncio.run(scenario())


def test_a_job_that_ends_as_its_prompt_shows_leaves_the_keys_to_the_lab(
    build: Callable[..., LabrunnerApp],
) -> None:
    """A line left unfinished for a moment (a progress line) shows the answer line, which
    takes the focus on Textual's next turn; when the job's end is handled before that turn
    (both messages were waiting), the focus must not land in the hidden line afterwards,
    where the next `r` would be typed instead of running the step."""

    async def scenario() -> None:
        app = build(lab="basics")
        async with app.run_test(size=(100, 30)) as pilot:
            screen = lab_screen(app)
            assert screen.selected.id == "hello"
            await idle(pilot, app)
            # one turn of the screen, as when both messages are queued
            screen.on_engine_event(msg.EngineEvent(ev.PromptWaiting("basics", "hello", "50%")))
            screen.on_job_done(msg.JobDone(JobKind.RUN, "hello", None, screen.records))
            await pilot.pause()
            assert not screen.query_one("#prompt-row").has_class("-shown")
            assert app.focused is screen.query_one(StepList)
            await pilot.press("r")
            await wait_for(pilot, lambda: screen.states["hello"] is StepState.PASSED, "pass")

    asyncio.run(scenario())


def test_cancelling_stops_the_command_and_its_process(
    build: Callable[..., LabrunnerApp], workshop: Workshop, reap: list[int]
) -> None:
    async def scenario() -> None:
        given_progress(workshop, "basics", "hello", "fix-me", "ask", at="slow")
        app = build()
        async with app.run_test(size=(100, 30)) as pilot:
            screen = lab_screen(app)
            await idle(pilot, app)
            await pilot.press("r")
            await wait_for(pilot, lambda: find_pids("sleep 600"), "sleep to start")
            pids = find_pids("sleep 600")
            reap.extend(pids)
            assert screen.job is JobKind.RUN
            assert screen.query_one("#output-title").has_class("-busy")
            # A second run while busy is refused, not queued.
            await pilot.press("r")
            await notified(pilot, app, "Busy running the step")
            await pilot.press("ctrl+c")
            await wait_for(pilot, lambda: screen.job is None, "the job to end")
            assert not any(pid_alive(pid) for pid in pids)
            assert "■ cancelled" in output(app)
            assert screen._blocks()[0].has_class("-cancelled")
            assert "slow" not in app.settings.store.steps("basics")
            # The shell survived: the step can run again, and x cancels too.
            await pilot.press("r")
            await wait_for(pilot, lambda: find_pids("sleep 600"), "sleep again")
            pids = find_pids("sleep 600")
            reap.extend(pids)
            await pilot.press("x")
            await wait_for(pilot, lambda: screen.job is None, "the job to end")
            assert not any(pid_alive(pid) for pid in pids)

    asyncio.run(scenario())


def test_quitting_while_a_command_runs_leaves_no_process(
    build: Callable[..., LabrunnerApp], workshop: Workshop, reap: list[int]
) -> None:
    async def scenario() -> list[int]:
        given_progress(workshop, "basics", "hello", "fix-me", "ask", at="slow")
        app = build()
        async with app.run_test(size=(100, 30)) as pilot:
            await idle(pilot, app)
            await pilot.press("r")
            await wait_for(pilot, lambda: find_pids("sleep 600"), "sleep to start")
            pids = find_pids("sleep 600")
            reap.extend(pids)
            driver = app.driver
            assert driver is not None
            shell = driver.session._shell
            assert shell is not None and shell.pid is not None
            reap.append(shell.pid)
            pids.append(shell.pid)
            await pilot.press("q")
            await wait_for(pilot, lambda: app.screen.id == "quit-dialog", "the question")
            await pilot.press("y")
        return pids

    pids = asyncio.run(scenario())
    assert not any(pid_alive(pid) for pid in pids)


def test_engine_results_are_recorded_with_their_status(
    build: Callable[..., LabrunnerApp], workshop: Workshop
) -> None:
    """A failing run is recorded as failed, and the failure reason is kept."""

    async def scenario() -> None:
        given_progress(workshop, "basics", "hello", at="fix-me")
        app = build()
        async with app.run_test(size=(100, 30)) as pilot:
            screen = lab_screen(app)
            await idle(pilot, app)
            await pilot.press("r")
            await wait_for(pilot, lambda: "fix-me" in screen.failed, "the failure")
            record = app.settings.store.steps("basics")["fix-me"]
            assert record.status == StepStatus.FAILED.value
            assert "fixed.txt" in record.message

    asyncio.run(scenario())


def test_the_solution_shows_only_after_confirmation(
    build: Callable[..., LabrunnerApp], workshop: Workshop
) -> None:
    async def scenario() -> None:
        given_progress(workshop, "basics", "hello", at="fix-me")
        app = build()
        async with app.run_test(size=(100, 30)) as pilot:
            screen = lab_screen(app)
            solution = screen.query_one("#solution")
            assert solution.has_class("-empty")
            await pilot.press("s")
            assert isinstance(app.screen, ConfirmDialog)
            await pilot.press("n")
            assert solution.has_class("-empty")
            await pilot.press("s", "y")
            assert not solution.has_class("-empty")
            assert "$ touch fixed.txt" in str(solution.render())
            assert not (workshop.root / "fixed.txt").exists()  # shown, not run
            await idle(pilot, app)

    asyncio.run(scenario())


def test_a_block_runs_when_clicked_and_follow_toggles(
    build: Callable[..., LabrunnerApp], workshop: Workshop
) -> None:
    async def scenario() -> None:
        app = build(terminal_pane=False)  # the output log on screen, not behind the terminal
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("enter")
            screen = lab_screen(app)
            await pilot.click(CommandBlock)
            await wait_for(pilot, lambda: screen._blocks()[0].has_class("-ok"), "the block")
            assert output(app) == ["$ echo hello-from-step", "hello-from-step"]
            pane = screen.query_one(OutputPane)
            assert pane.follow
            await pilot.press("f")
            assert not pane.follow
            assert "follow off" in str(screen.query_one("#output-title").render())
            await pilot.press("f")
            assert pane.follow
            await idle(pilot, app)

    asyncio.run(scenario())
