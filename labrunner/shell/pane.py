"""The lab shell as the learner's terminal: one bash, typed into and driven by the engine.

In the TUI the lab's persistent bash is also the terminal the learner types
into, so it cannot be the silent, prompt-less shell of a headless run: it has
readline and a prompt, and a :class:`~labrunner.shell.pty_pump.PtyPump` owns
its PTY. The pump feeds, in order, the raw scrollback, the
:class:`~labrunner.shell.integration.ShellTracker` (which reads the OSC 133
marks the shell prints with its nonce) and any queue: the embedded terminal's
emulator, an attached real terminal (``t``), and the command framing below.

A command the engine runs (a step's block, a key) is pasted at the empty
prompt, visibly, as if typed, and Enter pressed; its output is what arrives
between its C mark (PS0) and its D mark (PROMPT_COMMAND, with the exit
status). Before the D mark the prompt hook saves the shell's state with
builtins, exactly as the headless shell does after each framed command, so
the checks read the same environment and directory whether the learner typed
the command or a key ran it. The engine's own book-keeping (restoring exports
after a restart) is pasted as a short `` . "$__LR_DIR/cmd"`` line: what it
sources stays in the shell's private folder, off the screen.

Headless runs keep :class:`~labrunner.shell.session.Shell` and its sentinel
framing; nothing here is on their path.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from labrunner import proctree
from labrunner.ansi import strip_ansi
from labrunner.lab.model import Expect
from labrunner.redact import mask_values
from labrunner.shell.bashquote import parse_exports, unquote
from labrunner.shell.integration import Phase, ShellTracker, hook_snippet
from labrunner.shell.pty_pump import ByteQueue, PtyPump
from labrunner.shell.result import CommandResult, ShellError
from labrunner.shell.scrollback import Scrollback
from labrunner.shell.session import (
    _SAVE,
    PROMPT_IDLE,
    START_TIMEOUT,
    LineCallback,
    Shell,
    ShellState,
    _live,
    _Run,
    _terminal_of,
    spawn_bash,
)

PROMPT_WAIT = 3.0
"""Seconds a command waits for the prompt to settle before it gives up (the learner is
typing, or a command of theirs runs)."""
INTERRUPT_GRACE = 2.0

_RC = (
    r"""
set +o history
unset HISTFILE
PS1='\[\e[1;34m\]\W\[\e[0m\] $ '
__LR_DIR=@DIR@; export -n __LR_DIR
"""
    + _SAVE
    + r"""
__labrunner_psave() { local s=$?; __labrunner_save; return $s; }
@HOOKS@
if [[ "${PROMPT_COMMAND[*]-}" != *__labrunner_psave* ]]; then
  if (( BASH_VERSINFO[0] > 5 || (BASH_VERSINFO[0] == 5 && BASH_VERSINFO[1] >= 1) )); then
    PROMPT_COMMAND=(__labrunner_psave "${PROMPT_COMMAND[@]}")
  else
    PROMPT_COMMAND="__labrunner_psave; $PROMPT_COMMAND"
  fi
fi
set -o history
"""
)
"""The rc file of the pane's bash: prompt, state saving, marks. The save runs first in
PROMPT_COMMAND (keeping ``$?``), so the state is on disk before the D mark is printed."""

BUSY = (
    "the terminal is busy (a command runs or a line is half typed): finish it or "
    "press Ctrl+C in the terminal, then try again"
)


class PaneShell(Shell):
    """A persistent interactive bash with readline whose PTY is shared through a pump."""

    def __init__(
        self,
        *,
        env: Mapping[str, str],
        cwd: str | os.PathLike[str],
        columns: int = 80,
        rows: int = 24,
        directory: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(env=env, cwd=cwd, columns=columns, rows=rows, directory=directory)
        self.pump: PtyPump | None = None
        self.tracker: ShellTracker | None = None
        self.scrollback = Scrollback()
        self.generation = 0
        """Bumped each time a new bash starts (a restart): a pane re-attaches."""
        self.on_start: Callable[[PaneShell], None] | None = None
        self._state_mtime = 0
        self._last_save_prompts = -1

    # ------------------------------------------------------------------ lifecycle

    def _spawn_locked(self) -> None:
        if not os.path.isdir(self._cwd):
            raise ShellError(f"cannot start bash in {self._cwd}: no such directory")
        self._stop_pump()
        nonce = self._nonce
        rc = self._dir / "rc"
        rc.write_text(
            _RC.replace("@DIR@", shlex.quote(str(self._dir))).replace(
                "@HOOKS@", hook_snippet(nonce)
            )
        )
        env = dict(self._env)
        env.setdefault("TERM", "xterm-256color")
        env[proctree.MARKER] = self.id
        for name in ("PROMPT_COMMAND", "BASH_ENV", "ENV", "PS0", "PS1"):
            env.pop(name, None)
        proctree.become_subreaper()  # what the shell leaves behind comes back to us
        child = spawn_bash(
            ["--noprofile", "--rcfile", str(rc), "-i"],
            env=env,
            cwd=self._cwd,
            size=self._size,
            echo=True,
        )
        proctree.claim(child.pid)
        proctree.lab_session(child.pid)
        self._child = child
        self._tty = _terminal_of(child.pid)
        _live.add(self)
        try:
            proctree.write_session(self._dir, child.pid)
        except OSError:
            pass
        pump = PtyPump(child.child_fd, name="lab-shell")
        tracker = ShellTracker(nonce)
        pump.add_listener(self.scrollback.feed)
        tracker.attach(pump, shell_pid=child.pid)
        pump.start()
        self.pump, self.tracker = pump, tracker
        if not tracker.wait_for_prompt(START_TIMEOUT):
            raise ShellError(f"bash showed no prompt within {START_TIMEOUT:g}s")
        self._refresh_state()
        self.generation += 1
        if self.on_start is not None:
            self.on_start(self)

    def _stop_pump(self) -> None:
        pump, self.pump = self.pump, None
        if pump is not None:
            pump.stop()

    def close(self) -> None:
        """Stop the shell and everything it started; stop the pump; remove its files."""
        super().close()
        self._stop_pump()

    # ------------------------------------------------------------------ state

    def _refresh_state(self) -> None:
        """Read the directory and $KUBECONFIG from the state the prompt hook saved."""
        try:
            data = (self._dir / "state").read_bytes()
        except OSError:
            return
        env, _ = parse_exports(data)
        self.kubeconfig = env.get("KUBECONFIG")
        for line in reversed(data.split(b"\nreturn 0\n", 1)[0].splitlines()):
            if line.startswith(b"cd -- "):
                self.cwd = os.fsdecode(unquote(line[6:]))
                break
        self._saves += 1

    def snapshot(self) -> ShellState:
        """The exported environment and directory as of the last prompt (typed or run)."""
        tracker = self.tracker
        prompts = tracker.prompts if tracker is not None else 0
        if prompts != self._last_save_prompts:
            self._last_save_prompts = prompts
            self._refresh_state()
        return super().snapshot()

    @property
    def alive(self) -> bool:
        """True while bash runs; false as soon as its terminal closed (it is exiting, even
        if the kernel has not reported it yet), so the next command restarts it."""
        return super().alive and not self.ended

    @property
    def ended(self) -> bool:
        """True once the shell's terminal closed: ``exit``, Ctrl+D, a kill. Its last
        command (the ``exit``) was marked as started and will never be marked done."""
        pump = self.pump
        return pump is not None and pump.eof

    def _typed_command_runs(self) -> bool:
        tracker = self.tracker
        return tracker is not None and tracker.phase is Phase.RUNNING and not self.ended

    @property
    def busy(self) -> bool:
        """True while a command runs in the shell, whoever typed it."""
        return self._busy or self._typed_command_runs()

    @property
    def learner_running(self) -> bool:
        """True while a command the learner typed runs (not one labrunner sent)."""
        return not self._busy and self._typed_command_runs()

    def send(self, text: str) -> None:
        """Type ``text`` into the terminal (an answer to a prompt)."""
        if self.pump is not None:
            self.pump.send(text.replace("\n", "\r"))

    # ------------------------------------------------------------------ commands

    def _execute_locked(
        self,
        cmd: str,
        timeout: float,
        on_line: LineCallback | None,
        expect: Sequence[Expect],
        on_prompt: LineCallback | None,
        *,
        save: bool,
        hidden: bool,
        headless: bool = False,
    ) -> CommandResult:
        pump, tracker = self.pump, self.tracker
        if pump is None or tracker is None:
            raise ShellError("the shell is not running")
        start = time.monotonic()
        if not tracker.wait(lambda t: t.at_empty_prompt, PROMPT_WAIT):
            raise ShellError(BUSY)
        run = _Run(
            on_line=None if hidden else on_line,
            on_prompt=on_prompt,
            expects=[(re.compile(e.prompt), e) for e in expect],
        )
        if hidden:
            data = cmd.encode("utf-8", "surrogateescape")
            os.pwrite(self._cmd_fd, data, 0)
            os.ftruncate(self._cmd_fd, len(data))
            text = ' . "$__LR_DIR/cmd"'
        else:
            text = cmd
        queue = pump.subscribe()
        try:
            pump.paste(text.rstrip("\r\n"), bracketed=tracker.bracketed_paste)
            pump.send(b"\r")
            status, finished = self._follow(queue, run, start + timeout)
            if finished:
                self._refresh_state()
                return CommandResult(
                    exit_code=status, duration=time.monotonic() - start, tail=tuple(run.tail)
                )
            cancelled = self._cancel.is_set()
            restarted = self._stop_command(queue, run)
            return CommandResult(
                exit_code=None,
                duration=time.monotonic() - start,
                timed_out=not cancelled,
                cancelled=cancelled,
                restarted=restarted,
                tail=tuple(run.tail),
            )
        finally:
            pump.unsubscribe(queue)

    def _marks(self) -> tuple[bytes, re.Pattern[bytes]]:
        nonce = self._nonce.encode()
        start = b"\x1b]133;C;lr=" + nonce + b"\x07"
        end = re.compile(rb"\x1b\]133;D;(-?\d+);lr=" + re.escape(nonce) + rb"\x07")
        return start, end

    def _follow(
        self,
        queue: ByteQueue,
        run: _Run,
        deadline: float,
        *,
        until_cancel: bool = True,
        started: bool = False,
    ) -> tuple[int | None, bool]:
        """Stream the command's lines until its D mark; (status, True) when it came."""
        start_mark, end_mark = self._marks()
        buf = b""
        while True:
            now = time.monotonic()
            if now >= deadline or (until_cancel and self._cancel.is_set()):
                return None, False
            data = queue.get(timeout=min(0.1, deadline - now))
            if not data:
                if queue.closed:
                    raise ShellError("the shell exited")
                if started and buf and time.monotonic() - run.last_data >= PROMPT_IDLE:
                    self._show_prompt(run, buf)
                continue
            run.last_data = time.monotonic()
            buf += data
            if not started:
                at = buf.find(start_mark)
                if at < 0:
                    continue
                started = True
                buf = buf[at + len(start_mark) :]
            self._answer(run, data)
            match = end_mark.search(buf)
            body = buf[: match.start()] if match else buf
            lines = body.split(b"\n")
            rest = lines.pop()
            for line in lines:
                self._emit(run, line)
            if match is not None:
                if rest.strip(b"\r"):
                    self._emit(run, rest)
                return int(match.group(1)), True
            buf = rest

    @staticmethod
    def _show_prompt(run: _Run, partial: bytes) -> None:
        """Tell ``on_prompt`` once about a line the command left unfinished (a question)."""
        text = strip_ansi(partial.decode("utf-8", "replace").split("\r")[-1]).strip()
        if run.secrets:
            text = mask_values(text, run.secrets)
        if text and text != run.prompted and run.on_prompt is not None:
            run.prompted = text
            run.on_prompt(text)

    def _answer(self, run: _Run, data: bytes) -> None:
        """Answer a prompt the command shows with the step's ``expect`` entries."""
        if not run.expects or self.pump is None:
            return
        run.scan = (run.scan + strip_ansi(data.decode("utf-8", "replace")))[-4096:]
        for pattern, exp in run.expects:
            match = pattern.search(run.scan)
            if match:
                if exp.secret:
                    run.secrets.append(exp.send)
                self.pump.send((exp.send + "\r").encode("utf-8"))
                run.scan = run.scan[match.end() :]
                break

    def _stop_command(self, queue: ByteQueue, run: _Run) -> bool:
        """Interrupt the command (Ctrl+C, then SIGKILL to its job); restart a stuck shell."""
        pump = self.pump
        assert pump is not None and self._child is not None
        self._cancel.clear()
        pump.send(b"\x03")
        grace = dict(until_cancel=False, started=True)
        _, done = self._follow(queue, run, time.monotonic() + INTERRUPT_GRACE, **grace)
        if done:
            return False
        fg = pump.foreground_pgid()
        if fg is not None and fg != self._child.pid:
            try:
                os.killpg(fg, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            _, done = self._follow(queue, run, time.monotonic() + INTERRUPT_GRACE, **grace)
            if done:
                return False
        self._restart()
        return True


def attach_terminal(
    shell: PaneShell,
    stdin_fd: int,
    stdout_fd: int,
    *,
    escape: bytes = b"\x1d",
    banner: str = "",
    stop: threading.Event | None = None,
) -> None:
    """Connect a real terminal to the shell's PTY until ``escape`` (Ctrl+]) is typed.

    The terminal is put in raw mode and sized onto the PTY; the PTY gets its old
    size back on return. The shell's recent output is replayed first (so the
    prompt and what came before show), then keys go to the shell as typed and
    output is copied as it arrives. No second shell is ever started.
    """
    # lazy: only attaching the real terminal (`t`) needs these
    import select
    import termios
    import tty

    pump = shell.pump
    if pump is None:
        raise ShellError("the shell is not running")
    old_size = pump.size
    try:
        columns, rows = os.get_terminal_size(stdout_fd)
        pump.resize(rows, columns)
    except OSError:
        pass
    saved = termios.tcgetattr(stdin_fd) if os.isatty(stdin_fd) else None
    queue = pump.subscribe(replay=True)
    if banner:
        os.write(stdout_fd, banner.encode("utf-8"))
    try:
        if saved is not None:
            tty.setraw(stdin_fd)
        while stop is None or not stop.is_set():
            data = queue.get(timeout=0)
            if data:
                os.write(stdout_fd, data)
            if queue.closed:
                break
            ready, _, _ = select.select([stdin_fd], [], [], 0.02)
            if ready:
                keys = os.read(stdin_fd, 4096)
                if not keys:
                    break
                cut = keys.find(escape)
                if cut >= 0:
                    pump.send(keys[:cut])
                    break
                pump.send(keys)
    finally:
        pump.unsubscribe(queue)
        if saved is not None:
            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)
        if old_size != (0, 0):
            pump.resize(*old_size)
