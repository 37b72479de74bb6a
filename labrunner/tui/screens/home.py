"""The home screen: the workshop's labs in order, and whether this machine can run them.

It paints from data the app already has (the lab files and the progress
file), so it appears at once; the environment line starts as "checking…" and
fills in when the doctor, running in a worker, reports. Locked labs say what
they wait for, and labs that need no cluster say so, because a learner
without a cluster yet should know where they can start.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import BindingType
from textual.reactive import var
from textual.screen import Screen
from textual.widgets import Footer, ListView, Static

from labrunner.doctor import Finding
from labrunner.lab.model import Workshop
from labrunner.state.rules import LabProgress, WorkshopProgress
from labrunner.tui import messages as msg
from labrunner.tui.commands import Action, bindings
from labrunner.tui.dialogs.findings import FindingsDialog
from labrunner.tui.progress import EnvironmentStatus
from labrunner.tui.widgets.lab_list import LabList


class HomeScreen(Screen[None]):
    """Pick a lab."""

    ACTIONS: ClassVar[tuple[Action, ...]] = (
        Action("enter", "open_lab", "Open", "Open the highlighted lab", "Open lab"),
        Action("d", "doctor", "Environment", "What the doctor found", "Environment details"),
        Action(
            "question_mark,f1", "app.help", "Help", "Every key binding", "Help", key_display="?"
        ),
        Action("q", "app.quit", "Quit", "Leave labrunner", "Quit"),
    )
    BINDINGS: ClassVar[list[BindingType]] = bindings(ACTIONS)

    progress: var[Mapping[str, LabProgress]] = var(dict, init=False)
    status: var[EnvironmentStatus] = var(EnvironmentStatus(None), init=False)
    findings: var[list[Finding]] = var(list, init=False)
    highlighted: var[str | None] = var(None, init=False)
    overall: var[WorkshopProgress | None] = var(None, init=False)

    def __init__(self, workshop: Workshop) -> None:
        super().__init__(id="home")
        self.workshop = workshop

    def compose(self) -> ComposeResult:
        yield Static(f"{self.workshop.title}", id="home-title", markup=False)
        yield Static(
            "Pick a lab and press Enter. Each step unlocks the next once its checks pass.",
            id="home-intro",
            markup=False,
        )
        yield Static("", id="workshop-progress", markup=False)
        yield LabList(self.workshop, id="labs")
        yield Static("", id="lab-summary", markup=False)
        yield Static("", id="env-status", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        if self.highlighted is not None:
            self.query_one(LabList).select_lab(self.highlighted)
        self._show_progress()
        self._show_status()

    # ------------------------------------------------------------------ attributes

    def watch_progress(self) -> None:
        if self.is_mounted:
            self._show_progress()

    def watch_status(self) -> None:
        if self.is_mounted:
            self._show_status()

    def watch_highlighted(self, lab_id: str | None) -> None:
        if self.is_mounted and lab_id is not None:
            self.query_one(LabList).select_lab(lab_id)

    def _show_progress(self) -> None:
        self.query_one(LabList).show(self.progress)
        overall = self.overall
        line = self.query_one("#workshop-progress", Static)
        line.update(f"Your progress: {overall.label}" if overall is not None else "")
        self._show_summary()

    def _show_status(self) -> None:
        line = self.query_one("#env-status", Static)
        line.update(self.status.describe())
        line.set_class(not self.status.checked, "-checking")
        line.set_class(self.status.reachable is False, "-unreachable")
        line.set_class(bool(self.status.problems), "-problems")

    def _show_summary(self) -> None:
        lab = self.query_one(LabList).selected_lab()
        summary = self.query_one("#lab-summary", Static)
        if lab is None:
            summary.update("")
            return
        text = lab.summary.strip() or lab.title
        progress = self.progress.get(lab.id)
        if progress is not None and progress.locked:
            text += "\nLocked: finish " + ", ".join(progress.missing) + " first."
        summary.update(text)

    # ------------------------------------------------------------------ input

    def on_list_view_highlighted(self, event: ListView.Highlighted) -> None:
        self._show_summary()

    def on_list_view_selected(self, event: ListView.Selected) -> None:
        event.stop()
        self.action_open_lab()

    def action_open_lab(self) -> None:
        """Open the highlighted lab."""
        lab = self.query_one(LabList).selected_lab()
        if lab is not None:
            self.post_message(msg.LabChosen(lab.id))

    def action_doctor(self) -> None:
        """Show every doctor finding."""
        self.app.push_screen(FindingsDialog(self.status, self.findings))
