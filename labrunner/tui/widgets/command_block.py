"""One of a step's commands, shown as a block the learner can run on its own.

A block is either shown in full (wrapped, every line of a multi-line command)
or, with the ``-collapsed`` class, as one line cut with "…" that still ends
with its result (✔, or ✘ and the exit status), so a step's six commands take
six rows. The lab screen collapses every block but the current one.
"""

from __future__ import annotations

from rich.cells import cell_len, set_cell_size
from textual import events
from textual.app import RenderResult
from textual.message import Message
from textual.widgets import Static

from labrunner.tui.progress import short_command
from labrunner.tui.widgets import show_state

BLOCK_STATES = ("-running", "-ok", "-failed", "-cancelled")


class CommandBlock(Static):
    """``[2] $ kubectl apply …``; its state (running, ok, failed) is a CSS class."""

    class Pressed(Message):
        """The learner clicked the block: run it."""

        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    def __init__(self, index: int, cmd: str) -> None:
        super().__init__(markup=False, classes="command-block")
        self.index = index
        self.cmd = cmd
        self.detail = ""
        self.update(self._text())

    def _text(self, suffix: str = "") -> str:
        lines = short_command(self.cmd).splitlines() or [""]
        head = f"[{self.index + 1}] $ {lines[0]}{suffix}"
        rest = [f"      {line}" for line in lines[1:]]
        return "\n".join([head, *rest])

    def show(self, state: str | None, detail: str = "") -> None:
        """Show a state (one of ``BLOCK_STATES`` or None) and a short detail."""
        show_state(self, state, BLOCK_STATES)
        self.detail = detail
        self.update(self._text(self._suffix()))

    def _suffix(self) -> str:
        return f"   {self.detail}" if self.detail else ""

    def render(self) -> RenderResult:
        if not self.has_class("-collapsed"):
            return super().render()
        return self.one_line(self.content_region.width or self.size.width)

    def one_line(self, width: int) -> str:
        """The block in one row of ``width`` cells: the command cut with "…", its result kept."""
        lines = short_command(self.cmd).splitlines() or [""]
        head = f"[{self.index + 1}] $ {lines[0]}" + (" …" if len(lines) > 1 else "")
        suffix = self._suffix()
        if width <= 0 or cell_len(head + suffix) <= width:
            return head + suffix
        room = max(1, width - cell_len(suffix) - 1)
        return set_cell_size(head, room).rstrip() + "…" + suffix

    def on_click(self, event: events.Click) -> None:
        event.stop()
        self.post_message(self.Pressed(self.index))
