"""The learner's own shell, the command palette and the help screen."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path

from textual.binding import Binding

from labrunner.lab.model import Workshop
from labrunner.state.rules import StepState
from labrunner.tui.app import LabrunnerApp
from labrunner.tui.commands import palette_entries
from labrunner.tui.dialogs.confirm import ConfirmDialog
from labrunner.tui.screens.help import HelpScreen, key_label
from labrunner.tui.screens.home import HomeScreen
from labrunner.tui.screens.lab import LabScreen

from .helpers import given_progress, idle, lab_screen, wait_for


def test_without_the_pane_the_shell_key_opens_a_shell_in_the_lab_environment(
    build: Callable[..., LabrunnerApp], workshop: Workshop
) -> None:
    store = given_progress(workshop, "basics", "hello", at="fix-me")
    store.record("basics", "ask", "passed", exports={"LEARNER": "grace"})
    store.set_position("basics", "fix-me")
    (workshop.root / "made.txt").write_text("ready\n")
    seen: list[tuple[dict[str, str], Path, str]] = []

    def learner(env: Mapping[str, str], cwd: Path, banner: str) -> int:
        """What a learner does in the shell: looks around, creates the file, exits."""
        seen.append((dict(env), cwd, banner))
        (cwd / "fixed.txt").write_text("")
        return 0

    async def scenario() -> None:
        app = build(shell_runner=learner, terminal_pane=False)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = lab_screen(app)
            await idle(pilot, app)
            await pilot.press("t")
            await wait_for(pilot, lambda: screen.states["fix-me"] is StepState.PASSED, "pass")
            env, cwd, banner = seen[0]
            assert cwd == workshop.root
            assert env["LEARNER"] == "grace"  # an earlier step's export
            assert env["LABRUNNER_LAB"] == "basics"
            assert "Type `exit` to go back" in banner

    asyncio.run(scenario())


def test_help_lists_every_key_binding(build: Callable[..., LabrunnerApp]) -> None:
    async def scenario() -> None:
        app = build()
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            rows = [row for _, section in app.screen.sections for row in section]
            text = "\n".join(f"{keys} {what}" for keys, what in rows)
            for owner in (LabrunnerApp, HomeScreen, LabScreen, ConfirmDialog):
                for binding in owner.BINDINGS:
                    assert isinstance(binding, Binding)
                    if binding.action.startswith("run_command("):
                        continue
                    what = binding.tooltip or binding.description
                    assert f"{key_label(binding.key)} {what}" in text, binding
            assert "1 … 9 Run command block N on its own" in text
            assert "Ctrl+P Command palette: search every action" in text
            await pilot.press("escape")
            assert isinstance(app.screen, HomeScreen)

    asyncio.run(scenario())


def test_the_command_palette_offers_the_lab_actions(
    build: Callable[..., LabrunnerApp], workshop: Workshop
) -> None:
    given_progress(workshop, "basics", at="hello")

    async def scenario() -> None:
        app = build()
        async with app.run_test(size=(100, 30)) as pilot:
            screen = lab_screen(app)
            await idle(pilot, app)
            titles = [title for title, _, _ in palette_entries(screen.ACTIONS)]
            for wanted in (
                "Run step",
                "Run checks",
                "Show a hint",
                "Show the solution",
                "Skip step",
                "Open a shell",
                "Reset step",
                "Reset lab",
                "Toggle live checking",
                "Help",
            ):
                assert wanted in titles
            await pilot.press("ctrl+p")
            await pilot.press(*"run step")
            await wait_for(
                pilot,
                lambda: app.screen.query("CommandList").first().option_count > 0,
                "palette hits",
            )
            await pilot.press("enter")
            await wait_for(pilot, lambda: screen.states["hello"] is StepState.PASSED, "pass")

    asyncio.run(scenario())
