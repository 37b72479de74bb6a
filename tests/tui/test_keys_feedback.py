"""Keys that keep up and feedback that tells the truth (issue 13 items 4 and 5).

Keys sent in one burst (posted before the app handles any of them) must all
apply, in order; quitting asks first while something runs; resetting a lab
lands on step 1; a check before any attempt says "not yet" without failing
the step, and an environment error shows its fix instead of a hint.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from textual import events
from textual.widgets import Static

from labrunner.lab.model import Workshop
from labrunner.state.rules import StepState
from labrunner.state.store import ProgressStore
from labrunner.tui.app import LabrunnerApp
from labrunner.tui.widgets.checks_panel import ChecksPanel
from labrunner.tui.widgets.command_block import CommandBlock

from .helpers import find_pids, given_progress, idle, lab_screen, load, notified, wait_for

SIX_STEPS = "\n".join(
    [
        "apiVersion: labrunner/v1",
        "kind: Lab",
        "id: six",
        "title: Six quick steps",
        "summary: Enough passed steps to walk through with a burst of keys.",
        "steps:",
        *(
            line
            for n in range(1, 7)
            for line in (
                f"  - id: s{n}",
                f"    title: Step number {n}",
                "    body: Nothing to do.",
                "    solution:",
                f"      - touch s{n}.txt",
                "    check:",
                f"      - title: s{n}.txt exists",
                f"        file: {{path: s{n}.txt}}",
                "    within: 0s",
            )
        ),
    ]
)


def dialog_text(app: LabrunnerApp) -> str:
    """Everything the open dialog says."""
    return " ".join(str(static.render()) for static in app.screen.query(Static))


def six_step_workshop(root: Path) -> Workshop:
    """A workshop of one cluster-free lab with six steps."""
    labs = root / "labs"
    labs.mkdir(parents=True)
    (labs / "workshop.yaml").write_text("apiVersion: labrunner/v1\nkind: Workshop\ntitle: Keys\n")
    (labs / "01-six.yaml").write_text(SIX_STEPS + "\n")
    return load(labs)


def burst(app: LabrunnerApp, key: str, times: int) -> None:
    """Post ``times`` key events at once, before the app handles the first."""
    for _ in range(times):
        event = events.Key(key, key if len(key) == 1 else None)
        event.set_sender(app)
        app.post_message(event)


def test_a_burst_of_next_keys_moves_one_step_per_key(
    tmp_path: Path, build: Callable[..., LabrunnerApp]
) -> None:
    workshop = six_step_workshop(tmp_path)
    store = ProgressStore.memory()
    for n in range(1, 6):
        store.record("six", f"s{n}", "passed")
    store.set_position("six", "s1")

    async def scenario() -> None:
        app = build(workshop=workshop, store=store)
        async with app.run_test(size=(100, 30)) as pilot:
            await idle(pilot, app)
            screen = lab_screen(app)
            assert screen.selected.id == "s1"
            burst(app, "n", 5)
            await wait_for(pilot, lambda: screen.selected.id == "s6", "five steps on")
            await pilot.pause(0.2)
            assert screen.selected.id == "s6"
            burst(app, "p", 3)
            await wait_for(pilot, lambda: screen.selected.id == "s3", "three steps back")
            await pilot.pause(0.2)
            assert screen.selected.id == "s3"

    asyncio.run(scenario())


def test_quit_asks_first_while_a_command_runs(
    build: Callable[..., LabrunnerApp], workshop: Workshop, reap: list[int]
) -> None:
    async def scenario() -> None:
        given_progress(workshop, "basics", "hello", "fix-me", "ask", at="slow")
        app = build()
        async with app.run_test(size=(100, 30)) as pilot:
            await idle(pilot, app)
            screen = lab_screen(app)
            await pilot.press("r")
            await wait_for(pilot, lambda: find_pids("sleep 600"), "sleep to start")
            reap.extend(find_pids("sleep 600"))
            await pilot.press("q")
            await wait_for(pilot, lambda: app.screen.id == "quit-dialog", "the question")
            assert "running the step" in dialog_text(app)
            await pilot.press("escape")  # keep working: nothing stops
            await wait_for(pilot, lambda: app.screen is screen, "the lab screen")
            assert screen.job is not None and app.is_running
            await pilot.press("x")
            await wait_for(pilot, lambda: screen.job is None, "the cancel")
            await pilot.press("q")  # nothing runs now: no question
            await wait_for(pilot, lambda: not app.is_running, "the app to end")

    asyncio.run(scenario())


def test_resetting_the_lab_lands_on_step_one(
    build: Callable[..., LabrunnerApp], workshop: Workshop
) -> None:
    async def scenario() -> None:
        given_progress(workshop, "basics", "hello", "fix-me", at="ask")
        app = build()
        async with app.run_test(size=(100, 30)) as pilot:
            await idle(pilot, app)
            screen = lab_screen(app)
            assert screen.selected.id == "ask"
            await pilot.press("R")
            await wait_for(pilot, lambda: app.screen.id == "reset-dialog", "the question")
            await pilot.press("y")
            await wait_for(pilot, lambda: not screen.records, "the reset")
            await idle(pilot, app)
            assert screen.selected.id == "hello"
            assert screen.states["hello"] is not StepState.LOCKED
            await notified(pilot, app, "you are on step 1")

    asyncio.run(scenario())


def test_a_check_before_any_attempt_says_not_yet_without_failing_the_step(
    build: Callable[..., LabrunnerApp], workshop: Workshop
) -> None:
    async def scenario() -> None:
        given_progress(workshop, "basics", "hello", at="fix-me")
        app = build()
        async with app.run_test(size=(100, 30)) as pilot:
            await idle(pilot, app)
            screen = lab_screen(app)
            await pilot.press("c")
            await notified(pilot, app, "fixed.txt does not exist")
            await idle(pilot, app)
            (row,) = screen.query_one(ChecksPanel).rows()
            assert row.state == "-notyet"
            assert "not yet: " in str(row.render()) and "✘" not in str(row.render())
            assert screen.states["fix-me"] is StepState.TODO
            note = next(n for n in app.notices if "fixed.txt" in n.message)
            assert note.title == "Not yet" and note.severity == "information"
            assert "✘" not in note.message

    asyncio.run(scenario())


def test_a_failing_command_block_shows_its_exit_status(
    tmp_path: Path, build: Callable[..., LabrunnerApp]
) -> None:
    labs = tmp_path / "fails" / "labs"
    labs.mkdir(parents=True)
    (labs / "fails.yaml").write_text(
        "apiVersion: labrunner/v1\nkind: Lab\nid: fails\ntitle: Fails\n"
        "steps:\n  - id: one\n    title: A command that fails\n"
        "    run: [\"sh -c 'exit 3'\"]\n"
        "    check:\n      - file: {path: nowhere.txt}\n"
    )
    workshop = load(labs)

    async def scenario() -> None:
        app = build(workshop=workshop)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("enter")
            screen = lab_screen(app)
            await pilot.press("1")
            await wait_for(pilot, lambda: screen.block_states.get(0), "the block's result")
            await idle(pilot, app)
            (block,) = screen.query(CommandBlock)
            assert block.has_class("-failed")
            assert str(block.render()).endswith("✘ exit status 3")

    asyncio.run(scenario())


def test_notifications_replace_each_other_at_the_top(
    build: Callable[..., LabrunnerApp], workshop: Workshop
) -> None:
    async def scenario() -> None:
        given_progress(workshop, "basics", at="hello")
        app = build()
        async with app.run_test(size=(100, 30), notifications=True) as pilot:
            await idle(pilot, app)
            for n in range(3):
                app.notify(f"notice {n}")
            await notified(pilot, app, "notice 2")
            await pilot.pause()
            assert [n.message for n in app._notifications] == ["notice 2"]
            assert [n.message for n in app.notices][-3:] == ["notice 0", "notice 1", "notice 2"]
            await wait_for(pilot, lambda: app.screen.query("Toast"), "the toast")
            (toast,) = app.screen.query("Toast")
            assert toast.region.y <= 2  # at the top, away from the output's last lines

    asyncio.run(scenario())
