"""Terminal escape codes, recognised in one place.

Command output keeps its colours for the terminal and the TUI, but matching,
prompt detection, reports and plain logs need the text without them. One
pattern covers what real tools print: CSI sequences (colours, cursor moves),
OSC sequences ended by BEL or ST (window titles, hyperlinks) and charset
designators.
"""

from __future__ import annotations

import re

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][A-Z0-9]")


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape codes."""
    return ANSI.sub("", text) if "\x1b" in text else text
