"""Everything the doctor found, for when the one-line status is not enough."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from labrunner.tui.progress import EnvironmentStatus


def describe(finding: object) -> tuple[str, bool]:
    """One finding as a line of text, and whether it is fine."""
    name = str(getattr(finding, "name", "?"))
    ok = bool(getattr(finding, "ok", False))
    detail = str(getattr(finding, "detail", ""))
    fix = str(getattr(finding, "fix", ""))
    required = bool(getattr(finding, "required", False))
    mark = "✔" if ok else ("✘" if required else "·")
    line = f"{mark} {name}: {detail}"
    if not ok and fix:
        line += f"\n    fix: {fix}"
    return line, ok


class FindingsDialog(ModalScreen[None]):
    """The doctor's findings, one per line."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,d", "close", "Close"),
    ]

    def __init__(self, status: EnvironmentStatus, findings: Sequence[object]) -> None:
        super().__init__(id="findings-dialog")
        self.status = status
        self.findings = list(findings)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog dialog-wide"):
            yield Static("Environment", classes="dialog-title")
            yield Static(self.status.describe(), classes="dialog-body", markup=False)
            with VerticalScroll(classes="findings"):
                if not self.status.checked:
                    yield Static("The doctor is still running…", markup=False)
                for finding in self.findings:
                    line, ok = describe(finding)
                    yield Static(line, markup=False, classes="-ok" if ok else "-bad")
            yield Static("Esc closes.", classes="dialog-footnote")

    def action_close(self) -> None:
        """Close the dialog."""
        self.dismiss(None)
