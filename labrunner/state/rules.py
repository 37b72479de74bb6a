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
(``steps_to_recheck``); one that no longer passes is *stale*: it keeps its
record (and so does not lock what follows), but it has its own glyph and
word, and it is not counted as done anywhere until a check passes again.

How each state looks is decided here too, once (``LOOKS``): a glyph and a
word, so the TUI, ``labrunner list`` and the run log agree, and the word
alone tells the states apart where there is no colour (``NO_COLOR``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import pairwise

from labrunner.lab.model import Lab, Step, Workshop
from labrunner.state.store import StepRecord

FAILED_STATUSES = frozenset({"failed", "error"})


class StepState(enum.Enum):
    """Where a step stands for the learner."""

    LOCKED = "locked"
    TODO = "todo"
    PASSED = "passed"
    FAILED = "failed"
    STALE = "stale"
    SKIPPED = "skipped"

    @property
    def complete(self) -> bool:
        """True for steps that count as done (a stale step does not)."""
        return self in (StepState.PASSED, StepState.SKIPPED)

    @property
    def runnable(self) -> bool:
        """True when the step's commands may run (everything before it is done)."""
        return self is not StepState.LOCKED

    @property
    def look(self) -> Look:
        """The glyph and word every front end shows for this state."""
        return LOOKS[self]


@dataclass(frozen=True)
class Look:
    """How a step state shows: a one-cell glyph and a word that reads without colour."""

    glyph: str
    word: str

    def __str__(self) -> str:
        return f"{self.glyph} {self.word}"


LOOKS: Mapping[StepState, Look] = {
    StepState.LOCKED: Look("○", "locked"),
    StepState.TODO: Look("▶", "to do"),
    StepState.PASSED: Look("✔", "passed"),
    StepState.FAILED: Look("✘", "failed"),
    StepState.STALE: Look("⚠", "stale"),
    StepState.SKIPPED: Look("↷", "skipped"),
}
"""The one table of step states: the TUI, ``labrunner list`` and the run log use it."""

RUN_LOOKS: Mapping[str, Look] = {
    "passed": LOOKS[StepState.PASSED],
    "failed": LOOKS[StepState.FAILED],
    "error": Look("!", "error"),
    "skipped": LOOKS[StepState.SKIPPED],
    "cancelled": Look("■", "cancelled"),
    "not-run": Look("·", "not run"),
}
"""How a run's step outcomes show in the run log and the reports: the step states' own
looks where an outcome is one, so a report never marks a step as the TUI would not."""


def recorded_state(record: StepRecord | None) -> StepState | None:
    """The state a record alone gives a step (None when it says nothing final)."""
    if record is None:
        return None
    if record.complete:
        if record.stale:
            return StepState.STALE
        return StepState.SKIPPED if record.status == "skipped" else StepState.PASSED
    if record.status in FAILED_STATUSES:
        return StepState.FAILED
    return None


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
        recorded = recorded_state(record)
        if record is not None and record.complete and recorded is not None:
            states[step.id] = recorded
        elif gate is not None and index > gate:
            states[step.id] = StepState.LOCKED
        else:
            states[step.id] = recorded or StepState.TODO
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
    stale: int = 0

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
        """``3/5 steps``, and how many are stale when some are."""
        text = f"{self.done}/{self.total} steps"
        return f"{text} ({self.stale} stale)" if self.stale else text


def counts_as_done(record: StepRecord | None) -> bool:
    """True for a record of a step that is complete and not stale."""
    return record is not None and record.complete and not record.stale


def lab_progress(
    workshop: Workshop, records: Mapping[str, Mapping[str, StepRecord]]
) -> dict[str, LabProgress]:
    """Progress and lock state of every lab in the workshop (stale steps are not done).

    A lab whose steps are all complete unlocks the labs that require it even
    while some of its steps are stale: the learner did the work, and a stale
    step says it needs a look, not that the lab must be done again first.
    """
    finished = {
        lab.id: all(
            (rec := records.get(lab.id, {}).get(step.id)) is not None and rec.complete
            for step in lab.steps
        )
        for lab in workshop.labs
    }
    out: dict[str, LabProgress] = {}
    for lab in workshop.labs:
        lab_records = records.get(lab.id, {})
        done = sum(1 for step in lab.steps if counts_as_done(lab_records.get(step.id)))
        stale = sum(
            1
            for step in lab.steps
            if (rec := lab_records.get(step.id)) is not None and rec.complete and rec.stale
        )
        missing = unmet_requirements(lab, lambda r: finished.get(r, False))
        out[lab.id] = LabProgress(done, len(lab.steps), missing, stale)
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


@dataclass(frozen=True)
class RestorePoint:
    """The exports and directory a lab shell resumes with."""

    exports: Mapping[str, str]
    cwd: str


def restore_point(
    lab: Lab, records: Mapping[str, StepRecord], *, before: str | None = None
) -> RestorePoint:
    """Exports and directory as of the last completed step (before ``before``, when given).

    ``labrunner verify --from STEP`` resumes as of the step before STEP, never
    with what a later step left behind; the TUI resumes after everything done.
    """
    exports: dict[str, str] = {}
    cwd = ""
    for step in lab.steps:
        if step.id == before:
            break
        record = records.get(step.id)
        if record is None or not record.complete:
            continue
        exports.update(record.exports)
        if record.cwd:
            cwd = record.cwd
    return RestorePoint(exports, cwd)


class StaleCause(enum.Enum):
    """Why a completed step no longer passes, as far as the runner can tell."""

    SERVICE = "service"
    CLUSTER = "cluster"
    FILE = "file"
    CHECK = "check"


def stale_message(cause: StaleCause, *, subject: str = "", detail: str = "") -> str:
    """The one-line message a stale step shows, worded for its cause."""
    if cause is StaleCause.SERVICE:
        return f"the service {subject} is not running: {detail}".rstrip(": ")
    if cause is StaleCause.CLUSTER:
        return f"the cluster changed: {detail}".rstrip(": ")
    if cause is StaleCause.FILE:
        return f"a file this lab made is gone: {subject}"
    return f"its checks no longer pass: {detail}".rstrip(": ")


IDLE_GAP = 30 * 60
"""Gaps between two records longer than this are time away, not time spent."""


@dataclass(frozen=True)
class WorkshopProgress:
    """The whole workshop at a glance: labs and steps done, and time spent."""

    labs_done: int
    labs_total: int
    steps_done: int
    steps_total: int
    seconds: int
    """Time between a lab's recorded steps (gaps over ``IDLE_GAP`` left out), summed."""

    @property
    def label(self) -> str:
        """``1/3 labs done · 4/10 steps · about 12 min spent``."""
        text = (
            f"{self.labs_done}/{self.labs_total} labs done · "
            f"{self.steps_done}/{self.steps_total} steps"
        )
        if self.seconds >= 60:
            hours, minutes = divmod(self.seconds // 60, 60)
            spent = f"{hours} h {minutes} min" if hours else f"{minutes} min"
            text += f" · about {spent} spent"
        return text


def workshop_progress(
    workshop: Workshop,
    records: Mapping[str, Mapping[str, StepRecord]],
    progress: Mapping[str, LabProgress],
) -> WorkshopProgress:
    """Sum ``progress`` over the workshop; time spent comes from the records' timestamps."""
    seconds = 0
    for lab in workshop.labs:
        times = sorted(
            stamp
            for rec in records.get(lab.id, {}).values()
            if (stamp := _timestamp(rec.at)) is not None
        )
        seconds += sum(int(gap) for a, b in pairwise(times) if (gap := b - a) <= IDLE_GAP)
    labs = [progress[lab.id] for lab in workshop.labs if lab.id in progress]
    return WorkshopProgress(
        labs_done=sum(1 for p in labs if p.complete),
        labs_total=len(workshop.labs),
        steps_done=sum(p.done for p in labs),
        steps_total=sum(len(lab.steps) for lab in workshop.labs),
        seconds=seconds,
    )


def _timestamp(at: str) -> float | None:
    # lazy: only the workshop's summary reads timestamps, and ``check`` never asks for it
    from datetime import UTC, datetime

    try:
        return datetime.strptime(at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None
