"""Terminal escape codes, recognised in one place; and over-long lines, clipped in one way.

Command output keeps its colours for the terminal and the TUI, but matching,
prompt detection, reports and plain logs need the text without them. One
pattern covers what real tools print: CSI sequences (colours, cursor moves),
OSC sequences ended by BEL or ST (window titles, hyperlinks) and charset
designators.

``clip`` cuts lines longer than ``MAX_LINE`` characters, saying by how much:
the terminal log and the reports clip messages alike. It lives here, beside
the escape codes, so the terminal log need not load the report collector.
"""

from __future__ import annotations

import re

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][A-Z0-9]")
SGR = re.compile(r"\x1b\[[0-9;]*m")
"""Select Graphic Rendition: the codes that only colour (or embolden) text."""


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape codes."""
    return ANSI.sub("", text) if "\x1b" in text else text


_CONTROLS = dict.fromkeys(map(ord, "\x07\x08\x0b\x0c\x0d"))


def only_colours(line: str) -> str:
    """One line of a command's output with its colours (SGR codes) and nothing else a
    terminal would act on: what a carriage return overwrote is dropped, as is every other
    escape code (cursor moves, titles, charsets) and bell, backspace and form feeds."""
    line = line.rsplit("\r", 1)[-1]
    if "\x1b" in line:
        line = ANSI.sub(_keep_colour, line)  # before the bells go: one ends a title (OSC)
    return line.translate(_CONTROLS)


def _keep_colour(match: re.Match[str]) -> str:
    return match.group(0) if SGR.fullmatch(match.group(0)) else ""


MAX_LINE = 2000
"""The longest line a message or report keeps; longer ones are cut (``clip``)."""


def clip(text: str) -> str:
    """``text`` with every line longer than ``MAX_LINE`` characters cut, saying by how much
    (the terminal log clips messages the same way as the reports)."""
    if len(text) <= MAX_LINE:
        return text
    return "\n".join(clip_line(line) for line in text.split("\n"))


def clip_line(line: str) -> str:
    """One line, cut as ``clip`` cuts it."""
    if len(line) <= MAX_LINE:
        return line
    keep = MAX_LINE - 40  # room for the note, so a clipped line is not clipped again
    return f"{line[:keep]}… [{len(line) - keep} more characters]"
