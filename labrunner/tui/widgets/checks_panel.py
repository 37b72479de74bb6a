"""The step's checks: each verifier's label, latest outcome and message.

Outcomes arrive one evaluation at a time (a check may be polled while a
cluster converges); the parent passes each one in and the row shows it. A
failed check with a ``hint`` of its own shows that hint right under it.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.containers import Vertical
from textual.widgets import Static

from labrunner.lab.model import Check
from labrunner.tui.widgets import show_state

CHECK_STATES = ("-passed", "-pending", "-failed", "-notyet", "-error", "-unknown")
CHECK_ICONS = {
    "-passed": "✔",
    "-pending": "…",
    "-failed": "✘",
    "-notyet": "○",
    "-error": "!",
    "-unknown": "·",
}


class CheckRow(Static):
    """One check."""

    def __init__(self, index: int, check: Check) -> None:
        super().__init__(markup=False, classes="check-row -unknown")
        self.index = index
        self.check = check
        self.label = check.title or check.verifier
        self.state = "-unknown"
        self.message = "not checked yet"
        self.update(self._text())

    def _text(self) -> str:
        if self.state == "-unknown":  # the · says it; a row per check stays one line
            return f"{CHECK_ICONS[self.state]} {self.label}"
        message = f"not yet: {self.message}" if self.state == "-notyet" else self.message
        text = f"{CHECK_ICONS[self.state]} {self.label}: {message}"
        if self.state == "-failed" and self.check.hint:  # no hint fixes an environment error
            text += f"\n   hint: {self.check.hint.strip()}"
        return text

    def show(self, state: str, message: str, label: str | None = None) -> None:
        """Show an outcome (``-passed``, ``-pending``, ``-failed``, ``-notyet``, ``-error``)."""
        self.state = state
        self.message = message
        if label:
            self.label = label
        show_state(self, state, CHECK_STATES)
        self.update(self._text())


class ChecksPanel(Vertical):
    """Every check of the selected step."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._rows: list[CheckRow] = []

    def show_checks(self, checks: Sequence[Check]) -> None:
        """Replace the rows with ``checks``, none checked yet."""
        self.remove_children()
        self._rows = [CheckRow(i, check) for i, check in enumerate(checks)]
        if self._rows:
            self.mount_all(self._rows)
        else:
            self.mount(Static("This step has no checks.", classes="check-row -unknown"))

    def show_outcome(self, index: int, state: str, message: str, label: str) -> None:
        """Show one check's latest outcome."""
        if 0 <= index < len(self._rows):
            self._rows[index].show(state, message, label)

    def rows(self) -> list[CheckRow]:
        """The rows, in check order."""
        return list(self._rows)
