"""GitHub Actions conventions for ``verify``: log groups, annotations, a step summary.

When ``GITHUB_ACTIONS=true`` (or ``--annotations github``) the run log gets
one collapsible ``::group::`` per lab, every failed or errored step becomes an
``::error`` annotation pointing at the step's line in its lab file (so the
pull request shows it on the diff), a step skipped for a reason becomes a
``::warning``, and a Markdown table of every step goes to the file named by
``$GITHUB_STEP_SUMMARY``.

Workflow commands are lines on stdout: their data escapes ``%``, CR and LF;
their properties (``file``, ``title``) escape ``,`` and ``:`` too, or the
runner would cut them short. Everything is redacted like the other reports,
and file paths are relative to ``$GITHUB_WORKSPACE`` (where the runner looks
for them).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from labrunner.durations import format_duration
from labrunner.engine import events as ev
from labrunner.engine.events import StepStatus
from labrunner.lab.model import Lab, Workshop
from labrunner.redact import redact
from labrunner.state.rules import RUN_LOOKS

MAX_MESSAGE = 4000
DETAIL_LINES = 10
SUMMARY_MESSAGE = 300


def escape_data(text: str) -> str:
    """A workflow command's message: ``%``, CR and LF escaped."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value: also ``:`` and ``,`` escaped."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str, **properties: str | int) -> str:
    """One workflow command line, e.g. ``::error file=x,line=3::message``."""
    props = ",".join(f"{k}={escape_property(str(v))}" for k, v in properties.items())
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


def wanted(option: str, env: Mapping[str, str]) -> bool:
    """Whether to speak GitHub's conventions: ``--annotations github``, or ``auto`` on Actions."""
    if option == "auto":
        return env.get("GITHUB_ACTIONS") == "true"
    return option == "github"


@dataclass
class _Row:
    """One step's line in the step summary's table."""

    lab: str
    step: str
    status: str
    duration: float
    message: str


class GitHubActions:
    """An event sink around the run log: groups and annotations on ``stream``.

    ``inner`` (the run log) sees every event; a lab's group opens before its
    first line and closes after its last, and the lab's annotations follow the
    group so they stay visible when it is collapsed.
    """

    def __init__(
        self,
        workshop: Workshop,
        *,
        inner: Callable[[ev.Event], None],
        stream: IO[str],
        workspace: str | None = None,
        label: str = "",
    ) -> None:
        self.workshop = workshop
        self.inner = inner
        self.stream = stream
        self.workspace = Path(workspace).resolve() if workspace else None
        self.label = label
        self.rows: list[_Row] = []
        self._pending: list[str] = []

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.LabStarted):
            self._pending = []
            title = redact(f"{self.label}{event.lab_id}: {event.title}")
            self._write(command("group", title))
        self.inner(event)
        if isinstance(event, ev.StepFinished):
            self._step(event)
        elif isinstance(event, ev.LabFinished):
            self._write("::endgroup::")
            if not self._pending and event.status in (StepStatus.FAILED, StepStatus.ERROR):
                self._lab_failed(event)
            for line in self._pending:
                self._write(line)
            self._pending = []

    def _lab(self, lab_id: str) -> Lab | None:
        try:
            return self.workshop.lab(lab_id)
        except KeyError:
            return None

    def _file(self, lab: Lab) -> str:
        path = lab.path.resolve()
        if self.workspace is not None and path.is_relative_to(self.workspace):
            return str(path.relative_to(self.workspace))
        return str(path)

    def _step(self, event: ev.StepFinished) -> None:
        message = redact(event.message)
        self.rows.append(
            _Row(event.lab_id, event.step_id, event.status.value, event.duration, message)
        )
        lab = self._lab(event.lab_id)
        if lab is None:
            return
        try:
            step = lab.step(event.step_id)
        except KeyError:
            return
        line = step.where.line if step.where else 1
        where: dict[str, str | int] = {
            "file": self._file(lab),
            "line": line,
            "title": f"{lab.id}/{step.id}",
        }
        if event.status in (StepStatus.FAILED, StepStatus.ERROR):
            text = message or event.status.value
            if event.details:
                tail = redact(event.details).splitlines()[-DETAIL_LINES:]
                text += "\n" + "\n".join(tail)
            if event.hints:
                text += "\nhint: " + redact(event.hints[0].strip())
            self._pending.append(command("error", _clip(text), **where))
        elif event.status is StepStatus.SKIPPED and _has_reason(event.message):
            self._pending.append(command("warning", _clip(f"skipped: {message}"), **where))

    def _lab_failed(self, event: ev.LabFinished) -> None:
        """A lab that failed without a failed step (its setup did): point at the setup."""
        lab = self._lab(event.lab_id)
        if lab is None:
            return
        first = lab.setup[0].where if lab.setup and lab.setup[0].where else lab.where
        line = first.line if first else 1
        self._pending.append(
            command(
                "error",
                _clip(redact(event.message) or event.status.value),
                file=self._file(lab),
                line=line,
                title=lab.id,
            )
        )

    def summary(self, title: str) -> str:
        """The Markdown table for ``$GITHUB_STEP_SUMMARY``."""
        lines = summary_head(title)
        for row in self.rows:
            lines.append(
                f"| {cell(row.lab)} | {cell(row.step)} | {_mark(row.status)} "
                f"| {format_duration(row.duration)} | {cell(row.message, SUMMARY_MESSAGE)} |"
            )
        return "\n".join(lines) + "\n"


def _mark(status: str) -> str:
    """A step summary's outcome cell: the run log's glyph and word for it."""
    look = RUN_LOOKS.get(status)
    return str(look) if look is not None else status


def summary_head(title: str) -> list[str]:
    """The heading and column header of a step summary table."""
    return [
        f"### {cell(title)}",
        "",
        "| lab | step | outcome | time | message |",
        "|---|---|---|---:|---|",
    ]


def write_summary(text: str, env: Mapping[str, str] | None = None) -> Path | None:
    """Append ``text`` to ``$GITHUB_STEP_SUMMARY`` (returns the file, None when unset)."""
    name = (env if env is not None else os.environ).get("GITHUB_STEP_SUMMARY")
    if not name:
        return None
    path = Path(name)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(text + "\n")
    return path


def _has_reason(message: str) -> bool:
    """A skip with its own reason (a need, a tool), not the echo of an earlier failure."""
    return bool(message) and not message.startswith(("not run:", "requires ", "setup failed"))


def _clip(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def cell(text: str, limit: int | None = None) -> str:
    """``text`` as one Markdown table cell: one line, ``|`` escaped, at most ``limit`` long."""
    flat = " ".join(text.split())
    if limit is not None and len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return flat.replace("\\", "\\\\").replace("|", "\\|")
