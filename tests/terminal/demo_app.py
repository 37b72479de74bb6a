"""A small app hosting the terminal pane, for Pilot tests (not shipped).

Instructions on top, the terminal below, a footer. ``t`` focuses the
terminal; its escape key hands the focus back; ``x`` is a single-letter app
key that must only work while the terminal is not focused. The command
palette and quit (priority bindings) are switched off while the terminal has
focus, as the lab screen will do, so Ctrl+P reaches readline.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import BindingType
from textual.widgets import Footer, Static

from labrunner.shell.pty_pump import PtyPump
from labrunner.shell.scrollback import Scrollback
from labrunner.tui.terminal import TerminalView


class TerminalDemo(App[None]):
    """Instructions, the terminal pane and a footer."""

    BINDINGS: ClassVar[list[BindingType]] = [
        ("t", "focus_terminal", "Terminal"),
        ("x", "mark", "Mark"),
    ]

    def __init__(self, pump: PtyPump, scrollback: Scrollback | None = None) -> None:
        super().__init__()
        self.pump = pump
        self.scrollback = scrollback
        self.marks = 0
        self.escapes = 0

    def compose(self) -> ComposeResult:
        yield Static("Type into the lab's shell below. Ctrl+] comes back.", id="instructions")
        yield TerminalView(self.pump, scrollback=self.scrollback, id="terminal")
        yield Footer()

    @property
    def terminal(self) -> TerminalView:
        """The terminal pane."""
        return self.query_one(TerminalView)

    def on_mount(self) -> None:
        self.terminal.focus()

    def action_focus_terminal(self) -> None:
        self.terminal.focus()

    def action_mark(self) -> None:
        self.marks += 1

    def on_terminal_view_escaped(self, message: TerminalView.Escaped) -> None:
        self.escapes += 1
        self.set_focus(None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        in_terminal = isinstance(self.focused, TerminalView)
        return not (in_terminal and action in ("quit", "command_palette"))
