"""The persistent lab shell: real bash on a PTY, sentinel framing, interrupts, restarts."""

from __future__ import annotations

import os
import shlex
import signal
import textwrap
import threading
import time
from pathlib import Path

import pytest

from labrunner import proctree
from labrunner.lab.model import Expect
from labrunner.proctree import session_pids
from labrunner.shell import CommandResult, Shell, ShellError
from labrunner.shell import session as session_module
from labrunner.shell.session import MAX_LINE
from labrunner.testing.waiting import wait_for

from .conftest import pid_alive, read_pids


class Lines:
    """An ``on_line`` callback that records lines and can wait for one."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()

    def __call__(self, line: str) -> None:
        with self._changed:
            self.lines.append(line)
            self._changed.notify_all()

    def wait_for(self, text: str, timeout: float = 5.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: text in self.lines, timeout)


class Background:
    """Run one shell command in a thread; ``result`` once it is done."""

    def __init__(self, sh: Shell, cmd: str, **kwargs: object) -> None:
        self.result: CommandResult | None = None
        self.done = threading.Event()

        def target() -> None:
            try:
                self.result = sh.run(cmd, **kwargs)  # type: ignore[arg-type]
            finally:
                self.done.set()

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def join(self, timeout: float = 10.0) -> CommandResult:
        assert self.done.wait(timeout), "the command did not finish"
        assert self.result is not None
        return self.result


# --------------------------------------------------------------------------- basics


def test_round_trip(shell: Shell) -> None:
    out = Lines()
    result = shell.run("echo hello; echo world >&2", timeout=5, on_line=out)
    assert result.exit_code == 0 and result.ok
    assert out.lines == ["hello", "world"]
    assert result.tail == ("hello", "world")
    assert result.duration < 1.0
    assert shell.run("false", timeout=5).exit_code == 1
    assert shell.run("(exit 42)", timeout=5).exit_code == 42


def test_round_trips_are_fast(shell: Shell) -> None:
    started = time.monotonic()
    for _ in range(50):
        assert shell.run("true", timeout=5).exit_code == 0
    # well under the 50 ms pexpect would add per send if delaybeforesend were left on
    assert (time.monotonic() - started) / 50 < 0.02


def test_cwd_env_functions_and_aliases_persist(shell: Shell, tmp_path: Path) -> None:
    shell.run("mkdir -p a/b && cd a/b", timeout=5)
    shell.run("export LR_TEST=persisted; PLAIN=kept", timeout=5)
    shell.run('greet() { echo "hi $1"; }', timeout=5)
    shell.run("alias say='echo said'", timeout=5)
    out = Lines()
    result = shell.run('pwd; echo "$LR_TEST $PLAIN"; greet you; say it', timeout=5, on_line=out)
    assert result.exit_code == 0
    assert out.lines == [str(tmp_path / "a" / "b"), "persisted kept", "hi you", "said it"]
    assert shell.cwd == str(tmp_path / "a" / "b")


def test_snapshot_has_exports_but_not_plain_variables(shell: Shell, tmp_path: Path) -> None:
    shell.run("export VISIBLE='two words'; HIDDEN=1; cd /", timeout=5)
    state = shell.snapshot()
    assert state.env["VISIBLE"] == "two words"
    assert "HIDDEN" not in state.env
    assert "__LR_DIR" not in state.env
    assert state.cwd == "/"


def test_multi_line_commands_and_heredocs(shell: Shell) -> None:
    out = Lines()
    script = "cat <<'EOF'\nfirst $HOME\nsecond\nEOF\nif true; then\n  echo third\nfi"
    assert shell.run(script, timeout=5, on_line=out).exit_code == 0
    assert out.lines == ["first $HOME", "second", "third"]


def test_output_that_looks_like_framing_does_not_confuse_it(shell: Shell) -> None:
    out = Lines()
    result = shell.run(r"printf '\036LRdeadbeef:1:0:/\036\n'; echo after", timeout=5, on_line=out)
    assert result.exit_code == 0
    assert out.lines[-1] == "after"


# --------------------------------------------------------------------------- output


def test_output_streams_line_by_line_as_it_arrives(shell: Shell, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    out = Lines()
    job = Background(
        shell,
        f"echo line-1; until [ -e {gate} ]; do sleep 0.01; done; echo line-2",
        timeout=10,
        on_line=out,
    )
    assert out.wait_for("line-1"), out.lines
    assert not job.done.is_set(), "the callback saw line 1 only after the command finished"
    assert "line-2" not in out.lines
    gate.touch()
    result = job.join()
    assert result.exit_code == 0
    assert out.lines == ["line-1", "line-2"]


def test_ansi_codes_are_kept(shell: Shell) -> None:
    out = Lines()
    shell.run(r"printf '\033[31mred\033[0m plain\n'", timeout=5, on_line=out)
    assert out.lines == ["\x1b[31mred\x1b[0m plain"]


def test_carriage_return_progress_bars_keep_the_last_state(shell: Shell) -> None:
    out = Lines()
    shell.run(r"printf '10%%\r55%%\r100%% done\n'; printf 'next\n'", timeout=5, on_line=out)
    assert out.lines == ["100% done", "next"]


def test_invalid_utf8_is_replaced_not_fatal(shell: Shell) -> None:
    out = Lines()
    result = shell.run(r"printf 'caf\xe9 \xff\xfe ok\n'; echo fine", timeout=5, on_line=out)
    assert result.exit_code == 0
    assert out.lines == ["caf\ufffd \ufffd\ufffd ok", "fine"]


def test_a_megabyte_without_newline_arrives_in_bounded_pieces(shell: Shell) -> None:
    out = Lines()
    result = shell.run(
        "head -c 1048576 /dev/zero | tr '\\0' z; echo; echo tail-line", timeout=20, on_line=out
    )
    assert result.exit_code == 0
    assert out.lines[-1] == "tail-line"
    pieces = out.lines[:-1]
    assert all(len(p) <= MAX_LINE for p in pieces)
    assert "".join(pieces) == "z" * 1048576


def test_output_without_trailing_newline(shell: Shell) -> None:
    out = Lines()
    result = shell.run("printf 'no newline here'", timeout=5, on_line=out)
    assert result.exit_code == 0
    assert out.lines == ["no newline here"]
    out2 = Lines()
    shell.run("echo next", timeout=5, on_line=out2)
    assert out2.lines == ["next"]


# --------------------------------------------------------------------------- prompts


def test_expect_answers_prompts(shell: Shell) -> None:
    out = Lines()
    result = shell.run(
        'read -r -p "Proceed? (y/N) " a; read -r -p "Name: " n; echo "a=$a n=$n"',
        timeout=5,
        on_line=out,
        expect=[Expect(r"Proceed\? \(y/N\)", "y"), Expect("Name:", "Ada")],
    )
    assert result.exit_code == 0
    assert out.lines[-1].endswith("a=y n=Ada")


def test_send_answers_a_prompt_from_another_thread(shell: Shell) -> None:
    prompts: list[str] = []
    prompted = threading.Event()

    def on_prompt(text: str) -> None:
        prompts.append(text)
        prompted.set()

    out = Lines()
    job = Background(
        shell,
        'read -r -p "Cluster name? " name; echo "name=$name"',
        timeout=10,
        on_line=out,
        on_prompt=on_prompt,
    )
    assert prompted.wait(5)
    assert prompts == ["Cluster name?"]
    shell.send("kind-lab\n")
    result = job.join()
    assert result.exit_code == 0
    assert out.lines[-1].endswith("name=kind-lab")


def test_unanswered_prompt_times_out_and_names_the_prompt(shell: Shell) -> None:
    # the prompt has to be on screen before the deadline, so leave bash ample time to print it
    result = shell.run('read -r -p "Delete everything? [y/N] " x', timeout=2.0)
    assert result.timed_out and result.exit_code is None
    assert result.prompt == "Delete everything? [y/N]"
    assert shell.run("echo still-here", timeout=5).exit_code == 0


def test_send_outside_a_command_is_ignored(shell: Shell) -> None:
    shell.send("echo should-not-run\n")
    out = Lines()
    shell.run("echo ok", timeout=5, on_line=out)
    assert out.lines == ["ok"]


# --------------------------------------------------------------------------- stopping things


def test_timeout_kills_the_foreground_group_and_keeps_the_shell(
    shell: Shell, tmp_path: Path, reaper: list[int]
) -> None:
    pids = tmp_path / "pids"
    shell.run("export KEEP=me; cd /tmp", timeout=5)
    result = shell.run(
        f"( sleep 1000 & echo $! >> {pids}; echo $BASHPID >> {pids}; wait )", timeout=2.0
    )  # ample time for the subshell to record its PIDs before the deadline
    recorded = [int(p) for p in pids.read_text().split()]
    reaper.extend(recorded)
    assert result.timed_out and not result.restarted
    assert wait_for(lambda: not any(pid_alive(p) for p in recorded), 5)
    out = Lines()
    shell.run('echo "$KEEP $PWD"', timeout=5, on_line=out)
    assert out.lines == ["me /tmp"]


def test_cancel_from_another_thread_escalates_to_sigkill(
    shell: Shell, tmp_path: Path, reaper: list[int]
) -> None:
    out = Lines()
    job = Background(
        shell,
        "bash -c 'trap \"echo got-sigint\" INT; echo pid=$$; while :; do sleep 0.05; done'",
        timeout=30,
        on_line=out,
    )
    assert wait_for(lambda: any(line.startswith("pid=") for line in out.lines), 5)
    pid = int(next(line for line in out.lines if line.startswith("pid="))[4:])
    reaper.append(pid)
    started = time.monotonic()
    shell.cancel()
    result = job.join()
    assert result.cancelled and not result.timed_out and result.exit_code is None
    assert time.monotonic() - started < 5
    assert "got-sigint" in out.lines, "SIGINT was not tried first"
    assert not pid_alive(pid), "the child ignoring SIGINT survived"
    assert not result.restarted
    assert shell.run("echo alive", timeout=5).exit_code == 0


def test_last_words_of_an_interrupted_command_are_kept_when_the_reader_lags(
    shell: Shell, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interrupted job's last line can reach labrunner's reader only after the job has
    ended and bash took the terminal back: the PTY delivers asynchronously, and on a busy
    machine the reader can be descheduled meanwhile. That line is still the command's
    output and must not vanish into the resync that follows. The reader is made to lag
    here until bash is in the foreground again, which is the worst case."""
    sigint_sent = threading.Event()
    real_killpg = os.killpg
    real_select = session_module.select.select
    stalled: list[bool] = []

    def killpg(pgid: int, sig: int) -> None:
        real_killpg(pgid, sig)
        if sig == signal.SIGINT:
            sigint_sent.set()

    def lagging_select(r: list[int], w: list[int], x: list[int], timeout: float) -> object:
        if sigint_sent.is_set() and not stalled:
            # the reader "wakes up" only after the job ended and bash is in the foreground
            stalled.append(True)
            assert wait_for(lambda: os.tcgetpgrp(r[0]) == shell.pid, 10)
            return [], [], []
        return real_select(r, w, x, timeout)

    monkeypatch.setattr(session_module.os, "killpg", killpg)
    monkeypatch.setattr(session_module.select, "select", lagging_select)
    out = Lines()
    job = Background(
        shell,
        "bash -c 'trap \"echo last-words; exit 0\" INT; echo ready; while :; do sleep 0.05; done'",
        timeout=60,
        on_line=out,
    )
    assert out.wait_for("ready", timeout=10)
    shell.cancel()
    result = job.join(timeout=30)
    assert stalled, "the reader was never made to lag"
    assert result.cancelled and not result.restarted
    assert out.lines == ["ready", "last-words"]
    assert result.tail == ("ready", "last-words")


def test_builtin_loop_is_interrupted(shell: Shell) -> None:
    shell.run("export KEEP=yes", timeout=5)
    started = time.monotonic()
    result = shell.run("while :; do :; done", timeout=0.3)
    assert result.timed_out
    assert time.monotonic() - started < 3
    out = Lines()
    shell.run("echo $KEEP", timeout=5, on_line=out)
    assert out.lines == ["yes"]


@pytest.mark.parametrize("stop", ["timeout", "cancel"])
def test_stuck_shell_restarts_with_its_environment(shell: Shell, tmp_path: Path, stop: str) -> None:
    shell.run("mkdir -p there && cd there", timeout=5)
    shell.run("export KEEP='a b'; greet() { echo \"hi $1\"; }; alias ll='echo listed'", timeout=5)
    first_pid = shell.pid
    # a loop in the shell itself that ignores SIGINT: only a restart gets us out. The
    # interrupt must come once the loop runs: a SIGINT that lands before `trap` would
    # simply abort the line, and the shell would rightly not need a restart.
    stuck = "trap '' INT; echo stuck; while :; do :; done"
    out = Lines()
    if stop == "timeout":
        # the deadline is fixed when the command starts, so give the loop ample time to
        # begin and check afterwards that it had begun before the deadline
        result = shell.run(stuck, timeout=2.0, on_line=out)
        assert out.lines == ["stuck"], "the loop never started: nothing was stuck"
        assert result.timed_out and result.restarted
    else:
        job = Background(shell, stuck, timeout=60, on_line=out)
        assert out.wait_for("stuck", timeout=10)
        shell.cancel()
        result = job.join(timeout=30)
        assert result.cancelled and result.restarted
    assert shell.restarts == 1
    assert shell.pid != first_pid and first_pid is not None
    assert wait_for(lambda: not pid_alive(first_pid), 5)
    out = Lines()
    result = shell.run('echo "$KEEP"; greet there; ll; pwd', timeout=5, on_line=out)
    assert result.exit_code == 0
    assert out.lines == ["a b", "hi there", "listed", str(tmp_path / "there")]


def test_shell_killed_from_outside_restarts_on_next_command(shell: Shell, tmp_path: Path) -> None:
    shell.run("export KEEP=1; work() { echo working; }; cd /", timeout=5)
    pid = shell.pid
    assert pid is not None
    os.kill(pid, 9)
    assert wait_for(lambda: not shell.alive, 5)
    out = Lines()
    result = shell.run("echo $KEEP; work; pwd", timeout=5, on_line=out)
    assert result.exit_code == 0
    assert out.lines == ["1", "working", "/"]
    assert shell.restarts == 1
    # the restored shell keeps saving its state: the checks see what comes next
    shell.run("export AFTER=yes", timeout=5, on_line=out)
    assert out.lines == ["1", "working", "/"]
    assert shell.snapshot().env["AFTER"] == "yes"


def test_exit_in_a_command_is_reported_then_the_shell_comes_back(shell: Shell) -> None:
    shell.run("export KEEP=still", timeout=5)
    with pytest.raises(ShellError):
        shell.run("exit 3", timeout=5)
    out = Lines()
    assert shell.run("echo $KEEP", timeout=5, on_line=out).exit_code == 0
    assert out.lines == ["still"]


def test_exit_is_noticed_even_when_a_background_job_holds_the_terminal(
    shell: Shell, tmp_path: Path, reaper: list[int]
) -> None:
    started = time.monotonic()
    with pytest.raises(ShellError, match="the shell exited"):
        shell.run("sleep 1000 & echo $! > bg.pid; exit 3", timeout=60)
    assert time.monotonic() - started < 5, "the dead shell was only noticed at the timeout"
    pid = int((tmp_path / "bg.pid").read_text())
    reaper.append(pid)
    assert shell.run("echo back", timeout=5).exit_code == 0
    # the restart cleared out what the dead shell left running
    assert wait_for(lambda: not pid_alive(pid), 5)


# --------------------------------------------------------------------------- cleanup


def test_close_leaves_no_processes(tmp_path: Path) -> None:
    sh = Shell(env=dict(os.environ), cwd=tmp_path)
    sh.start()
    sh.run("sleep 1000 & echo $! > bg.pid", timeout=5)
    sh.run("(trap '' INT TERM HUP; exec tail -f /dev/null) & echo $! > bg2.pid", timeout=5)
    shell_pid = sh.pid
    assert shell_pid is not None
    pids = [int((tmp_path / n).read_text()) for n in ("bg.pid", "bg2.pid")]
    assert all(pid_alive(p) for p in pids)
    sh.close()
    assert not sh.alive
    assert wait_for(lambda: not any(pid_alive(p) for p in [shell_pid, *pids]), 5)
    assert session_pids(shell_pid) == []


def test_a_closed_shell_refuses_commands(tmp_path: Path) -> None:
    sh = Shell(env=dict(os.environ), cwd=tmp_path)
    with pytest.raises(ShellError, match="not running"):
        sh.run("true", timeout=1)
    sh.start()
    sh.close()
    with pytest.raises(ShellError):
        sh.run("true", timeout=1)


def test_a_bash_that_never_answers_fails_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "bin" / "bash"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexec tail -f /dev/null\n")
    fake.chmod(0o755)
    monkeypatch.setattr(session_module, "START_TIMEOUT", 0.5)
    sh = Shell(env={**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"}, cwd=tmp_path)
    started = time.monotonic()
    with pytest.raises(ShellError, match=r"bash did not answer within 0\.5s"):
        sh.start()
    assert time.monotonic() - started < 8
    assert not sh.alive


@pytest.mark.parametrize(
    ("env", "cwd", "message"),
    [
        ({"PATH": "/nonexistent"}, None, "cannot start bash: "),
        (None, "missing", "cannot start bash in .*missing: no such directory"),
    ],
    ids=["no-bash", "no-directory"],
)
def test_a_failed_start_leaves_nothing_behind(
    tmp_path: Path, env: dict[str, str] | None, cwd: str | None, message: str
) -> None:
    sh = Shell(env=env or dict(os.environ), cwd=tmp_path / cwd if cwd else tmp_path)
    private = Path(sh._dir)
    assert private.is_dir()
    with pytest.raises(ShellError, match=message):
        sh.start()
    assert not private.exists(), "the shell's private directory leaked"
    assert not sh.alive


# --------------------------------------------------------------------------- state, KUBECONFIG


def test_snapshot_survives_a_200_kb_export(shell: Shell) -> None:
    # `env` cannot even start in such a shell (E2BIG): the snapshot is read from `export -p`
    shell.run("export BIG=$(head -c 200000 /dev/zero | tr '\\0' x); export SMALL=ok", timeout=10)
    state = shell.snapshot()
    assert len(state.env["BIG"]) == 200_000
    assert state.env["SMALL"] == "ok"
    assert state.env["PATH"] == os.environ["PATH"]


def test_snapshot_follows_every_command(shell: Shell) -> None:
    for value in ("one", "two words", 'x"; touch PWNED; echo "', "line\nbreak"):
        shell.run(f"export V={shlex.quote(value)}", timeout=5)
        assert shell.snapshot().env["V"] == value
    shell.run("unset V", timeout=5)
    assert "V" not in shell.snapshot().env


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("export KUBECONFIG=/a/b.yaml:/c/d.yaml", "/a/b.yaml:/c/d.yaml"),
        ("export KUBECONFIG=$'/odd\\n\\x1e\\x1f: path'", "/odd\n\x1e\x1f: path"),
        ("export KUBECONFIG=", ""),
        ("unset KUBECONFIG", None),
        ("KUBECONFIG=/not/exported.yaml", "/not/exported.yaml"),
    ],
    ids=["colons", "any-bytes", "empty", "unset", "plain-variable"],
)
def test_each_command_reports_kubeconfig(shell: Shell, command: str, expected: str | None) -> None:
    shell.run(command, timeout=5)
    assert shell.kubeconfig == expected


def test_kubeconfig_is_reported_after_a_timeout_too(shell: Shell) -> None:
    result = shell.run("export KUBECONFIG=/moved.yaml; sleep 100", timeout=0.3)
    assert result.timed_out
    assert shell.kubeconfig == "/moved.yaml"


# --------------------------------------------------------------------------- detached processes


DETACHED = {
    "setsid": "setsid bash -c 'echo $$ >> pids; exec sleep 1001' &",
    "setsid-f": "setsid -f bash -c 'echo $$ >> pids; exec sleep 1002'",
    "nohup": "nohup bash -c 'echo $$ >> pids; exec sleep 1003' >/dev/null 2>&1 &",
    "disown": "bash -c 'echo $$ >> pids; exec sleep 1004' & disown",
    "double-fork": "bash -c \"bash -c 'echo \\$\\$ >> pids; exec sleep 1005' &\"",
}


def test_close_kills_what_commands_detached(tmp_path: Path, reaper: list[int]) -> None:
    sh = Shell(env=dict(os.environ), cwd=tmp_path)
    sh.start()
    for command in DETACHED.values():
        assert sh.run(command, timeout=10).exit_code == 0
    pids_file = tmp_path / "pids"
    assert wait_for(lambda: pids_file.exists() and len(read_pids(pids_file)) == 5, 20)
    pids = read_pids(pids_file)
    reaper.extend(pids)
    assert all(pid_alive(p) for p in pids)
    private = sh.directory
    sh.close()
    assert wait_for(lambda: not any(pid_alive(p) for p in pids), 10), [
        p for p in pids if pid_alive(p)
    ]
    assert not private.exists()


def test_timeout_kills_what_the_job_started_in_a_session_of_its_own(
    shell: Shell, tmp_path: Path, reaper: list[int]
) -> None:
    command = "setsid -w bash -c 'echo $$ > inner.pid; exec sleep 1000'"
    background = Background(shell, command, timeout=30)
    pid_file = tmp_path / "inner.pid"
    assert wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), 20)
    pid = int(pid_file.read_text())
    reaper.append(pid)
    shell.cancel()
    result = background.join(20)
    assert result.cancelled
    assert wait_for(lambda: not pid_alive(pid), 10), "the job's setsid child outlived it"
    assert shell.run("true", timeout=5).exit_code == 0


def test_a_shell_private_folder_lives_in_the_run_directory(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    sh = Shell(env=dict(os.environ), cwd=tmp_path, directory=run_dir)
    sh.start()
    try:
        assert sh.directory.parent == run_dir
        assert sh.directory.stat().st_mode & 0o777 == 0o700
        assert (sh.directory / "state").exists()
    finally:
        sh.close()
    assert not sh.directory.exists()


def _parent(pid: int) -> int | None:
    info = proctree.read_stat(pid)
    return info.ppid if info is not None else None


@pytest.mark.parametrize(
    "detach",
    [
        "setsid -f bash -c 'echo $$ > orphan.pid; read < gate'",
        "bash -c \"bash -c 'echo \\$\\$ > orphan.pid; read < gate' &\"",
    ],
    ids=["own-session", "lab-session"],
)
def test_a_subreaper_reaps_orphans_that_exit(
    tmp_path: Path, reaper: list[int], detach: str
) -> None:
    # a zombie still answers `kill -0`: a lab checking its own server by pid would think
    # it still ran, so adopted orphans that exit are waited on
    assert proctree.become_subreaper()
    os.mkfifo(tmp_path / "gate")
    sh = Shell(env=dict(os.environ), cwd=tmp_path)
    sh.start()
    try:
        sh.run(detach, timeout=10)
        pid_file = tmp_path / "orphan.pid"
        assert wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), 20)
        pid = int(pid_file.read_text())
        reaper.append(pid)
        assert wait_for(lambda: _parent(pid) == os.getpid(), 20), "not adopted"
        if "setsid" in detach:
            proctree.reap_adopted()  # a pass sees it alive, as the reaper thread does
        os.close(os.open(tmp_path / "gate", os.O_WRONLY))  # let it exit
        assert wait_for(lambda: proctree.read_stat(pid) is None, 20), "left as a zombie"
    finally:
        sh.close()


@pytest.mark.parametrize("road", ["setsid", "pexpect"])
def test_bash_leads_a_session_on_its_own_terminal_either_way_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, road: str
) -> None:
    if road == "pexpect":  # as where util-linux's setsid (with --ctty) is missing
        monkeypatch.setattr(session_module, "_setsid_program", lambda: None)
    elif session_module._setsid_program() is None:
        pytest.skip("no setsid --ctty here")
    sh = Shell(env=dict(os.environ), cwd=tmp_path, rows=33, columns=101)
    sh.start()
    try:
        assert sh._child is not None
        assert isinstance(sh._child, session_module._Bash) == (road == "setsid")
        out = Lines()
        script = (
            "echo pid=$$; ps -o sid=,tpgid= -p $$; stty size; [[ $- == *m* ]] && echo monitor; "
            "(trap 'echo got-int' INT; kill -INT $BASHPID; echo after)"
        )
        assert sh.run(script, timeout=10, on_line=out).exit_code == 0
        pid = int(out.lines[0].removeprefix("pid="))
        assert pid == sh._child.pid
        # bash leads the session, and its terminal's foreground group is the command's
        sid, tpgid = map(int, out.lines[1].split())
        assert sid == pid and tpgid != 0
        assert out.lines[2:] == ["33 101", "monitor", "got-int", "after"]
        assert not os.isatty(0) or os.ttyname(0) != os.readlink(f"/proc/{pid}/fd/0")
    finally:
        sh.close()
    assert proctree.read_stat(pid) is None  # killed and reaped


def test_a_closed_pipe_ends_a_command_quietly_as_in_a_terminal(shell: Shell) -> None:
    # Python ignores SIGPIPE; left ignored across exec, `yes | head -1` says "Broken pipe"
    out = Lines()
    result = shell.run(
        "yes | head -1; echo status=${PIPESTATUS[*]}; grep SigIgn /proc/self/status",
        timeout=10,
        on_line=out,
    )
    assert result.exit_code == 0
    assert out.lines[:2] == ["y", "status=141 0"], out.lines
    ignored = int(out.lines[2].split()[-1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1) | 1 << (signal.SIGXFSZ - 1)), out.lines


@pytest.mark.parametrize("kind", ["headless", "pane"])
def test_commands_can_trap_ctrl_c_when_labrunner_was_started_with_it_ignored(
    tmp_path: Path, kind: str
) -> None:
    """A background job of a script (`labrunner verify &`) starts with SIGINT ignored, and an
    ignored signal stays ignored across exec: the lab shell must hand its commands the
    dispositions of a terminal's shell, or Ctrl-C and cancelling could never reach them."""
    import subprocess
    import sys

    probe = textwrap.dedent(
        f"""
        import signal
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGQUIT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGINT}})
        from labrunner.shell.{"pane" if kind == "pane" else "session"} import {
            "PaneShell" if kind == "pane" else "Shell"
        } as Kind
        shell = Kind(env={{"PATH": "/usr/bin:/bin"}}, cwd={str(tmp_path)!r})
        shell.start()
        try:
            lines = []
            result = shell.run(
                "bash -c 'trap \\"echo got-sigint\\" INT; kill -INT $$; echo after'",
                timeout=20,
                on_line=lines.append,
            )
            print("RESULT", result.exit_code, [line for line in lines if line])
        finally:
            shell.close()
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "RESULT 0 ['got-sigint', 'after']" in proc.stdout, proc.stdout + proc.stderr
