"""One persistent bash per lab run, driven through a pseudo-terminal.

Learners type commands into a terminal where ``cd``, ``export`` and shell
functions carry over from one command to the next, so labrunner runs a lab's
commands the same way: one interactive bash on a PTY, kept for the
whole lab. Each command is written to a private file, read into the shell
with the ``read`` builtin and ``eval``-ed (so it behaves as if typed, and a
command that reads stdin cannot swallow the framing), and followed on the same
input line by a ``printf`` of a sentinel that carries a per-shell nonce, a
sequence number, the exit status and the working directory. Output is split
into lines as it arrives and handed to a callback, so a UI can stream it.
The sentinel also carries ``$KUBECONFIG`` (quoted with ``printf %q``, so
colons, newlines and any byte survive), so the engine can tell after every
command whether the shell still points at the kubeconfig the run approved.

After each command the shell saves its state with builtins only (``export
-p``, functions, aliases, options, directory) into its private folder. That
file serves twice: a restarted shell comes back from it, and the checks'
environment is read from it (:meth:`Shell.snapshot`) without another round
trip and without ``exec`` — an exported value past the kernel's 128 KiB
per-string limit would make ``env`` fail, not the builtin.

Job control is on (an interactive bash), so every command runs in its own
process group. A command past its timeout, or cancelled, gets SIGINT and then
SIGKILL to whatever is left of that group, while the shell itself survives
with its state. If the shell itself is stuck (a builtin loop that ignores
interrupts) it is killed with everything in its session and restarted with
the exported variables, functions, aliases, options and directory saved after
the last command that finished. Closing the shell kills everything left in
its session, its descendants and whatever still carries its marker
(``proctree.MARKER`` in the environment: ``setsid``, ``nohup``, ``disown``
and double-forked children too), so nothing outlives labrunner. The private
folder records the bash's session, so a labrunner that dies without closing
(SIGKILL) is cleaned up by the next one (``proctree.sweep``).

In a headless run (``headless=True``) nobody can type: a command that waits
for terminal input — a process of the foreground job blocked reading the
terminal, seen in ``/proc`` — is given end-of-file at once, as if its stdin
were ``/dev/null``, and the result names the prompt it showed (a command
reading keys one at a time cannot be given end-of-file; it is interrupted).
Unlike a redirect from ``/dev/null``, the command still sees a terminal, so
``read -p`` shows its prompt and the message can name it.

Measured pitfall: pexpect sleeps 50 ms before every send unless
``delaybeforesend`` is None; with it off a round trip is well under 1 ms.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import re
import select
import shlex
import signal
import sys
import termios
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from labrunner import proctree
from labrunner.ansi import strip_ansi
from labrunner.fsutil import remove_tree, temp_root, which
from labrunner.lab.model import Expect
from labrunner.redact import MASK, mask_values, split_point
from labrunner.shell.bashquote import parse_exports, unquote
from labrunner.shell.result import CommandResult, ShellError

if TYPE_CHECKING:
    import subprocess

    import pexpect

LineCallback = Callable[[str], None]

MAX_LINE = 64 * 1024
LOOKAHEAD = 512
"""Bytes past MAX_LINE seen before an unfinished line is cut, so the cut can avoid a secret."""
TAIL_LINES = 200
INTERRUPT_GRACE = 1.0
PROMPT_IDLE = 0.4
INPUT_PROBE_INTERVAL = 0.2
"""How often, while output is idle, a headless command is checked for a blocked terminal read."""
MAX_EOFS = 8
"""End-of-files given to one headless command before it is interrupted instead."""
START_TIMEOUT = 10.0
_SHELL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")

_SAVE = r"""
__labrunner_save() {
  { export -p; declare -f; alias -p; shopt -p; set +o;
    printf 'cd -- %q\nreturn 0\n' "$PWD"; } 2>/dev/null 1<> "$__LR_DIR/state"
}
"""
# The state file is overwritten in place (``1<>``), never truncated: on ext4 a
# truncate-and-rewrite makes the kernel flush the file at close (auto_da_alloc),
# a third of a millisecond per command. What an earlier, longer state left past
# the end is never read: ``return 0`` ends a ``source``, and the environment
# parser stops where ``export -p`` ends. bash's ``declare -f`` prints ``1<>`` as
# ``<>`` (fd 0), so a restored shell defines the function again after the state.

_INIT = (
    r"""
set +o history
unset HISTFILE PROMPT_COMMAND
PS1='' PS2='' PS4='+ '
"""
    + _SAVE
)


@dataclass(frozen=True)
class ShellState:
    """The shell's exported environment and working directory at one moment."""

    env: dict[str, str]
    cwd: str


@dataclass
class _Run:
    """Book-keeping for the command in flight."""

    on_line: LineCallback | None
    on_prompt: LineCallback | None
    expects: list[tuple[re.Pattern[str], Expect]]
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    scan: str = ""
    last_data: float = field(default_factory=time.monotonic)
    prompted: str = ""
    secrets: list[str] = field(default_factory=list)
    headless: bool = False
    probed: float = 0.0
    eofs: int = 0
    wanted: str | None = None
    stopped: bool = False


_live: weakref.WeakSet[Shell] = weakref.WeakSet()


def _close_all() -> None:
    for shell in list(_live):
        shell.close()


atexit.register(_close_all)


class _Bash:
    """A lab shell's bash on a pseudo-terminal, started without forking labrunner.

    pexpect starts a program by forking this process, which copies its page
    tables: some 3 ms for a ``labrunner verify``, more for the TUI, at every
    shell start. :func:`spawn_bash` starts bash through ``subprocess`` instead
    (a ``vfork``), by way of util-linux's ``setsid --ctty``: bash then leads a
    session of its own whose controlling terminal is the pseudo-terminal, as
    pexpect's child does. This offers what the shells use of ``pexpect.spawn``.
    """

    def __init__(self, proc: subprocess.Popen[bytes], fd: int) -> None:
        self._proc = proc
        self.pid = proc.pid
        self.child_fd = fd
        """The pseudo-terminal's controlling side."""

    def isalive(self) -> bool:
        """True until bash has exited (and been reaped)."""
        return self._proc.poll() is None

    def wait(self) -> int:
        """Wait for bash to exit; its exit status."""
        return self._proc.wait()

    def close(self, force: bool = True) -> None:
        """Close the terminal; with ``force``, kill and reap a bash still running."""
        if self.child_fd >= 0:
            os.close(self.child_fd)
            self.child_fd = -1
        if force and self.isalive():
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            self._proc.wait()


@functools.cache
def _setsid_program() -> str | None:
    """util-linux's ``setsid`` when it offers ``--ctty`` (looked up once)."""
    found = which("setsid")
    if found is None:
        return None
    import subprocess

    try:
        usage = subprocess.run([found, "--help"], capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return found if b"--ctty" in usage.stdout else None


def _signals_as_in_a_terminal() -> bool:
    """True when a child started without running code of ours gets the dispositions
    :func:`proctree.default_signals` gives: none of them ignored here, none blocked
    (SIGPIPE and SIGXFSZ ``subprocess`` restores itself)."""
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGTERM):
        if signal.getsignal(sig) is signal.SIG_IGN:
            return False
    return not signal.pthread_sigmask(signal.SIG_BLOCK, ())


def spawn_bash(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str,
    size: tuple[int, int],
    echo: bool,
) -> pexpect.spawn | _Bash:
    """bash with ``args`` on a new pseudo-terminal of ``size`` (rows, columns), leading a
    session of its own: a :class:`_Bash` where ``setsid --ctty`` is there and the signal
    dispositions allow it, else a ``pexpect.spawn`` (which forks, then sets the
    dispositions); raises :class:`ShellError` when bash cannot start."""
    setsid = _setsid_program()
    if setsid is None or not _signals_as_in_a_terminal():
        import pexpect  # only this road needs it (a third of the module's imports)

        try:
            child = pexpect.spawn(
                "bash",
                list(args),
                env=dict(env),
                cwd=cwd,
                echo=echo,
                dimensions=size,
                encoding=None,
                preexec_fn=proctree.default_signals,
            )
        except pexpect.ExceptionPexpect as exc:
            raise ShellError(f"cannot start bash: {exc}") from exc
        child.delaybeforesend = None
        child.ptyproc.delayafterclose = 0.0  # its close would sleep 100 ms "for the kernel"
        return child
    bash = which("bash", env.get("PATH", os.defpath))
    if bash is None:
        raise ShellError("cannot start bash: no bash on the PATH")
    import fcntl
    import struct
    import subprocess

    controller, terminal = os.openpty()
    try:
        attributes = termios.tcgetattr(terminal)
        if not echo:
            attributes[3] &= ~termios.ECHO
        termios.tcsetattr(terminal, termios.TCSANOW, attributes)
        rows, columns = size
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        proc = subprocess.Popen(
            [setsid, "--ctty", bash, *args],
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            env=dict(env),
            cwd=cwd,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        os.close(controller)
        raise ShellError(f"cannot start bash: {exc}") from exc
    finally:
        os.close(terminal)
    return _Bash(proc, controller)


def _child_errors() -> tuple[type[BaseException], ...]:
    """What closing or waiting on a shell's bash may raise: ``OSError``, and pexpect's own
    errors when pexpect started it (then it is loaded)."""
    pexpect = sys.modules.get("pexpect")
    return (OSError,) if pexpect is None else (OSError, pexpect.ExceptionPexpect)


def _kill_session(child: pexpect.spawn | _Bash, marks: tuple[str, ...] = ()) -> None:
    """SIGKILL bash, everything in its session, its descendants and, with ``marks``,
    every process carrying one of those shell markers; reap bash.

    bash is reaped with a blocking wait (it cannot survive SIGKILL) before the
    PTY is closed: pexpect's close would otherwise sleep 100 ms "to let the
    kernel catch up", once per lab run.
    """
    bash = child.pid

    def find(procs: dict[int, proctree.ProcInfo]) -> set[int]:
        found = proctree.in_session(procs, bash) | proctree.marked(marks, procs, mine=True)
        if bash in procs:
            found.add(bash)
        return found | proctree.descendants(procs, found)

    proctree.end(find, mine=True)
    try:
        if child.isalive():
            child.wait()
    except _child_errors():
        pass
    proctree.release(bash)
    proctree.lab_session(bash, open=False)
    try:
        child.close(force=True)
    except _child_errors():
        pass


def _echoes(fd: int) -> bool:
    """True when the terminal echoes what is typed (a program may have turned it on)."""
    try:
        return bool(termios.tcgetattr(fd)[3] & termios.ECHO)
    except termios.error:
        return False


def _cut(data: bytes, pos: int, end: int) -> int:
    """Where to end the piece of an over-long line that starts at ``pos``."""
    limit = pos + MAX_LINE
    # latin-1 maps each byte to one character, so positions carry over to the bytes
    window = data[pos : min(end, limit + LOOKAHEAD)].decode("latin-1")
    cut = pos + split_point(window, MAX_LINE)
    while cut > pos + 1 and data[cut] & 0xC0 == 0x80:  # not inside a UTF-8 character
        cut -= 1
    return cut


_Sentinel = tuple[int, str, str | None]
"""What a command's sentinel reports: exit status, working directory, ``$KUBECONFIG``."""


def _private_folder(shell_id: str, parent: str | os.PathLike[str] | None) -> Path:
    """A new 0700 folder for one shell's files: in ``parent`` (a run's own private
    directory) when given, else in the temp folder with an owner record of its own."""
    if parent is not None:
        folder = Path(parent) / f"shell-{shell_id}"
        folder.mkdir(mode=0o700)
        return folder
    folder = Path(temp_root()) / f"labrunner-shell-{shell_id}"
    folder.mkdir(mode=0o700)
    proctree.write_owner(folder)
    return folder


def _terminal_of(pid: int) -> tuple[str, int] | None:
    """The terminal ``pid`` reads (its path, and its number as ``/proc/PID/stat`` shows it)."""
    try:
        path = os.readlink(f"/proc/{pid}/fd/0")
        rdev = os.stat(path).st_rdev
    except OSError:
        return None
    major, minor = os.major(rdev), os.minor(rdev)
    return path, (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)


class Shell:
    """A persistent interactive bash with sentinel-framed commands."""

    def __init__(
        self,
        *,
        env: Mapping[str, str],
        cwd: str | os.PathLike[str],
        columns: int = 200,
        rows: int = 50,
        directory: str | os.PathLike[str] | None = None,
    ) -> None:
        self._env = dict(env)
        self._cwd = os.fspath(cwd)
        self._size = (rows, columns)
        self._child: pexpect.spawn | _Bash | None = None
        self.id = os.urandom(8).hex()  # as secrets.token_hex, without loading hashlib
        """The marker value every process this shell starts inherits (``proctree.MARKER``)."""
        self._dir = _private_folder(self.id, directory)
        self._cmd_fd = os.open(self._dir / "cmd", os.O_RDWR | os.O_CREAT, 0o600)
        self._nonce = os.urandom(6).hex()
        self._marker = b"\x1eLR" + self._nonce.encode() + b":"
        self._seq = 0
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._busy = False
        self._buf = b""
        self.cwd = self._cwd
        self.kubeconfig: str | None = self._env.get("KUBECONFIG")
        """The shell's ``$KUBECONFIG`` after the last command (None when unset)."""
        self.restarts = 0
        self._starting = False
        self._saves = 0
        """Bumped whenever the saved state may have changed (it keys the snapshot cache)."""
        self._snapshot: tuple[int, dict[str, str]] | None = None
        self._state_bytes = b""
        self._tty: tuple[str, int] | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def pid(self) -> int | None:
        """The bash process id, while it runs."""
        return self._child.pid if self._child is not None else None

    @property
    def alive(self) -> bool:
        """True while the bash process is running."""
        return self._child is not None and self._child.isalive()

    @property
    def busy(self) -> bool:
        """True while a command is running."""
        return self._busy

    def start(self) -> None:
        """Start bash and wait until it answers."""
        with self._lock:
            self._start_locked()

    def _start_locked(self) -> None:
        # Called with the lock held, also by _restart in the middle of a command,
        # so it must not go through _execute (the lock is not re-entrant).
        try:
            self._spawn_locked()
        except BaseException:
            self.close()  # no half-started bash, no private directory left behind
            raise

    def _spawn_locked(self) -> None:
        if not os.path.isdir(self._cwd):
            raise ShellError(f"cannot start bash in {self._cwd}: no such directory")
        env = dict(self._env)
        env.setdefault("TERM", "xterm-256color")
        env["__LR_DIR"] = str(self._dir)
        env[proctree.MARKER] = self.id
        env.pop("PROMPT_COMMAND", None)
        env.pop("BASH_ENV", None)
        env.pop("ENV", None)
        proctree.become_subreaper()  # what the shell leaves behind comes back to us
        child = spawn_bash(
            ["--noprofile", "--norc", "--noediting", "-i"],
            env=env,
            cwd=self._cwd,
            size=self._size,
            echo=False,
        )
        proctree.claim(child.pid)  # we wait on it; the reaper must not
        proctree.lab_session(child.pid)  # bash leads a session of its own
        self._child = child
        self._buf = b""
        self._tty = _terminal_of(child.pid)
        _live.add(self)
        try:
            proctree.write_session(self._dir, child.pid)
        except OSError:
            pass
        # __LR_DIR must not leak to commands' environments: keep it a plain variable.
        init = _INIT + f"__LR_DIR={shlex.quote(str(self._dir))}; export -n __LR_DIR\n"
        self._starting = True
        try:
            result = self._execute_locked(
                init, START_TIMEOUT, None, (), None, save=False, hidden=True
            )
        finally:
            self._starting = False
        if result.exit_code is None:
            raise ShellError(f"bash did not answer within {START_TIMEOUT:g}s")
        self._execute_locked("__labrunner_save", 5.0, None, (), None, save=False, hidden=True)

    def close(self) -> None:
        """Stop the shell and everything it started, detached or not; remove its files."""
        child, self._child = self._child, None
        if child is not None:
            _kill_session(child, (self.id,))
        else:
            proctree.end(lambda procs: proctree.marked((self.id,), procs, mine=True), mine=True)
        _live.discard(self)
        if self._cmd_fd >= 0:
            os.close(self._cmd_fd)
            self._cmd_fd = -1
        remove_tree(self._dir)

    @property
    def directory(self) -> Path:
        """The shell's private folder (mode 0700), removed by :meth:`close`."""
        return self._dir

    def __enter__(self) -> Shell:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ commands

    def run(
        self,
        cmd: str,
        *,
        timeout: float,
        on_line: LineCallback | None = None,
        expect: Sequence[Expect] = (),
        on_prompt: LineCallback | None = None,
        headless: bool = False,
    ) -> CommandResult:
        """Run ``cmd`` as if typed at the prompt; stream its output lines to ``on_line``.

        With ``headless``, input nobody will type is refused: a wait for terminal
        input gets end-of-file (``on_prompt`` hears the prompt once it does).
        """
        return self._execute(
            cmd,
            timeout=timeout,
            on_line=on_line,
            expect=expect,
            on_prompt=on_prompt,
            headless=headless,
        )

    def cancel(self) -> None:
        """Ask the running command to stop (safe from another thread)."""
        self._cancel.set()

    def send(self, text: str) -> None:
        """Type ``text`` into the running command (for interactive prompts)."""
        child = self._child
        if child is not None and self._busy:
            os.write(child.child_fd, text.encode("utf-8"))

    def snapshot(self) -> ShellState:
        """The shell's exported environment and directory after its last command.

        Read from the state the shell saved with ``export -p`` after that
        command: no round trip, no ``exec`` (so no size limit on a value).
        """
        with self._lock:
            version = self._saves
            if self._snapshot is None or self._snapshot[0] != version:
                try:
                    data = (self._dir / "state").read_bytes()
                except OSError:
                    data = b""
                if self._snapshot is None or data != self._state_bytes:
                    env, _ = parse_exports(data)
                    env.pop("__LR_DIR", None)
                else:  # a command that changed nothing (most do not): same environment
                    env = self._snapshot[1]
                self._state_bytes = data
                self._snapshot = (version, env)
            return ShellState(env=dict(self._snapshot[1]), cwd=self.cwd)

    def export(self, values: Mapping[str, str]) -> None:
        """Export variables into the shell (used to restore a learner's exports).

        Values are always quoted, and a name that is not a shell variable name
        is never written into the shell: restored data stays data.
        """
        safe = {k: v for k, v in values.items() if _SHELL_NAME.match(k) and isinstance(v, str)}
        if not safe:
            return
        lines = "\n".join(f"export {k}={shlex.quote(v)}" for k, v in safe.items())
        self._execute(lines, timeout=5.0, hidden=True)

    # ------------------------------------------------------------------ internals

    def _execute(
        self,
        cmd: str,
        *,
        timeout: float,
        on_line: LineCallback | None = None,
        expect: Sequence[Expect] = (),
        on_prompt: LineCallback | None = None,
        save: bool = True,
        hidden: bool = False,
        headless: bool = False,
    ) -> CommandResult:
        with self._lock:
            if self._child is None or not self.alive:
                if self._child is not None:
                    self._restart()
                else:
                    raise ShellError("the shell is not running")
            self._cancel.clear()
            self._busy = True
            try:
                return self._execute_locked(
                    cmd,
                    timeout,
                    on_line,
                    expect,
                    on_prompt,
                    save=save,
                    hidden=hidden,
                    headless=headless,
                )
            finally:
                self._busy = False

    def _send_framed(self, cmd: str, save: bool) -> int:
        self._seq += 1
        data = cmd.encode("utf-8", "surrogateescape")
        # one descriptor kept open, rewritten in place: no truncate-and-close flush
        os.pwrite(self._cmd_fd, data, 0)
        os.ftruncate(self._cmd_fd, len(data))
        # state is saved after the command, so a restart (after a stuck command, or a
        # shell that died between commands) comes back with everything that completed,
        # and the checks read their environment from it
        post = "__labrunner_save; " if save else ""
        # the sentinel: nonce:seq:status, then $KUBECONFIG ("=" and its %q form when
        # set) and $PWD, each %q-quoted, so no byte of theirs can end a field early
        line = (
            f"IFS= read -r -d '' __lr_cmd < {shlex.quote(str(self._dir / 'cmd'))}; "
            f'eval "$__lr_cmd"; __lr_rc=$?; {post}'
            "builtin printf '\\036LR%s:%s:%s\\037%s%q\\037%q\\036\\n' "
            f'{self._nonce} {self._seq} "$__lr_rc" "${{KUBECONFIG+=}}" "${{KUBECONFIG-}}" "$PWD"\n'
        )
        assert self._child is not None
        os.write(self._child.child_fd, line.encode("utf-8"))
        return self._seq

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
        start = time.monotonic()
        run = _Run(
            on_line=None if hidden else on_line,
            on_prompt=on_prompt,
            expects=[(re.compile(e.prompt), e) for e in expect],
            headless=headless,
        )
        seq = self._send_framed(cmd, save)
        deadline = start + timeout
        done = self._pump(run, seq, deadline)
        if done is not None:
            code, cwd, kubeconfig = done
            self.cwd = cwd
            self.kubeconfig = kubeconfig
            self._saves += save
            return CommandResult(
                exit_code=code,
                duration=time.monotonic() - start,
                tail=tuple(run.tail),
                input_wanted=run.wanted,
            )
        cancelled = self._cancel.is_set()
        timed_out = not cancelled and not run.stopped
        prompt = self._partial_text(run)
        restarted = self._interrupt(run)
        return CommandResult(
            exit_code=None,
            duration=time.monotonic() - start,
            timed_out=timed_out,
            cancelled=cancelled,
            restarted=restarted,
            prompt=prompt or None,
            tail=tuple(run.tail),
            input_wanted=run.wanted,
            input_stopped=run.stopped,
        )

    def _pump(self, run: _Run, seq: int, deadline: float) -> _Sentinel | None:
        """Read output until the sentinel for ``seq`` (returns exit code, cwd and
        KUBECONFIG), the deadline, a cancel, a headless command stopped for
        input (returns None), or the shell dying (raises)."""
        assert self._child is not None
        fd = self._child.child_fd
        while True:
            sentinel = self._consume(run, seq)
            if sentinel is not None:
                return sentinel
            now = time.monotonic()
            if self._cancel.is_set() or now >= deadline:
                return None
            wait = min(deadline - now, 0.1)
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                if not self._child.isalive():
                    # bash exited, but a background job still holds the terminal open,
                    # so no end-of-file will come
                    self._flush_partial(run)
                    raise ShellError("the shell exited")
                if self._idle(run):
                    return None
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if not data:
                self._flush_partial(run)
                # reap it now, so the next command sees a dead shell and restarts it
                try:
                    self._child.close(force=True)
                except _child_errors():
                    pass
                raise ShellError("the shell exited")
            self._buf += data
            run.last_data = time.monotonic()
            self._answer_prompts(run, data)

    def _consume(self, run: _Run, seq: int) -> _Sentinel | None:
        """Emit complete lines from the buffer; return (code, cwd, kubeconfig) at our sentinel."""
        buf = self._buf
        marker_at = buf.find(self._marker)
        limit = marker_at if marker_at >= 0 else len(buf)
        start = 0
        while True:
            nl = buf.find(b"\n", start, limit)
            if nl < 0:
                break
            self._emit_long(run, buf[start:nl])
            start = nl + 1
        if marker_at < 0:
            rest = buf[start:]
            if len(rest) > MAX_LINE + LOOKAHEAD:
                # a line too long to hold goes out in pieces of at most MAX_LINE bytes,
                # cut where no secret is cut in two (so each piece can still be masked:
                # hence the look past the cut) and between UTF-8 characters; a partial
                # sentinel at the end stays buffered
                keep = rest.rfind(b"\x1e", max(len(rest) - 64, 0))
                end = keep if keep >= 0 else len(rest)
                pos = 0
                while end - pos > MAX_LINE + LOOKAHEAD:
                    cut = _cut(rest, pos, end)
                    self._emit(run, rest[pos:cut])
                    pos = cut
                rest = rest[pos:]
            self._buf = rest
            return None
        if marker_at > start:
            self._emit_long(run, buf[start:marker_at])
        end = buf.find(b"\x1e", marker_at + len(self._marker))
        nl = buf.find(b"\n", end) if end >= 0 else -1
        if end < 0 or nl < 0:
            self._buf = buf[marker_at:]
            return None
        body = buf[marker_at + len(self._marker) : end]
        self._buf = buf[nl + 1 :]
        head, _, rest = body.partition(b"\x1f")
        kube, _, pwd = rest.partition(b"\x1f")
        number, _, status = head.partition(b":")
        if number == str(seq).encode():
            try:
                code = int(status)
            except ValueError:
                code = 255
            kubeconfig = os.fsdecode(unquote(kube[1:])) if kube.startswith(b"=") else None
            return code, os.fsdecode(unquote(pwd)), kubeconfig
        # a stale sentinel (from an interrupted command): keep reading
        return self._consume(run, seq) if self._buf else None

    def _emit_long(self, run: _Run, line: bytes) -> None:
        """Emit one whole line, in pieces of at most MAX_LINE bytes."""
        pos = 0
        while len(line) - pos > MAX_LINE:
            cut = _cut(line, pos, len(line))
            self._emit(run, line[pos:cut])
            pos = cut
        self._emit(run, line[pos:] if pos else line)

    def _emit(self, run: _Run, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace")
        if text.endswith("\r"):
            text = text.rstrip("\r")
        if "\r" in text:
            text = text[text.rfind("\r") + 1 :]
        if run.secrets:
            text = self._hide_secrets(run, text)
        run.tail.append(text)
        if run.on_line is not None:
            run.on_line(text)

    def _flush_partial(self, run: _Run) -> None:
        if self._buf:
            self._emit_long(run, self._buf)
            self._buf = b""

    @staticmethod
    def _hide_secrets(run: _Run, text: str) -> str:
        """Mask answers marked secret wherever they show, and a line that is only
        one of them (the terminal's echo, however short the answer)."""
        if strip_ansi(text).strip() in run.secrets:
            return MASK
        return mask_values(text, run.secrets)

    def _partial_text(self, run: _Run | None = None) -> str:
        tail = self._buf[-512:].decode("utf-8", "replace")
        text = strip_ansi(tail.split("\r")[-1]).strip()
        return mask_values(text, run.secrets) if run is not None else text

    def _answer_prompts(self, run: _Run, data: bytes) -> None:
        if not run.expects:
            return
        run.scan = (run.scan + strip_ansi(data.decode("utf-8", "replace")))[-4096:]
        for pattern, exp in run.expects:
            match = pattern.search(run.scan)
            if match:
                assert self._child is not None
                fd = self._child.child_fd
                # The prompt's line ends where the answer is typed: end it here, so
                # what the command prints next is not read as the answer (nor masked
                # as one). Show a plain answer as a terminal would; never a secret.
                if self._marker not in self._buf and not self._buf.endswith(b"\n"):
                    shown = "" if exp.secret or _echoes(fd) else exp.send
                    self._buf += shown.encode("utf-8") + b"\n"
                if exp.secret:
                    run.secrets.append(exp.send)
                os.write(fd, (exp.send + "\n").encode("utf-8"))
                run.scan = run.scan[match.end() :]
                break

    def _idle(self, run: _Run) -> bool:
        """Called when no output arrived for a while: report a waiting prompt once;
        headless, refuse input to a command waiting for it. True to stop the command."""
        now = time.monotonic()
        if now - run.last_data < PROMPT_IDLE:
            return False
        if run.headless:
            return self._refuse_input(run, now)
        if run.on_prompt is None or not self._buf:
            return False
        text = self._partial_text(run)
        if text and text != run.prompted:
            run.prompted = text
            run.on_prompt(text)
        return False

    def _refuse_input(self, run: _Run, now: float) -> bool:
        """If the command waits for terminal input, give it end-of-file (or stop it)."""
        if now - run.probed < INPUT_PROBE_INTERVAL or self._tty is None:
            return False
        run.probed = now
        assert self._child is not None
        fd = self._child.child_fd
        if not self._reading_terminal():
            return False
        if select.select([fd], [], [], 0)[0]:
            return False  # output arrived meanwhile (the sentinel, say): not waiting
        text = self._partial_text(run)
        if run.wanted is None:
            run.wanted = text
        if text != run.prompted and run.on_prompt is not None:
            run.prompted = text
            run.on_prompt(text)
        try:
            attrs = termios.tcgetattr(fd)
        except termios.error:
            attrs = None
        if attrs is None or not attrs[3] & termios.ICANON or run.eofs >= MAX_EOFS:
            run.stopped = True  # keys read one at a time: end-of-file would be a key
            return True
        eof = attrs[6][termios.VEOF]
        os.write(fd, eof if isinstance(eof, bytes) else bytes([eof]))
        run.eofs += 1
        run.last_data = now
        return False

    def _reading_terminal(self) -> bool:
        """True when a process of the terminal's foreground job is blocked reading it."""
        fg = self._foreground()
        if fg is None or self._tty is None:
            return False
        path, number = self._tty
        members = [p.pid for p in proctree.own_table().values() if p.pgrp == fg and not p.zombie]
        return any(proctree.reading_terminal(pid, path, number) for pid in members)

    def _foreground(self) -> int | None:
        assert self._child is not None
        try:
            return os.tcgetpgrp(self._child.child_fd)
        except OSError:
            return None

    def _wait_foreground_is_shell(self, run: _Run, grace: float) -> bool:
        assert self._child is not None
        end = time.monotonic() + grace
        while time.monotonic() < end:
            if self._foreground() == self._child.pid:
                return True
            ready, _, _ = select.select([self._child.child_fd], [], [], 0.02)
            if ready:
                try:
                    data = os.read(self._child.child_fd, 65536)
                except OSError:
                    return False
                if not data:
                    return False
                self._buf += data
                self._drop_lines(run)
        return bool(self._foreground() == self._child.pid)

    def _drop_lines(self, run: _Run) -> None:
        # keep emitting output while we wait, so nothing is lost
        while b"\n" in self._buf and self._marker not in self._buf:
            line, _, self._buf = self._buf.partition(b"\n")
            self._emit_long(run, line)

    def _interrupt(self, run: _Run) -> bool:
        """Stop the running command; returns True if the shell had to be restarted."""
        assert self._child is not None
        self._saves += 1  # the interrupted line may still have saved the state
        shell_pid = self._child.pid
        fg = self._foreground()
        if fg is not None and fg != shell_pid:
            # the job's whole tree, taken now: what it started in a session of its own
            # (`setsid -w …`) is out of reach of the group kill below
            procs = proctree.own_table()
            tree = proctree.descendants(procs, [p.pid for p in procs.values() if p.pgrp == fg])
            started = {pid: procs[pid].start for pid in tree}
            try:
                os.killpg(fg, signal.SIGINT)
            except (ProcessLookupError, PermissionError):
                pass
            back = self._wait_foreground_is_shell(run, INTERRUPT_GRACE)
            # SIGKILL whatever is left of the group, even when its leader obeyed SIGINT:
            # helpers that ignore SIGINT, or the children of a subshell that exited
            try:
                os.killpg(fg, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proctree.kill(pid for pid, at in started.items() if proctree.is_running(pid, at))
            if not back:
                self._wait_foreground_is_shell(run, INTERRUPT_GRACE)
        else:
            try:
                os.kill(shell_pid, signal.SIGINT)
            except ProcessLookupError:
                pass
        if self._resync(run):
            return False
        if self._starting:  # a bash that never answered: restarting it would loop forever
            return False
        self._restart()
        return True

    def _resync(self, run: _Run) -> bool:
        """Send a fresh sentinel and wait for it; True when the shell answered.

        Output that arrives before that first sentinel is still the interrupted
        command's: a PTY hands what a process wrote to the reader asynchronously, so
        its last lines (a SIGINT handler's goodbye) can come after it has ended and
        the shell took the terminal back. They go to ``run``, not to the void.
        """
        if self._child is None or not self._child.isalive():
            return False
        self._cancel.clear()
        late = _Run(on_line=run.on_line, on_prompt=None, expects=[], tail=run.tail)
        quiet = _Run(on_line=None, on_prompt=None, expects=[])
        try:
            for target in (late, quiet):  # the second round flushes bash's late newline
                seq = self._send_framed(":", save=False)
                done = self._pump(target, seq, time.monotonic() + INTERRUPT_GRACE * 2)
                if done is None:
                    return False
                _, self.cwd, self.kubeconfig = done
        except ShellError:
            return False
        return True

    def _restart(self) -> None:
        """Kill the shell's whole session and start a new bash with the saved state."""
        state = self._dir / "state"
        saved = state.read_bytes() if state.exists() else b""
        child, self._child = self._child, None
        if child is not None:
            _kill_session(child)
        self.restarts += 1
        self._saves += 1
        self._start_locked()
        if saved:
            (self._dir / "restore").write_bytes(saved)
            self._execute_locked(
                f"source {shlex.quote(str(self._dir / 'restore'))} >/dev/null 2>&1\n{_SAVE}",
                10.0,
                None,
                (),
                None,
                save=True,
                hidden=True,
            )
