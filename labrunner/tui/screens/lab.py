"""The lab screen: steps, instructions, commands, output and checks in one place.

It never runs anything itself. Keys become request messages that bubble up to
the app (which applies the context guard and starts workers); reports come
back from the workers as messages and only change what is shown. Progress
records arrive with each report, so the step list always reflects what the
progress file says, and every state is a CSS class on a widget.

Three habits come from what learners complain about in other lab runners:
failures always say why (the check's message, the command's exit code, a
hint on request); skipping never happens by accident (it runs the solution
over the learner's work, so it asks first, and it is recorded as "skipped",
not "passed"); and recorded progress is never thrown away silently (a step
that no longer passes is shown as stale, with its own glyph and word and why,
and is not counted as done until it passes again; its record is kept).

A lab with services shows them under its title: running, stopped, or failed
with the last lines they printed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.reactive import var
from textual.screen import Screen
from textual.widgets import Input, ListView, Markdown, Static

from labrunner.doctor import Finding
from labrunner.doctor.cluster import fix_for_message
from labrunner.engine import events as ev
from labrunner.engine.events import StepStatus
from labrunner.lab.model import Lab, Step
from labrunner.shell.pane import BUSY, PaneShell
from labrunner.state.rules import (
    FAILED_STATUSES,
    StepState,
    blocking_step,
    next_step,
    step_states,
)
from labrunner.state.store import StepRecord
from labrunner.tui import messages as msg
from labrunner.tui.commands import Action, bindings
from labrunner.tui.dialogs.confirm import ConfirmDialog
from labrunner.tui.output import OutputBuffer
from labrunner.tui.progress import SERVICE_CLASSES, SERVICE_ICONS, STATE_CLASSES, css_class
from labrunner.tui.terminal import TerminalView
from labrunner.tui.widgets import show_state
from labrunner.tui.widgets.checks_panel import ChecksPanel
from labrunner.tui.widgets.command_block import CommandBlock
from labrunner.tui.widgets.footer import NARROW, EssentialFooter
from labrunner.tui.widgets.output_pane import OutputPane
from labrunner.tui.widgets.step_list import StepList
from labrunner.tui.widgets.terminal_pane import TerminalPane

CHECK_CLASS = {
    "passed": "-passed",
    "pending": "-pending",
    "failed": "-failed",
    "error": "-error",
}
SHORT = 30
"""Terminals with fewer rows than this get the compact vertical layout."""
SECRET_WORDS = ("password", "passphrase", "token", "secret", "pin")
NARROW_FOOTER = (
    "run_step",
    "check",
    "hint",
    "next_step",
    "cancel",
    "focus_terminal",
    "back",
    "app.help",
    "quit",
    "app.quit",
    "release",  # the terminal's own: the way back while the keyboard is in the pane
)
"""The keys an 80-column footer keeps: doing the step, cancelling it (only while it
runs), typing into the terminal pane (when there is one) and leaving it, moving on, Help and
Quit."""


class LabScreen(Screen[None]):
    """One lab, step by step."""

    ACTIONS: ClassVar[tuple[Action, ...]] = (
        Action(
            "r", "run_step", "Run", "Run every command of the step, then its checks", "Run step"
        ),
        Action(
            "e",
            "run_next_command",
            "Next command",
            "Run the next command block on its own",
            "Run next command",
            footer=False,
        ),
        Action("c", "check", "Check", "Run the step's checks now", "Run checks"),
        Action("h", "hint", "Hint", "Reveal the next hint (after a check failed)", "Show a hint"),
        Action("n", "next_step", "Next", "Go to the next step", "Next step"),
        Action(
            "i",
            "focus_terminal",
            "Type",
            "Type into the lab's shell in the terminal pane (ctrl+], or your detach key, "
            "comes back)",
            "Focus the terminal",
        ),
        Action(
            "t",
            "shell",
            "Shell",
            "The lab's shell full screen in your terminal (ctrl+], or your detach key, "
            "comes back); "
            "the step is checked when you return",
            "Open a shell",
            needs_terminal=True,
        ),
        Action(
            "E",
            "paste_command",
            "Edit command",
            "Put the current command at the terminal's prompt to edit it (not run)",
            "Edit the command in the terminal",
            footer=False,
        ),
        Action(
            "T",
            "restart_shell",
            "Restart shell",
            "Start the lab's shell again, with your exports and directory",
            "Restart the lab shell",
            footer=False,
        ),
        Action(
            "l",
            "toggle_live",
            "Live",
            "Re-check the step every few seconds while you work elsewhere",
            "Toggle live checking",
            footer=False,
        ),
        Action("x", "cancel", "Cancel", "Stop the running command", "Cancel the command"),
        Action(
            "ctrl+c",
            "interrupt",
            "Cancel",
            "Stop the running command",
            footer=False,
            priority=True,
        ),
        Action("s", "solution", "Solution", "Show the solution (asks first)", "Show the solution"),
        Action(
            "k",
            "skip",
            "Skip",
            "Run the solution and record the step as skipped (asks first)",
            "Skip step",
        ),
        Action(
            "f",
            "toggle_follow",
            "Follow",
            "Follow the newest output line, or stop following",
            "Toggle follow",
            footer=False,
        ),
        Action(
            "p",
            "previous_step",
            "Previous",
            "Go to the previous step",
            "Previous step",
            footer=False,
        ),
        Action(
            "ctrl+r",
            "reset_step",
            "Reset step",
            "Forget this step's progress (asks first)",
            "Reset step",
            footer=False,
        ),
        Action(
            "R",
            "reset_lab",
            "Reset lab",
            "Forget this lab's progress (asks first)",
            "Reset lab",
            footer=False,
        ),
        Action(
            "S",
            "setup",
            "Setup",
            "Run the lab's setup, to start from a fresh cluster",
            "Run setup",
            footer=False,
        ),
        Action(
            "C",
            "cleanup",
            "Cleanup",
            "Run the lab's cleanup, undoing what it created (asks first)",
            "Run cleanup",
            footer=False,
        ),
        Action(
            "y",
            "copy_command",
            "Copy",
            "Copy the current command to the clipboard (your terminal must allow OSC 52)",
            "Copy the command",
            footer=False,
        ),
        Action(
            "slash",
            "search",
            "Search",
            "Search the terminal's scrollback or the output (Enter: older match, Esc: close)",
            "Search the output",
            footer=False,
            key_display="/",
        ),
        Action("escape", "back", "Labs", "Back to the lab list", "Back to labs"),
        Action(
            "question_mark,f1", "app.help", "Help", "Every key binding", "Help", key_display="?"
        ),
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        *bindings(ACTIONS),
        *(
            Binding(str(n), f"run_command({n - 1})", f"Run command {n}", show=False)
            for n in range(1, 10)
        ),
    ]

    records: var[Mapping[str, StepRecord]] = var(dict, init=False)
    live: var[bool] = var(False, init=False)
    context_label: var[str] = var("", init=False)
    class_note: var[str] = var("", init=False)

    def __init__(
        self,
        lab: Lab,
        *,
        records: Mapping[str, StepRecord],
        start_step: str | None,
        context_label: str,
        output_lines: int,
        real_terminal: bool = True,
        terminal_pane: bool = False,
        escape_key: str = "ctrl+right_square_bracket",
    ) -> None:
        super().__init__(id="lab")
        self.lab = lab
        self.real_terminal = real_terminal
        self.terminal_pane = terminal_pane
        """True when the lab's shell is shown (and typed into) in a pane of this screen."""
        self.escape_key = escape_key
        self._terminal_pending: PaneShell | str | None = None
        self._composed = False
        """False when served to a browser: actions that need a real terminal are hidden."""
        self.set_reactive(LabScreen.records, dict(records))
        self.set_reactive(LabScreen.context_label, context_label)
        self.output_lines = output_lines
        self.states: dict[str, StepState] = step_states(lab, records)
        self.selected: Step = self._initial_step(start_step)
        self.services: dict[str, tuple[str, str, tuple[str, ...]]] = {
            service.id: ("stopped", f"not started yet (step {lab.index(service.step) + 1})", ())
            for service in lab.services
        }
        self.job: msg.JobKind | None = None
        self.running_step: str | None = None
        self.failed: set[str] = {
            sid for sid, rec in records.items() if rec.status in FAILED_STATUSES
        }
        self.hints_shown: dict[str, int] = {}
        self.solution_shown: set[str] = set()
        self.outcomes: dict[str, dict[int, tuple[str, str, str]]] = {}
        self.block_states: dict[int, tuple[str, str]] = {}
        self.prompt: str | None = None
        self.output_source: OutputBuffer | None = None
        self.search_query = ""
        self._terminal_hit: tuple[int, int] | None = None
        """Where the last terminal search hit was (line, column); Enter looks older."""
        self.what_next: Callable[[str], str] | None = None
        """Says what comes after this lab (the app knows the workshop and the cluster)."""

    # ------------------------------------------------------------------ layout

    @property
    def stale(self) -> dict[str, str]:
        """Completed steps that no longer pass, and why (from the progress records)."""
        return {
            step_id: record.stale
            for step_id, record in self.records.items()
            if record.complete and record.stale
        }

    def compose(self) -> ComposeResult:
        yield Static("", id="lab-title", markup=False)
        yield Static("", id="services", markup=False, classes="-empty")
        with Horizontal(id="lab-body"):
            yield StepList(self.lab, id="steps")
            with Vertical(id="step-main"):
                yield Static("", id="reload-problems", classes="-empty", markup=False)
                with Vertical(id="step-view"):
                    yield Static("", id="step-heading", markup=False)
                    with VerticalScroll(id="step-text"):  # the instructions scroll on their own
                        yield Markdown("", id="step-body")
                    with VerticalScroll(id="step-work"):  # so commands and checks stay in view
                        yield Static("", id="commands-title", classes="section-title")
                        yield Vertical(id="commands")
                        yield Static(
                            "Checks  (c: check now · l: live)",
                            id="checks-title",
                            classes="section-title",
                        )
                        yield ChecksPanel(id="checks")
                        yield Markdown("", id="hints")
                        yield Static("", id="solution", markup=False)
                yield Static("", id="output-title", markup=False)
                yield OutputPane(max_lines=self.output_lines, id="output", classes="-empty")
                with Horizontal(id="search-row"):
                    yield Static("Search output:", id="search-label", markup=False)
                    yield Input(id="search-input", placeholder="text, Enter finds the next older")
                with Horizontal(id="prompt-row"):
                    yield Static("", id="prompt-label", markup=False)
                    yield Input(id="prompt-input", placeholder="type your answer, Enter sends it")
                if self.terminal_pane:
                    yield TerminalPane(
                        focus_key="i", escape_key=self.escape_key, restart_key="T", id="terminal"
                    )
        yield EssentialFooter(NARROW_FOOTER)

    def on_mount(self) -> None:
        steps = self.query_one(StepList)
        steps.border_title = "Steps"
        steps.focus()
        self._refresh_states()
        self.query_one(StepList).select_step(self.selected.id)
        self._show_step()
        self._show_title()
        self._show_output_title()
        self._show_services()
        self._composed = True
        self._show_pending_terminal()

    def on_resize(self) -> None:
        self.set_class(self.size.width < NARROW, "-narrow")  # the compact layout (80×24)
        self.set_class(self.size.height < SHORT, "-short")

    def _initial_step(self, start: str | None) -> Step:
        if start is not None:
            for step in self.lab.steps:
                if step.id == start:
                    return step
        for step in self.lab.steps:
            if not self.states[step.id].complete:
                return step
        return self.lab.steps[-1]

    # ------------------------------------------------------------------ attributes

    def watch_records(self, records: Mapping[str, StepRecord]) -> None:
        self.states = step_states(self.lab, records)
        if self.is_mounted:
            self._refresh_states()
            self._show_heading()
            self._show_hints()

    def watch_live(self, live: bool) -> None:
        if self.is_mounted:
            self.query_one("#lab-title").set_class(live, "-live")
            self._show_title()

    def watch_context_label(self) -> None:
        if self.is_mounted:
            self._show_title()

    def watch_class_note(self) -> None:
        if self.is_mounted:
            self._show_title()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide what needs a real terminal when there is none (served to a browser), and
        what needs the terminal pane without one; let Ctrl+C reach a focused pane; offer
        x Cancel only while a job runs (Ctrl+C still says that nothing does). While the
        keyboard is in the pane every key goes to the shell, so the footer offers none of
        the lab's keys then, only the way back."""
        if action in PANE_ACTIONS and not self.terminal_pane:
            return False
        if self.terminal_focused:
            return False
        if action == "cancel" and self.job is None:
            return False  # the footer offers x Cancel only while something runs
        return self.real_terminal or action not in TERMINAL_ACTIONS

    # ------------------------------------------------------------------ terminal pane

    @property
    def terminal_focused(self) -> bool:
        """True while the keyboard goes to the lab shell in the pane."""
        if not self.terminal_pane or not self.is_mounted:
            return False
        return self.query_one(TerminalPane).focused

    def attach_terminal(self, shell: PaneShell) -> None:
        """Show the lab's shell in the pane (its output replaces the output log)."""
        self._terminal_pending = shell
        if self._composed:
            self._terminal_pending = None
            self.query_one("#output").display = False
            self.query_one("#output-title").display = False  # the terminal's row says it all
            self.query_one(TerminalPane).attach(shell)
            self._show_output_title()

    def terminal_failed(self, why: str) -> None:
        """The lab shell could not start: say so where the terminal would be."""
        self._terminal_pending = why
        if self._composed:
            self._terminal_pending = None
            self.query_one(TerminalPane).show_message(f"Terminal  ·  {why}", error=True)

    def _show_pending_terminal(self) -> None:
        pending = self._terminal_pending
        if isinstance(pending, str):
            self.terminal_failed(pending)
        elif pending is not None:
            self.attach_terminal(pending)

    def action_focus_terminal(self) -> None:
        """Move the keyboard to the lab's shell (starting it first if need be)."""
        if not self.query_one(TerminalPane).focus_terminal():
            self.post_message(msg.TerminalRequested())

    def action_paste_command(self) -> None:
        """Put the current command at the terminal's prompt, unrun, and focus it."""
        pane = self.query_one(TerminalPane)
        shell = pane.shell
        command = self.current_command()
        if command is None or shell is None or shell.pump is None or shell.tracker is None:
            self.notify("No command to put at the prompt here.", markup=False)
            return
        if not shell.tracker.at_empty_prompt:
            self.notify(BUSY, title="Terminal", severity="warning", markup=False)
            return
        shell.pump.paste(command, bracketed=shell.tracker.bracketed_paste)
        pane.focus_terminal()

    def action_restart_shell(self) -> None:
        """Start the lab's shell again (after ``exec bash`` took its marks away)."""
        if self._idle():
            self.post_message(msg.TerminalRequested(restart=True))

    def _terminal_busy(self) -> None:
        """Open the terminal pane while a key's commands run in it (their output shows)."""
        if self.terminal_pane:
            running = self.job is not None and self.job is not msg.JobKind.CHECK
            self.query_one(TerminalPane).set_busy(running)

    @on(TerminalView.Escaped)
    def _terminal_escaped(self) -> None:
        self.query_one(StepList).focus()

    # ------------------------------------------------------------------ showing

    def _refresh_states(self) -> None:
        self.query_one(StepList).show(self.states, running=self.running_step)
        self.query_one("#output-title").set_class(self.job is not None, "-busy")

    def _show_title(self) -> None:
        done = sum(1 for state in self.states.values() if state.complete)
        stale = sum(1 for state in self.states.values() if state is StepState.STALE)
        counter = f"{done}/{len(self.lab.steps)} steps"
        parts = [self.lab.title, counter + (f" ({stale} stale)" if stale else "")]
        if self.lab.needs_cluster:
            parts.append(self.context_label)
        else:
            parts.append("no cluster needed")
        if self.live:
            parts.append("● live checking")
        if self.class_note:
            parts.append(self.class_note)
        self.query_one("#lab-title", Static).update("  ·  ".join(parts))

    def _show_output_title(self) -> None:
        follow = self.query_one(OutputPane).follow
        busy = f"  ·  {self.job.value}… (x cancels)" if self.job else ""
        pane = self.query_one(OutputPane)
        how = "none yet" if pane.has_class("-empty") else f"f: follow {'on' if follow else 'off'}"
        if self._terminal_attached:  # the terminal shows what commands print
            self.query_one("#output-title", Static).update(
                f"Output log  (/: search the terminal){busy}"
            )
            return
        self.query_one("#output-title", Static).update(f"Output  ({how}){busy}")

    def _show_heading(self) -> None:
        step = self.selected
        state = self.states[step.id]
        number = self.lab.index(step.id) + 1
        text = f"Step {number} of {len(self.lab.steps)}: {step.title}  [{state.look.word}]"
        if state is StepState.LOCKED:
            blocker = blocking_step(self.lab, self.records, step.id)
            if blocker is not None:
                text += f"\nLocked until step {self.lab.index(blocker.id) + 1} passes."
        record = self.records.get(step.id)
        if state is StepState.FAILED and record is not None and record.message:
            text += f"\nLast attempt: {record.message}"
        if state is StepState.STALE and record is not None:
            text += f"\n{state.look.glyph} No longer passes: {record.stale}"
            text += "\nCheck again (c) once it is fixed, or run the step again (r)."
        if self.lab.setup and not any(state.complete for state in self.states.values()):
            text += "\nStarting fresh? Shift+S runs the lab's setup first."
        heading = self.query_one("#step-heading", Static)
        heading.update(text)
        show_state(heading, css_class(state), STATE_CLASSES)
        self._show_title()

    def _show_services(self) -> None:
        """One line per lab service (and the last lines of one that failed)."""
        panel = self.query_one("#services", Static)
        lines = []
        worst = ""
        for service in self.lab.services:
            state, message, output = self.services[service.id]
            lines.append(f"{SERVICE_ICONS.get(state, '?')} {service.label}: {message}")
            if state == "failed":
                lines.extend(f"    {line}" for line in output[-5:])
                worst = "-failed"
            elif state != "running" and worst != "-failed":
                worst = f"-{state}"
        if lines:
            lines[0] = "Services  " + lines[0]
            lines[1:] = ["          " + line for line in lines[1:]]
        panel.update("\n".join(lines))
        panel.set_class(not lines, "-empty")
        show_state(panel, worst or ("-running" if lines else None), SERVICE_CLASSES)

    def _show_step(self) -> None:
        step = self.selected
        self._show_heading()
        self.query_one("#step-body", Markdown).update(step.body or "_No instructions._")
        commands = self.query_one("#commands", Vertical)
        commands.remove_children()
        self.block_states = {}
        if step.run:
            commands.mount_all(CommandBlock(i, c.cmd) for i, c in enumerate(step.run))
            self._show_current_block()
            self.query_one("#commands-title", Static).update(
                "Commands  (r: all · e: next · 1-9: one)"
            )
        else:
            self.query_one("#commands-title", Static).update("No commands: do it yourself.")
        checks = self.query_one(ChecksPanel)
        checks.show_checks(step.check)
        self.call_after_refresh(self._restore_outcomes)
        self._show_hints()
        for part in self.query("#step-text, #step-work").results(VerticalScroll):
            part.scroll_home(animate=False)

    def _restore_outcomes(self) -> None:
        step = self.selected
        panel = self.query_one(ChecksPanel)
        remembered = self.outcomes.get(step.id, {})
        state = self.states[step.id]
        for row in panel.rows():
            if row.index in remembered:
                row.show(*remembered[row.index])
            elif state.complete:
                row.show("-passed", "passed earlier" if state is StepState.PASSED else "skipped")
            elif state is StepState.STALE:
                row.show("-failed", "no longer passes")

    def _show_hints(self) -> None:
        step = self.selected
        hints = self.query_one("#hints", Markdown)
        shown = self.hints_shown.get(step.id, 0)
        lines = [
            f"Hint {i + 1} of {len(step.hints)}: {hint.strip()}"
            for i, hint in enumerate(step.hints[:shown])
        ]
        if step.hints and shown < len(step.hints) and step.id in self.failed:
            lines.append(f"(h: hint {shown + 1} of {len(step.hints)})")
        hints.update("\n\n".join(lines))  # Markdown: `code` in a hint shows as code
        hints.set_class(not lines, "-empty")
        solution = self.query_one("#solution", Static)
        shown_solution = step.id in self.solution_shown
        if shown_solution:
            body = "\n".join(f"$ {c.cmd.strip()}" for c in step.solution_commands)
            solution.update(f"Solution:\n{body or '(none)'}")
        else:
            solution.update("")
        solution.set_class(not shown_solution, "-empty")

    def _blocks(self) -> list[CommandBlock]:
        return list(self.query_one("#commands", Vertical).query(CommandBlock))

    # ------------------------------------------------------------------ reports from workers

    def on_output_ready(self, message: msg.OutputReady) -> None:
        if self.output_source is None:
            return
        batch = self.output_source.drain()
        pane = self.query_one(OutputPane)
        opening = pane.has_class("-empty")
        if batch.dropped:
            pane.note("note", f"… {batch.dropped} lines scrolled past unseen …")
        pane.append(batch.items)
        if opening:
            self._show_output_title()

    def on_engine_event(self, message: msg.EngineEvent) -> None:
        event = message.event
        if isinstance(event, ev.StepStarted):
            self.running_step = event.step_id
            self._refresh_states()
        elif isinstance(event, ev.CommandStarted):
            if event.step_id == self.selected.id and event.phase is ev.Phase.RUN:
                self._show_block(event.index, "-running", "running…")
        elif isinstance(event, ev.CommandFinished):
            self._hide_prompt()
            if event.step_id == self.selected.id and event.phase is ev.Phase.RUN:
                if event.cancelled:
                    self._show_block(event.index, "-cancelled", "cancelled")
                elif event.timed_out:
                    self._show_block(event.index, "-failed", "✘ timed out")
                elif event.exit_code == 0:
                    self._show_block(event.index, "-ok", "✔")
                else:
                    self._show_block(event.index, "-failed", f"✘ exit status {event.exit_code}")
        elif isinstance(event, ev.PromptWaiting):
            self._show_prompt(event.prompt)
        elif isinstance(event, ev.CheckResult):
            state = CHECK_CLASS.get(event.status.value, "-unknown")
            if state == "-failed" and self._first_look(event.step_id):
                state = "-notyet"  # nothing was tried yet: not a failure, just not done
            said = event.message
            if state == "-error":  # the environment is broken: say what fixes it, not "hint"
                fix = environment_fix(said, getattr(self.app, "findings", ()))
                said += f"\n   Fix: {fix}" if fix else ""
            outcome = (state, said, event.label)
            self.outcomes.setdefault(event.step_id, {})[event.index] = outcome
            if event.step_id == self.selected.id:
                self.query_one(ChecksPanel).show_outcome(event.index, *outcome)
        elif isinstance(event, ev.ServiceChanged):
            self.services[event.service_id] = (event.state, event.message, event.output)
            self._show_services()
            if event.state == "failed":
                self.notify(
                    f"The service {event.label} did not start: {event.message}",
                    title="Service",
                    severity="error",
                    markup=False,
                )
        elif isinstance(event, ev.Notice):
            self.notify(event.message, severity="warning", markup=False)

    def _show_block(self, index: int, state: str, detail: str) -> None:
        self.block_states[index] = (state, detail)
        blocks = self._blocks()
        if 0 <= index < len(blocks):
            blocks[index].show(state, detail)
        self._show_current_block()

    def _show_current_block(self) -> None:
        """Show the current command (the one ``e`` runs, ``y`` copies) in full; the others
        take one line each, so a step's every command and check fit beside the terminal."""
        current = self._current_index()
        for block in self._blocks():
            block.set_class(block.index != current, "-collapsed")

    def on_job_started(self, message: msg.JobStarted) -> None:
        if message.kind.background:
            return
        self.job = message.kind
        self.running_step = message.step_id
        self._refresh_states()
        self._show_output_title()
        self._terminal_busy()
        self.refresh_bindings()

    def on_job_done(self, message: msg.JobDone) -> None:
        if not message.kind.background:
            self.job = None
            self.running_step = None
            self._hide_prompt()
            self._terminal_busy()
            self.refresh_bindings()
        was_stale = set(self.stale)
        self.records = message.records
        self._refresh_states()
        self._show_output_title()
        if message.error:
            self.notify(message.error, title="Engine error", severity="error", markup=False)
        elif message.kind in (msg.JobKind.SETUP, msg.JobKind.CLEANUP):
            what = "setup" if message.kind is msg.JobKind.SETUP else "cleanup"
            self.notify(f"The lab's {what} finished.", markup=False)
        result = message.result
        step_id = message.step_id
        if result is None or step_id is None:
            return
        step = self.lab.step(step_id)
        if result.status is StepStatus.PASSED:
            self._passed(step, was_stale=step_id in was_stale)
        elif result.status is StepStatus.SKIPPED:
            self._refresh_states()
            self._announce_next(step, f"↷ Skipped “{step.title}” (recorded as skipped).")
        elif result.status in (StepStatus.FAILED, StepStatus.ERROR):
            self._failed(step, message.kind, result.message, result.status)
        elif result.status is StepStatus.CANCELLED and message.kind is not msg.JobKind.LIVE:
            self.notify("Cancelled.", severity="warning")

    def _passed(self, step: Step, *, was_stale: bool) -> None:
        self._refresh_states()
        if step.id == self.selected.id:
            self._show_heading()
        self.failed.discard(step.id)
        if was_stale:
            self.notify(f"✔ “{step.title}” passes again.", markup=False)
            return
        self._announce_next(step, f"✔ “{step.title}” passed.")

    def _announce_next(self, step: Step, text: str) -> None:
        following = next_step(self.lab, step.id)
        if following is None:
            if all(state.complete for state in self.states.values()):
                after = f" {self.what_next(self.lab.id)}" if self.what_next else ""
                self.notify(
                    f"{text} Lab complete: well done!{after}",
                    title="Lab complete",
                    timeout=15,
                    markup=False,
                )
            else:
                self.notify(text, markup=False)
            return
        self.notify(
            f"{text} Next: “{following.title}” is unlocked; press n to go there.",
            title="Step unlocked",
            markup=False,
        )

    def _first_look(self, step_id: str) -> bool:
        """A check of a step nobody tried yet (no record): its misses are "not yet"."""
        return self.job is msg.JobKind.CHECK and step_id not in self.records

    def _failed(self, step: Step, kind: msg.JobKind, why: str, status: StepStatus) -> None:
        if kind is msg.JobKind.LIVE:
            return
        if status is StepStatus.ERROR:  # the environment is broken: no hint fixes that
            fix = environment_fix(why, getattr(self.app, "findings", ()))
            self.notify(
                f"! {why}" + (f"\nFix: {fix}" if fix else ""),
                title="Environment error",
                severity="error",
                markup=False,
            )
            return
        self.failed.add(step.id)
        self._show_hints()
        shown = self.hints_shown.get(step.id, 0)
        more = " Press h for a hint." if shown < len(step.hints) else ""
        if step.id not in self.records:  # checked before any attempt: not a failure
            self.notify(f"{why}{more}", title="Not yet", markup=False)
            return
        self.notify(f"✘ {why}{more}", title="Not yet", severity="warning", markup=False)

    def on_stale_steps(self, message: msg.StaleSteps) -> None:
        self.records = message.records
        self._refresh_states()
        self._show_heading()
        self._restore_outcomes()
        if message.stale:
            names = "; ".join(
                f"{self.lab.index(sid) + 1}. {self.lab.step(sid).title} ({why})"
                for sid, why in message.stale.items()
            )
            self.notify(
                f"Completed steps that no longer pass: {names}. "
                "Fix the cause and check again (c), or run them again (r).",
                title="Stale progress",
                severity="warning",
                timeout=10,
                markup=False,
            )

    # ------------------------------------------------------------------ reloading (run --watch)

    def show_problems(self, path: str, problems: tuple[str, ...]) -> None:
        """Show why the lab file no longer loads; the last good version keeps running."""
        banner = self.query_one("#reload-problems", Static)
        if not problems:
            banner.update("")
            banner.add_class("-empty")
            return
        head = f"{path} has errors; still running the last version that loaded:"
        banner.update("\n".join([head, *problems[:8]]))
        banner.remove_class("-empty")

    async def on_lab_swapped(self, message: msg.LabSwapped) -> None:
        old, lab = self.lab, message.lab
        position = old.index(self.selected.id)
        self.lab = lab
        for step_id in message.removed:
            for table in (self.outcomes, self.stale, self.hints_shown):
                table.pop(step_id, None)
            self.failed.discard(step_id)
            self.solution_shown.discard(step_id)
        ids = [step.id for step in lab.steps]
        moved = self.selected.id not in ids
        self.selected = (
            lab.step(self.selected.id) if not moved else lab.steps[min(position, len(ids) - 1)]
        )
        self.set_reactive(LabScreen.records, dict(message.records))
        self.states = step_states(lab, message.records)
        await self.query_one(StepList).set_lab(lab)
        self.query_one(StepList).select_step(self.selected.id)
        self._refresh_states()
        self.show_problems("", ())
        self._show_step()
        if moved:
            self.post_message(msg.PositionChanged(self.selected.id))
        text = f"Reloaded {lab.path.name}."
        if message.dropped:
            text += f" Progress of removed step(s) {', '.join(message.dropped)} was dropped."
        elif message.removed:
            text += f" Step(s) {', '.join(message.removed)} are gone from the file."
        self.notify(text, title="Lab file changed", markup=False)
        if message.error:
            self.notify(message.error, title="Progress", severity="error", markup=False)

    # ------------------------------------------------------------------ prompt

    def _show_prompt(self, prompt: str) -> None:
        self.prompt = prompt
        self.query_one("#prompt-label", Static).update(f"{prompt.strip()} ")
        self.query_one("#prompt-row").add_class("-shown")
        field = self.query_one("#prompt-input", Input)
        field.password = any(word in prompt.lower() for word in SECRET_WORDS)
        # now, not on Textual's next turn (``focus()``): the job's end may be handled first,
        # and would then find the line unfocused and leave the keys to land in it, hidden
        self.set_focus(field)

    def _hide_prompt(self) -> None:
        if self.prompt is None:
            return
        self.prompt = None
        self.query_one("#prompt-row").remove_class("-shown")
        field = self.query_one("#prompt-input", Input)
        field.value = ""
        if self.focused is field:  # (``has_focus`` follows only once the Focus event is handled)
            self.set_focus(self.query_one(StepList))

    @on(Input.Submitted, "#prompt-input")
    def _send_answer(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value
        field = event.input
        shown = "•" * len(text) if field.password else text
        self.query_one(OutputPane).note("note", f"› {shown}")
        field.value = ""
        self.prompt = None
        self.query_one("#prompt-row").remove_class("-shown")
        self.query_one(StepList).focus()
        self.post_message(msg.InputSubmitted(text))

    # ------------------------------------------------------------------ copy and search

    def _current_index(self) -> int | None:
        run = self.selected.run
        for index in range(len(run)):
            if self.block_states.get(index, ("", ""))[0] != "-ok":
                return index
        return len(run) - 1 if run else None

    def current_command(self) -> str | None:
        """The command the learner is at: the first block that has not succeeded yet."""
        index = self._current_index()
        return None if index is None else self.selected.run[index].cmd.strip()

    def action_copy_command(self) -> None:
        """Copy the current command to the clipboard (OSC 52, through the terminal)."""
        command = self.current_command()
        if command is None:
            self.notify("This step has no commands to copy.", markup=False)
            return
        self.app.copy_to_clipboard(command + "\n")
        first = command.splitlines()[0]
        self.notify(f"Copied: {first}", title="Clipboard", timeout=2, markup=False)

    def action_search(self) -> None:
        """Open the search line: it searches the terminal's raw scrollback (what the learner
        typed and what keys ran, all printed by the one lab shell), else the output log."""
        self.query_one("#search-row").add_class("-shown")
        if self._terminal_attached:
            self.query_one("#search-label", Static).update("Search the terminal:")
        self._show_output_title()
        self.query_one("#search-input", Input).focus()

    def _terminal_view(self) -> TerminalView | None:
        return self.query_one(TerminalPane).view if self._terminal_attached else None

    @property
    def _terminal_attached(self) -> bool:
        """True when the terminal pane shows the lab's shell in place of the output log."""
        return self.terminal_pane and self.query_one(TerminalPane).shell is not None

    @on(Input.Submitted, "#search-input")
    def _search(self, event: Input.Submitted) -> None:
        event.stop()
        query = event.value
        view = self._terminal_view()
        if view is not None:
            self._search_terminal(view, query)
            return
        pane = self.query_one(OutputPane)
        label = self.query_one("#search-label", Static)
        if not query:
            pane.mark(None)
            label.update("Search output:")
            return
        again = self.search_query == query and pane.marked is not None
        found = pane.find(query, before=pane.marked if again else None)
        if found is None and again:  # wrap around to the newest match
            found = pane.find(query)
        self.search_query = query
        pane.mark(found)
        if found is None:
            label.update("No match:")
        else:
            label.update(f"Line {found + 1} of {pane.line_count}:")

    def _search_terminal(self, view: TerminalView, query: str) -> None:
        """Enter: the newest hit in the terminal's scrollback, then each older one, wrapping."""
        label = self.query_one("#search-label", Static)
        if not query:
            self._terminal_hit = None
            view.scroll_to_live()
            label.update("Search the terminal:")
            return
        hits = view.search(query)
        if not hits:
            self._terminal_hit = None
            view.scroll_to_live()
            label.update("No match:")
            return
        index = len(hits) - 1
        previous = self._terminal_hit
        if self.search_query == query and previous is not None:
            older = [i for i, hit in enumerate(hits) if (hit.line, hit.start) < previous]
            index = older[-1] if older else len(hits) - 1  # wrap around to the newest
        self.search_query = query
        hit = hits[index]
        self._terminal_hit = (hit.line, hit.start)
        view.reveal(hit)
        label.update(f"Match {index + 1} of {len(hits)}:")

    def _close_search(self) -> None:
        self.query_one("#search-row").remove_class("-shown")
        self.query_one(OutputPane).mark(None)
        self.query_one("#search-label", Static).update("Search output:")
        view = self._terminal_view()
        if view is not None:
            view.scroll_to_live()
        self._terminal_hit = None
        self._show_output_title()
        self.query_one(StepList).focus()

    # ------------------------------------------------------------------ navigation

    def on_list_view_highlighted(self, event: ListView.Highlighted) -> None:
        event.stop()
        item = event.item
        if item is not self.query_one(StepList).highlighted_child:
            return  # a later key already moved on: this highlight is history
        step_id = getattr(item, "step_id", None)
        if step_id is not None:
            self._go_to(step_id)

    def _go_to(self, step_id: str) -> None:
        """Show ``step_id`` now, so the next queued key starts from it."""
        if step_id == self.selected.id:
            return
        self.selected = self.lab.step(step_id)
        self._show_step()
        self.post_message(msg.PositionChanged(step_id))

    def on_list_view_selected(self, event: ListView.Selected) -> None:
        event.stop()

    def select(self, step_id: str) -> None:
        """Show ``step_id`` (at once: keys queued behind this one see it selected)."""
        self.query_one(StepList).select_step(step_id)
        self._go_to(step_id)

    def action_next_step(self) -> None:
        """Go to the next step."""
        following = next_step(self.lab, self.selected.id)
        if following is None:
            self.notify("This is the last step.", markup=False)
            return
        self.select(following.id)

    def action_previous_step(self) -> None:
        """Go to the previous step."""
        index = self.lab.index(self.selected.id)
        if index > 0:
            self.select(self.lab.steps[index - 1].id)

    def action_back(self) -> None:
        """Back to the lab list (or out of the search or answer line first)."""
        if self.query_one("#search-row").has_class("-shown"):
            self._close_search()
            return
        if self.prompt is not None and self.query_one("#prompt-input", Input).has_focus:
            self.query_one(StepList).focus()
            return
        self.post_message(msg.LeaveLab())

    def on_output_pane_follow_changed(self, event: OutputPane.FollowChanged) -> None:
        self._show_output_title()

    def action_toggle_follow(self) -> None:
        """Follow the newest output line, or stop following."""
        pane = self.query_one(OutputPane)
        pane.follow = not pane.follow
        self._show_output_title()

    # ------------------------------------------------------------------ requests

    def _runnable(self) -> bool:
        step = self.selected
        if self.states[step.id].runnable:
            return True
        blocker = blocking_step(self.lab, self.records, step.id)
        where = f"step {self.lab.index(blocker.id) + 1}" if blocker else "the earlier steps"
        self.notify(f"This step is locked: finish {where} first.", severity="warning")
        return False

    def _idle(self) -> bool:
        if self.job is None:
            return True
        self.notify(f"Busy {self.job.value}; press x to cancel it.", severity="warning")
        return False

    def action_run_step(self) -> None:
        """Run every command of the step, then its checks."""
        if self._runnable() and self._idle():
            self.post_message(msg.RunRequested(self.selected.id))

    def action_run_command(self, index: int) -> None:
        """Run one command block."""
        if not self._runnable() or not self._idle():
            return
        if index >= len(self.selected.run):
            self.notify(f"This step has no command {index + 1}.", severity="warning")
            return
        self.post_message(msg.RunRequested(self.selected.id, index))

    def action_run_next_command(self) -> None:
        """Run the first command block that has not succeeded yet."""
        if not self.selected.run:
            self.notify("This step has no commands; check it with c.", markup=False)
            return
        for index in range(len(self.selected.run)):
            if self.block_states.get(index, ("", ""))[0] != "-ok":
                self.action_run_command(index)
                return
        self.notify("Every command ran; press c to check, or r to run all again.")

    @on(CommandBlock.Pressed)
    def _block_pressed(self, event: CommandBlock.Pressed) -> None:
        self.action_run_command(event.index)

    def action_check(self) -> None:
        """Run the step's checks now."""
        if self._idle():
            self.post_message(msg.ChecksRequested(self.selected.id))

    def action_toggle_live(self) -> None:
        """Keep re-checking the step while you work in your own terminal."""
        self.post_message(msg.LiveRequested(self.selected.id, not self.live))

    def action_interrupt(self) -> None:
        """Ctrl+C: stop the running command (or say that nothing runs)."""
        self.action_cancel()

    def action_cancel(self) -> None:
        """Stop the running command."""
        if self.job is None:
            self.notify("Nothing is running.", markup=False)
            return
        self.post_message(msg.CancelRequested())

    def action_shell(self) -> None:
        """Open your own shell in the lab's directory and environment."""
        if self._idle():
            self.post_message(msg.ShellRequested(self.selected.id))

    def action_hint(self) -> None:
        """Reveal the next hint (after a check has failed)."""
        step = self.selected
        if not step.hints:
            self.notify("This step has no hints; the check messages say what is missing.")
            return
        if step.id not in self.failed:
            self.notify("Hints unlock after a check fails: try it first (r or c).")
            return
        shown = self.hints_shown.get(step.id, 0)
        if shown >= len(step.hints):
            self.notify("No more hints; the solution (s) shows the commands.")
            return
        self.hints_shown[step.id] = shown + 1
        self.post_message(msg.HintRevealed(step.id, shown + 1))
        self._show_hints()
        self.call_after_refresh(self.query_one("#hints").scroll_visible, animate=False)

    def action_solution(self) -> None:
        """Show the solution, after a confirmation."""
        step = self.selected
        if step.id in self.solution_shown:
            self.notify("The solution is shown below the checks.")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.solution_shown.add(step.id)
                self._show_hints()
                self.call_after_refresh(self.query_one("#solution").scroll_visible, animate=False)

        self.app.push_screen(
            ConfirmDialog(
                "Show the solution?",
                "Working it out yourself sticks better, and the hints (h) may be "
                "enough. Show the solution's commands anyway?",
                yes="Show it",
                no="Not yet",
                id="solution-dialog",
            ),
            answered,
        )

    def action_skip(self) -> None:
        """Skip the step by running its solution, after a confirmation."""
        step = self.selected
        if not self._runnable() or not self._idle():
            return
        commands = "\n".join(f"  $ {c.cmd.strip()}" for c in step.solution_commands)
        self._ask(
            ConfirmDialog(
                f"Skip “{step.title}”?",
                "Skipping runs the solution in the lab shell. It may overwrite what "
                f"you made yourself:\n\n{commands or '  (no commands)'}\n\n"
                "The step is recorded as skipped, not passed, and only if its checks "
                "pass afterwards.",
                yes="Run the solution",
                no="Keep working",
                id="skip-dialog",
            ),
            msg.SkipRequested(step.id),
        )

    def _ask(self, dialog: ConfirmDialog, request: Message) -> None:
        """Post ``request`` if the learner says yes to ``dialog``."""

        def answered(yes: bool | None) -> None:
            if yes:
                self.post_message(request)

        self.app.push_screen(dialog, answered)

    def action_setup(self) -> None:
        """Run the lab's setup commands (for a fresh cluster)."""
        if not self.lab.setup:
            self.notify("This lab has no setup.")
        elif self._idle():
            self.post_message(msg.PhaseRequested(cleanup=False))

    def action_cleanup(self) -> None:
        """Run the lab's cleanup commands, after a confirmation."""
        if not self.lab.cleanup:
            self.notify("This lab has no cleanup.")
            return
        if not self._idle():
            return
        commands = "\n".join(f"  $ {c.cmd.strip()}" for c in self.lab.cleanup)
        self._ask(
            ConfirmDialog(
                "Run the lab's cleanup?",
                f"This undoes what the lab created:\n\n{commands}\n\n"
                "Your progress is kept; reset it separately (Shift+R) if you want to start over.",
                yes="Clean up",
                no="Not now",
                id="cleanup-dialog",
            ),
            msg.PhaseRequested(cleanup=True),
        )

    def action_reset_step(self) -> None:
        """Forget this step's progress, after a confirmation."""
        step = self.selected
        self._ask(
            ConfirmDialog(
                f"Reset “{step.title}”?",
                "labrunner forgets that this step was done (the cluster and your files "
                "stay as they are). You can run it again afterwards.",
                yes="Reset step",
                no="Keep it",
                id="reset-dialog",
            ),
            msg.ResetRequested(self.lab.id, step.id),
        )

    def action_reset_lab(self) -> None:
        """Forget the whole lab's progress, after a confirmation."""
        self._ask(
            ConfirmDialog(
                f"Reset the whole lab “{self.lab.title}”?",
                "labrunner forgets every step of this lab (the cluster and your files "
                "stay as they are). You start again from step 1.",
                yes="Reset lab",
                no="Keep it",
                id="reset-dialog",
            ),
            msg.ResetRequested(self.lab.id, None),
        )

    def progress_reset(self, step_id: str | None) -> None:
        """Forget the session's notes (hints, outcomes, stale flags) after a reset."""
        ids = [step_id] if step_id is not None else [s.id for s in self.lab.steps]
        for sid in ids:
            self.outcomes.pop(sid, None)
            self.failed.discard(sid)
            self.hints_shown.pop(sid, None)
            self.solution_shown.discard(sid)
        if step_id is None:  # the whole lab: start again where it starts
            self.select(self.lab.steps[0].id)
        self._show_step()


def environment_fix(why: str, findings: Iterable[Finding]) -> str:
    """What fixes an environment error: the doctor's fix for a failing tool, context or
    cluster (the same words ``labrunner doctor`` prints), else one for the error's kind."""
    for finding in findings:
        if not finding.ok and finding.fix and finding.blocking:
            return finding.fix
    return fix_for_message(why)


TERMINAL_ACTIONS = frozenset(a.action for a in LabScreen.ACTIONS if a.needs_terminal)
PANE_ACTIONS = frozenset({"focus_terminal", "restart_shell", "paste_command"})
"""Actions that hand the learner a real terminal: hidden when served to a browser."""
