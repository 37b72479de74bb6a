"""The messages that cross between worker threads, screens and the app.

Two directions, two kinds. Screens never touch the engine: they post a
*request* (run this step, cancel, open a shell) that bubbles up to the app,
which decides (context guard, one job at a time) and starts a worker. Workers
never touch widgets: they post *reports* (an engine event, a finished job,
stale steps) to the lab screen, which renders them. ``post_message`` is
thread-safe, so reports can be posted straight from a worker thread.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from pathlib import Path

from textual.message import Message

from labrunner.doctor import Finding
from labrunner.engine import events as ev
from labrunner.engine.runner import StepResult
from labrunner.lab.model import Lab
from labrunner.state.store import StepRecord


class JobKind(enum.Enum):
    """What a worker is doing with the lab session."""

    RUN = "running the step"
    COMMAND = "running a command"
    CHECK = "checking"
    SKIP = "skipping (running the solution)"
    RECHECK = "re-checking completed steps"
    LIVE = "live checking"
    SHELL = "preparing your shell"
    SETUP = "running the lab's setup"
    CLEANUP = "running the lab's cleanup"

    @property
    def background(self) -> bool:
        """True for jobs the learner did not ask for; they yield to those they did."""
        return self in (JobKind.RECHECK, JobKind.LIVE)


# --------------------------------------------------------------------------- reports


class EngineEvent(Message):
    """An engine event (anything but output lines, which travel in batches)."""

    bubble = False

    def __init__(self, event: ev.Event) -> None:
        super().__init__()
        self.event = event


class OutputReady(Message):
    """Output lines are waiting in the lab's output buffer."""

    bubble = False


class JobStarted(Message):
    """A worker took the lab session."""

    bubble = False

    def __init__(self, kind: JobKind, step_id: str | None) -> None:
        super().__init__()
        self.kind = kind
        self.step_id = step_id


class JobDone(Message):
    """A worker released the lab session; ``records`` is the lab's progress afterwards."""

    bubble = False

    def __init__(
        self,
        kind: JobKind,
        step_id: str | None,
        result: StepResult | None,
        records: Mapping[str, StepRecord],
        *,
        error: str | None = None,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.step_id = step_id
        self.result = result
        self.records = dict(records)
        self.error = error


class StaleSteps(Message):
    """Re-checks on resume are done: steps that no longer pass (and why), those that do,
    and the lab's progress records afterwards (which carry the stale flags)."""

    bubble = False

    def __init__(
        self,
        stale: Mapping[str, str],
        fresh: frozenset[str],
        records: Mapping[str, StepRecord],
    ) -> None:
        super().__init__()
        self.stale = dict(stale)
        self.fresh = fresh
        self.records = dict(records)


class ShellReady(Message):
    """The lab shell's environment and directory, ready for the learner's own shell."""

    def __init__(self, step_id: str, env: Mapping[str, str], cwd: Path) -> None:
        super().__init__()
        self.step_id = step_id
        self.env = dict(env)
        self.cwd = cwd


class LabFileChanged(Message):
    """A watched lab file's content changed on disk (``run --watch``)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path


class LabReloaded(Message):
    """A changed lab file, read again: the new lab, or the problems that keep the old one."""

    def __init__(self, lab_id: str, path: Path, lab: Lab | None, problems: tuple[str, ...]) -> None:
        super().__init__()
        self.lab_id = lab_id
        self.path = path
        self.lab = lab
        self.problems = problems


class LabSwapped(Message):
    """The open lab now runs its reloaded version; ``dropped`` steps' progress is gone."""

    bubble = False

    def __init__(
        self,
        lab: Lab,
        removed: tuple[str, ...],
        dropped: tuple[str, ...],
        records: Mapping[str, StepRecord],
        error: str | None = None,
    ) -> None:
        super().__init__()
        self.lab = lab
        self.removed = removed
        self.dropped = dropped
        self.records = dict(records)
        self.error = error


class DoctorDone(Message):
    """The doctor's findings (or why it could not run)."""

    def __init__(self, findings: list[Finding], error: str | None = None) -> None:
        super().__init__()
        self.findings = findings
        self.error = error


# --------------------------------------------------------------------------- requests


class StepRequest(Message):
    """Base for a request about one step of the open lab."""

    def __init__(self, step_id: str) -> None:
        super().__init__()
        self.step_id = step_id


class RunRequested(StepRequest):
    """Run a step's commands: all of them then the checks (``index`` None), or one block."""

    def __init__(self, step_id: str, index: int | None = None) -> None:
        super().__init__(step_id)
        self.index = index


class PhaseRequested(Message):
    """Run the lab's setup or cleanup commands (confirmed already for cleanup)."""

    def __init__(self, cleanup: bool) -> None:
        super().__init__()
        self.cleanup = cleanup


class ChecksRequested(StepRequest):
    """Run a step's checks now."""


class SkipRequested(StepRequest):
    """Run the solution and record the step as skipped (the learner confirmed)."""


class ShellRequested(StepRequest):
    """Open the learner's own shell in the lab shell's environment."""


class LiveRequested(StepRequest):
    """Turn live re-checking on or off for a step."""

    def __init__(self, step_id: str, on: bool) -> None:
        super().__init__(step_id)
        self.on = on


class ResetRequested(Message):
    """Forget a step's progress, or the whole lab's (``step_id`` None); confirmed already."""

    def __init__(self, lab_id: str, step_id: str | None) -> None:
        super().__init__()
        self.lab_id = lab_id
        self.step_id = step_id


class PositionChanged(StepRequest):
    """The learner moved to another step (remembered for the next start)."""


class CancelRequested(Message):
    """Stop the running command and any check polling."""


class InputSubmitted(Message):
    """A line the learner typed for a waiting prompt."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class LabChosen(Message):
    """Open a lab."""

    def __init__(self, lab_id: str) -> None:
        super().__init__()
        self.lab_id = lab_id


class LeaveLab(Message):
    """Close the open lab and go back to the list."""


class HintRevealed(StepRequest):
    """The learner revealed hint number ``number`` of a step (the class hears of it)."""

    def __init__(self, step_id: str, number: int) -> None:
        super().__init__(step_id)
        self.number = number


class ClassStatus(Message):
    """Publishing to the learner's class changed (online, offline, events waiting)."""

    def __init__(self, note: str) -> None:
        super().__init__()
        self.note = note


class TerminalRequested(Message):
    """Start the lab's shell for the terminal pane (or, with ``restart``, start it again)."""

    def __init__(self, *, restart: bool = False) -> None:
        super().__init__()
        self.restart = restart
