"""The help screen: every key binding, read from the bindings themselves.

The table is built from the ``BINDINGS`` of the app and of each screen, so it
cannot drift from what the keys actually do.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEY_NAMES = {
    "question_mark": "?",
    "escape": "Esc",
    "enter": "Enter",
    "space": "Space",
    "up": "↑",
    "down": "↓",
    "pageup": "PgUp",
    "pagedown": "PgDn",
}


def key_label(keys: str) -> str:
    """``ctrl+r,question_mark`` as ``Ctrl+R, ?``."""
    labels = []
    for raw in keys.split(","):
        key = raw.strip()
        if key in KEY_NAMES:
            labels.append(KEY_NAMES[key])
        elif key.startswith("ctrl+"):
            labels.append("Ctrl+" + key[5:].upper())
        elif len(key) == 1 and key.isupper():
            labels.append(f"Shift+{key}")
        elif key.startswith("f") and key[1:].isdigit():
            labels.append(key.upper())
        else:
            labels.append(key)
    return ", ".join(labels)


def binding_rows(bindings: Iterable[BindingType]) -> list[tuple[str, str]]:
    """(keys, description) for each binding, with the nine "run command N" keys folded."""
    rows: list[tuple[str, str]] = []
    folded = False
    for item in bindings:
        if not isinstance(item, Binding):
            continue
        if item.action.startswith("run_command("):
            if not folded:
                rows.append(("1 … 9", "Run command block N on its own"))
                folded = True
            continue
        rows.append((key_label(item.key), item.tooltip or item.description or item.action))
    return rows


def section_table(title: str, rows: list[tuple[str, str]]) -> Table:
    """One section of the help as a two-column table."""
    table = Table(
        title=title,
        title_justify="left",
        title_style="bold italic",
        show_header=False,
        box=None,
        padding=(0, 1, 0, 0),
        expand=True,
    )
    table.add_column("keys", style="bold", no_wrap=True, min_width=16)
    table.add_column("action", ratio=1)
    for keys, description in rows:
        table.add_row(keys, description)
    return table


class HelpScreen(ModalScreen[None]):
    """Every key, by screen."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,f1", "close", "Close", key_display="Esc"),
    ]

    def __init__(self, sections: list[tuple[str, list[tuple[str, str]]]]) -> None:
        super().__init__(id="help")
        self.sections = sections

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="help-box"):
            yield Static("Keys", classes="dialog-title")
            with VerticalScroll(id="help-keys"):
                for title, rows in self.sections:
                    yield Static(section_table(title, rows), classes="help-section")
            yield Static(
                "Ctrl+P opens the command palette with the same actions.  Esc closes.",
                classes="dialog-footnote",
            )

    def action_close(self) -> None:
        """Close the help."""
        self.dismiss(None)
