"""A yes/no question that must be answered before something irreversible happens.

Showing a solution, skipping a step (which runs the solution over whatever the
learner made), resetting progress and acting on a cluster that does not look
disposable all go through here. The safe answer is the default: Escape and
``n`` say no.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmDialog(ModalScreen[bool]):
    """Ask; dismiss with True (yes) or False (no)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(
        self,
        title: str,
        body: str,
        *,
        yes: str = "Yes",
        no: str = "No",
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.title_text = title
        self.body = body
        self.yes = yes
        self.no = no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.title_text, classes="dialog-title", markup=False)
            yield Static(self.body, classes="dialog-body", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes} (y)", id="yes", variant="warning")
                yield Button(f"{self.no} (n)", id="no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        """Dismiss with ``answer``."""
        self.dismiss(answer)


class GuardDialog(ConfirmDialog):
    """The context guard: the kube context does not look like a workshop cluster."""

    def __init__(self, context: str | None, reason: str) -> None:
        if context is None:
            body = f"{reason}\n\nRun the lab's commands anyway? Without a cluster they will fail."
            super().__init__(
                "No kube context",
                body,
                yes="Run anyway",
                no="Cancel",
                id="guard-dialog",
            )
        else:
            body = (
                f"This lab changes the cluster behind kube context {context!r}, and that "
                "context does not look like a disposable workshop cluster.\n\n"
                f"{reason}\n\nRun the lab's commands against {context!r} anyway?"
            )
            super().__init__(
                "Check the kube context",
                body,
                yes=f"Use {context}",
                no="Don't run",
                id="guard-dialog",
            )
