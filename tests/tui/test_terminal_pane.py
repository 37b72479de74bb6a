"""The terminal pane: the lab's own shell, typed into through the real app (Pilot, real bash).

What the learner types in the pane is what the checks see (exports, the
working directory); a full-screen program draws and gives the screen back;
a key-run command shows in the same terminal with its ✔/✘; replacing the
shell (``exec bash``) is reported, and a restart brings back the exports.
Every wait is on a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Static
from textual.widgets._footer import FooterKey

from labrunner.lab.model import Workshop
from labrunner.shell.integration import Integration, Phase
from labrunner.state.rules import StepState
from labrunner.tui.app import LabrunnerApp
from labrunner.tui.screens.lab import LabScreen
from labrunner.tui.widgets.output_pane import OutputPane
from labrunner.tui.widgets.step_list import StepList
from labrunner.tui.widgets.terminal_pane import TerminalPane

from .helpers import LABS, footer_actions, load, wait_for

TYPING_LAB = """\
apiVersion: labrunner/v1
kind: Lab
id: typing
title: Type in the lab shell
summary: The terminal pane is the lab's shell.
steps:
  - id: typed
    title: Export and move
    body: Type the commands in the terminal.
    run:
      - echo run-by-key
    check:
      - title: TYPED is exported
        env: {name: TYPED, equals: "yes"}
      - title: the shell is in /tmp
        command: {run: 'test "$PWD" = /tmp'}
    within: 0s
"""


def typing_workshop(root: Path) -> Path:
    """A workshop with only the typing lab; returns its folder."""
    labs = root / "typing-ws"
    labs.mkdir()
    (labs / "workshop.yaml").write_text((LABS / "workshop.yaml").read_text())
    (labs / "01-typing.yaml").write_text(TYPING_LAB)
    return labs


@pytest.fixture
def typing(tmp_path: Path) -> Workshop:
    return load(typing_workshop(tmp_path))


def pane_of(app: LabrunnerApp) -> TerminalPane:
    screen = app.screen
    assert isinstance(screen, LabScreen)
    return screen.query_one(TerminalPane)


def shows(pane: TerminalPane, text: str) -> bool:
    """True when the pane's screen shows ``text`` on some row."""
    view = pane.view
    return view is not None and view.frame.contains(text)


def status(pane: TerminalPane) -> str:
    return str(pane.query_one("#terminal-status").render())


async def ready(pilot: Pilot[Any], app: LabrunnerApp) -> TerminalPane:
    """Wait for the lab screen's terminal to show the shell's idle prompt."""
    await wait_for(pilot, lambda: isinstance(app.screen, LabScreen), "the lab screen")
    pane = pane_of(app)

    def idle() -> bool:
        shell = pane.shell
        return (
            shell is not None
            and shell.tracker is not None
            and shell.tracker.at_empty_prompt
            and shows(pane, "$")
        )

    await wait_for(pilot, idle, "the lab shell's prompt in the pane")
    return pane


@contextlib.asynccontextmanager
async def typing_pane(
    build: Callable[..., LabrunnerApp], typing: Workshop, size: tuple[int, int] = (120, 35)
) -> AsyncIterator[tuple[LabrunnerApp, Pilot[Any], TerminalPane]]:
    """The typing lab (at 120×35 unless told), its terminal at an idle prompt."""
    app = build(workshop=typing, lab="typing")
    async with app.run_test(size=size) as pilot:
        yield app, pilot, await ready(pilot, app)


async def type_line(pilot: Pilot[Any], pane: TerminalPane, line: str) -> None:
    """Type ``line`` and Enter into the focused pane; wait for its end mark."""
    shell = pane.shell
    assert shell is not None and shell.tracker is not None
    tracker = shell.tracker
    before = tracker.commands_finished
    await pilot.press(*line, "enter")
    await wait_for(
        pilot,
        lambda: tracker.commands_finished > before and tracker.phase is Phase.PROMPT,
        f"{line!r} to finish",
    )


def test_typed_export_and_cd_reach_the_checks(
    build: Callable[..., LabrunnerApp], typing: Workshop
) -> None:
    async def scenario() -> None:
        async with typing_pane(build, typing) as (app, pilot, pane):
            screen = app.screen
            assert isinstance(screen, LabScreen)
            await pilot.press("c")
            await wait_for(pilot, lambda: screen.job is None, "the first check")
            assert screen.states["typed"] is not StepState.PASSED

            await pilot.press("i")
            assert pane.focused
            # lab keys are typed into the shell while the pane has the keyboard
            await type_line(pilot, pane, "export TYPED=yes; cd /tmp")
            assert shows(pane, "export TYPED=yes; cd /tmp")
            await wait_for(pilot, lambda: "✔ exit 0" in status(pane), "the command's ✔")
            assert screen.job is None  # "c" inside "cd" checked nothing

            await pilot.press("ctrl+right_square_bracket")
            assert not pane.focused
            assert isinstance(app.focused, StepList)
            await pilot.press("c")
            await wait_for(
                pilot, lambda: screen.states["typed"] is StepState.PASSED, "the step to pass"
            )

    asyncio.run(scenario())


def test_a_key_run_command_shows_in_the_same_terminal(
    build: Callable[..., LabrunnerApp], typing: Workshop
) -> None:
    async def scenario() -> None:
        async with typing_pane(build, typing) as (app, pilot, pane):
            screen = app.screen
            assert isinstance(screen, LabScreen)
            # a half-typed line is never mixed with a command block
            await pilot.press("i", *"echo half")
            await pilot.press("ctrl+right_square_bracket")
            await pilot.press("r")
            await wait_for(pilot, lambda: screen.job is None, "the refused run")
            assert not shows(pane, "echo half echo run-by-key")
            assert not shows(pane, "echo halfecho run-by-key")
            shell = pane.shell
            assert shell is not None and shell.tracker is not None
            tracker = shell.tracker
            await pilot.press("i", "ctrl+c")
            await wait_for(pilot, lambda: tracker.at_empty_prompt, "the line to be cleared")
            await pilot.press("ctrl+right_square_bracket")
            # now at an empty prompt: the block is typed there, visibly, and runs
            await pilot.press("r")
            await wait_for(pilot, lambda: screen.job is None and shows(pane, "run-by-key"), "run")
            assert shows(pane, "$ echo run-by-key")
            await wait_for(pilot, lambda: "✔ exit 0" in status(pane), "the command's ✔")

    asyncio.run(scenario())


def test_paste_types_the_block_for_editing_without_running_it(
    build: Callable[..., LabrunnerApp], typing: Workshop
) -> None:
    async def scenario() -> None:
        async with typing_pane(build, typing) as (_app, pilot, pane):
            shell = pane.shell
            assert shell is not None and shell.tracker is not None
            tracker = shell.tracker
            before = tracker.commands_finished
            await pilot.press("E")
            await wait_for(pilot, lambda: shows(pane, "$ echo run-by-key"), "the pasted block")
            assert pane.focused
            assert tracker.commands_finished == before and not shows(pane, "run-by-keyx")
            await pilot.press(*"x", "enter")
            await wait_for(pilot, lambda: shows(pane, "run-by-keyx"), "the edited command")

    asyncio.run(scenario())


def test_less_draws_in_the_pane_and_gives_the_screen_back(
    build: Callable[..., LabrunnerApp], typing: Workshop
) -> None:
    async def scenario() -> None:
        async with typing_pane(build, typing) as (_app, pilot, pane):
            view = pane.view
            assert view is not None
            await pilot.press("i", *"seq 1000 | less", "enter")
            await wait_for(
                pilot,
                lambda: view.frame.alternate and view.frame.line_text(0).strip() == "1",
                "less to draw its first page",
            )
            await wait_for(pilot, lambda: "● running" in status(pane), "the running mark")
            await pilot.press("space")
            await wait_for(pilot, lambda: not view.frame.contains("1 "), "the next page")
            await pilot.press("q")
            await wait_for(
                pilot, lambda: not view.frame.alternate and "✔ exit 0" in status(pane), "quit"
            )
            assert shows(pane, "seq 1000 | less")  # the screen before less is back

    asyncio.run(scenario())


def test_exec_bash_is_reported_and_a_restart_brings_the_exports_back(
    build: Callable[..., LabrunnerApp], typing: Workshop
) -> None:
    async def scenario() -> None:
        async with typing_pane(build, typing) as (app, pilot, pane):
            await pilot.press("i")
            await type_line(pilot, pane, "export TYPED=yes")
            await pilot.press(*"exec bash --norc", "enter")
            await wait_for(pilot, lambda: pane.integration is Integration.LOST, "the loss")
            assert "replaced by another program" in status(pane)
            assert "Press Shift+T" in status(pane)
            first = pane.shell
            await pilot.press("ctrl+right_square_bracket", "T")
            await wait_for(
                pilot,
                lambda: pane.shell is not first and pane.integration is Integration.ACTIVE,
                "a new lab shell",
            )
            await ready(pilot, app)
            shell = pane.shell
            assert shell is not None
            assert shell.snapshot().env.get("TYPED") == "yes"

    asyncio.run(scenario())


def test_exit_in_the_pane_ends_the_shell_and_i_brings_it_back_with_its_exports(
    build: Callable[..., LabrunnerApp], typing: Workshop
) -> None:
    async def scenario() -> None:
        async with typing_pane(build, typing) as (app, pilot, pane):
            await pilot.press("i")
            await type_line(pilot, pane, "export TYPED=before-exit")
            first = pane.shell
            assert first is not None
            await pilot.press(*"exit", "enter")
            await wait_for(pilot, lambda: "the lab shell ended" in status(pane), "the end")
            assert "running" not in status(pane)
            assert not pane.focused  # the lab's keys work again
            assert not first.busy and not first.learner_running
            assert app.running_work() is None  # q would not ask about a typed command
            await pilot.press("i")
            await wait_for(pilot, lambda: pane.shell is not first, "a new lab shell")
            await ready(pilot, app)
            shell = pane.shell
            assert shell is not None and shell.alive
            assert shell.snapshot().env.get("TYPED") == "before-exit"

    asyncio.run(scenario())


def test_q_in_the_focused_pane_is_typed_not_quit(
    build: Callable[..., LabrunnerApp], typing: Workshop
) -> None:
    async def scenario() -> None:
        async with typing_pane(build, typing) as (app, pilot, pane):
            await pilot.press("i")
            assert pane.focused
            await type_line(pilot, pane, "echo q-stays")
            assert shows(pane, "q-stays") and pane.focused
            assert app.is_running and isinstance(app.screen, LabScreen)  # not quit, not asked
            await pilot.press("ctrl+right_square_bracket", "q")  # the lab's keys again
            await wait_for(pilot, lambda: not app.is_running, "q to quit")

    asyncio.run(scenario())


@pytest.mark.parametrize("size", [(120, 35), (80, 24)], ids=["wide", "compact"])
def test_the_footer_offers_only_the_way_back_while_the_pane_has_the_keyboard(
    build: Callable[..., LabrunnerApp], typing: Workshop, size: tuple[int, int]
) -> None:
    async def scenario() -> None:
        async with typing_pane(build, typing, size) as (app, pilot, pane):
            screen = app.screen
            lab_keys = {"quit", "app.quit", "help", "app.help", "check", "run_step"}
            await wait_for(pilot, lambda: "quit" in footer_actions(screen), "the lab's footer")
            assert "release" not in footer_actions(screen)
            await pilot.press("i")
            assert pane.focused
            # every key goes to the shell now: q, ? and r are not the lab's to offer
            await wait_for(pilot, lambda: "release" in footer_actions(screen), "the pane's footer")
            assert not lab_keys & set(footer_actions(screen)), footer_actions(screen)
            back = [key.description for key in screen.query(FooterKey) if key.action == "release"]
            assert back == ["Back to lab"]
            # clicking it (Back to lab) gives the keyboard back, as Ctrl+] does
            await pilot.click(FooterKey)
            await wait_for(pilot, lambda: not pane.focused, "the keyboard back")
            await wait_for(
                pilot, lambda: "quit" in footer_actions(screen), "the lab's footer again"
            )
            assert "release" not in footer_actions(screen)

    asyncio.run(scenario())


def test_q_asks_first_while_a_command_typed_in_the_pane_runs(
    build: Callable[..., LabrunnerApp], typing: Workshop
) -> None:
    async def scenario() -> None:
        async with typing_pane(build, typing) as (app, pilot, pane):
            shell = pane.shell
            assert shell is not None and shell.tracker is not None
            tracker = shell.tracker
            await pilot.press("i")
            await pilot.press(*"sleep 30", "enter")
            await wait_for(pilot, lambda: tracker.phase is Phase.RUNNING, "the typed sleep")
            await pilot.press("ctrl+right_square_bracket", "q")
            await wait_for(pilot, lambda: app.screen.id == "quit-dialog", "the question")
            said = " ".join(str(s.render()) for s in app.screen.query(Static))
            assert "A command you typed is running in the terminal." in said
            await pilot.press("escape")  # keep working: the command goes on
            await wait_for(pilot, lambda: isinstance(app.screen, LabScreen), "the lab screen")
            assert tracker.phase is Phase.RUNNING
            await pilot.press("i", "ctrl+c")
            await wait_for(pilot, lambda: tracker.phase is Phase.PROMPT, "the sleep to stop")
            await pilot.press("ctrl+right_square_bracket", "q")  # nothing runs: no question
            await wait_for(pilot, lambda: not app.is_running, "q to quit")

    asyncio.run(scenario())


def test_slash_searches_the_terminal_what_was_typed_and_what_keys_ran(
    build: Callable[..., LabrunnerApp], typing: Workshop
) -> None:
    async def scenario() -> None:
        async with typing_pane(build, typing) as (app, pilot, pane):
            screen = app.screen
            assert isinstance(screen, LabScreen)
            view = pane.view
            assert view is not None
            log = screen.query_one(OutputPane)
            status = pane.query_one("#terminal-status")
            assert not log.display and not screen.query_one("#output-title").display
            # the terminal's row says how to search
            await wait_for(pilot, lambda: "/: search" in str(status.render()), "the hint")
            await pilot.press("r")
            await wait_for(pilot, lambda: screen.job is None, "the run")
            await pilot.press("i")
            await type_line(pilot, pane, "echo needle-$((6*7))")
            await type_line(pilot, pane, "seq 80")  # push both out of the live screen
            await pilot.press("ctrl+right_square_bracket")
            label = screen.query_one("#search-label")

            await pilot.press("slash", *"needle-42", "enter")
            await wait_for(pilot, lambda: view.scrolled_back > 0, "the typed command's output")
            assert not log.display  # the terminal stays; its scrollback is shown
            assert str(label.render()) == "Match 1 of 1:"
            await pilot.press("escape")
            await wait_for(pilot, lambda: view.scrolled_back == 0, "the live screen again")

            await pilot.press("slash", *"run-by-key", "enter")
            await wait_for(pilot, lambda: view.scrolled_back > 0, "what the key ran")
            assert str(label.render()).startswith("Match ")
            await pilot.press("escape")
            await pilot.press("slash", *"no-such-text", "enter")
            await wait_for(pilot, lambda: str(label.render()) == "No match:", "no match")
            assert view.scrolled_back == 0

    asyncio.run(scenario())


def test_a_configured_detach_key_gives_the_keyboard_back(
    build: Callable[..., LabrunnerApp], typing: Workshop
) -> None:
    """With the detach key set to Ctrl+T, Ctrl+T leaves the pane and Ctrl+] is typed."""

    async def scenario() -> None:
        app = build(workshop=typing, lab="typing", terminal_escape="ctrl+t")
        async with app.run_test(size=(120, 35)) as pilot:
            pane = await ready(pilot, app)
            await pilot.press("i")
            assert pane.focused
            assert "ctrl+t: back to the lab" in status(pane)
            await pilot.press("ctrl+right_square_bracket")  # an ordinary key now: the shell's
            assert pane.focused
            await pilot.press("ctrl+t")
            assert not pane.focused
            assert isinstance(app.focused, StepList)
            await wait_for(pilot, lambda: "i: type here" in status(pane), "the status row")

    asyncio.run(scenario())


def test_ctrl_p_in_the_focused_pane_is_readline_not_the_palette(
    build: Callable[..., LabrunnerApp], typing: Workshop
) -> None:
    async def scenario() -> None:
        async with typing_pane(build, typing) as (app, pilot, pane):
            await pilot.press("i")
            await type_line(pilot, pane, "echo probe-$((40+2))")
            shell = pane.shell
            assert shell is not None and shell.tracker is not None
            tracker = shell.tracker
            done = tracker.commands_finished
            # Ctrl+P is readline's previous line: the command runs again
            await pilot.press("ctrl+p", "enter")
            await wait_for(pilot, lambda: tracker.commands_finished > done, "the recalled command")
            assert isinstance(app.screen, LabScreen) and pane.focused  # no palette
            view = pane.view
            assert view is not None
            assert sum(row.strip() == "probe-42" for row in view.frame.text()) == 2
            # with the keyboard back at the lab, Ctrl+P opens the palette as everywhere else
            await pilot.press("ctrl+right_square_bracket", "ctrl+p")
            await wait_for(pilot, lambda: not isinstance(app.screen, LabScreen), "the palette")

    asyncio.run(scenario())
