"""A headless app with only the terminal pane, on a live bash, for the terminal benchmarks."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from textual.app import App, ComposeResult

from labrunner.testing.terminal import LiveShell, live_shell
from labrunner.tui.terminal import TerminalView


class PaneApp(App[None]):
    """The terminal pane alone, focused."""

    def __init__(self, shell: LiveShell) -> None:
        super().__init__()
        self.shell = shell

    def compose(self) -> ComposeResult:
        yield TerminalView(self.shell.pump, scrollback=self.shell.scrollback)

    @property
    def view(self) -> TerminalView:
        """The pane."""
        return self.query_one(TerminalView)

    def on_mount(self) -> None:
        self.view.focus()


@contextmanager
def pane_shell() -> Iterator[LiveShell]:
    """A live bash in a private temporary directory."""
    with tempfile.TemporaryDirectory() as tmp, live_shell(Path(tmp)) as shell:
        yield shell
