"""The headless view: how ``labrunner verify`` and ``check`` show progress in a terminal.

On a terminal it uses colour (unless ``NO_COLOR`` is set, or ``TERM`` is
``dumb``); in CI logs it prints plain, prefixed lines that read well when
grepped. The colours are plain SGR codes written here (a handful of styles):
Rich, which drew them before, took longer to import than a whole
``labrunner check`` of a cluster step takes to run. It only consumes
engine events, so it shows exactly what the reports record. Everything it
prints passes through the redactor first (``labrunner.redact``), one
command's output at a time, so an unfinished key never masks what follows.
"""

from __future__ import annotations

import os
import sys

from labrunner.ansi import clip, only_colours, strip_ansi
from labrunner.durations import format_duration
from labrunner.engine import events as ev
from labrunner.engine.events import StepStatus
from labrunner.redact import LineRedactor, redact
from labrunner.state.rules import RUN_LOOKS
from labrunner.verify.outcome import Status

TYPE_CHECKING = False  # as typing's, without importing typing (a start-up cost)
if TYPE_CHECKING:
    from typing import IO

    from labrunner.reports import ReportCollector

REPEAT_LIMIT = 200
"""A check message longer than this is not repeated in its step's verdict line."""

_MARK = {
    StepStatus.PASSED: ("PASS", RUN_LOOKS["passed"].glyph, "green"),
    StepStatus.FAILED: ("FAIL", RUN_LOOKS["failed"].glyph, "red"),
    StepStatus.ERROR: ("ERROR", RUN_LOOKS["error"].glyph, "magenta"),
    StepStatus.SKIPPED: ("SKIP", RUN_LOOKS["skipped"].glyph, "yellow"),
    StepStatus.CANCELLED: ("CANCEL", RUN_LOOKS["cancelled"].glyph, "yellow"),
}
_SERVICE = {"running": "green", "starting": "cyan", "stopped": "yellow", "failed": "red"}
_CHECK = {Status.PASSED: "✔", Status.PENDING: "…", Status.FAILED: "✘", Status.ERROR: "!"}
_SGR = {
    "bold": "1",
    "dim": "2",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "magenta": "35",
    "cyan": "36",
}
"""The SGR code of each word a style may use (the standard colours every terminal has)."""
RESET = "\x1b[0m"


def styled(text: str, style: str) -> str:
    """``text`` in ``style`` (words such as ``bold cyan``), each line on its own, as a
    terminal shows it; unknown words are ignored."""
    codes = ";".join(_SGR[word] for word in style.split() if word in _SGR)
    if not codes:
        return text
    return "\n".join(f"\x1b[{codes}m{line}{RESET}" if line else line for line in text.split("\n"))


def _wants_colour(stream: IO[str]) -> bool:
    """Colour on a terminal, unless ``NO_COLOR`` is set or the terminal says it is dumb."""
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError):
        return False
    term = os.environ.get("TERM", "").lower()
    return terminal and not os.environ.get("NO_COLOR") and term not in ("dumb", "unknown")


class Printer:
    """An event sink that prints a readable run log."""

    def __init__(self, *, quiet: bool = False, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self.quiet = quiet
        self.color = _wants_colour(self.stream)
        self._checks: dict[int, ev.CheckResult] = {}
        self._redact = LineRedactor()

    def _out(self, text: str, style: str | None = None) -> None:
        if self.color and style:
            text = styled(text, style)
        self.stream.write(text + "\n")
        self.stream.flush()

    def _ansi_line(self, text: str) -> None:
        if self.color:
            # the command's own colours stay; cursor moves, titles and the like do not
            self.stream.write(styled("  │ ", "dim") + only_colours(text) + RESET + "\n")
        else:
            self.stream.write("  | " + strip_ansi(text) + "\n")

    def __call__(self, event: ev.Event) -> None:
        # a check's events first: the others are defined on first use (engine.runevents)
        if isinstance(event, ev.StepStarted):
            self._checks = {}
            self._out(f"-- {event.step_id}: {event.title}", "bold cyan")
        elif isinstance(event, ev.CheckResult):
            self._checks[event.index] = event
        elif isinstance(event, ev.StepFinished):
            for _, check in sorted(self._checks.items()):
                style = "green" if check.status is Status.PASSED else "red"
                label, message = clip(redact(check.label)), clip(redact(check.message))
                self._out(f"  {_CHECK[check.status]} {label}: {message}", style)
            word, mark, style = _MARK[event.status]
            text = f"{mark} {word} {event.step_id} ({format_duration(event.duration)})"
            if event.message and event.status is not StepStatus.PASSED:
                shown = [c.message for _, c in sorted(self._checks.items())]
                text += f": {clip(redact(_verdict(event.message, shown)))}"
            self._out(text, f"bold {style}")
            if event.details and event.status in (StepStatus.FAILED, StepStatus.ERROR):
                # Redact the whole block first: a tail may start in the middle of a key.
                for line in redact(event.details).splitlines()[-15:]:
                    self._out(f"    {line}", "dim")
            for hint in event.hints[:1]:
                self._out(f"  hint: {redact(hint.strip())}", "yellow")
        elif isinstance(event, ev.Notice):
            sys.stderr.write(f"labrunner: warning: {redact(event.message)}\n")
        elif isinstance(event, ev.LabStarted):
            self._out(f"== {event.lab_id}: {event.title}", "bold")
        elif isinstance(event, ev.PhaseStarted):
            self._out(f"-- {event.phase.value}", "bold cyan")
        elif isinstance(event, ev.CommandStarted):
            self._redact.reset()
            if not self.quiet:
                first = event.command.strip().splitlines()
                more = " …" if len(first) > 1 else ""
                self._out(f"  $ {redact(first[0]) if first else ''}{more}", "bold")
        elif isinstance(event, ev.OutputLine):
            if not self.quiet:
                # Redact what is shown, not the escape codes around it; keep the
                # colours of a line that had nothing to hide.
                plain = strip_ansi(event.text)
                masked = self._redact(plain)
                self._ansi_line(event.text if masked == plain else masked)
        elif isinstance(event, ev.PromptWaiting):
            if event.refused:  # shown even when quiet: it is why the step will fail
                self._redact.unanswered(event.prompt)
                self._out(
                    f"  ? waiting for input at: {redact(event.prompt)} — nobody can type in "
                    "a headless run: it gets end-of-file (add an `expect` answer)",
                    "yellow",
                )
            elif not self.quiet:
                self._out(f"  ? waiting for input at: {redact(event.prompt)}", "yellow")
        elif isinstance(event, ev.CommandFinished):
            self._redact.reset()
            if event.timed_out:
                self._out(f"  ⏱ timed out after {format_duration(event.duration)}", "red")
            elif event.exit_code not in (0, None) and not self.quiet:
                self._out(f"  exit {event.exit_code}", "red")
        elif isinstance(event, ev.LabFinished):
            word, mark, style = _MARK[event.status]
            counts = ", ".join(f"{v} {k}" for k, v in sorted(event.counts.items()))
            self._out(
                f"{mark} {event.lab_id}: {word} ({counts}; {format_duration(event.duration)})",
                f"bold {style}",
            )
        elif isinstance(event, ev.ServiceChanged):
            self._out(
                f"  ~ service {event.label}: {redact(event.message)}",
                _SERVICE.get(event.state, "yellow"),
            )
            if event.state == "failed":
                for line in event.output:
                    self._out(f"    {redact(line)}", "dim")
        elif isinstance(event, ev.CleanupPlanned):
            self._out("== cleanup, in reverse dependency order: " + " → ".join(event.order), "bold")
        elif isinstance(event, ev.Forensics):
            names = ", ".join(section.name for section in event.sections)
            self._out(f"  forensics collected: {names}", "dim")

    def heading(self, text: str) -> None:
        """A heading line between parts of a run (``run 2/3`` of a ``--repeat``)."""
        self._out(f"#### {text}", "bold magenta")

    def summary(self, collector: ReportCollector) -> None:
        """A last line with totals."""
        totals = collector.totals()
        parts = [
            f"{totals.get(k, 0)} {k}"
            for k in ("passed", "failed", "error", "skipped", "cancelled")
            if totals.get(k)
        ]
        self._out(f"{totals['steps']} steps: " + (", ".join(parts) or "none run"), "bold")


def _verdict(message: str, checks: list[str]) -> str:
    """A step's message without a long check message printed just above it again."""
    for shown in checks:
        if len(shown) > REPEAT_LIMIT and shown in message:
            return message.replace(shown, "(see the check above)")
    return message
