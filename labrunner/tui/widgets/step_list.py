"""The lab's steps in order, each showing its state as a CSS class.

The parent screen decides every state (see :mod:`labrunner.state.rules`) and
sets it here; this widget only turns states into the table's glyph and a
class such as ``-passed``, ``-locked`` or ``-stale`` that the stylesheet
colours. A stale step also says so in words, so it reads without colour.
"""

from __future__ import annotations

from collections.abc import Mapping

from textual.widgets import Label, ListItem, ListView

from labrunner.lab.model import Lab
from labrunner.state.rules import StepState
from labrunner.tui.progress import ICONS, STATE_CLASSES, css_class


class StepItem(ListItem):
    """One step: number, icon and title."""

    def __init__(self, number: int, step_id: str, title: str) -> None:
        super().__init__(id=f"step-{step_id}", classes="-locked")
        self.step_id = step_id
        self.number = number
        self.title = title
        self.state = StepState.LOCKED
        self._label = Label(self._text(), markup=False)

    def compose(self):  # type: ignore[no-untyped-def]
        yield self._label

    def _text(self, *, running: bool = False) -> str:
        icon = "⟳" if running else ICONS[self.state]
        flag = f" ({self.state.look.word})" if self.state is StepState.STALE else ""
        return f"{icon} {self.number}. {self.title}{flag}"

    def show(self, state: StepState, *, running: bool) -> None:
        """Show ``state`` (plus the running flag)."""
        self.state = state
        classes = {css_class(state)} | ({"-running"} if running else set())
        current = set(self.classes)
        wanted = (current - {*STATE_CLASSES, "-running"}) | classes
        if wanted != current:
            self.set_classes(wanted)
        self._label.update(self._text(running=running))


class StepList(ListView):
    """Every step of the open lab."""

    def __init__(self, lab: Lab, *, id: str | None = None) -> None:
        items = [StepItem(i + 1, step.id, step.title) for i, step in enumerate(lab.steps)]
        super().__init__(*items, id=id)
        self._items = {item.step_id: item for item in items}

    def show(self, states: Mapping[str, StepState], *, running: str | None) -> None:
        """Show the state of every step."""
        for step_id, item in self._items.items():
            item.show(states.get(step_id, StepState.LOCKED), running=step_id == running)

    async def set_lab(self, lab: Lab) -> None:
        """Show ``lab``'s steps instead (a reloaded lab file)."""
        items = [StepItem(i + 1, step.id, step.title) for i, step in enumerate(lab.steps)]
        await self.clear()
        self._items = {item.step_id: item for item in items}
        await self.extend(items)

    def item(self, step_id: str) -> StepItem:
        """The list item of ``step_id``."""
        return self._items[step_id]

    def select_step(self, step_id: str) -> None:
        """Highlight ``step_id``."""
        for position, item in enumerate(self.children):
            if isinstance(item, StepItem) and item.step_id == step_id:
                self.index = position
                return
