"""The terminal pane in a real Textual app (Pilot) on a real bash: typing, less, bursts, keys."""

from __future__ import annotations

import asyncio
import functools
import shutil
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.pilot import Pilot

from labrunner.shell.integration import Phase, paste_command
from labrunner.tui.terminal import TerminalView
from tests.tui.helpers import wait_for as until

from .demo_app import TerminalDemo
from .helpers import DEADLINE, LiveShell, live_shell

SIZE = (100, 30)


def sync(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async Pilot test in its own event loop (no async plugin needed)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


async def type_line(pilot: Pilot[Any], text: str) -> None:
    """Press each character of ``text`` and then Enter, as a learner types."""
    await pilot.press(*[{" ": "space"}.get(c, c) for c in text], "enter")


def screen_text(app: TerminalDemo) -> str:
    """What the pane's emulator shows now."""
    return "\n".join(app.terminal.frame.text())


def painted(app: TerminalDemo) -> list[str]:
    """What the widget paints (live screen or scrollback view), row by row."""
    view = app.terminal
    return [view.render_line(y).text for y in range(view.size.height)]


def demo(shell: LiveShell) -> TerminalDemo:
    return TerminalDemo(shell.pump, shell.scrollback)


@sync
async def test_typed_commands_reach_the_shell_and_are_echoed(tmp_path: Path) -> None:
    with live_shell(tmp_path) as shell:
        app = demo(shell)
        async with app.run_test(size=SIZE) as pilot:
            assert isinstance(app.focused, TerminalView)
            await until(pilot, lambda: "lab$" in screen_text(app), "the prompt")
            await type_line(pilot, "export TYPED=yes")
            await until(pilot, lambda: "lab$ export TYPED=yes" in screen_text(app), "the echo")
            await type_line(pilot, 'echo "[$TYPED]"; cd /tmp')
            await until(pilot, lambda: "[yes]" in app.terminal.frame.text(), "the output")
            assert shell.tracker.wait_for_prompt(DEADLINE, after=1)
            assert shell.run('echo "$TYPED:$PWD"') == 0
            assert "yes:/tmp" in shell.scrollback.tail(3)
            # the pane paints the screen and the cursor after the prompt
            await until(pilot, lambda: any("yes:/tmp" in row for row in painted(app)), "paint")
            # and the app's screen shows it (the emulator thread asked for a repaint)
            await until(pilot, lambda: "yes:/tmp" in app.export_screenshot(), "the screen")
            # the emulator follows the tracker a moment later: wait for the prompt's row
            await until(pilot, lambda: cursor_row(app).startswith("lab$ "), "the cursor")


def cursor_row(app: TerminalDemo) -> str:
    """The text of the row the cursor is on ("" while it is hidden)."""
    frame = app.terminal.frame
    return "" if frame.cursor is None else frame.line_text(frame.cursor[1])


@sync
async def test_less_draws_its_page_and_quitting_restores_the_screen(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("".join(f"note line {i:03d}\n" for i in range(200)))
    with live_shell(tmp_path) as shell:
        app = demo(shell)
        async with app.run_test(size=SIZE) as pilot:
            await type_line(pilot, "echo BEFORE-LESS")
            await until(pilot, lambda: "BEFORE-LESS" in app.terminal.frame.text(), "echo")
            before = app.terminal.frame.text()
            await type_line(pilot, "less notes.txt")
            await until(pilot, lambda: app.terminal.frame.alternate, "less's screen")
            await until(pilot, lambda: "note line 000" in screen_text(app), "less's page")
            assert "BEFORE-LESS" not in screen_text(app)
            assert shell.tracker.phase is Phase.RUNNING
            await pilot.press("space")
            await until(pilot, lambda: "note line 035" in screen_text(app), "the next page")
            await pilot.press("q")
            await until(pilot, lambda: not app.terminal.frame.alternate, "the shell's screen")
            assert shell.tracker.wait_for_prompt(DEADLINE, after=1)
            await until(pilot, lambda: "lab$ less notes.txt" in screen_text(app), "the prompt")
            after = app.terminal.frame.text()
            assert "note line" not in "\n".join(after)
            assert (
                after[: before.index("BEFORE-LESS") + 1]
                == before[: before.index("BEFORE-LESS") + 1]
            )


@sync
async def test_a_burst_of_keys_arrives_whole_and_in_order(tmp_path: Path) -> None:
    with live_shell(tmp_path) as shell:
        app = demo(shell)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: "lab$" in screen_text(app), "the prompt")
            text = "echo burst-" + "".join(chr(ord("a") + i % 26) for i in range(60))
            driver = app._driver
            assert driver is not None
            for char in text:
                key = events.Key({" ": "space"}.get(char, char), char)
                key.set_sender(app)
                driver.send_message(key)
            enter = events.Key("enter", "\r")
            enter.set_sender(app)
            driver.send_message(enter)
            expected = text.removeprefix("echo ")
            await until(pilot, lambda: expected in app.terminal.frame.text(), "the output")
            assert f"lab$ {text}" in screen_text(app)


@sync
async def test_the_escape_key_returns_focus_and_app_keys_work_only_then(
    tmp_path: Path,
) -> None:
    with live_shell(tmp_path) as shell:
        app = demo(shell)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: "lab$" in screen_text(app), "the prompt")
            await pilot.press("x")  # focused: an ordinary key for the shell
            await until(pilot, lambda: "lab$ x" in screen_text(app), "x typed")
            assert app.marks == 0
            await pilot.press("ctrl+right_square_bracket")
            assert app.escapes == 1 and app.focused is None
            await pilot.press("x")
            assert app.marks == 1
            await pilot.press("t")
            assert isinstance(app.focused, TerminalView)
            await pilot.press("y", "enter")
            # Ctrl+] never reached readline (it would have eaten the next key)
            await until(pilot, lambda: "xy: command not found" in screen_text(app), "xy")


@sync
async def test_ctrl_p_reaches_readline_instead_of_the_command_palette(tmp_path: Path) -> None:
    with live_shell(tmp_path) as shell:
        app = demo(shell)
        async with app.run_test(size=SIZE) as pilot:
            await type_line(pilot, "echo from-history")
            assert shell.tracker.wait_for_prompt(DEADLINE, after=0)
            await pilot.press("ctrl+p")
            await until(
                pilot, lambda: screen_text(app).count("lab$ echo from-history") == 2, "history"
            )
            assert len(app.screen_stack) == 1


@sync
async def test_a_paste_is_bracketed_and_waits_for_enter(tmp_path: Path) -> None:
    with live_shell(tmp_path) as shell:
        app = demo(shell)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.terminal.frame.bracketed_paste, "readline's mode")
            app.terminal.post_message(events.Paste("echo pasted-1\necho pasted-2"))
            await until(pilot, lambda: "echo pasted-2" in screen_text(app), "the paste")
            assert "pasted-1" not in [row.strip() for row in app.terminal.frame.text()]
            finished = shell.tracker.commands_finished
            await pilot.press("enter")
            assert shell.tracker.wait_for_prompt(DEADLINE, after=finished)
            await until(pilot, lambda: "pasted-2" in app.terminal.frame.text(), "the output")
            assert "pasted-1" in app.terminal.frame.text()


@sync
async def test_a_command_block_typed_by_the_app_shows_in_the_pane(tmp_path: Path) -> None:
    with live_shell(tmp_path) as shell:
        app = demo(shell)
        async with app.run_test(size=SIZE) as pilot:
            assert shell.tracker.wait(lambda t: t.at_empty_prompt, DEADLINE)
            before = paste_command(shell.pump, shell.tracker, "echo step-one\necho step-two")
            assert shell.tracker.wait_for_prompt(DEADLINE, after=before)
            await until(pilot, lambda: "step-two" in app.terminal.frame.text(), "the output")
            assert "lab$ echo step-one" in screen_text(app)


@sync
async def test_the_pty_follows_the_widget_size(tmp_path: Path) -> None:
    with live_shell(tmp_path) as shell:
        app = demo(shell)
        async with app.run_test(size=SIZE) as pilot:
            view = app.terminal
            await until(pilot, lambda: shell.pump.size == (view.size.height, view.size.width), "")
            await pilot.resize_terminal(80, 24)
            await until(pilot, lambda: view.size.width == 80, "the new layout")
            await until(pilot, lambda: shell.pump.size == (view.size.height, 80), "the pty size")
            assert view.frame.columns == 80 and view.frame.rows == view.size.height
            await type_line(pilot, "stty size")
            await until(
                pilot, lambda: f"{view.size.height} 80" in view.frame.text(), "stty's answer"
            )


@sync
async def test_a_held_view_shrinks_without_the_pty_and_shows_the_rows_to_the_cursor(
    tmp_path: Path,
) -> None:
    """An idle pane is short: with ``hold_rows`` the PTY keeps its height (no resize for the
    shell), the view paints the rows that end at the prompt, and the whole screen is there
    again when the view grows back."""
    with live_shell(tmp_path) as shell:
        app = demo(shell)
        async with app.run_test(size=SIZE) as pilot:
            view = app.terminal
            await until(pilot, lambda: shell.pump.size == (view.size.height, 100), "the pty")
            full = view.size.height
            await type_line(pilot, "seq 5")
            await until(pilot, lambda: cursor_row(app).startswith("lab$"), "the prompt after")
            view.hold_rows = True
            view.styles.height = 3
            await until(pilot, lambda: view.size.height == 3, "the short view")
            assert shell.pump.size == (full, 100)  # the shell saw no resize
            await until(pilot, lambda: painted(app)[-1].startswith("lab$"), "the prompt")
            assert [row.strip() for row in painted(app)[:2]] == ["4", "5"]
            view.styles.height = full
            await until(pilot, lambda: view.size.height == full, "the view grown back")
            assert any(row.strip() == "1" for row in painted(app))  # nothing was lost
            view.hold_rows = False
            view.styles.height = 5
            await until(pilot, lambda: shell.pump.size == (5, 100), "a pty that follows again")


@sync
async def test_scrollback_view_and_search_over_the_raw_buffer(tmp_path: Path) -> None:
    with live_shell(tmp_path) as shell:
        app = demo(shell)
        async with app.run_test(size=SIZE) as pilot:
            await type_line(pilot, "seq 1 300 | sed 's/^/row-/'")
            await until(pilot, lambda: "row-300" in app.terminal.frame.text(), "the output")
            assert "row-100" not in screen_text(app)
            view = app.terminal
            await pilot.press("shift+pageup")
            assert view.scrolled_back > 0
            rows = painted(app)
            assert "lines back" in rows[0]
            hits = view.search("ROW-100")
            assert [h.text for h in hits] == ["row-100"]
            view.reveal(hits[0])
            await pilot.pause()
            assert any(row.rstrip() == "row-100" for row in painted(app))
            await pilot.press("shift+end")
            assert view.scrolled_back == 0
            await pilot.press("shift+pageup")
            assert view.scrolled_back > 0
            await pilot.press("e")  # any key returns to the live screen and is typed
            assert view.scrolled_back == 0
            await until(pilot, lambda: "lab$ e" in screen_text(app), "the typed key")


@sync
async def test_a_flood_of_200000_lines_leaves_the_pane_usable(tmp_path: Path) -> None:
    with live_shell(tmp_path) as shell:
        app = demo(shell)
        async with app.run_test(size=SIZE) as pilot:
            await type_line(pilot, "seq 200000")
            assert shell.tracker.wait_for_prompt(120, after=0)
            await until(pilot, lambda: "200000" in app.terminal.frame.text(), "the last line")
            stats = app.terminal.emulator.stats
            assert stats.skipped > 0.9 * stats.received
            await type_line(pilot, "echo after-flood")
            await until(pilot, lambda: "after-flood" in app.terminal.frame.text(), "typing")


@pytest.mark.skipif(shutil.which("vim") is None, reason="vim is not installed")
@sync
async def test_vim_edits_in_the_pane_and_leaves_the_screen_as_it_was(tmp_path: Path) -> None:
    (tmp_path / "edit.txt").write_text("first line\nsecond line\n")
    with live_shell(tmp_path) as shell:
        app = demo(shell)
        async with app.run_test(size=SIZE) as pilot:
            await type_line(pilot, "echo BEFORE-VIM")
            await until(pilot, lambda: "BEFORE-VIM" in app.terminal.frame.text(), "echo")
            await type_line(pilot, "vim -u NONE -i NONE -N edit.txt")
            view = app.terminal
            await until(
                pilot, lambda: view.frame.alternate and view.frame.contains("second"), "vim"
            )
            assert view.frame.app_cursor  # vim asks for application cursor keys
            await pilot.press("down", "x", "escape")
            await until(pilot, lambda: "econd line" in view.frame.text(), "the edit")
            await pilot.press("colon", "w", "q", "enter")
            assert shell.tracker.wait_for_prompt(DEADLINE, after=1)
            await until(pilot, lambda: not view.frame.alternate, "the shell's screen")
            assert (tmp_path / "edit.txt").read_text() == "first line\necond line\n"
            assert "BEFORE-VIM" in view.frame.text()
            assert not view.frame.contains("second line")
            assert view.emulator.stats.errors == 0


@sync
async def test_a_pane_opened_late_shows_what_the_shell_printed_before(tmp_path: Path) -> None:
    with live_shell(tmp_path) as shell:
        assert shell.run("printf '\\033[32mEARLY-%s\\033[0m\\n' OUTPUT") == 0
        app = demo(shell)
        async with app.run_test(size=SIZE) as pilot:
            view = app.terminal
            await until(pilot, lambda: "EARLY-OUTPUT" in view.frame.text(), "the replay")
            assert view.frame.bracketed_paste  # readline's mode, set before the pane existed
            await until(pilot, lambda: cursor_row(app).startswith("lab$ "), "the prompt")
            frame = view.frame
            row = frame.text().index("EARLY-OUTPUT")
            coloured = [s for s in frame.lines[row] if s.style is not None and s.style.color]
            assert [(s.text, s.style.color.name) for s in coloured] == [("EARLY-OUTPUT", "green")]
