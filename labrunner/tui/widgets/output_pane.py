"""The output pane: command output as it streams, with colours, bounded in memory.

It keeps raw lines (ANSI codes and all) in a ring of fixed size and turns a
line into styled text only when it scrolls into view, so appending is cheap
however fast a command prints, and 200,000 lines cost what the last few
thousand do. Rendering uses Textual's line API: the pane paints only the rows
on screen. In follow mode it stays at the newest line; scrolling up turns
follow off (the learner wants to read), and the parent can turn it back on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from labrunner.ansi import strip_ansi
from labrunner.tui.output import LineKind, OutputItem


class OutputPane(ScrollView, can_focus=True):
    """A scrollable, capped view of command output."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "output-pane--command",
        "output-pane--note",
        "output-pane--error",
    }

    follow: reactive[bool] = reactive(True)

    class FollowChanged(Message):
        """The learner scrolled away from (or back to) the newest line."""

        def __init__(self, follow: bool) -> None:
            super().__init__()
            self.follow = follow

    def __init__(
        self, *, max_lines: int = 10_000, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.max_lines = max_lines
        self._lines: deque[OutputItem] = deque(maxlen=max_lines)
        self._total = 0
        self._width = 0
        self._cache: LRUCache[tuple[int, int], Strip] = LRUCache(512)
        self.marked: int | None = None
        """The line a search found (shown reversed), as an index into the held lines."""

    @property
    def line_count(self) -> int:
        """How many lines the pane holds now (at most ``max_lines``)."""
        return len(self._lines)

    def plain_lines(self) -> list[str]:
        """The held lines without ANSI codes (for tests and copying)."""
        return [strip_ansi(text) for _, text in self._lines]

    def find(self, query: str, *, before: int | None = None) -> int | None:
        """The last held line above ``before`` (default: the end) that contains ``query``
        (ignoring case and colours), searching the raw scrollback, not just the screen."""
        wanted = query.lower()
        start = len(self._lines) if before is None else min(before, len(self._lines))
        for index in range(start - 1, -1, -1):
            if wanted in strip_ansi(self._lines[index][1]).lower():
                return index
        return None

    def mark(self, index: int | None) -> None:
        """Show line ``index`` reversed and scroll it into the middle (None: unmark)."""
        self.marked = index
        self._cache.clear()
        if index is not None:
            if self.follow:
                self.follow = False
                self.post_message(self.FollowChanged(False))
            top = max(0, index - self.size.height // 2)
            self.scroll_to(y=top, animate=False, immediate=True)
        self.refresh()

    def append(self, items: Iterable[OutputItem]) -> None:
        """Add lines at the end; the oldest fall out beyond ``max_lines``."""
        added = 0
        width = self._width
        for kind, raw in items:
            text = raw.expandtabs() if "\t" in raw else raw
            self._lines.append((kind, text))
            added += 1
            # A line takes at most two cells per character, so only lines long
            # enough to widen the pane need measuring.
            if 2 * len(text) > width:
                plain = strip_ansi(text)
                width = max(width, cell_len(plain))
        if not added:
            return
        if self.has_class("-empty"):
            self.remove_class("-empty")  # a pane collapsed while empty opens with its first line
        self._total += added
        self._width = width
        self.virtual_size = Size(width, len(self._lines))
        if self.follow:
            self._to_end()
        self.refresh()

    def note(self, kind: LineKind, text: str) -> None:
        """Add one line written by labrunner itself (a header, a warning)."""
        self.append([(kind, text)])

    def watch_follow(self, follow: bool) -> None:
        if follow:
            self._to_end()

    def _to_end(self) -> None:
        self.scroll_end(animate=False, immediate=True, x_axis=False)
        if self.scroll_y < self.max_scroll_y:
            # the scrollbar appears only after the next layout; scroll again then
            self.scroll_end(animate=False, x_axis=False)

    def _on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        if self.follow:
            self.follow = False
            self.post_message(self.FollowChanged(False))

    def action_scroll_up(self) -> None:
        super().action_scroll_up()
        if self.follow:
            self.follow = False
            self.post_message(self.FollowChanged(False))

    def action_page_up(self) -> None:
        super().action_page_up()
        if self.follow:
            self.follow = False
            self.post_message(self.FollowChanged(False))

    def _style_for(self, kind: LineKind) -> Style | None:
        if kind == "out":
            return None
        return self.get_component_rich_style(f"output-pane--{kind}")

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.size.width
        base = self.rich_style
        if index >= len(self._lines):
            return Strip.blank(width, base)
        key = (self._total - len(self._lines) + index, scroll_x)
        cached = self._cache.get(key)
        if cached is not None and cached.cell_length == width:
            return cached
        kind, raw = self._lines[index]
        text = Text.from_ansi(raw, no_wrap=True) if "\x1b" in raw else Text(raw, no_wrap=True)
        style = self._style_for(kind)
        if style is not None:
            text.stylize(style)
        if index == self.marked:
            text.stylize("reverse")
        segments = list(Segment.apply_style(text.render(self.app.console), base))
        strip = Strip(segments).crop_extend(scroll_x, scroll_x + width, base)
        self._cache[key] = strip
        return strip

    def on_resize(self) -> None:
        self._cache.clear()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()
