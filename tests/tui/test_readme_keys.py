"""The README's keys table says what the app's bindings do: no key missing, none invented."""

from __future__ import annotations

import re
from pathlib import Path

from textual.binding import Binding

from labrunner.tui.app import TERMINAL_ESCAPE, LabrunnerApp
from labrunner.tui.screens.home import HomeScreen
from labrunner.tui.screens.lab import LabScreen

README = Path(__file__).resolve().parents[2] / "README.md"
NAMES = {
    "escape": "Esc",
    "slash": "/",
    "question_mark": "?",
    "enter": "Enter",
    "ctrl+right_square_bracket": "Ctrl+]",
}


def shown(key: str) -> str:
    """A binding's key as the README writes it."""
    if key in NAMES:
        return NAMES[key]
    if key.startswith("ctrl+"):
        return "Ctrl+" + key.removeprefix("ctrl+").upper()
    if len(key) == 1 and key.isupper():
        return f"Shift+{key}"
    return key.upper() if key.startswith("f") and key[1:].isdigit() else key


def bound_keys() -> set[str]:
    # Textual's command palette, and the key the terminal pane gives the keyboard back with
    keys: set[str] = {"Ctrl+P", shown(TERMINAL_ESCAPE)}
    for owner in (LabrunnerApp, HomeScreen, LabScreen):
        for binding in owner.BINDINGS:
            assert isinstance(binding, Binding)
            for key in binding.key.split(","):
                keys.add(shown(key.strip()))
    digits = {str(n) for n in range(1, 10)}
    assert digits <= keys
    return (keys - digits) | {"1–9"}


def table_keys() -> set[str]:
    text = README.read_text()
    table = text.split("## The terminal UI", 1)[1].split("\n## ", 1)[0]
    keys: set[str] = set()
    for line in table.splitlines():
        if line.startswith("| `"):
            cell = line.split("|")[1]
            keys.update(re.findall(r"`([^`]+)`", cell.replace("`1`–`9`", "`1–9`")))
    return keys


def test_the_readme_keys_table_matches_the_bindings() -> None:
    assert table_keys() == bound_keys()
