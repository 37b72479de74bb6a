"""pyte's screen, with what a shell's full-screen programs need and pyte lacks.

pyte (a pure-Python VT100/xterm emulator) parses the byte stream and keeps a
character matrix; it is mature and small, but for an interactive shell it
misses a few things, fixed here:

- the alternate screen (private modes 47, 1047, 1049): entering saves the
  screen and the cursor and shows a blank one, leaving restores them, so
  ``less``, ``vim`` or ``k9s`` leave the shell's screen as it was;
- resizing keeps the cursor's line on screen, dropping lines from the top
  only as far as needed (pyte always dropped the top), and extends the tab
  stops to new columns;
- answers to device queries (cursor position, device attributes) are
  written back to the program through ``respond``;
- the modes the keyboard encoder needs are exposed: application cursor keys
  (DECCKM), bracketed paste (2004), cursor visibility (DECTCEM);
- colours become Rich styles: pyte's names (including its ``brown`` for
  yellow and its ``bfightmagenta`` typo), the 256-colour palette and
  truecolour hex; the first 16 palette entries map back to the named ANSI
  colours so they follow the app's theme like ``ESC [31m`` does.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyte
from pyte import modes as mo
from pyte.screens import Char, Cursor, Margins, StaticDefaultDict
from rich.color import Color
from rich.style import Style

ALTERNATE_MODES = frozenset({47, 1047, 1049})
DECCKM = 1 << 5
BRACKETED_PASTE = 2004 << 5

_ANSI = ("black", "red", "green", "yellow", "blue", "magenta", "cyan", "white")
_NAMED: dict[str, str] = {
    **{name: name for name in _ANSI},
    **{f"bright{name}": f"bright_{name}" for name in _ANSI},
    "brown": "yellow",
    "brightbrown": "bright_yellow",
    "bfightmagenta": "bright_magenta",
}

Buffer = dict[int, StaticDefaultDict[int, Char]]


def to_color(value: str) -> Color | None:
    """A pyte colour (``red``, ``brightblue``, ``ff8700``) as a Rich colour; None for default."""
    if value == "default":
        return None
    name = _NAMED.get(value)
    if name is not None:
        return Color.parse(name)
    if len(value) == 6:
        try:
            return Color.parse(f"#{value}")
        except Exception:
            return None
    return None


_STYLES: dict[tuple[Any, ...], Style] = {}


def style_for(char: Char) -> Style:
    """The Rich style that draws ``char``'s colours and attributes (cached)."""
    key = char[1:]
    style = _STYLES.get(key)
    if style is None:
        style = Style(
            color=to_color(char.fg),
            bgcolor=to_color(char.bg),
            bold=char.bold or None,
            italic=char.italics or None,
            underline=char.underscore or None,
            strike=char.strikethrough or None,
            reverse=char.reverse or None,
            blink=char.blink or None,
        )
        if len(_STYLES) < 4096:
            _STYLES[key] = style
    return style


@dataclass
class _Saved:
    """The primary screen while the alternate one is shown."""

    buffer: Buffer
    cursor: Cursor
    margins: Margins | None


class TerminalScreen(pyte.Screen):
    """A pyte screen with an alternate screen, a gentler resize and query answers."""

    def __init__(
        self, columns: int, lines: int, *, respond: Callable[[str], None] | None = None
    ) -> None:
        self.respond = respond
        self._saved: _Saved | None = None
        super().__init__(columns, lines)

    # ------------------------------------------------------------------ state

    @property
    def alternate(self) -> bool:
        """True while the alternate screen is shown."""
        return self._saved is not None

    @property
    def app_cursor(self) -> bool:
        """True when the program asked for application cursor keys (``ESC O A``)."""
        return DECCKM in self.mode

    @property
    def bracketed_paste(self) -> bool:
        """True when the program asked for pastes to be bracketed."""
        return BRACKETED_PASTE in self.mode

    @property
    def cursor_visible(self) -> bool:
        """False while the program hides the cursor."""
        return mo.DECTCEM in self.mode

    # ------------------------------------------------------------------ modes

    def reset(self) -> None:
        """Reset the terminal (RIS), back on the primary screen."""
        saved = getattr(self, "_saved", None)
        if saved is not None:
            self.buffer = saved.buffer
            self._saved = None
        super().reset()

    def set_mode(self, *modes: int, **kwargs: Any) -> None:
        """Set modes; the alternate-screen ones switch screens."""
        if kwargs.get("private"):
            for mode in modes:
                if mode in ALTERNATE_MODES:
                    self._enter_alternate(clear=mode != 47)
            modes = tuple(m for m in modes if m not in ALTERNATE_MODES)
        if modes:
            super().set_mode(*modes, **kwargs)

    def reset_mode(self, *modes: int, **kwargs: Any) -> None:
        """Reset modes; the alternate-screen ones switch back."""
        if kwargs.get("private"):
            for mode in modes:
                if mode in ALTERNATE_MODES:
                    self._leave_alternate()
            modes = tuple(m for m in modes if m not in ALTERNATE_MODES)
        if modes:
            super().reset_mode(*modes, **kwargs)

    def _enter_alternate(self, *, clear: bool) -> None:
        if self._saved is not None:
            if clear:
                self.erase_in_display(2)
            return
        self._saved = _Saved(self.buffer, copy.copy(self.cursor), self.margins)
        self.buffer = self._blank()
        self.dirty.update(range(self.lines))

    def _blank(self) -> Buffer:
        """An empty buffer whose rows fill with the default character."""
        return defaultdict(lambda: StaticDefaultDict[int, Char](self.default_char))

    def _leave_alternate(self) -> None:
        saved, self._saved = self._saved, None
        if saved is None:
            return
        self.buffer = saved.buffer
        self.cursor = saved.cursor
        self.margins = saved.margins
        self.ensure_hbounds()
        self.ensure_vbounds()
        self.dirty.update(range(self.lines))

    # ------------------------------------------------------------------ size

    def resize(self, lines: int | None = None, columns: int | None = None) -> None:
        """Change the size, keeping the cursor's line on screen (like xterm)."""
        lines = lines or self.lines
        columns = columns or self.columns
        if lines == self.lines and columns == self.columns:
            return
        self.buffer, self.cursor.y = self._fit(self.buffer, self.cursor.y, lines, columns)
        if self._saved is not None:
            saved = self._saved
            saved.buffer, saved.cursor.y = self._fit(saved.buffer, saved.cursor.y, lines, columns)
            saved.cursor.x = min(saved.cursor.x, columns - 1)
            saved.margins = None
        if columns > self.columns:
            start = (self.columns // 8 + 1) * 8
            self.tabstops.update(range(start, columns, 8))
        self.tabstops = {t for t in self.tabstops if t < columns}
        self.lines, self.columns = lines, columns
        self.margins = None
        self.ensure_hbounds()
        self.ensure_vbounds()
        self.dirty.update(range(lines))

    def _fit(self, buffer: Buffer, cursor_y: int, lines: int, columns: int) -> tuple[Buffer, int]:
        """``buffer`` cut to ``lines`` x ``columns``; drops top lines only to keep the cursor's."""
        drop = max(0, cursor_y - (lines - 1)) if lines < self.lines else 0
        fitted = self._blank()
        for y, row in buffer.items():
            new_y = y - drop
            if 0 <= new_y < lines:
                for x in [x for x in row if x >= columns]:
                    del row[x]
                fitted[new_y] = row
        return fitted, cursor_y - drop

    # ------------------------------------------------------------------ answers

    def write_process_input(self, data: str) -> None:
        """Send an answer (cursor position, device attributes) to the program."""
        if self.respond is not None:
            self.respond(data)
