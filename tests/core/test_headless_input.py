"""Headless commands cannot be typed into: a wait for terminal input ends at once.

Real bash, real programs reading the terminal (``read``, ``cat``, Python's
``input``, ``/dev/tty``); the shell sees each one blocked in a read of its
terminal and gives it end-of-file (or stops a program reading keys one at a
time), well before the command's own timeout.
"""

from __future__ import annotations

import sys
import time

import pytest

from labrunner.lab.model import Expect
from labrunner.shell import CommandResult, Shell

from .test_shell import Background, Lines

LIMIT = 10.0
"""Far below the 60 s timeout each command gets, far above the ~0.5 s it should take."""


def _headless(
    shell: Shell, cmd: str, *, expect: tuple[Expect, ...] = (), on_line: Lines | None = None
) -> tuple[CommandResult, list[str], float]:
    prompts: list[str] = []
    started = time.monotonic()
    result = shell.run(
        cmd, timeout=60, headless=True, on_prompt=prompts.append, expect=expect, on_line=on_line
    )
    return result, prompts, time.monotonic() - started


@pytest.mark.parametrize(
    ("cmd", "prompt", "code"),
    [
        ('read -r -p "Cluster name: " NAME', "Cluster name:", 1),
        ("cat", "", 0),
        (f"{sys.executable} -c \"input('Proceed? (y/N) ')\"", "Proceed? (y/N)", 1),
        ("head -c 1 /dev/tty", "", 0),
        ('bash -c \'read -p "inner? " a; echo "got [$a]"\'', "inner?", 0),
        ("cat | cat", "", 0),
    ],
    ids=["read-p", "cat", "python-input", "dev-tty", "nested-bash", "pipeline"],
)
def test_a_wait_for_input_gets_end_of_file_at_once(
    shell: Shell, cmd: str, prompt: str, code: int
) -> None:
    result, prompts, elapsed = _headless(shell, cmd)
    assert elapsed < LIMIT
    assert result.exit_code == code
    assert result.input_wanted == prompt
    assert not result.input_stopped
    assert prompts == ([prompt] if prompt else [])
    assert shell.run("echo still here", timeout=5).exit_code == 0


def test_keys_read_one_at_a_time_stop_the_command(shell: Shell) -> None:
    result, prompts, elapsed = _headless(shell, 'read -r -n 1 -p "Press any key " k; echo "k=$k"')
    assert elapsed < LIMIT
    assert result.exit_code is None and result.input_stopped
    assert not result.timed_out
    assert result.input_wanted == "Press any key"
    assert prompts == ["Press any key"]
    out = Lines()
    assert shell.run("echo back", timeout=5, on_line=out).exit_code == 0
    assert out.lines == ["back"]


def test_input_given_by_the_command_itself_is_not_a_prompt(shell: Shell) -> None:
    for cmd in ("cat < /dev/null", "echo y | (read a; echo $a)", "cat <<'EOF'\nhere\nEOF"):
        result, prompts, _ = _headless(shell, cmd)
        assert result.exit_code == 0 and result.input_wanted is None, cmd
        assert prompts == []


def test_a_slow_silent_command_is_not_a_prompt(shell: Shell) -> None:
    result, _, elapsed = _headless(shell, "sleep 1; echo done")
    assert result.exit_code == 0 and result.input_wanted is None
    assert elapsed >= 1.0


def test_an_expect_answer_still_answers(shell: Shell) -> None:
    out = Lines()
    result, _, elapsed = _headless(
        shell,
        'read -r -p "Proceed? (y/N) " a; echo "answer=$a"',
        expect=(Expect(prompt=r"Proceed\?", send="y"),),
        on_line=out,
    )
    assert result.exit_code == 0 and result.input_wanted is None
    assert "answer=y" in out.lines[-1]
    assert elapsed < LIMIT


def test_an_interactive_run_keeps_waiting_for_the_learner(shell: Shell) -> None:
    prompts = Lines()
    out = Lines()
    background = Background(
        shell,
        'read -r -p "Name: " n; echo "hello $n"',
        timeout=60,
        on_prompt=prompts,
        on_line=out,
    )
    assert prompts.wait_for("Name:", 10)
    assert not background.done.is_set(), "a learner's prompt must not be given end-of-file"
    shell.send("Ada\n")
    result = background.join(10)
    assert result.exit_code == 0 and result.input_wanted is None
    assert out.lines[-1].endswith("hello Ada")
