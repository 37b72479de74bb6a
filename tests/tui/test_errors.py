"""Engine errors become notifications; the learner stays in the app."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from labrunner.state.rules import StepState
from labrunner.state.store import ProgressStore
from labrunner.tui.app import LabrunnerApp

from .helpers import lab_screen, load, notified, saved, wait_for


def test_progress_that_cannot_be_saved_is_reported_not_fatal(
    build: Callable[..., LabrunnerApp], tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    store = ProgressStore(blocker / "progress", root=tmp_path)

    async def scenario() -> None:
        app = build(store=store)
        async with app.run_test(size=(100, 30)) as pilot:
            await notified(pilot, app, "cannot read progress file")
            await pilot.press("enter")
            screen = lab_screen(app)
            await pilot.press("r")
            await notified(pilot, app, "progress not saved")
            # this run's result still shows, and the next step unlocks
            await wait_for(pilot, lambda: screen.states["hello"] is StepState.PASSED, "pass")
            assert screen.states["fix-me"] is StepState.TODO

    asyncio.run(scenario())


def test_a_shell_that_cannot_start_is_reported_not_fatal(
    build: Callable[..., LabrunnerApp], tmp_path: Path
) -> None:
    env = {"PATH": str(tmp_path / "empty-bin"), "HOME": os.environ["HOME"]}

    async def scenario() -> None:
        app = build(base_env=env)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("enter")
            screen = lab_screen(app)
            await pilot.press("c")
            await notified(pilot, app, "the lab shell failed: cannot start bash")
            await wait_for(pilot, lambda: screen.job is None, "the job to end")
            await pilot.press("r")
            await notified(pilot, app, "the lab shell died while running")
            await wait_for(pilot, lambda: screen.job is None, "the job to end")
            assert screen.states["hello"] is StepState.FAILED

    asyncio.run(scenario())


def test_a_step_whose_tool_is_missing_says_so_and_stays_open(
    build: Callable[..., LabrunnerApp], tmp_path: Path
) -> None:
    labs = tmp_path / "tools" / "labs"
    labs.mkdir(parents=True)
    (labs / "needs.yaml").write_text(
        "apiVersion: labrunner/v1\nkind: Lab\nid: needs-jq\ntitle: Needs jq\n"
        "steps:\n  - id: query\n    title: Query JSON\n    needs: [jq]\n"
        "    run: [\"echo '{}' | jq .\"]\n"
    )
    bin_dir = tmp_path / "bin"  # bash only: jq is missing from the lab shell's PATH
    bin_dir.mkdir()
    bash = shutil.which("bash")
    assert bash is not None
    (bin_dir / "bash").symlink_to(bash)
    env = {"PATH": str(bin_dir), "HOME": os.environ["HOME"]}

    workshop = load(labs)

    async def scenario() -> None:
        app = build(workshop=workshop, base_env=env)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("enter")
            screen = lab_screen(app)
            await pilot.press("r")
            await notified(pilot, app, "needs jq, which is not on the lab shell's PATH")
            await wait_for(pilot, lambda: screen.job is None, "the job to end")
            (note,) = [n for n in app.notices if "needs jq" in n.message]
            assert note.title == "Environment error"
            assert "Fix: install what is missing" in note.message
            assert "hint" not in note.message
            assert screen.states["query"] is StepState.TODO  # still open, nothing recorded
            assert saved(workshop).steps("needs-jq") == {}

    asyncio.run(scenario())


def test_a_step_that_moves_kubeconfig_is_an_environment_error(
    build: Callable[..., LabrunnerApp], tmp_path: Path
) -> None:
    labs = tmp_path / "moves" / "labs"
    labs.mkdir(parents=True)
    (labs / "moves.yaml").write_text(
        "apiVersion: labrunner/v1\nid: moves\ntitle: Moves KUBECONFIG\n"
        "steps:\n  - id: switch\n    title: Point it elsewhere\n"
        "    run: ['export KUBECONFIG=/elsewhere/prod.yaml']\n"
        "    check:\n      - env: {name: KUBECONFIG}\n"
    )

    workshop = load(labs)

    async def scenario() -> None:
        app = build(workshop=workshop)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("enter")
            screen = lab_screen(app)
            await pilot.press("r")
            await notified(pilot, app, "pointed KUBECONFIG away from the kubeconfig this run")
            await wait_for(pilot, lambda: screen.job is None, "the job to end")
            (note,) = [n for n in app.notices if "KUBECONFIG" in n.message]
            assert note.title == "Environment error" and note.severity == "error"
            assert "the command `export KUBECONFIG=/elsewhere/prod.yaml`" in note.message
            assert screen.states["switch"] is not StepState.PASSED
            record = saved(workshop).steps("moves").get("switch")
            assert record is None or not record.complete

    asyncio.run(scenario())
