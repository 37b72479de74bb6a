"""One of a step's commands, shown as a block the learner can run on its own."""

from __future__ import annotations

from textual import events
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
        self.update(self._text())

    def _text(self, suffix: str = "") -> str:
        lines = short_command(self.cmd).splitlines() or [""]
        head = f"[{self.index + 1}] $ {lines[0]}{suffix}"
        rest = [f"      {line}" for line in lines[1:]]
        return "\n".join([head, *rest])

    def show(self, state: str | None, detail: str = "") -> None:
        """Show a state (one of ``BLOCK_STATES`` or None) and a short detail."""
        show_state(self, state, BLOCK_STATES)
        self.update(self._text(f"   {detail}" if detail else ""))

    def on_click(self, event: events.Click) -> None:
        event.stop()
        self.post_message(self.Pressed(self.index))
