"""The terminal pane: the lab shell's PTY drawn in Textual, and the keyboard sent to it.

The widget paints the newest :class:`~labrunner.tui.terminal.emulator.Frame`
row by row (``render_line``), with the cursor while it has focus. It never
runs the emulator itself: the emulator's thread drains the pump and posts a
single redraw request per batch of frames, so a flood costs the UI thread one
repaint per screen refresh, not one per line.

While focused, every key goes to the shell as the bytes a terminal would
send (:mod:`labrunner.tui.terminal.keys`), except the escape key (Ctrl+] by
default), which posts :class:`TerminalView.Escaped` so the app can take the
focus back. Pastes are bracketed when the program asked for it. The PTY is
resized with the widget.

Shift+PgUp/PgDn (or the mouse wheel) show the raw scrollback instead of the
live screen, and :meth:`TerminalView.search` finds text there; any other key
returns to the live screen and is sent as usual. On the alternate screen
(``less``, ``vim``) the wheel sends arrow keys instead, as xterm does.

Apps that bind keys with ``priority=True`` (Textual's own Ctrl+Q and Ctrl+P)
see them before any widget; an app hosting the pane should disable those
actions in ``check_action`` while the pane has focus, so readline's Ctrl+P
reaches the shell.
"""

from __future__ import annotations

from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from labrunner.shell.pty_pump import ByteQueue, PtyPump
from labrunner.shell.scrollback import Scrollback, ScrollbackMatch
from labrunner.tui.terminal.emulator import Emulator, Frame, Line
from labrunner.tui.terminal.keys import encode_key

ESCAPE_KEY = "ctrl+right_square_bracket"
WHEEL_LINES = 3


class TerminalView(Widget, can_focus=True):
    """A focusable terminal attached to a PTY through a :class:`PtyPump`."""

    DEFAULT_CSS = """
    TerminalView {
        width: 1fr;
        height: 1fr;
    }
    TerminalView > .terminal-view--cursor {
        text-style: reverse;
    }
    TerminalView > .terminal-view--match {
        background: $warning;
        color: $background;
    }
    TerminalView > .terminal-view--banner {
        background: $primary;
        color: $text;
        text-style: bold;
    }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "terminal-view--cursor",
        "terminal-view--match",
        "terminal-view--banner",
    }

    scrolled_back: reactive[int] = reactive(0, always_update=True)
    """How many lines above the live screen the view shows (0: the live screen)."""

    class Escaped(Message):
        """The learner pressed the escape key: give the focus back to the app."""

        def __init__(self, view: TerminalView) -> None:
            super().__init__()
            self.view = view

        @property
        def control(self) -> TerminalView:
            """The terminal view that was left."""
            return self.view

    class Redraw(Message):
        """Internal: a new frame is ready (posted from the emulator's thread)."""

    def __init__(
        self,
        pump: PtyPump,
        *,
        scrollback: Scrollback | None = None,
        escape_key: str = ESCAPE_KEY,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.pump = pump
        self.scrollback = scrollback
        self.escape_key = escape_key
        # The footer shows the way back while the keyboard is here. The key itself never
        # reaches a binding (on_key takes it first); clicking the footer entry runs it.
        self._bindings.bind(escape_key, "release", "Back to lab")
        self.emulator = Emulator(respond=pump.answer, on_frame=self._frame_ready)
        self._queue: ByteQueue | None = None
        self._redraw_posted = False
        self._cache: dict[int, tuple[Line, int, int, Strip]] = {}
        self._highlight: ScrollbackMatch | None = None
        self._pty_size: tuple[int, int] | None = None
        self._anchor: tuple[Frame, int] | None = None
        self._hold_rows = False

    # ------------------------------------------------------------------ lifecycle

    @property
    def frame(self) -> Frame:
        """What the screen shows now."""
        return self.emulator.frame

    def _start_emulator(self) -> None:
        """Start the emulator on the pump's output, once the size is known."""
        # replay: the shell printed its prompt (and set its modes) before the pane existed
        self._queue = self.pump.subscribe(replay=True)
        self.emulator.start(self._queue)

    def on_unmount(self) -> None:
        if self._queue is not None:
            self.emulator.stop()
            self.pump.unsubscribe(self._queue)
            self._queue = None

    def _frame_ready(self, frame: Frame) -> None:
        # On the emulator's thread: one redraw request in flight at a time.
        if not self._redraw_posted:
            self._redraw_posted = True
            if not self.post_message(self.Redraw()):
                self._redraw_posted = False

    def on_terminal_view_redraw(self, message: TerminalView.Redraw) -> None:
        message.stop()
        self._redraw_posted = False
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        self._fit_pty()

    @property
    def hold_rows(self) -> bool:
        """True while a shorter view keeps the PTY's height (showing its rows to the cursor)."""
        return self._hold_rows

    @hold_rows.setter
    def hold_rows(self, hold: bool) -> None:
        if hold != self._hold_rows:
            self._hold_rows = hold
            self._fit_pty()

    def _fit_pty(self) -> None:
        width, height = self.size
        if width > 0 and height > 0:
            rows = height
            if self._hold_rows and self._pty_size is not None:
                rows = max(height, self._pty_size[0])
            if (rows, width) != self._pty_size:
                self._pty_size = (rows, width)
                self.pump.resize(rows, width)
                self.emulator.resize(rows, width)
            if self._queue is None and self.is_attached:
                self._start_emulator()
        self._cache.clear()
        self.refresh()

    def _top(self, frame: Frame) -> int:
        """The first emulator row shown: 0, or more when the view is shorter than the
        screen (held rows), so that the cursor's row (or the last written one) is the last."""
        height = self.size.height
        extra = len(frame.lines) - height
        if extra <= 0:
            return 0
        if frame.cursor is not None:
            anchor = frame.cursor[1]
        else:  # once per frame, not once per painted row
            if self._anchor is None or self._anchor[0] is not frame:
                rows = frame.text()
                last = max((y for y, row in enumerate(rows) if row), default=0)
                self._anchor = (frame, last)
            anchor = self._anchor[1]
        return max(0, min(extra, anchor - height + 1))

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    # ------------------------------------------------------------------ input

    def action_release(self) -> None:
        """Give the keyboard back to the lab."""
        # at once: a key typed right after (q) must not reach the shell
        self.screen.set_focus(None)
        self.post_message(self.Escaped(self))

    def on_key(self, event: events.Key) -> None:
        key = event.key
        if key == self.escape_key:
            event.stop()
            event.prevent_default()
            self.action_release()
            return
        frame = self.frame
        if not frame.alternate and self._scroll_key(key):
            event.stop()
            event.prevent_default()
            return
        data = encode_key(key, event.character, app_cursor=frame.app_cursor)
        if data is None:
            return
        event.stop()
        event.prevent_default()
        if self.scrolled_back:
            self.scroll_to_live()
        self.pump.send(data)

    def _scroll_key(self, key: str) -> bool:
        page = max(1, self.size.height - 1)
        if key == "shift+pageup":
            self.scroll_back(page)
        elif key == "shift+pagedown":
            self.scroll_forward(page)
        elif key == "shift+home" and self.scrolled_back:
            self.scroll_back(self._max_offset())
        elif key == "shift+end" and self.scrolled_back:
            self.scroll_to_live()
        else:
            return False
        return True

    def on_paste(self, event: events.Paste) -> None:
        event.stop()
        if self.scrolled_back:
            self.scroll_to_live()
        self.pump.paste(event.text, bracketed=self.frame.bracketed_paste)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        event.stop()
        self._wheel("up")

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        event.stop()
        self._wheel("down")

    def _wheel(self, direction: str) -> None:
        frame = self.frame
        if frame.alternate:
            data = encode_key(direction, None, app_cursor=frame.app_cursor)
            if data is not None:
                self.pump.send(data * WHEEL_LINES)
        elif direction == "up":
            self.scroll_back(WHEEL_LINES)
        else:
            self.scroll_forward(WHEEL_LINES)

    # ------------------------------------------------------------------ scrollback

    def _virtual_lines(self) -> int:
        if self.scrollback is None:
            return 0
        return self.scrollback.end - self.scrollback.first + 1

    def _max_offset(self) -> int:
        return max(0, self._virtual_lines() - self.size.height)

    def scroll_back(self, lines: int) -> None:
        """Show ``lines`` more of the scrollback above the current view."""
        self.scrolled_back = min(self.scrolled_back + max(0, lines), self._max_offset())

    def scroll_forward(self, lines: int) -> None:
        """Move the scrollback view ``lines`` down (to the live screen at the bottom)."""
        self.scrolled_back = max(0, self.scrolled_back - max(0, lines))
        if not self.scrolled_back:
            self._highlight = None

    def scroll_to_live(self) -> None:
        """Leave the scrollback view: show the live screen."""
        self._highlight = None
        self.scrolled_back = 0

    def search(
        self, pattern: str, *, regex: bool = False, case_sensitive: bool = False
    ) -> list[ScrollbackMatch]:
        """Hits of ``pattern`` in the raw scrollback, oldest first (see Scrollback.search)."""
        if self.scrollback is None:
            return []
        return self.scrollback.search(pattern, regex=regex, case_sensitive=case_sensitive)

    def reveal(self, match: ScrollbackMatch) -> None:
        """Show the scrollback around ``match`` with the hit highlighted."""
        if self.scrollback is None:
            return
        height = max(1, self.size.height)
        bottom = self.scrollback.end + 1  # one past the current (partial) line
        wanted = bottom - (match.line + 1 + height // 2)
        self._highlight = match
        self.scrolled_back = max(1, min(wanted, self._max_offset()))

    def watch_scrolled_back(self) -> None:
        self.refresh()

    # ------------------------------------------------------------------ painting

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        if self.scrolled_back and self.scrollback is not None:
            return self._scrollback_line(y, width, base)
        frame = self.frame
        y += self._top(frame)
        if y >= len(frame.lines):
            return Strip.blank(width, base)
        line = frame.lines[y]
        cursor_x = -1
        if self.has_focus and frame.cursor is not None and frame.cursor[1] == y:
            cursor_x = frame.cursor[0]
        cached = self._cache.get(y)
        if cached is not None and cached[0] is line and cached[1:3] == (cursor_x, width):
            return cached[3]
        segments: list[Segment] = list(line)
        if cursor_x >= 0:
            segments = self._with_cursor(segments, cursor_x)
        strip = Strip(Segment.apply_style(segments, base)).adjust_cell_length(width, base)
        self._cache[y] = (line, cursor_x, width, strip)
        return strip

    def _with_cursor(self, segments: list[Segment], x: int) -> list[Segment]:
        cursor = self.get_component_rich_style("terminal-view--cursor", partial=True)
        before, at, after = Segment.divide(segments, [x, x + 1, x + 2**16])
        if not at:
            at = [Segment(" ")]
        return [*before, *(Segment(s.text, (s.style or Style()) + cursor) for s in at), *after]

    def _scrollback_line(self, y: int, width: int, base: Style) -> Strip:
        assert self.scrollback is not None
        if y == 0:
            text = (
                f" ↑ {self.scrolled_back} lines back · Shift+PgUp/PgDn scroll · "
                "any key returns to the terminal"
            )
            banner = self.get_component_rich_style("terminal-view--banner")
            return Strip([Segment(text, banner)]).adjust_cell_length(width, banner)
        height = self.size.height
        bottom = self.scrollback.end + 1 - self.scrolled_back
        number = bottom - height + y
        if number < self.scrollback.first:
            return Strip.blank(width, base)
        if number >= self.scrollback.end:
            text = self.scrollback.partial
        else:
            found = self.scrollback.lines(number, number + 1)
            text = found[0] if found else ""
        segments = [Segment(text.expandtabs())]
        hit = self._highlight
        if hit is not None and hit.line == number:
            style = self.get_component_rich_style("terminal-view--match")
            head, body, tail = text[: hit.start], text[hit.start : hit.end], text[hit.end :]
            segments = [
                Segment(head.expandtabs()),
                Segment(body, style),
                Segment(tail.expandtabs()),
            ]
        return Strip(Segment.apply_style(segments, base)).adjust_cell_length(width, base)
