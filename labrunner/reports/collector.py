"""Collect engine events into a run record, and write it as JUnit XML or JSON.

CI systems read JUnit; scripts and dashboards read JSON. Both are built from
the same events the terminal view shows, so they can never disagree with it.
Output is kept per step only as a bounded tail (a command that floods 50 MB
must not end up in a report), stripped of terminal codes and redacted one
command at a time. Reports are written 0600: even redacted, a run log says
more about a learner's cluster than others on the machine need to read.
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labrunner import __version__
from labrunner.ansi import clip, clip_line, strip_ansi
from labrunner.engine import events as ev
from labrunner.fsutil import write_atomic
from labrunner.redact import LineRedactor, redact
from labrunner.verify.evidence import Section, render

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

OUTPUT_TAIL = 200
_XML_BAD = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def clean(text: str) -> str:
    """Text safe for a report: no terminal codes, no XML-illegal characters, redacted,
    and no line longer than ``MAX_LINE`` characters."""
    return clip(_XML_BAD.sub("", redact(strip_ansi(text))))


def _xml_safe(text: str) -> str:
    """``clean`` for output lines, which were redacted (line by line, knowing which
    prompts went unanswered) as they came: redacting them again would mask what a
    second look without that knowledge takes for a secret."""
    return clip(_XML_BAD.sub("", strip_ansi(text)))


@dataclass
class CheckRecord:
    """The last evaluation of one check."""

    verifier: str
    label: str
    status: str
    message: str
    details: str | None
    attempts: int


@dataclass
class CommandRecord:
    """One command that ran."""

    command: str
    phase: str
    exit_code: int | None
    duration: float
    timed_out: bool
    cancelled: bool


@dataclass
class StepRecord:
    """Everything known about one step of the run."""

    id: str
    title: str = ""
    status: str = "not-run"
    message: str = ""
    details: str | None = None
    duration: float = 0.0
    checks: dict[int, CheckRecord] = field(default_factory=dict)
    commands: list[CommandRecord] = field(default_factory=list)
    output: deque[str] = field(default_factory=lambda: deque(maxlen=OUTPUT_TAIL))
    hints: tuple[str, ...] = ()
    forensics: tuple[Section, ...] = ()


@dataclass
class LabRecord:
    """Everything known about one lab of the run."""

    id: str
    title: str
    status: str = "running"
    message: str = ""
    duration: float = 0.0
    started: str = ""
    steps: dict[str, StepRecord] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    phase_output: deque[str] = field(default_factory=lambda: deque(maxlen=OUTPUT_TAIL))
    phase_commands: list[CommandRecord] = field(default_factory=list)
    run: int | None = None
    """Which run of a ``--repeat`` this is (None when the labs ran once)."""


class ReportCollector:
    """An event sink that builds the run record for the report writers."""

    def __init__(self, *, workshop: str = "", context: str | None = None) -> None:
        self.workshop = workshop
        self.context = context
        self.labs: dict[str, LabRecord] = {}
        self.started = datetime.now(UTC)
        self._t0 = time.monotonic()
        self._redactor = LineRedactor()
        self.run: int | None = None
        self.runs = 1
        self.repeat: Any = None
        """A ``RepeatStats`` when the labs ran several times (its summary joins the JSON)."""

    def start_run(self, run: int, runs: int) -> None:
        """Record what follows as run ``run`` of ``runs`` (``--repeat``)."""
        self.run, self.runs = (run, runs) if runs > 1 else (None, 1)

    def _key(self, lab_id: str) -> str:
        return lab_id if self.run is None else f"{lab_id}#{self.run}"

    def __call__(self, event: ev.Event) -> None:
        lab = self.labs.get(self._key(event.lab_id))
        if isinstance(event, ev.LabStarted):
            lab = LabRecord(event.lab_id, event.title, started=_stamp(), run=self.run)
            for step_id in event.step_ids:
                lab.steps[step_id] = StepRecord(step_id)
            self.labs[self._key(event.lab_id)] = lab
            return
        if lab is None:
            return
        if isinstance(event, ev.StepStarted):
            step = lab.steps.setdefault(event.step_id, StepRecord(event.step_id))
            step.title = event.title
        elif isinstance(event, ev.CommandStarted):
            self._redactor.reset()
        elif isinstance(event, ev.PromptWaiting):
            if event.refused:
                self._redactor.unanswered(event.prompt)
        elif isinstance(event, ev.OutputLine):
            line = clip_line(self._redactor(strip_ansi(event.text)))
            target = (
                lab.steps[event.step_id].output if event.step_id in lab.steps else lab.phase_output
            )
            target.append(line)
        elif isinstance(event, ev.CommandFinished):
            self._redactor.reset()
            record = CommandRecord(
                redact(event.command),
                event.phase.value,
                event.exit_code,
                event.duration,
                event.timed_out,
                event.cancelled,
            )
            if event.step_id in lab.steps:
                lab.steps[event.step_id].commands.append(record)
            else:
                lab.phase_commands.append(record)
        elif isinstance(event, ev.CheckResult):
            step = lab.steps.setdefault(event.step_id, StepRecord(event.step_id))
            step.checks[event.index] = CheckRecord(
                event.verifier,
                event.label,
                event.status.value,
                event.message,
                event.details,
                event.attempt,
            )
        elif isinstance(event, ev.StepFinished):
            step = lab.steps.setdefault(event.step_id, StepRecord(event.step_id))
            step.status = event.status.value
            step.message = event.message
            step.details = event.details
            step.duration = event.duration
            step.hints = event.hints
        elif isinstance(event, ev.Forensics):
            step = lab.steps.setdefault(event.step_id, StepRecord(event.step_id))
            step.forensics = event.sections
        elif isinstance(event, ev.LabFinished):
            lab.status = event.status.value
            lab.message = event.message
            lab.duration = event.duration
        elif isinstance(event, ev.Notice):
            lab.notices.append(event.message)

    # ------------------------------------------------------------------ JSON

    def as_dict(self) -> dict[str, Any]:
        """The run as plain data (what ``--json`` writes)."""
        labs = []
        for lab in self.labs.values():
            steps = []
            for step in lab.steps.values():
                steps.append(
                    {
                        "id": step.id,
                        "title": step.title,
                        "status": step.status,
                        "message": clean(step.message),
                        "details": clean(step.details) if step.details else None,
                        "duration": round(step.duration, 3),
                        "hints": [clean(h) for h in step.hints],
                        "checks": [
                            {
                                "verifier": c.verifier,
                                "label": clean(c.label),
                                "status": c.status,
                                "message": clean(c.message),
                                "details": clean(c.details) if c.details else None,
                                "attempts": c.attempts,
                            }
                            for _, c in sorted(step.checks.items())
                        ],
                        "commands": [_command(c) for c in step.commands],
                        "output": [clean(line) for line in step.output],
                        "forensics": [
                            {"file": f.name, "title": f.title, "text": clean(f.text)}
                            for f in step.forensics
                        ],
                    }
                )
            labs.append(
                {
                    "id": lab.id,
                    **({"run": lab.run} if lab.run is not None else {}),
                    "title": lab.title,
                    "status": lab.status,
                    "message": clean(lab.message),
                    "duration": round(lab.duration, 3),
                    "started": lab.started,
                    "notices": [clean(n) for n in lab.notices],
                    "setup_cleanup": {
                        "commands": [_command(c) for c in lab.phase_commands],
                        "output": [clean(line) for line in lab.phase_output],
                    },
                    "steps": steps,
                }
            )
        ok = all(lab["status"] in ("passed", "skipped") for lab in labs)
        data = {
            "format": "labrunner-report/v1",
            "labrunner": __version__,
            "workshop": self.workshop,
            "context": self.context,
            "started": self.started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "duration": round(time.monotonic() - self._t0, 3),
            "status": "passed" if ok else "failed",
            "totals": self.totals(),
            "labs": labs,
        }
        if self.repeat is not None:
            data["repeat"] = self.repeat.as_dict()
        return data

    def totals(self) -> dict[str, int]:
        """Step counts by status over the whole run."""
        totals: dict[str, int] = {"steps": 0}
        for lab in self.labs.values():
            for step in lab.steps.values():
                totals["steps"] += 1
                totals[step.status] = totals.get(step.status, 0) + 1
        return totals

    def write_json(self, path: Path) -> None:
        """Write the JSON report atomically."""
        write_atomic(path, json.dumps(self.as_dict(), indent=2).encode("utf-8") + b"\n", mode=0o600)

    # ------------------------------------------------------------------ JUnit

    def as_junit(self) -> ET.Element:
        """The run as a JUnit ``<testsuites>`` element: one suite per lab, one case per step."""
        import xml.etree.ElementTree as ET  # lazy: only runs that write JUnit pay for it

        root = ET.Element("testsuites", name=f"labrunner {self.workshop}".strip())
        totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        total_time = 0.0
        for lab in self.labs.values():
            counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
            name = lab.id if lab.run is None else f"{lab.id} (run {lab.run}/{self.runs})"
            suite = ET.SubElement(root, "testsuite", name=name, timestamp=lab.started)
            props = ET.SubElement(suite, "properties")
            ET.SubElement(props, "property", name="title", value=clean(lab.title))
            if self.context:
                ET.SubElement(props, "property", name="kube-context", value=self.context)
            for step in lab.steps.values():
                counts["tests"] += 1
                case = ET.SubElement(
                    suite,
                    "testcase",
                    classname=name,
                    name=step.id,
                    time=f"{step.duration:.3f}",
                )
                message = clean(step.message)
                body = _failure_body(step)
                if step.status == "failed":
                    counts["failures"] += 1
                    ET.SubElement(case, "failure", message=message, type="failed").text = body
                elif step.status in ("error", "cancelled"):
                    counts["errors"] += 1
                    ET.SubElement(case, "error", message=message, type=step.status).text = body
                elif step.status in ("skipped", "not-run"):
                    counts["skipped"] += 1
                    ET.SubElement(case, "skipped", message=message or "not run")
                if step.output or step.forensics:
                    # line by line: the lines were redacted per command as they came, and
                    # one command's unfinished key must not mask the next command's output
                    parts = ["\n".join(_xml_safe(line) for line in step.output)]
                    if step.forensics:
                        parts.append("forensics:\n" + clean(render(step.forensics)))
                    ET.SubElement(case, "system-out").text = "\n\n".join(p for p in parts if p)
            for key, value in counts.items():
                suite.set(key, str(value))
                totals[key] += value
            suite.set("time", f"{lab.duration:.3f}")
            total_time += lab.duration
        for key, value in totals.items():
            root.set(key, str(value))
        root.set("time", f"{total_time:.3f}")
        return root

    def write_junit(self, path: Path) -> None:
        """Write the JUnit XML report atomically."""
        import xml.etree.ElementTree as ET  # lazy: see as_junit

        root = self.as_junit()
        ET.indent(root)
        data = ET.tostring(root, encoding="utf-8", xml_declaration=True)
        write_atomic(path, data + b"\n", mode=0o600)


def _command(c: CommandRecord) -> dict[str, Any]:
    return {
        "command": clean(c.command),
        "phase": c.phase,
        "exit_code": c.exit_code,
        "duration": round(c.duration, 3),
        "timed_out": c.timed_out,
        "cancelled": c.cancelled,
    }


def _failure_body(step: StepRecord) -> str:
    # each part redacted on its own, so an output tail that ends inside a key
    # does not mask the check results listed after it
    parts = []
    if step.details:
        parts.append(clean(step.details))
    for _, check in sorted(step.checks.items()):
        parts.append(clean(f"[{check.status}] {check.label}: {check.message}"))
    if step.hints:
        parts.append(clean("hint: " + step.hints[0]))
    return "\n".join(parts)


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
