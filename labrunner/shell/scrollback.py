"""The raw scrollback of the lab shell's terminal: every line it printed, as text.

A terminal emulator only knows its visible screen, and during a flood ours
deliberately skips what scrolls past unseen. The learner still expects to
scroll back and to search everything a command printed, so the PTY's output
is also kept here, line by line, with escape codes stripped
(:mod:`labrunner.ansi`), in a ring bounded by lines and by characters.
Appending is cheap (it runs on the pump thread for every chunk); reading
takes a short lock, from any thread.

Lines are numbered from the start of the session, so a search hit keeps
pointing at the same line while new output arrives (until it falls out of
the ring). What a full-screen program draws on the alternate screen
(``less``, ``vim``) is not output and is left out, as terminals do. A line
rewritten with carriage returns (a progress bar) keeps its last version;
backspaces erase.
"""

from __future__ import annotations

import codecs
import re
import threading
from collections import deque
from dataclasses import dataclass
from itertools import islice

from labrunner.ansi import strip_ansi
from labrunner.shell.integration import ALTERNATE_SCREENS, HOLD_LIMIT, incomplete_escape

MAX_LINES = 20_000
MAX_CHARS = 8_000_000
MAX_LINE = 64 * 1024

_ALT = re.compile(rb"\x1b\[\?([0-9;]*)([hl])")
_BACKSPACE = re.compile(r"[^\x08]\x08")


@dataclass(frozen=True)
class ScrollbackMatch:
    """A search hit: the line's number and the hit's span within its text."""

    line: int
    start: int
    end: int
    text: str


def _clean(raw: str) -> str:
    if raw.endswith("\r"):
        raw = raw.rstrip("\r")
    if "\r" in raw:
        raw = raw[raw.rfind("\r") + 1 :]
    text = strip_ansi(raw)
    while "\x08" in text:
        text, count = _BACKSPACE.subn("", text)
        if not count:
            text = text.replace("\x08", "")
    return text


class Scrollback:
    """A bounded ring of the terminal's output lines, fed with raw PTY bytes."""

    def __init__(self, *, max_lines: int = MAX_LINES, max_chars: int = MAX_CHARS) -> None:
        self.max_lines = max_lines
        self.max_chars = max_chars
        self._lines: deque[str] = deque()
        self._chars = 0
        self._first = 0
        self._partial = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._held = b""
        self._alternate = False
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ writing

    def feed(self, data: bytes) -> None:
        """Take a chunk of raw PTY output (a :class:`PtyPump` listener)."""
        buf = self._held + data if self._held else data
        cut = incomplete_escape(buf)
        if len(buf) - cut > HOLD_LIMIT:
            cut = len(buf)
        self._held = bytes(buf[cut:])
        buf = buf[:cut]
        with self._lock:
            if b"\x1b[?" not in buf:
                if not self._alternate:
                    self._take(buf)
                return
            pos = 0
            for match in _ALT.finditer(buf):
                params = {int(p) for p in match.group(1).split(b";") if p.isdigit()}
                if not params & ALTERNATE_SCREENS:
                    continue
                if not self._alternate:
                    self._take(buf[pos : match.start()])
                self._alternate = match.group(2) == b"h"
                pos = match.end()
            if not self._alternate:
                self._take(buf[pos:])

    def _take(self, data: bytes) -> None:
        if not data:
            return
        text = self._partial + self._decoder.decode(data)
        pieces = text.split("\n")
        self._partial = pieces.pop()
        for piece in pieces:
            self._append(_clean(piece))
        while len(self._partial) > MAX_LINE:
            self._append(_clean(self._partial[:MAX_LINE]))
            self._partial = self._partial[MAX_LINE:]

    def _append(self, line: str) -> None:
        self._lines.append(line)
        self._chars += len(line)
        while len(self._lines) > self.max_lines or (
            self._chars > self.max_chars and len(self._lines) > 1
        ):
            self._chars -= len(self._lines.popleft())
            self._first += 1

    def clear(self) -> None:
        """Forget every line (the numbering goes on)."""
        with self._lock:
            self._first += len(self._lines)
            self._lines.clear()
            self._chars = 0
            self._partial = ""

    # ------------------------------------------------------------------ reading

    @property
    def first(self) -> int:
        """Number of the oldest line still kept."""
        return self._first

    @property
    def end(self) -> int:
        """One past the number of the newest complete line."""
        with self._lock:
            return self._first + len(self._lines)

    @property
    def partial(self) -> str:
        """The line being written now (a prompt, a progress bar), without escapes."""
        with self._lock:
            return _clean(self._partial)

    def lines(self, start: int, stop: int) -> list[str]:
        """Complete lines numbered ``start`` to ``stop - 1`` that are still kept."""
        with self._lock:
            first = self._first
            lo = max(start, first) - first
            hi = min(stop, first + len(self._lines)) - first
            if hi <= lo:
                return []
            if lo == 0 and hi == len(self._lines):
                return list(self._lines)
            return list(islice(self._lines, lo, hi))

    def tail(self, count: int) -> list[str]:
        """The last ``count`` complete lines."""
        end = self.end
        return self.lines(end - count, end)

    def search(
        self,
        pattern: str,
        *,
        regex: bool = False,
        case_sensitive: bool = False,
        limit: int = 1000,
    ) -> list[ScrollbackMatch]:
        """Hits of ``pattern`` in the kept lines and the current one, oldest first.

        A plain pattern matches literally; with ``regex`` it is a Python
        regular expression (an invalid one raises ``re.error``). At most
        ``limit`` hits, the newest ones.
        """
        flags = 0 if case_sensitive else re.IGNORECASE
        compiled = re.compile(pattern if regex else re.escape(pattern), flags)
        with self._lock:
            first = self._first
            lines = list(self._lines)
            partial = _clean(self._partial)
        if partial:
            lines.append(partial)
        hits: deque[ScrollbackMatch] = deque(maxlen=max(1, limit))
        for offset, text in enumerate(lines):
            for match in compiled.finditer(text):
                if match.end() > match.start():
                    hits.append(ScrollbackMatch(first + offset, match.start(), match.end(), text))
        return list(hits)
