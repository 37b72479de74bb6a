"""Events the engine emits while it runs labs: plain, frozen dataclasses.

The engine never knows who listens. The CLI prints them, the report writers
collect them, and the TUI turns them into Textual messages; tests assert on
them. Events carry ids, not model objects, so they can be logged or sent
across threads without dragging the lab along.

Creating a frozen dataclass costs about half a millisecond, and ``labrunner
check`` is a process whose start-up is its cost, yet it emits only step and
check events. The events of running commands and whole labs, and the TUI's
own, are therefore defined in ``labrunner.engine.runevents`` and loaded on
first use; they are reached here all the same (``events.OutputLine``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from labrunner.verify.outcome import Status

TYPE_CHECKING = False  # as typing's, without importing typing (a start-up cost)
if TYPE_CHECKING:
    from typing import Any

    from labrunner.engine.runevents import (
        CleanupPlanned,
        CommandFinished,
        CommandStarted,
        Forensics,
        HintShown,
        LabFinished,
        LabStarted,
        OutputLine,
        PhaseStarted,
        PromptWaiting,
        ServiceChanged,
        StepRecorded,
        StepViewed,
    )


class StepStatus(enum.Enum):
    """How a step ended."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def ok(self) -> bool:
        """True when the step does not count against the run."""
        return self in (StepStatus.PASSED, StepStatus.SKIPPED)


class Phase(enum.Enum):
    """Which list of commands a command belongs to."""

    SETUP = "setup"
    RUN = "run"
    SOLUTION = "solution"
    CLEANUP = "cleanup"


@dataclass(frozen=True)
class Event:
    """Base class: every event names its lab."""

    lab_id: str


@dataclass(frozen=True)
class StepStarted(Event):
    """A step began."""

    step_id: str
    index: int
    title: str


@dataclass(frozen=True)
class CheckResult(Event):
    """One evaluation of one check."""

    step_id: str
    index: int
    verifier: str
    label: str
    status: Status
    message: str
    details: str | None
    attempt: int
    elapsed: float


@dataclass(frozen=True)
class StepFinished(Event):
    """A step ended; ``message`` says why when it did not pass."""

    step_id: str
    status: StepStatus
    message: str = ""
    details: str | None = None
    duration: float = 0.0
    hints: tuple[str, ...] = ()
    attempts: int = 0


@dataclass(frozen=True)
class Notice(Event):
    """Something the learner should know that does not stop the run."""

    message: str


__all__ = [
    "CheckResult",
    "CleanupPlanned",
    "CommandFinished",
    "CommandStarted",
    "Event",
    "Forensics",
    "HintShown",
    "LabFinished",
    "LabStarted",
    "Notice",
    "OutputLine",
    "Phase",
    "PhaseStarted",
    "PromptWaiting",
    "ServiceChanged",
    "StepFinished",
    "StepRecorded",
    "StepStarted",
    "StepStatus",
    "StepViewed",
]

_LATER = frozenset(__all__) - frozenset(globals())
"""The names of ``__all__`` defined in ``runevents``: every one not defined above."""


def __getattr__(name: str) -> Any:
    # the events a check never emits, defined on first use (see the module's docstring)
    if name in _LATER:
        from labrunner.engine import runevents

        value = getattr(runevents, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
