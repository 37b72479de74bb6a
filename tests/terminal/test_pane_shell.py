"""The pane shell: the lab's bash with readline, driven by the engine and typed into alike.

Real bash on a real PTY. A command run by the engine is typed at the prompt and
framed by the shell's own marks; what the learner types is seen by the state the
checks read; a command past its timeout is interrupted and the shell keeps its
state; a shell that dies comes back with what it had saved.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from labrunner.lab.model import Expect
from labrunner.shell.pane import PaneShell
from labrunner.shell.session import ShellError

DEADLINE = 20.0


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[PaneShell]:
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(home), "LANG": "C.UTF-8"}
    with PaneShell(env=env, cwd=tmp_path, directory=None) as sh:
        yield sh


def test_a_run_command_streams_its_lines_and_exit_status(shell: PaneShell) -> None:
    lines: list[str] = []
    result = shell.run(
        "echo one; printf 'two\\nthree\\n'; false", timeout=DEADLINE, on_line=lines.append
    )
    assert result.exit_code == 1
    assert lines == ["one", "two", "three"]  # not the typed command, not the prompt
    assert shell.scrollback.search("printf 'two")  # it was typed visibly


def test_what_is_typed_reaches_the_saved_state(shell: PaneShell, tmp_path: Path) -> None:
    tracker, pump = shell.tracker, shell.pump
    assert tracker is not None and pump is not None
    before = tracker.commands_finished
    pump.send(f"export TYPED=yes; cd {tmp_path / 'home'}\r")
    assert tracker.wait_for_prompt(DEADLINE, after=before)
    state = shell.snapshot()
    assert state.env["TYPED"] == "yes"
    assert state.cwd == str(tmp_path / "home")
    assert tracker.last_status == 0


def test_a_half_typed_line_refuses_a_command(shell: PaneShell) -> None:
    assert shell.pump is not None and shell.tracker is not None
    shell.pump.send("echo half")
    assert shell.tracker.wait(lambda t: not t.at_empty_prompt, DEADLINE)
    with pytest.raises(ShellError, match="terminal is busy"):
        shell.run("echo whole", timeout=DEADLINE)


def test_a_timeout_interrupts_and_the_shell_keeps_its_state(shell: PaneShell) -> None:
    shell.run("export KEPT=1", timeout=DEADLINE)
    result = shell.run("sleep 60", timeout=0.5)
    assert result.timed_out and result.exit_code is None and not result.restarted
    after = shell.run('test "$KEPT" = 1', timeout=DEADLINE)
    assert after.exit_code == 0


def test_expect_answers_a_prompt(shell: PaneShell) -> None:
    lines: list[str] = []
    result = shell.run(
        'read -r -p "name: " N && echo "hi $N"',
        timeout=DEADLINE,
        on_line=lines.append,
        expect=[Expect(prompt="name: ", send="ada")],
    )
    assert result.exit_code == 0
    assert "hi ada" in lines


def test_a_killed_shell_restarts_with_its_exports(shell: PaneShell) -> None:
    shell.run("export KEPT=2", timeout=DEADLINE)
    first = shell.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    assert shell.pump is not None and shell.pump.wait_eof(DEADLINE)
    generation = shell.generation
    result = shell.run('test "$KEPT" = 2', timeout=DEADLINE)
    assert result.exit_code == 0
    assert shell.pid != first
    assert shell.generation == generation + 1  # a pane re-attaches to the new terminal
