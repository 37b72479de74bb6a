"""Everything the doctor found, for when the one-line status is not enough."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from labrunner.doctor import Finding
from labrunner.tui.progress import EnvironmentStatus


def describe(finding: Finding) -> tuple[str, bool]:
    """One finding as a line of text, and whether it is fine."""
    mark = "✔" if finding.ok else ("✘" if finding.required else "·")
    line = f"{mark} {finding.name}: {finding.detail}"
    if not finding.ok and finding.fix:
        line += f"\n    fix: {finding.fix}"
    return line, finding.ok


class FindingsDialog(ModalScreen[None]):
    """The doctor's findings, one per line."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,d", "close", "Close"),
    ]

    def __init__(self, status: EnvironmentStatus, findings: Sequence[Finding]) -> None:
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
