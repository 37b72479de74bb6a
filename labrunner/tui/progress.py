"""What the learner has done, reduced to what the screens show.

The progress store keeps raw records per step; the screens need answers such
as "is this step locked?", "which step comes next?", "is this lab open yet
and how far along is it?". Those rules live here as pure functions over plain
data, so they are unit-tested without a terminal and the widgets stay free of
policy: a widget gets a state and turns it into a CSS class.

Gating follows the lab: a step unlocks when every step before it is passed
(or skipped); steps already passed stay passed even if an earlier one is
reset, because a learner's recorded work is never thrown away by the UI.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from labrunner.lab.model import Lab, Step, Workshop
from labrunner.state.store import StepRecord

FAILED_STATUSES = frozenset({"failed", "error"})


class StepState(enum.Enum):
    """How a step shows in the step list; the value is its CSS class."""

    LOCKED = "-locked"
    CURRENT = "-current"
    PASSED = "-passed"
    FAILED = "-failed"
    SKIPPED = "-skipped"

    @property
    def complete(self) -> bool:
        """True for steps the learner may move past."""
        return self in (StepState.PASSED, StepState.SKIPPED)

    @property
    def runnable(self) -> bool:
        """True when the step's commands may run (everything before it is done)."""
        return self is not StepState.LOCKED


STATE_CLASSES = tuple(state.value for state in StepState)
ICONS = {
    StepState.LOCKED: "○",
    StepState.CURRENT: "▶",
    StepState.PASSED: "✔",
    StepState.FAILED: "✘",
    StepState.SKIPPED: "↷",
}


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
        missing = tuple(r for r in lab.requires if done.get(r, 0) < totals.get(r, 1))
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


# --------------------------------------------------------------------------- doctor


VERSION = re.compile(r"v?\d+\.\d+(?:\.\d+)?(?:[-+][\w.]+)?")


@dataclass(frozen=True)
class EnvironmentStatus:
    """The one-line answer to "can I run labs here?", built from doctor findings."""

    context: str | None
    reachable: bool | None = None
    server: str | None = None
    context_problem: str | None = None
    istio: str | None = None
    problems: tuple[str, ...] = ()
    checked: bool = False

    def describe(self) -> str:
        """The status line text."""
        parts = [f"context: {self.context or 'none'}"]
        if not self.checked:
            parts.append("checking the environment…")
            return "  ·  ".join(parts)
        if self.reachable is True:
            parts.append(
                f"cluster: reachable ({self.server})" if self.server else "cluster: reachable"
            )
        elif self.reachable is False:
            parts.append("cluster: unreachable")
        elif self.context_problem is not None:
            parts.append("cluster: no usable kube context")
        else:
            parts.append("cluster: not checked")
        if self.istio is not None:
            parts.append(f"istio: {self.istio}")
        if self.problems:
            count = len(self.problems)
            parts.append(f"{count} problem{'s' if count != 1 else ''} (d: details)")
        return "  ·  ".join(parts)


def _version(text: str) -> str | None:
    match = VERSION.search(text)
    return match.group(0) if match else None


def summarize(findings: Iterable[object], context: str | None) -> EnvironmentStatus:
    """Reduce doctor findings (duck-typed ``Finding`` objects) to the status line.

    The cluster doctor names its findings "kube context", "cluster" (is the
    API server reachable), "kubernetes" (its version) and "istio" (istiod and
    its version); tool findings such as "istioctl" are about the client side.
    """
    status: dict[str, object] = {}
    problems: list[str] = []
    for finding in findings:
        name = str(getattr(finding, "name", "")).lower()
        ok = bool(getattr(finding, "ok", False))
        detail = str(getattr(finding, "detail", ""))
        category = str(getattr(finding, "category", ""))
        in_cluster = category == "cluster"
        if "context" in name:
            if not ok:
                status.setdefault("context_problem", detail)
        elif name == "cluster" or (in_cluster and "reach" in name):
            status.setdefault("reachable", ok)
        elif name == "kubernetes" or (in_cluster and "server" in name):
            if ok and (version := _version(detail)):
                status.setdefault("server", version)
        elif name != "istioctl" and (name == "istio" or (in_cluster and name.startswith("istio"))):
            version = _version(detail)
            if ok:
                shown = version or "installed"
            elif "not installed" in detail:
                shown = "not installed"
            else:
                shown = f"{version} (d: details)" if version else "unknown (d: details)"
            status.setdefault("istio", shown)
        if bool(getattr(finding, "required", False)) and not ok:
            problems.append(f"{name}: {detail}")
    reachable = status.get("reachable")
    return EnvironmentStatus(
        context=context,
        reachable=reachable if isinstance(reachable, bool) else None,
        server=str(status["server"]) if "server" in status else None,
        context_problem=str(status["context_problem"]) if "context_problem" in status else None,
        istio=str(status["istio"]) if "istio" in status else None,
        problems=tuple(problems),
        checked=True,
    )


def short_command(cmd: str, *, lines: int = 3) -> str:
    """A command as shown in its block: the first few lines, then an ellipsis."""
    text = cmd.strip("\n")
    parts = text.splitlines() or [""]
    shown = parts[:lines]
    if len(parts) > lines:
        shown.append(f"… ({len(parts) - lines} more lines)")
    return "\n".join(shown)
