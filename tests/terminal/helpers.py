"""A real bash on a real PTY with the pump, the tracker and the scrollback attached.

Every test here talks to an interactive bash (readline on, as in the
learner's terminal) through :class:`PtyPump`; nothing is mocked. The shell
gets a private HOME and working directory, a fixed prompt and no inputrc,
and everything in its session is killed at the end.
"""

from __future__ import annotations

import os
import secrets
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pexpect

from labrunner.shell.integration import ShellTracker, hook_snippet
from labrunner.shell.pty_pump import PtyPump
from labrunner.shell.scrollback import Scrollback
from labrunner.shell.session import session_pids

DEADLINE = 20.0
PROMPT = "lab$ "


@dataclass
class LiveShell:
    """A running bash and what listens to its terminal."""

    child: pexpect.spawn
    pump: PtyPump
    tracker: ShellTracker
    scrollback: Scrollback
    cwd: Path

    @property
    def pid(self) -> int:
        """The bash process id."""
        return int(self.child.pid)

    def run(self, line: str, timeout: float = DEADLINE) -> int | None:
        """Type ``line`` and Enter, wait for its D mark; returns its exit status."""
        before = self.tracker.commands_finished
        self.pump.send(line + "\r")
        assert self.tracker.wait_for_prompt(timeout, after=before), f"no prompt after {line!r}"
        return self.tracker.last_status


def shell_env(home: Path) -> dict[str, str]:
    """A small, predictable environment for the test shell."""
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PS1": PROMPT,
        "INPUTRC": os.devnull,
    }


@contextmanager
def live_shell(
    tmp_path: Path, *, hooks: bool = True, rows: int = 24, columns: int = 80
) -> Iterator[LiveShell]:
    """Start bash on a PTY with the pump running; install the mark hooks if ``hooks``."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    nonce = secrets.token_hex(6)
    child = pexpect.spawn(
        "bash",
        ["--norc", "--noprofile", "-i"],
        env=shell_env(home),
        cwd=str(tmp_path),
        dimensions=(rows, columns),
        encoding=None,
    )
    child.delaybeforesend = None
    pump = PtyPump(child.child_fd, name="test-shell")
    tracker = ShellTracker(nonce)
    scrollback = Scrollback()
    tracker.attach(pump, shell_pid=child.pid)
    pump.add_listener(scrollback.feed)
    pump.start()
    shell = LiveShell(child, pump, tracker, scrollback, tmp_path)
    try:
        if hooks:
            script = tmp_path / "hooks.sh"
            script.write_text(hook_snippet(nonce))
            pump.send(f". {script}\r")
            assert tracker.wait_for_prompt(DEADLINE), "the hooks printed no prompt mark"
        yield shell
    finally:
        for pid in {child.pid, *session_pids(child.pid)}:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        child.ptyproc.delayafterclose = 0.0
        try:
            child.close(force=True)
        except (OSError, pexpect.ExceptionPexpect):
            pass
        pump.stop()
