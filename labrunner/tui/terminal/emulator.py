"""The terminal emulator behind the embedded terminal pane, fed off the UI thread.

pyte parses about 20,000 lines a second; a command can print ten times
that. So the emulator runs on its own thread, drains a :class:`ByteQueue`
from the PTY pump, and after each slice of work publishes an immutable
:class:`Frame` (styled lines, cursor, modes) that the widget paints without
a lock. The UI thread never touches pyte.

During a flood it skips: when more than two screenfuls are waiting, only
the bytes needed to draw the final screen go through pyte — the last
screenful of lines when what follows only writes downwards (plain output,
colours, progress bars on one line), or everything from the last full-screen
clear. The modes, margins and colours set in the skipped bytes are replayed
first, so a program that switched to the alternate screen or to application
cursor keys inside a flood is still drawn and driven right. Every byte still
reaches the raw scrollback (:mod:`labrunner.shell.scrollback`), which is fed
by the pump, not from here.

Before pyte sees a byte, :class:`EscapeFilter` removes what pyte would
misread: shell-integration marks (OSC 133), DCS/APC/PM/SOS strings (pyte
would print their contents), CSI sequences with ``<``, ``=``, ``>`` prefixes
or intermediates (pyte would apply ``CSI > 4;2 m`` as underline), private
CSI sequences other than modes and erases (pyte raises on vim's
``CSI ? 4 m``; should another sequence make it raise, the emulator counts
it and goes on), and
rewrites colon sub-parameters in colours (``38:2::r:g:b``) to the semicolon
form pyte knows, and the first 16 of the 256 colours (``38;5;1``) to the
ANSI colours (``31``), which follow the app's theme.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pyte
from pyte.screens import Char, StaticDefaultDict
from rich.segment import Segment

from labrunner.shell.integration import HOLD_LIMIT, incomplete_escape
from labrunner.shell.pty_pump import ByteQueue
from labrunner.tui.terminal.screen import TerminalScreen, style_for

log = logging.getLogger(__name__)

Line = tuple[Segment, ...]

SLICE = 4096
FRAME_INTERVAL = 1 / 60
PENDING_LIMIT = 4 * 1024 * 1024
SGR_REPLAY = 32

# --------------------------------------------------------------------------- filter

_FIX = re.compile(
    rb"\x1b\]133;[^\x07\x1b]*(?:\x07|\x1b\\)"  # shell-integration marks
    rb"|\x1b[P_^X][^\x07\x1b]*(?:\x07|\x1b\\)"  # DCS, APC, PM, SOS strings
    rb"|\x1b\[([0-9;]*:[0-9;:]*|(?:[0-9]*;)*(?:58|[34]8;5);[0-9;]*)m"  # SGR to rewrite
    rb"|\x1b\[[<=>][\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]"  # CSI with a private prefix
    rb"|\x1b\[\?[\x30-\x3f]*[\x40-\x49\x4c-\x67\x69-\x6b\x6d-\x7e]"  # private, not h l J K
    rb"|\x1b\[[\x30-\x3f]*[\x20-\x2f]+[\x40-\x7e]"  # CSI with intermediates
    rb"|\x1b\[[0-9;?]*:[\x30-\x3f]*[\x40-\x7e]"  # other CSI with colons
)


def _palette(head: bytes, index: bytes) -> list[bytes]:
    """A 256-colour index; the first 16 as the ANSI colours, which follow the app's theme."""
    number = int(index or b"0")
    if number < 16:
        base = (30 if head == b"38" else 40) + (60 if number >= 8 else 0)
        return [b"%d" % (base + number % 8)]
    return [head, b"5", index or b"0"]


def _colour(head: bytes, rest: list[bytes]) -> list[bytes]:
    """38/48 sub-parameters (``5:n``, ``2:r:g:b``, ``2::r:g:b``) as plain parameters."""
    if rest[:1] == [b"5"] and len(rest) >= 2:
        return _palette(head, rest[1])
    if rest[:1] == [b"2"]:
        rgb = rest[1:]
        if len(rgb) >= 4:
            rgb = rgb[1:4]
        if len(rgb) == 3:
            return [head, b"2", *(c or b"0" for c in rgb)]
    return []


def fix_sgr(params: bytes) -> bytes:
    """SGR parameters pyte can read: colon groups flattened, underline colour dropped."""
    out: list[bytes] = []
    groups = params.split(b";")
    i = 0
    while i < len(groups):
        group = groups[i]
        i += 1
        if b":" in group:
            head, *rest = group.split(b":")
            if head in (b"38", b"48"):
                out += _colour(head, rest)
            elif head == b"4":
                out.append(b"24" if rest[:1] in ([b"0"], [b""]) else b"4")
            elif head != b"58":
                out.append(head)
        elif group == b"58":
            # underline colour in semicolon form: skip its 5;n or 2;r;g;b
            kind = groups[i] if i < len(groups) else b""
            i += 2 if kind == b"5" else 4 if kind == b"2" else 0
        elif group in (b"38", b"48") and i < len(groups):
            kind = groups[i]
            if kind == b"5" and i + 1 < len(groups):
                out += _palette(group, groups[i + 1])
                i += 2
            elif kind == b"2":
                out += [group, *groups[i : i + 4]]
                i += 4
            else:
                out.append(group)
        else:
            out.append(group)
    return b";".join(out) if out else b"0"


def _fix(match: re.Match[bytes]) -> bytes:
    params = match.group(1)
    if params is None:
        return b""
    return b"\x1b[" + fix_sgr(params) + b"m"


class EscapeFilter:
    """Removes or rewrites what pyte would misread, across reads of any size."""

    def __init__(self) -> None:
        self._held = b""

    def feed(self, data: bytes) -> bytes:
        """The filtered bytes of ``data`` that are complete; an unfinished escape waits."""
        buf = self._held + data if self._held else data
        if b"\x1b" not in buf:
            self._held = b""
            return buf
        cut = incomplete_escape(buf)
        if len(buf) - cut > HOLD_LIMIT:
            cut = len(buf)
        self._held = bytes(buf[cut:])
        return _FIX.sub(_fix, buf[:cut])

    def reset(self) -> None:
        """Forget a held, unfinished sequence (after bytes were lost)."""
        self._held = b""


# --------------------------------------------------------------------------- skipping

_CLEAR = (b"\x1b[2J", b"\x1b[3J", b"\x1bc", b"\x1b[?1049h", b"\x1b[?1047h", b"\x1b[?47h")
_HOME_BEFORE = re.compile(rb"\x1b\[[0-9;]*[Hf]\Z")
_UNSAFE = re.compile(rb"\x1b\[[0-9;?]*[AFHfdrLMST]|\x1bM|\x1b8|\x1b\[[0-9;]*u")
_STATE = re.compile(rb"\x1b\[(\?)?([0-9;]*)([hl])|\x1b\[([0-9;]*)r|\x1b\[([0-9;]*)m")


@dataclass(frozen=True)
class SkipPlan:
    """How to skip ahead: feed ``prefix``, then the data from ``cut`` on."""

    prefix: bytes
    cut: int


def _line_cut(data: bytes, rows: int) -> int:
    """Start of the tail of ``data`` that holds exactly ``rows`` line feeds, or -1."""
    pos = len(data)
    for _ in range(rows + 1):
        pos = data.rfind(b"\n", 0, pos)
        if pos < 0:
            return -1
    return pos + 1


def _last_clear(data: bytes) -> int:
    """Start of the last full-screen clear in ``data`` (with the cursor move before it)."""
    at = max(data.rfind(seq) for seq in _CLEAR)
    if at > 0:
        home = _HOME_BEFORE.search(data, max(0, at - 16), at)
        if home is not None:
            at = home.start()
    return at


def replay_state(skipped: bytes) -> tuple[bytes, bytes]:
    """Sequences that recreate what ``skipped`` left set: (modes and margins, colours)."""
    private: dict[bytes, bytes] = {}
    public: dict[bytes, bytes] = {}
    margins = b""
    sgr: list[bytes] = []
    for match in _STATE.finditer(skipped):
        if match.group(3) is not None:
            table = private if match.group(1) else public
            for param in match.group(2).split(b";"):
                if param:
                    table.pop(param, None)
                    table[param] = match.group(3)
        elif match.group(4) is not None:
            margins = match.group(0)
        else:
            params = match.group(5)
            if params in (b"", b"0"):
                sgr.clear()
            else:
                sgr.append(match.group(0))
                del sgr[:-SGR_REPLAY]
    out = [b"\x1b[?" + p + a for p, a in private.items()]
    out += [b"\x1b[" + p + a for p, a in public.items()]
    out.append(margins)
    return b"".join(out), b"".join(sgr)


def plan_skip(data: bytes, rows: int, *, force: bool = False) -> SkipPlan | None:
    """How to draw the screen ``data`` ends on without feeding all of it, or None.

    The tail holding the last ``rows`` line feeds suffices when nothing in it
    moves the cursor up or jumps (it only writes downwards, so every visible
    row is drawn by it); otherwise the data from the last full clear on. With
    ``force`` (bytes were lost anyway) the last lines are taken regardless.
    """
    cut = _line_cut(data, rows)
    clear = False
    if cut > 0 and not _UNSAFE.search(data, cut):
        clear = True
    else:
        at = _last_clear(data)
        if at > 0 and at >= cut:
            cut = at
        elif force:
            clear = True
            if cut <= 0:
                nl = data.rfind(b"\n", 0, max(0, len(data) - SLICE))
                cut = nl + 1 if nl >= 0 else 0
        else:
            return None
    if cut <= 0:
        return None
    modes, sgr = replay_state(data[:cut])
    reset = b"\x1b[m\x1b[H\x1b[2J" if clear else b""
    return SkipPlan(modes + reset + sgr, cut)


# --------------------------------------------------------------------------- frames


@dataclass(frozen=True)
class Frame:
    """What the screen shows at one moment: immutable, safe to read from any thread."""

    columns: int
    rows: int
    lines: tuple[Line, ...]
    cursor: tuple[int, int] | None
    """(x, y) of the cursor, or None while the program hides it."""
    alternate: bool = False
    app_cursor: bool = False
    bracketed_paste: bool = False
    title: str = ""
    serial: int = 0

    def line_text(self, y: int) -> str:
        """Row ``y`` as plain text."""
        return "".join(segment.text for segment in self.lines[y])

    def text(self) -> list[str]:
        """Every row as plain text, trailing spaces removed."""
        return [self.line_text(y).rstrip() for y in range(len(self.lines))]

    def contains(self, needle: str) -> bool:
        """True when some row shows ``needle``."""
        return any(needle in row for row in self.text())


def build_line(row: StaticDefaultDict[int, Char] | None, columns: int) -> Line:
    """One screen row as Rich segments, runs of equal style joined."""
    if not row:
        return (Segment(" " * columns),)
    default = row.default
    segments: list[Segment] = []
    run: list[str] = []
    run_char = default
    run_key = None
    get = row.get
    for x in range(columns):
        char = get(x) or default
        data = char.data
        if not data:
            continue  # the second cell of a wide character
        key = char[1:]
        if key != run_key:
            if run:
                segments.append(Segment("".join(run), style_for(run_char)))
            run = [data]
            run_key = key
            run_char = char
        else:
            run.append(data)
    if run:
        segments.append(Segment("".join(run), style_for(run_char)))
    return tuple(segments)


@dataclass
class EmulatorStats:
    """Counters for benchmarks and tests."""

    received: int = 0
    fed: int = 0
    skipped: int = 0
    skips: int = 0
    resyncs: int = 0
    frames: int = 0
    errors: int = 0


@dataclass
class _Pending:
    """Output read but not yet fed to the screen."""

    data: bytearray = field(default_factory=bytearray)
    newlines: int = 0

    def add(self, data: bytes) -> None:
        self.data += data
        self.newlines += data.count(b"\n")

    def take(self, end: int) -> bytes:
        chunk = bytes(self.data[:end])
        del self.data[:end]
        self.newlines -= chunk.count(b"\n")
        return chunk


class Emulator:
    """pyte behind a filter and a skip planner, publishing immutable frames.

    Use it either synchronously (:meth:`feed` on one thread) or with its own
    thread draining a pump queue (:meth:`start`). ``respond`` receives the
    answers to the program's queries (write them to the PTY); ``on_frame`` is
    called with each new frame on the emulator's thread and must only hand
    it on (for example, post a message to the widget).
    """

    def __init__(
        self,
        *,
        rows: int = 24,
        columns: int = 80,
        respond: Callable[[bytes], None] | None = None,
        on_frame: Callable[[Frame], None] | None = None,
    ) -> None:
        self.respond = respond
        self.on_frame = on_frame
        self._screen = TerminalScreen(max(1, columns), max(1, rows), respond=self._answer)
        self._stream = pyte.ByteStream(self._screen)
        self._filter = EscapeFilter()
        self._pending = _Pending()
        self._lines: list[Line] = []
        self._cond = threading.Condition()
        self._resize: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None
        self._source: ByteQueue | None = None
        self._stopping = False
        self._last_publish = 0.0
        self._serial = 0
        self.stats = EmulatorStats()
        self._frame = self._build(full=True)

    # ------------------------------------------------------------------ reading

    @property
    def frame(self) -> Frame:
        """The newest frame."""
        return self._frame

    def wait_for(self, predicate: Callable[[Frame], bool], timeout: float | None) -> bool:
        """Wait until a published frame satisfies ``predicate``; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self._frame), timeout)

    # ------------------------------------------------------------------ feeding

    def feed(self, data: bytes, *, skip: bool = True) -> Frame:
        """Process ``data`` now, on the calling thread (no emulator thread running)."""
        self._receive(data)
        allow_skip = skip
        while self._pending.data:
            self._step(force=False, allow_skip=allow_skip)
            allow_skip = False
        return self._publish()

    def start(self, source: ByteQueue) -> None:
        """Drain ``source`` on the emulator's own thread until :meth:`stop`."""
        if self._thread is not None:
            raise RuntimeError("the emulator is already running")
        self._source = source
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="terminal-emulator", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the emulator's thread."""
        self._stopping = True
        if self._source is not None:
            self._source.wake()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    def resize(self, rows: int, columns: int) -> None:
        """Change the screen size (from any thread)."""
        rows, columns = max(1, rows), max(1, columns)
        if self._thread is None:
            self._apply_resize(rows, columns)
            self._publish()
            return
        with self._cond:
            self._resize = (rows, columns)
        if self._source is not None:
            self._source.wake()

    # ------------------------------------------------------------------ internals

    def _answer(self, text: str) -> None:
        if self.respond is not None:
            self.respond(text.encode("utf-8"))

    def _receive(self, data: bytes) -> None:
        self.stats.received += len(data)
        clean = self._filter.feed(data)
        if clean:
            self._pending.add(clean)

    def _run(self) -> None:
        source = self._source
        assert source is not None
        dropped = 0  # bytes lost before the start count too: the screen began mid-stream
        while not self._stopping:
            data = source.get(timeout=0 if self._pending.data else None)
            with self._cond:
                size, self._resize = self._resize, None
            if size is not None:
                self._apply_resize(*size)
                self._publish()
            force = source.dropped != dropped
            if force:
                dropped = source.dropped
                self.stats.resyncs += 1
                self._filter.reset()
            if data:
                self._receive(data)
            if self._pending.data:
                self._step(force=force, allow_skip=bool(data) or force)
                if not self._pending.data or time.monotonic() - self._last_publish >= (
                    FRAME_INTERVAL
                ):
                    self._publish()
            elif source.closed and not data:
                self._publish()
                return

    def _step(self, *, force: bool, allow_skip: bool) -> None:
        pending = self._pending
        rows = self._screen.lines
        if allow_skip and (
            force or pending.newlines > 2 * rows or len(pending.data) > PENDING_LIMIT
        ):
            plan = plan_skip(
                bytes(pending.data), rows, force=force or len(pending.data) > PENDING_LIMIT
            )
            if plan is not None:
                pending.take(plan.cut)
                self.stats.skipped += plan.cut
                self.stats.skips += 1
                self._parse(plan.prefix)
        data = pending.data
        end = min(len(data), SLICE)
        if end < len(data):
            cut = incomplete_escape(data[:end])
            end = cut if cut > 0 else len(data)
            while 0 < end < len(data) and data[end] & 0xC0 == 0x80:
                end -= 1
            if end == 0:
                end = len(data)
        chunk = pending.take(end)
        self.stats.fed += len(chunk)
        self._parse(chunk)

    def _parse(self, data: bytes) -> None:
        try:
            self._stream.feed(data)
        except Exception:
            # pyte raised on a sequence it half-knows (it has reset its parser
            # already); losing one sequence beats losing the terminal
            self.stats.errors += 1
            log.debug("pyte could not parse a sequence", exc_info=True)

    def _apply_resize(self, rows: int, columns: int) -> None:
        self._screen.resize(rows, columns)
        self._lines = []

    def _build(self, *, full: bool) -> Frame:
        screen = self._screen
        rows, columns = screen.lines, screen.columns
        if full or len(self._lines) != rows:
            self._lines = [build_line(screen.buffer.get(y), columns) for y in range(rows)]
        else:
            for y in screen.dirty:
                if 0 <= y < rows:
                    self._lines[y] = build_line(screen.buffer.get(y), columns)
        screen.dirty.clear()
        cursor = None
        if screen.cursor_visible:
            cursor = (min(screen.cursor.x, columns - 1), min(screen.cursor.y, rows - 1))
        self._serial += 1
        return Frame(
            columns=columns,
            rows=rows,
            lines=tuple(self._lines),
            cursor=cursor,
            alternate=screen.alternate,
            app_cursor=screen.app_cursor,
            bracketed_paste=screen.bracketed_paste,
            title=screen.title,
            serial=self._serial,
        )

    def _publish(self) -> Frame:
        frame = self._build(full=not self._lines)
        self._last_publish = time.monotonic()
        self.stats.frames += 1
        with self._cond:
            self._frame = frame
            self._cond.notify_all()
        if self.on_frame is not None:
            self.on_frame(frame)
        return frame
