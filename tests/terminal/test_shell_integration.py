"""Shell-integration marks: found in the raw bytes, printed by real bash hooks, lost on exec."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest

from labrunner.shell.integration import (
    Integration,
    Mark,
    MarkKind,
    MarkScanner,
    NotAtPrompt,
    Phase,
    ShellEvent,
    ShellTracker,
    hook_snippet,
    incomplete_escape,
    parse_mark,
    paste_command,
    process_name,
)
from labrunner.shell.pty_pump import PtyPump
from labrunner.testing.waiting import wait_for

from .helpers import DEADLINE, LiveShell, live_shell


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"plain text", 10),
        (b"text\x1b", 4),
        (b"text\x1b[", 4),
        (b"text\x1b[1;3", 4),
        (b"text\x1b[1;31m", 11),
        (b"text\x1b]133;A;lr=ab", 4),
        (b"text\x1b]133;A;lr=ab\x1b", 4),
        (b"text\x1b]133;A;lr=ab\x1b\\", 19),
        (b"text\x1b]0;title\x07more", 18),
        (b"\x1b]0;t\x07\x1b[?20", 6),
        (b"\x1bP$q q", 0),
        (b"\x1b(", 0),
        (b"\x1b(B", 3),
        (b"\x1b[1;\x01x", 6),
    ],
)
def test_an_unfinished_escape_is_found_at_the_end(data: bytes, expected: int) -> None:
    assert incomplete_escape(data) == expected


def test_marks_are_parsed_with_their_nonce_and_status() -> None:
    assert parse_mark(b"A;lr=abc1") == Mark(MarkKind.PROMPT, "abc1")
    assert parse_mark(b"D;130;lr=abc1") == Mark(MarkKind.DONE, "abc1", 130)
    assert parse_mark(b"D") == Mark(MarkKind.DONE, None, None)
    assert parse_mark(b"Z;lr=abc1") is None


def test_a_mark_cut_anywhere_is_found_once() -> None:
    stream = (
        b"out\r\n\x1b]133;D;2;lr=n0nce\x07\x1b]133;A;lr=n0nce\x07\x1b[?2004hlab$ "
        b"\x1b]133;B;lr=n0nce\x1b\\"
    )
    whole = MarkScanner().feed(stream)
    assert [m.kind for m in whole] == [MarkKind.DONE, MarkKind.PROMPT, MarkKind.INPUT]
    for cut in range(1, len(stream)):
        scanner = MarkScanner()
        assert scanner.feed(stream[:cut]) + scanner.feed(stream[cut:]) == whole, cut
        assert scanner.bracketed_paste
    one_by_one = MarkScanner()
    assert [m for i in range(len(stream)) for m in one_by_one.feed(stream[i : i + 1])] == whole


def test_a_mark_without_our_nonce_changes_nothing() -> None:
    tracker = ShellTracker("n0nce")
    tracker.feed(b"\x1b]133;A;lr=other\x07\x1b]133;C\x07")
    assert tracker.phase is Phase.UNKNOWN
    assert tracker.foreign_marks == 2
    tracker.feed(b"\x1b]133;A;lr=n0nce\x07")
    assert tracker.phase is Phase.PROMPT


def test_the_hook_snippet_refuses_a_nonce_that_could_inject() -> None:
    assert "lr=abcd1234" in hook_snippet("abcd1234")
    for bad in ("", "ab", "x'; rm -rf ~; '", "a b c d"):
        with pytest.raises(ValueError):
            hook_snippet(bad)


def test_typed_commands_are_marked_with_their_exit_status(tmp_path: Path) -> None:
    events: list[ShellEvent] = []
    with live_shell(tmp_path) as shell:
        shell.tracker.on_event = events.append
        assert shell.tracker.phase is Phase.PROMPT
        assert shell.run("echo hello") == 0
        assert "hello" in shell.scrollback.tail(3)
        assert shell.run("false") == 1
        assert shell.run("(exit 7)") == 7
        finished = shell.tracker.commands_finished
        # an empty line runs nothing and ends nothing
        shell.pump.send("\r")
        assert shell.tracker.wait(lambda t: t.prompts >= 5, DEADLINE)
        assert shell.tracker.commands_finished == finished
        assert shell.tracker.last_status == 7
        last = shell.tracker.last_command
        assert last is not None and last.duration is not None and last.duration >= 0
    kinds = [(e.kind, e.status) for e in events]
    assert kinds[:3] == [(MarkKind.COMMAND, None), (MarkKind.DONE, 0), (MarkKind.PROMPT, None)]
    assert (MarkKind.DONE, 1) in kinds and (MarkKind.DONE, 7) in kinds


def test_the_marks_never_show_in_the_scrollback(tmp_path: Path) -> None:
    with live_shell(tmp_path) as shell:
        assert shell.run("echo visible") == 0
        text = "\n".join(shell.scrollback.tail(5)) + shell.scrollback.partial
        assert "133;" not in text and "lr=" not in text
        assert shell.scrollback.partial == "lab$ "


def test_an_interrupted_command_ends_with_status_130(tmp_path: Path) -> None:
    with live_shell(tmp_path) as shell:
        shell.pump.send("sleep 30\r")
        assert shell.tracker.wait(lambda t: t.phase is Phase.RUNNING, DEADLINE)
        # until sleep has exec'd, the forked bash would swallow the interrupt
        assert wait_for(lambda: _foreground_name(shell) == "sleep", DEADLINE)
        shell.pump.send(b"\x03")
        assert shell.tracker.wait_for_prompt(DEADLINE, after=0)
        assert shell.tracker.last_status == 130


def test_the_prompt_is_empty_until_something_is_typed(tmp_path: Path) -> None:
    with live_shell(tmp_path) as shell:
        assert shell.tracker.at_empty_prompt
        shell.pump.send("ech")
        assert not shell.tracker.at_empty_prompt
        assert wait_for(lambda: shell.scrollback.partial == "lab$ ech", DEADLINE)
        shell.pump.send(b"\x03")  # Ctrl+C drops the line and prints a fresh prompt
        assert shell.tracker.wait(lambda t: t.at_empty_prompt, DEADLINE)
        shell.pump.send("sleep 30\r")
        assert shell.tracker.wait(lambda t: t.phase is Phase.RUNNING, DEADLINE)
        assert not shell.tracker.at_empty_prompt


def test_a_command_block_is_pasted_at_the_prompt_and_run_as_one(tmp_path: Path) -> None:
    with live_shell(tmp_path) as shell:
        assert shell.tracker.wait(lambda t: t.bracketed_paste, DEADLINE)
        before = paste_command(
            shell.pump, shell.tracker, 'export BLOCK=pasted\necho "[$BLOCK]"\ncd /\n'
        )
        assert shell.tracker.wait_for_prompt(DEADLINE, after=before)
        assert shell.tracker.last_status == 0
        assert shell.tracker.commands_finished == before + 1
        assert "[pasted]" in shell.scrollback.tail(5)
        assert shell.run('echo "$BLOCK in $PWD"') == 0
        assert "pasted in /" in shell.scrollback.tail(3)
        before = paste_command(shell.pump, shell.tracker, "true\nfalse")
        assert shell.tracker.wait_for_prompt(DEADLINE, after=before)
        assert shell.tracker.last_status == 1


def test_a_block_can_be_pasted_for_editing_first(tmp_path: Path) -> None:
    with live_shell(tmp_path) as shell:
        assert shell.tracker.wait(lambda t: t.bracketed_paste, DEADLINE)
        before = paste_command(shell.pump, shell.tracker, "echo edited-", execute=False)
        assert not shell.tracker.at_empty_prompt
        with pytest.raises(NotAtPrompt):
            paste_command(shell.pump, shell.tracker, "echo twice")
        shell.pump.send("ok\r")
        assert shell.tracker.wait_for_prompt(DEADLINE, after=before)
        assert "edited-ok" in shell.scrollback.tail(3)


def test_nothing_is_pasted_into_a_running_program(tmp_path: Path) -> None:
    with live_shell(tmp_path) as shell:
        shell.pump.send("sleep 30\r")
        assert shell.tracker.wait(lambda t: t.phase is Phase.RUNNING, DEADLINE)
        with pytest.raises(NotAtPrompt, match="running"):
            paste_command(shell.pump, shell.tracker, "echo nope")


def _state(shell: LiveShell) -> Integration:
    return shell.tracker.check(shell.pump, shell_pid=shell.pid).state


def _foreground_name(shell: LiveShell) -> str | None:
    pgid = shell.pump.foreground_pgid()
    return process_name(pgid) if pgid is not None else None


def test_exec_bash_is_seen_as_lost_integration(tmp_path: Path) -> None:
    with live_shell(tmp_path) as shell:
        assert _state(shell) is Integration.ACTIVE
        # the same argv as the original: only the environment tells them apart
        shell.pump.send("exec bash --norc --noprofile -i\r")
        assert wait_for(lambda: _state(shell) is Integration.LOST, DEADLINE)
        # the new bash may still be inside execve (no argv yet) when LOST is first seen
        assert wait_for(shell.tracker.process_replaced, DEADLINE)
        # PS0 still marked the start of `exec bash`; its end never comes
        assert shell.tracker.wait(lambda t: t.phase is Phase.RUNNING, DEADLINE)
        report = shell.tracker.check(shell.pump, shell_pid=shell.pid)
        assert "replaced" in report.reason


class _NoPump:
    """Enough of a PtyPump for :meth:`ShellTracker.attach`: the test feeds the marks itself."""

    def add_listener(self, listener: object) -> Callable[[], None]:
        return lambda: None

    add_input_listener = add_listener


def _runs(pid: int, program: bytes) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().startswith(program)
    except OSError:
        return False


def test_the_shell_is_known_by_what_it_runs_at_its_first_prompt(tmp_path: Path) -> None:
    # The lab shell is attached the moment pexpect returns, which can be in the middle of
    # the kernel's execve (argv and environment not yet there) or, on a loaded machine, of a
    # wrapper's exec: what runs then is not what to compare with later. What runs at the
    # first prompt is; an exec after that prompt is a replacement.
    go = tmp_path / "go"
    os.mkfifo(go)
    stage2 = f"read _ < {go}; exec sleep 60"
    proc = subprocess.Popen(["bash", "-c", f"read _ < {go}; exec bash -c {shlex.quote(stage2)}"])
    try:
        tracker = ShellTracker("n0nce")
        tracker.attach(cast(PtyPump, _NoPump()), shell_pid=proc.pid)
        go.write_text("\n")
        assert wait_for(lambda: _runs(proc.pid, b"bash\0-c\0" + stage2.encode()), DEADLINE)
        assert not tracker.process_replaced()
        tracker.feed(b"\x1b]133;A;lr=n0nce\x07")
        assert not tracker.process_replaced()
        go.write_text("\n")
        assert wait_for(lambda: _runs(proc.pid, b"sleep"), DEADLINE)
        assert tracker.process_replaced()
    finally:
        proc.kill()
        proc.wait()


def test_a_prompt_without_marks_is_seen_as_lost_integration(tmp_path: Path) -> None:
    with live_shell(tmp_path) as shell:
        shell.pump.send("PROMPT_COMMAND=; PS0=\r")
        assert wait_for(lambda: _state(shell) is Integration.LOST, DEADLINE)
        assert not shell.tracker.process_replaced()
        report = shell.tracker.check(shell.pump, shell_pid=shell.pid)
        assert "without labrunner's marks" in report.reason


def test_a_nested_shell_is_reported_and_its_exit_restores_the_marks(tmp_path: Path) -> None:
    with live_shell(tmp_path) as shell:
        shell.pump.send("bash --norc --noprofile -i\r")
        assert wait_for(lambda: _state(shell) is Integration.NESTED, DEADLINE)
        report = shell.tracker.check(shell.pump, shell_pid=shell.pid)
        assert "bash" in report.reason
        shell.pump.send("exit\r")
        assert shell.tracker.wait_for_prompt(DEADLINE, after=0)
        assert _state(shell) is Integration.ACTIVE


def test_a_long_quiet_command_is_not_mistaken_for_a_lost_prompt(tmp_path: Path) -> None:
    with live_shell(tmp_path) as shell:
        shell.pump.send("sleep 30\r")
        assert wait_for(lambda: shell.pump.foreground_pgid() != shell.pid, DEADLINE)
        quiet_since = time.monotonic()
        assert wait_for(lambda: time.monotonic() - quiet_since > 0.5, DEADLINE)
        assert _state(shell) is Integration.ACTIVE


def test_installing_the_hooks_twice_marks_each_prompt_once(tmp_path: Path) -> None:
    with live_shell(tmp_path) as shell:
        heard: list[bytes] = []
        shell.pump.add_listener(heard.append)
        hooks = next((tmp_path / "home").glob("*.sh"))
        assert shell.run(f". {hooks}; PROMPT_COMMAND+=('true')") == 0
        assert shell.run("declare -p PROMPT_COMMAND") == 0
        assert shell.scrollback.tail(1) == [
            'declare -a PROMPT_COMMAND=([0]="__labrunner_mark_prompt" [1]="true")'
        ]
        heard.clear()
        assert shell.run("echo once") == 0
        assert shell.tracker.wait(lambda t: t.prompt_ready, DEADLINE)
        raw = b"".join(heard)
        assert raw.count(b"\x1b]133;A;") == 1 and raw.count(b"\x1b]133;C;") == 1
        assert raw.count(b"\x1b]133;B;") == 1 and raw.count(b"\x1b]133;D;0;") == 1
