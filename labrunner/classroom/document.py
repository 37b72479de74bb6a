"""A learner's progress in a class: one small JSON document, folded from step events.

Each learner writes exactly one object (their progress ConfigMap), so the
document there is the whole story, not a log to replay: every event the
learner's labrunner publishes is folded into it locally (``fold``), and the
publisher sends the whole document. Sending the whole document makes every
write idempotent: a retry after a timeout, a second labrunner of the same
learner, a batch sent after a day offline all leave the object right, and
the instructor's view reads one object per learner, never a history.

What it keeps is what an instructor asks about: per lab the step the
learner is on and since when; per step its state (started, passed, failed,
error, skipped), the failures so far, how many hints were shown, the last
failure's message (already redacted by the sender) and the time the step
took; the last failure overall; and the last ``RECENT`` events. Its size is
bounded by the workshop (a few KB for the bundled one), far below the 1 MiB
a ConfigMap may hold.

``LearnerView`` is the instructor's reading of a document: the current step,
the time on it, and whether the learner looks stuck (``StuckRules``: on one
step longer than a threshold, or a number of failures there). Times are the
learner's clock (epoch seconds); a view made from a document that just
arrived corrects a clock that is off by more than ``SKEW_TOLERANCE``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from labrunner.durations import format_duration

SCHEMA = 1
RECENT = 20
MESSAGE_LIMIT = 300
SKEW_TOLERANCE = 30.0

STARTED = "started"
VIEWED = "viewed"
PASSED = "passed"
FAILED = "failed"
ERROR = "error"
SKIPPED = "skipped"
HINT = "hint"
KINDS = frozenset({STARTED, VIEWED, PASSED, FAILED, ERROR, SKIPPED, HINT})
DONE = frozenset({PASSED, SKIPPED})

Doc = dict[str, Any]


class BadDocument(ValueError):
    """A progress document that is not one (the message says what is wrong)."""


def new_document(class_name: str, learner: str, display: str = "") -> Doc:
    """An empty progress document for ``learner``."""
    return {
        "schema": SCHEMA,
        "class": class_name,
        "learner": learner,
        "name": display or learner,
        "seq": 0,
        "updated": 0.0,
        "current": None,
        "labs": {},
        "last_failure": None,
        "recent": [],
    }


def event(
    kind: str,
    lab: str,
    step: str,
    *,
    at: float,
    message: str = "",
    hint: int = 0,
    lab_title: str = "",
    lab_order: int | None = None,
    total: int | None = None,
    step_title: str = "",
    index: int | None = None,
) -> dict[str, Any]:
    """One class event as the publisher queues it (plain data, JSON-ready)."""
    if kind not in KINDS:
        raise ValueError(f"unknown class event kind {kind!r}")
    out: dict[str, Any] = {"kind": kind, "lab": lab, "step": step, "at": at}
    if message:
        out["message"] = message[:MESSAGE_LIMIT]
    if hint:
        out["hint"] = hint
    if lab_title:
        out["title"] = lab_title
    if lab_order is not None:
        out["order"] = lab_order
    if total is not None:
        out["total"] = total
    if step_title:
        out["step_title"] = step_title
    if index is not None:
        out["index"] = index
    return out


def fold(doc: Doc, item: Mapping[str, Any]) -> Doc:
    """Fold one event into ``doc`` (in place; returns it)."""
    kind = str(item.get("kind"))
    lab_id = str(item.get("lab"))
    step_id = str(item.get("step"))
    at = float(item.get("at") or 0.0)
    if kind not in KINDS:
        return doc
    labs = doc.setdefault("labs", {})
    lab = labs.setdefault(lab_id, {"steps": {}})
    for source, target in (("title", "title"), ("order", "order"), ("total", "total")):
        if source in item:
            lab[target] = item[source]
    steps = lab.setdefault("steps", {})
    step = steps.setdefault(step_id, {"since": at, "fails": 0, "hints": 0})
    if item.get("step_title"):
        step["title"] = item["step_title"]
    if "index" in item:
        step["index"] = item["index"]
    done = step.get("state") in DONE
    if kind in (STARTED, VIEWED) and not (kind == VIEWED and done):
        current = doc.get("current") or {}
        if current.get("lab") != lab_id or current.get("step") != step_id:
            step["since"] = at
        doc["current"] = {"lab": lab_id, "step": step_id}
        lab["current"] = step_id
        if kind == STARTED and not done:
            step["state"] = STARTED
    elif kind in DONE:
        step["state"] = kind
        step["done"] = at
        step["time"] = round(max(at - float(step.get("since") or at), 0.0), 1)
    elif kind in (FAILED, ERROR):
        step["fails"] = int(step.get("fails") or 0) + 1
        message = str(item.get("message") or "")[:MESSAGE_LIMIT]
        step["message"] = message
        if not done:
            step["state"] = kind
        doc["last_failure"] = {"lab": lab_id, "step": step_id, "at": at, "message": message}
    elif kind == HINT:
        step["hints"] = max(int(step.get("hints") or 0), int(item.get("hint") or 1))
    recent = doc.setdefault("recent", [])
    entry = {"kind": kind, "lab": lab_id, "step": step_id, "at": at}
    if item.get("message"):
        entry["message"] = str(item["message"])[:MESSAGE_LIMIT]
    recent.append(entry)
    del recent[:-RECENT]
    return doc


def encode(doc: Doc) -> str:
    """The document as compact JSON (what the ConfigMap holds)."""
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)


def decode(text: str) -> Doc:
    """A document from JSON; raises BadDocument when it is not one."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise BadDocument(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("labs", {}), dict):
        raise BadDocument("not a progress document")
    if int(doc.get("schema") or 0) > SCHEMA:
        raise BadDocument(
            f"written by a newer labrunner (schema {doc.get('schema')}); upgrade labrunner"
        )
    return doc


# --------------------------------------------------------------------------- the instructor's view


@dataclass(frozen=True)
class StuckRules:
    """When a learner looks stuck: on one step longer than ``after`` seconds, or
    ``failures`` failed attempts at it."""

    after: float = 600.0
    failures: int = 3


@dataclass(frozen=True)
class LabView:
    """How far a learner got in one lab."""

    lab: str
    title: str
    order: int
    done: int
    total: int

    @property
    def complete(self) -> bool:
        """True when every step passed or was skipped."""
        return self.total > 0 and self.done >= self.total


@dataclass(frozen=True)
class LearnerView:
    """A learner's document as the instructor reads it."""

    learner: str
    name: str
    lab: str = ""
    lab_title: str = ""
    step: str = ""
    step_title: str = ""
    step_index: int | None = None
    state: str = ""
    since: float | None = None
    fails: int = 0
    hints: int = 0
    message: str = ""
    last_failure: Mapping[str, Any] | None = None
    labs: tuple[LabView, ...] = ()
    updated: float = 0.0
    seq: int = 0
    revoked: bool = False
    recent: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)

    @property
    def started(self) -> bool:
        """True once the learner has been on any step."""
        return bool(self.step)

    @property
    def done(self) -> bool:
        """True when the current step passed or was skipped."""
        return self.state in DONE

    def on_step(self, now: float) -> float | None:
        """Seconds on the current step (None when there is none, or it is done)."""
        if not self.started or self.done or self.since is None:
            return None
        return max(now - self.since, 0.0)

    def stuck(self, now: float, rules: StuckRules) -> str:
        """Why the learner looks stuck ("" when they do not)."""
        if not self.started or self.done or self.revoked:
            return ""
        if self.fails >= rules.failures:
            return f"{self.fails} failed attempts"
        spent = self.on_step(now)
        if spent is not None and spent >= rules.after:
            return f"on this step for {format_duration(spent)}"
        return ""

    @property
    def labs_done(self) -> int:
        """How many labs the learner completed."""
        return sum(1 for lab in self.labs if lab.complete)


def view(doc: Mapping[str, Any], *, offset: float = 0.0, revoked: bool = False) -> LearnerView:
    """The instructor's reading of ``doc``; ``offset`` moves the learner's times onto the
    instructor's clock (see ``clock_offset``)."""
    labs_doc = doc.get("labs") or {}
    labs: list[LabView] = []
    for lab_id, lab in labs_doc.items():
        if not isinstance(lab, Mapping):
            continue
        steps = lab.get("steps") or {}
        done = sum(1 for s in steps.values() if isinstance(s, Mapping) and s.get("state") in DONE)
        labs.append(
            LabView(
                str(lab_id),
                str(lab.get("title") or lab_id),
                _int(lab.get("order"), 10_000),
                done,
                int(lab.get("total") or len(steps)),
            )
        )
    labs.sort(key=lambda item: (item.order, item.lab))
    base = LearnerView(
        learner=str(doc.get("learner") or ""),
        name=str(doc.get("name") or doc.get("learner") or ""),
        labs=tuple(labs),
        updated=float(doc.get("updated") or 0.0) + offset,
        seq=int(doc.get("seq") or 0),
        revoked=revoked,
        last_failure=doc.get("last_failure") if isinstance(doc.get("last_failure"), dict) else None,
        recent=tuple(r for r in doc.get("recent") or [] if isinstance(r, Mapping)),
    )
    current = doc.get("current")
    if not isinstance(current, Mapping):
        return base
    lab_id, step_id = str(current.get("lab")), str(current.get("step"))
    found = labs_doc.get(lab_id)
    here: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    steps = here.get("steps")
    entry = steps.get(step_id) if isinstance(steps, Mapping) else None
    step: Mapping[str, Any] = entry if isinstance(entry, Mapping) else {}
    since = step.get("since")
    return LearnerView(
        learner=base.learner,
        name=base.name,
        lab=lab_id,
        lab_title=str(here.get("title") or lab_id),
        step=step_id,
        step_title=str(step.get("title") or step_id),
        step_index=int(step["index"]) if isinstance(step.get("index"), int) else None,
        state=str(step.get("state") or ""),
        since=float(since) + offset if since is not None else None,
        fails=int(step.get("fails") or 0),
        hints=int(step.get("hints") or 0),
        message=str(step.get("message") or ""),
        last_failure=base.last_failure,
        labs=base.labs,
        updated=base.updated,
        seq=base.seq,
        revoked=revoked,
        recent=base.recent,
    )


def _int(value: object, default: int) -> int:
    return int(value) if isinstance(value, int | float) else default


def clock_offset(doc: Mapping[str, Any], received: float) -> float:
    """How far the learner's clock is behind ours, judged from a document that has just
    arrived (0 within ``SKEW_TOLERANCE``: network time differs by far less)."""
    updated = doc.get("updated")
    if not isinstance(updated, int | float) or not updated:
        return 0.0
    offset = received - float(updated)
    return offset if abs(offset) > SKEW_TOLERANCE else 0.0


# --------------------------------------------------------------------------- headless rows

ROW_FIELDS = (
    "learner",
    "name",
    "lab",
    "step",
    "state",
    "on_step_seconds",
    "fails",
    "hints",
    "labs_done",
    "stuck",
    "last_failure",
    "updated",
    "revoked",
)


def _iso(epoch: float) -> str:
    if not epoch:
        return ""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def row(learner: LearnerView, *, now: float, rules: StuckRules) -> dict[str, Any]:
    """One learner as a flat record (``class status --json/--csv``)."""
    spent = learner.on_step(now)
    failure = learner.last_failure or {}
    last = ""
    if failure:
        last = f"{failure.get('lab')}/{failure.get('step')}: {failure.get('message') or ''}"
    return {
        "learner": learner.learner,
        "name": learner.name,
        "lab": learner.lab,
        "step": learner.step,
        "state": learner.state or ("viewing" if learner.started else "not started"),
        "on_step_seconds": None if spent is None else math.floor(spent),
        "fails": learner.fails,
        "hints": learner.hints,
        "labs_done": learner.labs_done,
        "stuck": learner.stuck(now, rules),
        "last_failure": last,
        "updated": _iso(learner.updated),
        "revoked": learner.revoked,
    }


def step_times(doc: Mapping[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per lab and step: its state, failures, hints, and the seconds it took (when done)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for lab_id, lab in (doc.get("labs") or {}).items():
        steps = lab.get("steps") if isinstance(lab, Mapping) else None
        if not isinstance(steps, Mapping):
            continue
        out[str(lab_id)] = {
            str(step_id): {
                "state": str(step.get("state") or "viewed"),
                "fails": int(step.get("fails") or 0),
                "hints": int(step.get("hints") or 0),
                "seconds": step.get("time"),
            }
            for step_id, step in steps.items()
            if isinstance(step, Mapping)
        }
    return out


def lab_columns(learners: Iterable[LearnerView]) -> list[tuple[str, str]]:
    """(lab id, title) of every lab any learner reached, in workshop order."""
    seen: dict[str, LabView] = {}
    for learner in learners:
        for lab in learner.labs:
            seen.setdefault(lab.lab, lab)
    return [(lab.lab, lab.title) for lab in sorted(seen.values(), key=lambda x: (x.order, x.lab))]
