"""What the learner has done, reduced to the answers every front end needs.

The progress store keeps raw records per step; the front ends and the engine
need answers such as "is this lab locked?", "is this step locked?", "which
step comes next?", "which completed steps must be re-checked?". Those rules
live here, once, as pure functions over plain data: ``labrunner list``, the
TUI and ``Engine.verify`` all ask them, so they cannot disagree.

Gating follows the lab: a step unlocks when every step before it is passed
(or skipped); steps already passed stay passed even if an earlier one is
reset, because a learner's recorded work is never thrown away. A lab unlocks
when every lab it requires is done. On resume, completed steps are re-checked
(``steps_to_recheck``); one that no longer passes is stale.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from labrunner.lab.model import Lab, Step, Workshop
from labrunner.state.store import StepRecord

FAILED_STATUSES = frozenset({"failed", "error"})


class StepState(enum.Enum):
    """Where a step stands for the learner."""

    LOCKED = "locked"
    CURRENT = "current"
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def complete(self) -> bool:
        """True for steps the learner may move past."""
        return self in (StepState.PASSED, StepState.SKIPPED)

    @property
    def runnable(self) -> bool:
        """True when the step's commands may run (everything before it is done)."""
        return self is not StepState.LOCKED


def first_open(lab: Lab, records: Mapping[str, StepRecord]) -> int | None:
    """Index of the first step that is not complete (None when the lab is done)."""
    for index, step in enumerate(lab.steps):
        record = records.get(step.id)
        if record is None or not record.complete:
            return index
    return None


def step_states(lab: Lab, records: Mapping[str, StepRecord]) -> dict[str, StepState]:
    """The state of every step of ``lab`` given its progress records."""
    gate = first_open(lab, records)
    states: dict[str, StepState] = {}
    for index, step in enumerate(lab.steps):
        record = records.get(step.id)
        if record is not None and record.complete:
            states[step.id] = StepState.SKIPPED if record.status == "skipped" else StepState.PASSED
        elif gate is not None and index > gate:
            states[step.id] = StepState.LOCKED
        elif record is not None and record.status in FAILED_STATUSES:
            states[step.id] = StepState.FAILED
        else:
            states[step.id] = StepState.CURRENT
    return states


def next_step(lab: Lab, step_id: str) -> Step | None:
    """The step after ``step_id``, if any."""
    index = lab.index(step_id)
    return lab.steps[index + 1] if index + 1 < len(lab.steps) else None


def blocking_step(lab: Lab, records: Mapping[str, StepRecord], step_id: str) -> Step | None:
    """The earliest unfinished step that keeps ``step_id`` locked, if it is locked."""
    gate = first_open(lab, records)
    if gate is None or lab.index(step_id) <= gate:
        return None
    return lab.steps[gate]


def unmet_requirements(lab: Lab, done: Callable[[str], bool]) -> tuple[str, ...]:
    """The labs ``lab`` requires that are not done: while any is left, ``lab`` is locked.

    ``done`` says whether a required lab counts as done: complete in the
    learner's progress (``list``, the TUI), or passed in this run (``verify``).
    """
    return tuple(r for r in lab.requires if not done(r))


def steps_to_recheck(lab: Lab, records: Mapping[str, StepRecord]) -> list[Step]:
    """Completed steps to check again when a lab is opened (those not marked ``recheck: false``).

    One whose checks no longer pass is *stale*: still complete in the
    progress file (the learner's work is never thrown away), but flagged, and
    not counted as passing until it passes again.
    """
    return [
        step
        for step in lab.steps
        if step.recheck and (record := records.get(step.id)) is not None and record.complete
    ]


@dataclass(frozen=True)
class LabProgress:
    """How far a learner is in one lab, and whether they may start it."""

    done: int
    total: int
    missing: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """Every step is passed or skipped."""
        return self.done >= self.total

    @property
    def locked(self) -> bool:
        """Some required lab is not complete yet."""
        return bool(self.missing)

    @property
    def label(self) -> str:
        """``3/5 steps``."""
        return f"{self.done}/{self.total} steps"


def lab_progress(
    workshop: Workshop, records: Mapping[str, Mapping[str, StepRecord]]
) -> dict[str, LabProgress]:
    """Progress and lock state of every lab in the workshop."""
    done = {
        lab.id: sum(
            1
            for step in lab.steps
            if (rec := records.get(lab.id, {}).get(step.id)) is not None and rec.complete
        )
        for lab in workshop.labs
    }
    totals = {lab.id: len(lab.steps) for lab in workshop.labs}
    out: dict[str, LabProgress] = {}
    for lab in workshop.labs:
        missing = unmet_requirements(lab, lambda r: done.get(r, 0) >= totals.get(r, 1))
        out[lab.id] = LabProgress(done[lab.id], totals[lab.id], missing)
    return out


def resume_target(
    workshop: Workshop,
    *,
    requested: str | None,
    position: tuple[str, str | None] | None,
) -> tuple[Lab, str | None] | None:
    """Which lab (and step) to open at start: the one asked for, else where the learner was."""
    if requested is not None:
        lab = workshop.find(requested)
        if lab is not None:
            step = position[1] if position and position[0] == lab.id else None
            return lab, step
    if position is not None:
        lab = workshop.find(position[0])
        if lab is not None:
            step = position[1]
            return lab, step if step in {s.id for s in lab.steps} else None
    return None
