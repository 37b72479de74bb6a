"""The engine's events of running commands and whole labs, and the TUI's own.

They are part of ``labrunner.engine.events`` (that is where the engine and
its listeners reach them) but defined here, apart from the step and check
events, so that a ``labrunner check`` process, which never emits them, does
not pay for creating their classes at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from labrunner.engine.events import Event, Phase, StepStatus
from labrunner.verify.evidence import Section


@dataclass(frozen=True)
class LabStarted(Event):
    """A lab run began; ``step_ids`` are the steps it will run."""

    title: str
    step_ids: tuple[str, ...]


@dataclass(frozen=True)
class PhaseStarted(Event):
    """Setup or cleanup commands are about to run."""

    phase: Phase


@dataclass(frozen=True)
class CommandStarted(Event):
    """A command was sent to the lab shell."""

    step_id: str | None
    phase: Phase
    index: int
    command: str


@dataclass(frozen=True)
class OutputLine(Event):
    """One line of a command's output (ANSI codes kept)."""

    step_id: str | None
    text: str


@dataclass(frozen=True)
class PromptWaiting(Event):
    """A command seems to wait for input at ``prompt``.

    ``refused`` in a headless run: nobody can type, so the command was given
    end-of-file (or stopped); an ``expect`` answer is what it lacks.
    """

    step_id: str | None
    prompt: str
    refused: bool = False


@dataclass(frozen=True)
class CommandFinished(Event):
    """A command ended (exit code None when it timed out or was cancelled)."""

    step_id: str | None
    phase: Phase
    index: int
    command: str
    exit_code: int | None
    duration: float
    timed_out: bool = False
    cancelled: bool = False
    prompt: str | None = None


@dataclass(frozen=True)
class Forensics(Event):
    """What the cluster looked like when a step failed (events, pods, logs), redacted."""

    step_id: str
    sections: tuple[Section, ...]


@dataclass(frozen=True)
class LabFinished(Event):
    """A lab run ended."""

    status: StepStatus
    counts: dict[str, int] = field(default_factory=dict)
    duration: float = 0.0
    message: str = ""


@dataclass(frozen=True)
class ServiceChanged(Event):
    """A lab service was found running or stopped, was started again, or failed to start.

    ``state`` is one of stopped, starting, running, failed; ``output`` holds
    the last lines of a service the runner started (redacted).
    """

    service_id: str
    label: str
    state: str
    message: str
    output: tuple[str, ...] = ()


@dataclass(frozen=True)
class CleanupPlanned(Event):
    """``--cleanup`` is about to run these labs' cleanups, in this order (``lab_id``: the first)."""

    order: tuple[str, ...]


@dataclass(frozen=True)
class StepRecorded(Event):
    """A step's result was saved to progress: ``status`` is what the progress file says
    (passed, failed, error, skipped); ``message`` is redacted."""

    step_id: str
    status: str
    message: str = ""


@dataclass(frozen=True)
class StepViewed(Event):
    """The learner settled on a step in the TUI (read it, before or without running it)."""

    step_id: str


@dataclass(frozen=True)
class HintShown(Event):
    """The learner revealed hint number ``number`` of a step."""

    step_id: str
    number: int
