"""A table of learners that draws again only the rows that changed.

The instructor's view changes a hundred rows a second in a big class.
Textual's ``DataTable`` forgets every rendered cell when one changes (its
caches are keyed by an update counter), so each refresh draws the whole
visible table again: about a third of a core at that rate. Here each row
is one cached ``Strip``; setting a row compares the new cells with the old,
and only a row that really changed is drawn again and refreshed on screen.
The header line stays put while the rows scroll under it.

It keeps what the view needs of a table: named columns that can be added
later (a lab first reached by a learner), rows by key, a cursor that moves
with the keys and the mouse and posts ``RowHighlighted``, and sorting.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.events import Click
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

Cell = str | Text
GAP = 2


class LearnerTable(ScrollView, can_focus=True):
    """Rows by key, drawn from a per-row cache."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"learner-table--header", "learner-table--cursor"}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "edge(0)", "First", show=False),
        Binding("end", "edge(1)", "Last", show=False),
    ]

    class RowHighlighted(Message):
        """The cursor moved to the row ``key`` (None: the table is empty)."""

        def __init__(self, table: LearnerTable, key: str | None) -> None:
            super().__init__()
            self.table = table
            self.key = key

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.columns: list[tuple[str, str, int]] = []
        self.keys: list[str] = []
        self._index: dict[str, int] = {}
        self._cells: dict[str, dict[str, Cell]] = {}
        self._strips: dict[str, Strip] = {}
        self._header: Strip | None = None
        self.cursor = 0

    # ------------------------------------------------------------------ columns and rows

    def add_column(self, key: str, label: str, width: int) -> None:
        """Add a column (rows show it empty until set)."""
        self.columns.append((key, label, width))
        self._strips.clear()
        self._header = None
        self._resize()
        self.refresh()

    def has_column(self, key: str) -> bool:
        """Whether a column ``key`` exists."""
        return any(column == key for column, _, _ in self.columns)

    def set_row(self, key: str, cells: Mapping[str, Cell]) -> bool:
        """Set some cells of row ``key`` (added at the end if new); True when it changed."""
        row = self._cells.get(key)
        if row is None:
            row = self._cells[key] = {}
            self._index[key] = len(self.keys)
            self.keys.append(key)
            self._resize()
            changed = True
        else:
            changed = any(row.get(column) != value for column, value in cells.items())
        if not changed:
            return False
        row.update(cells)
        self._strips.pop(key, None)
        self._refresh_row(self._index[key])
        if len(self.keys) == 1:
            self._highlight()
        return True

    def remove_row(self, key: str) -> None:
        """Remove row ``key`` (nothing when there is none)."""
        if key not in self._cells:
            return
        del self._cells[key]
        self._strips.pop(key, None)
        self.keys.remove(key)
        self._index = {k: i for i, k in enumerate(self.keys)}
        self.cursor = min(self.cursor, max(len(self.keys) - 1, 0))
        self._resize()
        self.refresh()
        self._highlight()

    def cell(self, key: str, column: str) -> str:
        """The plain text of a cell ("" when the row or cell is not there)."""
        return str(self._cells.get(key, {}).get(column, ""))

    def row_index(self, key: str) -> int:
        """Where row ``key`` is, from 0 (raises KeyError)."""
        return self._index[key]

    def sort(self, key: Callable[[Mapping[str, Cell]], Any]) -> None:
        """Order the rows by ``key(cells)``; the cursor stays on its row."""
        current = self.selected
        self.keys.sort(key=lambda k: key(self._cells[k]))
        self._index = {k: i for i, k in enumerate(self.keys)}
        if current is not None:
            self.cursor = self._index[current]
        self.refresh()

    @property
    def selected(self) -> str | None:
        """The key of the row under the cursor."""
        return self.keys[self.cursor] if 0 <= self.cursor < len(self.keys) else None

    def move_to(self, key: str) -> None:
        """Put the cursor on row ``key``."""
        self._move(self._index[key])

    # ------------------------------------------------------------------ cursor

    def _move(self, index: int) -> None:
        if not self.keys:
            return
        index = max(0, min(index, len(self.keys) - 1))
        if index == self.cursor:
            return
        old, self.cursor = self.cursor, index
        self._refresh_row(old)
        self._refresh_row(index)
        top = round(self.scroll_y)
        visible = max(self.size.height - 1, 1)
        if index < top:
            self.scroll_to(y=index, animate=False)
        elif index >= top + visible:
            self.scroll_to(y=index - visible + 1, animate=False)
        self._highlight()

    def _highlight(self) -> None:
        self.post_message(self.RowHighlighted(self, self.selected))

    def action_cursor(self, step: int) -> None:
        """Move the cursor up or down."""
        self._move(self.cursor + step)

    def action_page(self, direction: int) -> None:
        """Move the cursor a page."""
        self._move(self.cursor + direction * max(self.size.height - 2, 1))

    def action_edge(self, end: int) -> None:
        """Move the cursor to the first or last row."""
        self._move(len(self.keys) - 1 if end else 0)

    def on_click(self, event: Click) -> None:
        if event.y >= 1:
            self._move(round(self.scroll_y) + event.y - 1)

    # ------------------------------------------------------------------ drawing

    @property
    def _width(self) -> int:
        return sum(width + GAP for _, _, width in self.columns)

    def _resize(self) -> None:
        self.virtual_size = Size(self._width, len(self.keys) + 1)

    def _refresh_row(self, index: int) -> None:
        y = index - round(self.scroll_y) + 1
        if 1 <= y < self.size.height:
            self.refresh(Region(0, y, self.size.width, 1))

    def _line(self, cells: Mapping[str, Cell], style: Style) -> Strip:
        """One row (or the header) drawn in full, ``style`` under every cell's own."""
        text = Text(no_wrap=True, end="")
        for column, _, width in self.columns:
            value = cells.get(column, "")
            piece = value.copy() if isinstance(value, Text) else Text(value)
            piece.truncate(width, overflow="ellipsis", pad=True)
            text.append_text(piece)
            text.append(" " * GAP)
        segments = Segment.apply_style(text.render(self.app.console), style)
        return Strip(list(segments), self._width)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        base = self.rich_style
        if y == 0:
            if self._header is None:
                labels = {column: label for column, label, _ in self.columns}
                header = self.get_component_rich_style("learner-table--header")
                self._header = self._line(labels, base + header)
            return self._header.crop_extend(scroll_x, scroll_x + width, base)
        index = scroll_y + y - 1
        if index >= len(self.keys):
            return Strip.blank(width, base)
        key = self.keys[index]
        if index == self.cursor:  # drawn each time: one row, in the cursor's colours
            cursor = self.get_component_rich_style("learner-table--cursor")
            if not self.has_focus:
                cursor = Style(reverse=True)
            strip = self._line(self._cells[key], base + cursor)
            return strip.crop_extend(scroll_x, scroll_x + width, base + cursor)
        cached = self._strips.get(key)
        if cached is None:
            cached = self._strips[key] = self._line(self._cells[key], base)
        return cached.crop_extend(scroll_x, scroll_x + width, base)

    def on_focus(self) -> None:
        self._refresh_row(self.cursor)

    def on_blur(self) -> None:
        self._refresh_row(self.cursor)
