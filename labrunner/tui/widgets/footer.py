"""A footer that keeps the keys a learner cannot do without when the terminal is narrow.

Textual's footer shows every key in binding order and cuts what does not fit,
so at 80 columns Quit and Help (the two a newcomer looks for first) fell off
the end. Below ``NARROW`` columns this footer shows only the screen's
essential actions, in compact form, which leaves room for a few more.
"""

from __future__ import annotations

from collections.abc import Collection

from textual import events
from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

NARROW = 100
"""Terminals narrower than this get the compact footer."""


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

    def _fit(self, width: int) -> None:
        narrow = width < NARROW
        if narrow != self.narrow:
            self.narrow = narrow
            self.compact = narrow
            self.refresh(recompose=True)
