"""Widgets: each renders state its parent gives it and posts messages about input."""

from __future__ import annotations

from collections.abc import Collection

from textual.dom import DOMNode


def show_state(node: DOMNode, state: str | None, choices: Collection[str]) -> None:
    """Make ``state`` the one class of ``choices`` that ``node`` has.

    Changing classes restyles the node and its children, so the classes are
    swapped in one update, and not at all when nothing changed.
    """
    current = set(node.classes)
    wanted = (current - set(choices)) | ({state} if state else set())
    if wanted != current:
        node.set_classes(wanted)
