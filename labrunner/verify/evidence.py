"""Evidence collected when a step fails: named texts, ready for a report or a folder.

Kept apart from ``forensics`` (which talks to the cluster) so the events and
the report writers can carry evidence without importing the cluster client.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Section:
    """One file of evidence: ``name`` is its file name, ``text`` redacted and bounded."""

    name: str
    title: str
    text: str


def render(sections: Iterable[Section]) -> str:
    """All sections as one text (what JUnit's ``system-out`` gets)."""
    return "\n\n".join(f"===== {s.title} ({s.name})\n{s.text}" for s in sections)
