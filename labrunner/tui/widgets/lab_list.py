"""The workshop's labs, in order, with progress, locks and what each needs."""

from __future__ import annotations

from collections.abc import Mapping

from textual.widgets import Label, ListItem, ListView

from labrunner.lab.model import Lab, Workshop
from labrunner.state.rules import LabProgress, StepState


class LabItem(ListItem):
    """One lab: number, title, progress, and badges (locked, no cluster needed)."""

    def __init__(self, number: int, lab: Lab) -> None:
        super().__init__(id=f"lab-{lab.id}")
        self.lab = lab
        self.number = number
        self._title = Label(markup=False, classes="lab-title")
        self._meta = Label(markup=False, classes="lab-meta")

    def compose(self):  # type: ignore[no-untyped-def]
        yield self._title
        yield self._meta

    def show(self, progress: LabProgress) -> None:
        """Show the lab's progress and lock state."""
        if progress.complete:
            icon = StepState.PASSED.look.glyph
        elif progress.locked:
            icon = StepState.LOCKED.look.glyph
        elif progress.stale:
            icon = StepState.STALE.look.glyph
        else:
            icon = StepState.TODO.look.glyph if progress.done else "·"
        self._title.update(f"{icon} {self.number}. {self.lab.title}")
        meta = [progress.label]
        meta.append("needs a cluster" if self.lab.needs_cluster else "no cluster needed")
        if progress.locked:
            meta.append("locked: finish " + ", ".join(progress.missing) + " first")
        self._meta.update("   " + "  ·  ".join(meta))
        self.set_class(progress.locked, "-locked")
        self.set_class(progress.complete, "-complete")
        self.set_class(bool(progress.stale), "-stale")
        self.set_class(not self.lab.needs_cluster, "-cluster-free")


class LabList(ListView):
    """Every lab of the workshop."""

    def __init__(self, workshop: Workshop, *, id: str | None = None) -> None:
        items = [LabItem(i + 1, lab) for i, lab in enumerate(workshop.labs)]
        super().__init__(*items, id=id)
        self._items = {item.lab.id: item for item in items}

    def show(self, progress: Mapping[str, LabProgress]) -> None:
        """Show every lab's progress."""
        for lab_id, item in self._items.items():
            if lab_id in progress:
                item.show(progress[lab_id])

    def selected_lab(self) -> Lab | None:
        """The highlighted lab."""
        item = self.highlighted_child
        return item.lab if isinstance(item, LabItem) else None

    def select_lab(self, lab_id: str) -> None:
        """Highlight ``lab_id``."""
        for position, item in enumerate(self.children):
            if isinstance(item, LabItem) and item.lab.id == lab_id:
                self.index = position
                return
