"""Shell integration: the lab shell marks its prompts and commands in its own output.

To know, from the terminal alone, whether the learner's shell sits at a
prompt, when a command started and how it ended, the shell prints invisible
marks in the style of OSC 133 (FinalTerm's shell integration, understood by
kitty, WezTerm, iTerm2 and VS Code):

====  =================================  ===========================
mark  sequence                           printed by
====  =================================  ===========================
A     ``ESC ] 133;A;lr=NONCE BEL``       PROMPT_COMMAND: a prompt starts
B     ``ESC ] 133;B;lr=NONCE BEL``       the end of PS1: typing starts
C     ``ESC ] 133;C;lr=NONCE BEL``       PS0: a command line runs
D     ``ESC ] 133;D;STATUS;lr=NONCE BEL`` PROMPT_COMMAND: it ended
====  =================================  ===========================

Each mark carries the shell's nonce, so a program that prints OSC 133 of
its own (a recorded session, another shell) cannot be taken for ours. The
marks are found by scanning the raw bytes, not by the terminal emulator:
pyte reads only the first character of an OSC code, so ``133;A`` would reach
it as an icon name. The emulator strips them before drawing.

:func:`hook_snippet` is the bash side; :class:`ShellTracker` turns the marks
into state (at a prompt, running, the last exit status) and notices when the
marks stop although the shell shows a prompt — ``exec bash``, a cleared
PROMPT_COMMAND, a nested shell — so the learner can be told and offered a
restart. Nothing here imports Textual: the TUI, ``t`` (attach) and tests share it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from labrunner.shell.pty_pump import PtyPump

ESC = 0x1B

# Longest unfinished escape sequence held back between reads; anything
# longer is passed on as it is (it is not one of ours).
HOLD_LIMIT = 256 * 1024

_STRING_OPENERS = (b"\x1b]", b"\x1bP", b"\x1b_", b"\x1b^", b"\x1bX")
_STRING_END = re.compile(rb"\x07|\x1b\\")
_MARK = re.compile(rb"\x1b\]133;([^\x07\x1b]*)(?:\x07|\x1b\\)")
_PRIVATE_MODE = re.compile(rb"\x1b\[\?([0-9;]*)([hl])")
_NONCE = re.compile(r"[A-Za-z0-9]{4,64}")

PROMPT_SETTLE = 0.3
"""Seconds of quiet after an A mark that make a prompt without a B mark count as ready."""

BRACKETED_PASTE = 2004
ALTERNATE_SCREENS = frozenset({47, 1047, 1049})
SHELLS = frozenset({"bash", "sh", "dash", "zsh", "fish", "ksh", "mksh", "tcsh", "csh", "ash"})


def incomplete_escape(buf: bytes | bytearray) -> int:
    """Where an escape sequence left unfinished at the end of ``buf`` starts.

    Returns ``len(buf)`` when every sequence in ``buf`` is complete. String
    sequences (OSC, DCS, APC, PM, SOS) run until BEL or ``ESC \\``; CSI until
    its final byte; other escapes until their first non-intermediate byte. A
    malformed CSI (a byte that cannot belong to it) counts as complete: the
    emulator deals with it.
    """
    n = len(buf)
    last = buf.rfind(b"\x1b")
    if last < 0:
        return n
    opener = max(buf.rfind(o) for o in _STRING_OPENERS)
    if opener >= 0:
        end = _STRING_END.search(buf, opener + 2)
        if end is None:
            return opener
        if last < end.end():
            return n
    if last + 1 >= n:
        return last
    kind = buf[last + 1]
    if kind == 0x5B:  # CSI: parameters and intermediates, then a final byte
        for i in range(last + 2, n):
            byte = buf[i]
            if 0x40 <= byte <= 0x7E:
                return n
            if not 0x20 <= byte <= 0x3F:
                return n
        return last
    for i in range(last + 1, n):
        if not 0x20 <= buf[i] <= 0x2F:
            return n
    return last


class MarkKind(Enum):
    """The four marks of a prompt-command cycle."""

    PROMPT = "A"
    INPUT = "B"
    COMMAND = "C"
    DONE = "D"


@dataclass(frozen=True)
class Mark:
    """One shell-integration mark found in the output."""

    kind: MarkKind
    nonce: str | None
    status: int | None = None


def parse_mark(body: bytes) -> Mark | None:
    """The mark in an OSC 133 body (``A;lr=abc``, ``D;1;lr=abc``), or None."""
    parts = body.decode("ascii", "replace").split(";")
    try:
        kind = MarkKind(parts[0])
    except ValueError:
        return None
    nonce = None
    status = None
    for part in parts[1:]:
        if part.startswith("lr="):
            nonce = part[3:]
        elif kind is MarkKind.DONE and status is None and part.lstrip("-").isdigit():
            status = int(part)
    return Mark(kind, nonce, status)


class MarkScanner:
    """Finds OSC 133 marks in a byte stream that arrives in arbitrary pieces.

    A mark cut in two by a read is held back until its end arrives, so no
    mark is lost or seen twice. The scanner also follows the private modes a
    shell integration cares about: bracketed paste (readline turns it on
    while it reads a line) and the alternate screen.
    """

    def __init__(self) -> None:
        self._held = b""
        self.bracketed_paste = False
        self.alternate_screen = False

    def feed(self, data: bytes) -> list[Mark]:
        """The marks completed by ``data``, in order."""
        buf = self._held + data if self._held else data
        cut = incomplete_escape(buf)
        if len(buf) - cut > HOLD_LIMIT:
            cut = len(buf)
        self._held = bytes(buf[cut:])
        if b"\x1b" not in buf:
            return []
        done = buf[:cut]
        if b"\x1b[?" in done:
            for match in _PRIVATE_MODE.finditer(done):
                on = match.group(2) == b"h"
                for param in match.group(1).split(b";"):
                    if not param.isdigit():
                        continue
                    mode = int(param)
                    if mode == BRACKETED_PASTE:
                        self.bracketed_paste = on
                    elif mode in ALTERNATE_SCREENS:
                        self.alternate_screen = on
        if b"\x1b]133;" not in done:
            return []
        marks = []
        for match in _MARK.finditer(done):
            mark = parse_mark(match.group(1))
            if mark is not None:
                marks.append(mark)
        return marks


# --------------------------------------------------------------------------- bash side

HOOK_TEMPLATE = r"""
__labrunner_nonce=@NONCE@
: "${__labrunner_ran:=0}"
__labrunner_mark_prompt() {
  local status=$?
  if (( ${__labrunner_ran:-0} )); then
    builtin printf '\e]133;D;%s;lr=%s\a' "$status" "$__labrunner_nonce"
    __labrunner_ran=0
  fi
  builtin printf '\e]133;A;lr=%s\a' "$__labrunner_nonce"
  return $status
}
if [[ "${PROMPT_COMMAND[*]-}" != *__labrunner_mark_prompt* ]]; then
  if (( BASH_VERSINFO[0] > 5 || (BASH_VERSINFO[0] == 5 && BASH_VERSINFO[1] >= 1) )); then
    PROMPT_COMMAND=(__labrunner_mark_prompt "${PROMPT_COMMAND[@]}")
  else
    PROMPT_COMMAND="__labrunner_mark_prompt${PROMPT_COMMAND:+; $PROMPT_COMMAND}"
  fi
  PS0='\e]133;C;lr=@NONCE@\a${__labrunner_nonce:0:$((__labrunner_ran=1,0))}'"${PS0-}"
  PS1="${PS1-}"'\[\e]133;B;lr=@NONCE@\a\]'
fi
"""
"""The bash hooks that print the marks, with ``@NONCE@`` for the shell's nonce.

PROMPT_COMMAND runs first, so ``$?`` is still the status of the command line
that just ended; D is printed only when PS0 ran (an empty line runs nothing
and ends nothing). PS0 cannot call a function that sets a variable (its
command substitutions run in a subshell), so it sets ``__labrunner_ran`` with
an arithmetic assignment inside a zero-length substring expansion, which is
evaluated by the shell itself and prints nothing. PS0 and PS1 hold the
escapes as backslash codes, so printing either variable does not forge a
mark. Installing twice changes nothing (not even the pending D of the
command line that installs them again). Needs bash 4.4 or later (PS0).
"""


def hook_snippet(nonce: str) -> str:
    """The bash hooks for a shell whose marks carry ``nonce`` (4-64 letters or digits)."""
    if not _NONCE.fullmatch(nonce):
        raise ValueError(f"a nonce is 4 to 64 letters or digits, not {nonce!r}")
    return HOOK_TEMPLATE.replace("@NONCE@", nonce)


# --------------------------------------------------------------------------- tracking


class Phase(Enum):
    """Where the shell is in its prompt-command cycle, as its marks tell."""

    UNKNOWN = "unknown"
    """No mark seen yet (the hooks are not installed, or not yet run)."""
    PROMPT = "prompt"
    """A prompt is shown and the shell waits for a command line."""
    RUNNING = "running"
    """A command line is running."""


class Integration(Enum):
    """Whether the marks can be trusted to follow the shell."""

    PENDING = "pending"
    """No mark seen yet."""
    ACTIVE = "active"
    """Marks arrive; the phase is what the shell is doing."""
    LOST = "lost"
    """The shell shows a prompt without marks: it was replaced (``exec bash``) or its
    hooks were removed. The phase stays RUNNING for ever; offer a restart."""
    NESTED = "nested"
    """Another shell runs inside the lab shell (``bash``, ``sh``): commands typed now
    do not change the lab shell, and its marks return when that shell exits."""


@dataclass(frozen=True)
class IntegrationReport:
    """The verdict of :meth:`ShellTracker.check` with a sentence for the learner."""

    state: Integration
    reason: str = ""


@dataclass(frozen=True)
class CommandEnd:
    """A command line that ended, as its D mark told."""

    status: int | None
    started: float | None
    ended: float

    @property
    def duration(self) -> float | None:
        """Seconds from its C mark to its D mark, when both were seen."""
        return None if self.started is None else self.ended - self.started


@dataclass(frozen=True)
class ShellEvent:
    """A change the marks announced: a prompt, a command starting or ending."""

    kind: MarkKind
    phase: Phase
    status: int | None = None
    command: CommandEnd | None = None


@dataclass(frozen=True)
class ProcessIdentity:
    """What changes when a process ``exec``s another program: its argv and environment."""

    cmdline: bytes
    environ: bytes

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity | None:
        """Read the identity of ``pid`` from /proc; None if it is gone or unreadable.

        An empty argv is unreadable too: a zombie shows none, and so does a
        process in the middle of ``execve`` (the kernel closes the
        close-on-exec descriptors, which is what tells pexpect the exec
        happened, before it fills in the new program's argv and environment).
        """
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read()
            with open(f"/proc/{pid}/environ", "rb") as fh:
                environ = fh.read()
        except OSError:
            return None
        if not cmdline:
            return None
        return cls(cmdline, environ)


def process_name(pid: int) -> str | None:
    """The short name of a process (``bash``, ``vim``), from /proc."""
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return None


class ShellTracker:
    """Follows a shell through its marks; thread-safe.

    Feed it the raw PTY output (it is a :class:`PtyPump` listener) and what
    is typed into the PTY (an input listener); read :attr:`phase`,
    :attr:`last_status` and :attr:`at_empty_prompt` from any thread, wait for
    a state with :meth:`wait`, or get each change as a :class:`ShellEvent`
    through ``on_event`` (called on the pump thread: hand it on, do not work
    there).
    """

    def __init__(
        self,
        nonce: str,
        *,
        on_event: Callable[[ShellEvent], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not _NONCE.fullmatch(nonce):
            raise ValueError(f"a nonce is 4 to 64 letters or digits, not {nonce!r}")
        self.nonce = nonce
        self.on_event = on_event
        self._clock = clock
        self._scanner = MarkScanner()
        self._cond = threading.Condition()
        self.phase = Phase.UNKNOWN
        self.last_status: int | None = None
        self.last_command: CommandEnd | None = None
        self.commands_finished = 0
        self.prompts = 0
        self.marks_seen = 0
        self.foreign_marks = 0
        self.last_output = clock()
        self.last_mark: float | None = None
        self._started: float | None = None
        self._typed = False
        self._input_mark = False
        self._prompt_at = 0.0
        self._last_key = b""
        self._identity: ProcessIdentity | None = None
        self._pid: int | None = None

    # ------------------------------------------------------------------ input

    def attach(self, pump: PtyPump, *, shell_pid: int | None = None) -> Callable[[], None]:
        """Listen to ``pump``'s output and input; returns a function that detaches.

        With ``shell_pid``, remember that process's identity when its first
        prompt mark arrives (by then bash runs its rc file, long past its own
        ``execve``), so a later ``exec`` is recognised for certain (see
        :meth:`check`).
        """
        if shell_pid is not None:
            self._pid = shell_pid
        remove_output = pump.add_listener(self.feed)
        remove_input = pump.add_input_listener(self.note_input)

        def detach() -> None:
            remove_output()
            remove_input()

        return detach

    def feed(self, data: bytes) -> None:
        """Take a chunk of raw PTY output."""
        marks = self._scanner.feed(data)
        events: list[ShellEvent] = []
        with self._cond:
            self.last_output = self._clock()
            for mark in marks:
                event = self._apply(mark)
                if event is not None:
                    events.append(event)
            self._cond.notify_all()
        if self.on_event is not None:
            for event in events:
                self.on_event(event)

    def note_input(self, data: bytes) -> None:
        """Take what was written to the PTY (keys, a paste): the line may not be empty now."""
        with self._cond:
            self._typed = True
            self._last_key = data[-1:]
            self._cond.notify_all()

    def _apply(self, mark: Mark) -> ShellEvent | None:
        if mark.nonce != self.nonce:
            self.foreign_marks += 1
            return None
        now = self._clock()
        self.marks_seen += 1
        self.last_mark = now
        if mark.kind is MarkKind.COMMAND:
            self.phase = Phase.RUNNING
            self._started = now
            self._typed = False
            return ShellEvent(mark.kind, self.phase)
        if mark.kind is MarkKind.DONE:
            end = CommandEnd(mark.status, self._started, now)
            self.last_status = mark.status
            self.last_command = end
            self.commands_finished += 1
            self._started = None
            return ShellEvent(mark.kind, self.phase, mark.status, end)
        if mark.kind is MarkKind.PROMPT:
            if self._identity is None and self._pid is not None:
                self._identity = ProcessIdentity.of(self._pid)
            new_prompt = self.phase is not Phase.PROMPT
            self.phase = Phase.PROMPT
            self.prompts += 1
            self._prompt_at = now
            self._input_mark = False
            # Enter, Ctrl+C or Ctrl+D end the line that was being typed; a
            # fresh prompt after them starts empty. Keys typed while a command
            # ran (typeahead) are still waiting for readline: not empty.
            if self._last_key in (b"\r", b"\n", b"\x03", b"\x04"):
                self._typed = False
            return ShellEvent(mark.kind, self.phase) if new_prompt else None
        if mark.kind is MarkKind.INPUT and self.phase is Phase.PROMPT:
            self._input_mark = True
        return None

    # ------------------------------------------------------------------ state

    @property
    def bracketed_paste(self) -> bool:
        """True while the program reading the terminal asked for bracketed paste."""
        return self._scanner.bracketed_paste

    @property
    def alternate_screen(self) -> bool:
        """True while a full-screen program has the alternate screen."""
        return self._scanner.alternate_screen

    @property
    def prompt_ready(self) -> bool:
        """True when the shell is at a prompt and its line editor is reading keys.

        PROMPT_COMMAND prints the A mark before readline draws the prompt and
        turns bracketed paste on; the B mark at the end of PS1 says it has. A
        PS1 the learner replaced has no B mark: then the prompt counts as
        ready once the output has been quiet for :data:`PROMPT_SETTLE` seconds.
        """
        with self._cond:
            if self.phase is not Phase.PROMPT:
                return False
            if self._input_mark:
                return True
            return self._clock() - max(self._prompt_at, self.last_output) >= PROMPT_SETTLE

    @property
    def at_empty_prompt(self) -> bool:
        """True when the prompt is ready and nothing has been typed on its line."""
        with self._cond:
            return self.prompt_ready and not self._typed

    def wait(self, predicate: Callable[[ShellTracker], bool], timeout: float | None) -> bool:
        """Wait until ``predicate(self)`` holds; False on timeout.

        The predicate is checked at each chunk of output and each key, and
        every few hundredths of a second for states that settle with time.
        """
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while not predicate(self):
                left = None if deadline is None else deadline - self._clock()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(0.05 if left is None else min(left, 0.05))
            return True

    def wait_for_prompt(self, timeout: float | None, *, after: int | None = None) -> bool:
        """Wait until the prompt is ready, having finished more than ``after`` commands."""
        if after is None:
            return self.wait(lambda t: t.prompt_ready, timeout)
        return self.wait(lambda t: t.prompt_ready and t.commands_finished > after, timeout)

    # ------------------------------------------------------------------ health

    def process_replaced(self) -> bool:
        """True when the remembered shell process now runs another program (``exec``)."""
        if self._pid is None or self._identity is None:
            return False
        now = ProcessIdentity.of(self._pid)
        return now is not None and now != self._identity

    def check(self, pump: PtyPump, *, shell_pid: int, quiet: float = 0.3) -> IntegrationReport:
        """Are the marks still following the shell? Call it now and then (a timer).

        The verdict is LOST when the shell process was replaced by ``exec``
        (its argv or environment changed), or when a command has been
        "running" for longer than ``quiet`` seconds of silence while the shell
        itself has the terminal and reads it raw (a line editor waiting at a
        prompt our marks did not announce). It is NESTED when that reader is
        another shell started inside ours. A builtin ``read -e`` waiting for a
        line looks like a lost prompt until it returns; nothing else does.
        """
        with self._cond:
            phase = self.phase
            silent = self._clock() - self.last_output
            seen = self.marks_seen
        if self.process_replaced():
            return IntegrationReport(
                Integration.LOST,
                "the lab shell was replaced by another program (exec), so labrunner "
                "can no longer see where commands start and end",
            )
        if seen == 0:
            return IntegrationReport(Integration.PENDING)
        if phase is not Phase.RUNNING or silent < quiet or not pump.line_editing():
            return IntegrationReport(Integration.ACTIVE)
        foreground = pump.foreground_pgid()
        if foreground == shell_pid:
            return IntegrationReport(
                Integration.LOST,
                "the lab shell shows a prompt without labrunner's marks (were its "
                "PROMPT_COMMAND or PS0 changed?)",
            )
        name = process_name(foreground) if foreground is not None else None
        if name in SHELLS:
            return IntegrationReport(
                Integration.NESTED,
                f"a second shell ({name}) runs inside the lab shell; type exit to return",
            )
        return IntegrationReport(Integration.ACTIVE)


class NotAtPrompt(RuntimeError):
    """A command block was to be typed while the shell was busy or the line not empty."""


def paste_command(pump: PtyPump, tracker: ShellTracker, block: str, *, execute: bool = True) -> int:
    """Type ``block`` at the shell's empty prompt as a paste, and press Enter if ``execute``.

    Multi-line blocks go as one bracketed paste when the shell's line editor
    asked for it (readline then runs them as one command line, with one exit
    status); otherwise each line runs as it is typed. Raises
    :class:`NotAtPrompt` unless the shell is at an empty prompt, so nothing
    is mixed into a running program's input or a half-typed line. Returns
    the number of commands finished before the paste: wait for the result
    with ``tracker.wait_for_prompt(timeout, after=that)``.
    """
    if not tracker.at_empty_prompt:
        state = "running a command" if tracker.phase is Phase.RUNNING else "not at an empty prompt"
        raise NotAtPrompt(f"the shell is {state}")
    before = tracker.commands_finished
    pump.paste(block.rstrip("\r\n"), bracketed=tracker.bracketed_paste)
    if execute:
        pump.send(b"\r")
    return before
