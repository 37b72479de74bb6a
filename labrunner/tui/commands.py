"""Keys, footer, help and command palette from one table of actions per screen.

Each screen describes its actions once, as :class:`Action` rows: the key, the
short label the footer shows, the title the command palette searches, and a
sentence of help. Bindings, the help screen and the palette are all derived
from those rows, so the three can never disagree. The palette provider runs
the chosen action on the screen it was opened from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider


@dataclass(frozen=True)
class Action:
    """One thing the learner can do on a screen."""

    keys: str
    action: str
    label: str
    help: str
    title: str = ""
    footer: bool = True
    priority: bool = False
    key_display: str | None = None
    needs_terminal: bool = False
    """Only where labrunner owns a real terminal (hidden when served to a browser)."""

    def binding(self) -> Binding:
        """The key binding (its tooltip is the help sentence)."""
        return Binding(
            self.keys,
            self.action,
            self.label,
            show=self.footer,
            priority=self.priority,
            tooltip=self.help,
            key_display=self.key_display,
        )


def bindings(actions: Iterable[Action]) -> list[BindingType]:
    """Key bindings for ``actions``."""
    return [action.binding() for action in actions]


def palette_entries(actions: Sequence[Action]) -> list[tuple[str, str, str]]:
    """(title, help, action) for the actions that have a palette title."""
    return [(a.title, a.help, a.action) for a in actions if a.title]


class ScreenActions(Provider):
    """Palette entries for the screen the palette was opened from."""

    def _entries(self) -> list[tuple[str, str, Callable[[], Any]]]:
        screen = self.screen
        actions: Sequence[Action] = getattr(screen, "ACTIONS", ())
        return [
            (title, help_text, partial(screen.run_action, action))
            for title, help_text, action in palette_entries(actions)
            if screen.check_action(action, ()) is not False
        ]

    async def discover(self) -> Hits:
        for title, help_text, run in self._entries():
            yield DiscoveryHit(title, run, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, run in self._entries():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), run, help=help_text)
