"""A real interactive bash on a PTY with the terminal machinery attached, for tests and benchmarks.

The embedded terminal is tested and measured against the real thing: an
interactive bash with readline (as the learner's pane has), read through a
:class:`~labrunner.shell.pty_pump.PtyPump`, followed by a
:class:`~labrunner.shell.integration.ShellTracker` with the mark hooks
installed, and recorded in a :class:`~labrunner.shell.scrollback.Scrollback`.
The shell gets a private HOME, a fixed prompt and no inputrc, and everything
in its session is killed when the context ends.
"""

from __future__ import annotations

import os
import secrets
import signal
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pexpect

from labrunner.proctree import default_signals, session_pids
from labrunner.shell.integration import ShellTracker, hook_snippet
from labrunner.shell.pty_pump import PtyPump
from labrunner.shell.scrollback import Scrollback

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
        """Type ``line`` and Enter, wait for its end mark; returns its exit status."""
        before = self.tracker.commands_finished
        self.pump.send(line + "\r")
        if not self.tracker.wait_for_prompt(timeout, after=before):
            raise TimeoutError(f"no prompt within {timeout:g}s after {line!r}")
        return self.tracker.last_status


def shell_env(home: Path) -> dict[str, str]:
    """A small, predictable environment for the shell."""
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
    workdir: Path, *, hooks: bool = True, rows: int = 24, columns: int = 80
) -> Iterator[LiveShell]:
    """Start bash on a PTY in ``workdir`` with the pump running and the hooks installed."""
    home = workdir / "home"
    home.mkdir(exist_ok=True)
    nonce = secrets.token_hex(6)
    child = pexpect.spawn(
        "bash",
        ["--norc", "--noprofile", "-i"],
        env=shell_env(home),
        cwd=str(workdir),
        dimensions=(rows, columns),
        encoding=None,
        preexec_fn=default_signals,
    )
    child.delaybeforesend = None
    pump = PtyPump(child.child_fd, name="live-shell")
    tracker = ShellTracker(nonce)
    scrollback = Scrollback()
    # the scrollback listens first: whoever wakes on a mark finds its output recorded
    pump.add_listener(scrollback.feed)
    tracker.attach(pump, shell_pid=child.pid)
    pump.start()
    shell = LiveShell(child, pump, tracker, scrollback, workdir)
    try:
        if hooks:
            script = home / "labrunner-hooks.sh"
            script.write_text(hook_snippet(nonce))
            pump.send(f". {script}\r")
            if not tracker.wait_for_prompt(DEADLINE):
                raise TimeoutError("the shell printed no prompt mark after the hooks")
        yield shell
    finally:
        for pid in {child.pid, *session_pids(child.pid)}:
            with suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        child.ptyproc.delayafterclose = 0.0
        with suppress(OSError, pexpect.ExceptionPexpect):
            child.close(force=True)
        pump.stop()
