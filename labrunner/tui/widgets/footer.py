"""A footer that keeps the keys a learner cannot do without when the terminal is narrow.

Textual's footer shows every key in binding order and cuts what does not fit,
so at 80 columns Quit and Help (the two a newcomer looks for first) fell off
the end. Below ``NARROW`` columns, or whenever every key would not fit, this
footer shows only the screen's essential actions, in compact form, which
leaves room for a few more.
"""

from __future__ import annotations

from collections.abc import Collection

from textual import events
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

NARROW = 100
"""Terminals narrower than this get the compact footer."""
PALETTE_WIDTH = 14
"""Columns the command palette's key takes at the footer's right end."""


class EssentialFooter(Footer):
    """Every key when there is room; below ``NARROW`` columns only ``essential`` ones."""

    def __init__(self, essential: Collection[str], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.essential = frozenset(essential)
        """Actions (as bound, e.g. ``app.quit``, ``check``) the narrow footer keeps."""
        self.narrow = False

    def compose(self) -> ComposeResult:
        for widget in super().compose():
            if self.narrow and (
                widget.has_class("-command-palette")
                or (isinstance(widget, FooterKey) and widget.action not in self.essential)
            ):
                continue
            yield widget

    def on_resize(self, event: events.Resize) -> None:
        self._fit(event.size.width)

    def on_mount(self) -> None:
        self._fit(self.app.size.width)

    def bindings_changed(self, screen: Screen[object]) -> None:
        """The keys changed (a pane took focus, an action was hidden): fit them again."""
        if screen is self.screen and self.is_attached:
            self._fit(self.app.size.width)
        super().bindings_changed(screen)

    def _full_width(self) -> int:
        """Columns the footer needs to show every key in full."""
        widths: dict[str, int] = {}
        for _, binding, _, _ in self.screen.active_bindings.values():
            if binding.show and binding.action not in widths:
                key = self.app.get_key_display(binding)
                widths[binding.action] = len(key) + len(binding.description) + 3
        palette = PALETTE_WIDTH if self.show_command_palette else 0
        return sum(widths.values()) + palette

    def _fit(self, width: int) -> None:
        narrow = width < NARROW or self._full_width() > width
        if narrow != self.narrow:
            self.narrow = narrow
            self.compact = narrow
            self.refresh(recompose=True)
