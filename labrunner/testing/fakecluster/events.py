"""Events the simulated cluster records, and their ``events.k8s.io/v1`` view.

When a step fails, an engineer first reads ``kubectl get events``: "Back-off pulling image",
"Readiness probe failed". Forensics code needs the fake to write those too, so the scheduler,
kubelet and controllers it plays record core/v1 Events for what they simulate: Scheduled,
Pulling/Pulled, Created, Started; Failed/BackOff/Unhealthy warnings for a pod held not Ready or
given a waiting reason; SuccessfulCreate/SuccessfulDelete for ReplicaSets and ScalingReplicaSet
for Deployments. A repeat of the same event (object, reason, message, source) raises ``count``
and ``lastTimestamp`` instead of adding a row, as client-go's event correlator does.

The apiserver serves one store of events under two APIs; :func:`to_events_v1` and
:func:`from_events_v1` convert between the shapes like its conversion functions do.
One liberty: recorded events carry ``eventTime`` (a kubelet leaves it null), because the Python
client's ``EventsV1Event`` model refuses an event without it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

JsonDict = dict[str, Any]
TypeKey = tuple[str, str]

EVENTS: TypeKey = ("", "events")
EVENTS_V1: TypeKey = ("events.k8s.io", "events")
NORMAL = "Normal"
WARNING = "Warning"

_counter = itertools.count()
_counter_lock = threading.Lock()


class Writer(Protocol):
    """What the recorder needs from the API core."""

    def find_event(self, key: tuple[str, ...]) -> JsonDict | None:
        """The stored event for a correlation key, if it still exists."""
        ...

    def store_event(self, key: tuple[str, ...], event: JsonDict, *, new: bool) -> JsonDict:
        """Create or replace an event (watchers see ADDED or MODIFIED)."""
        ...


def now_micro() -> str:
    """The current time as a MicroTime (RFC 3339 with microseconds)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _seconds() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_name(object_name: str) -> str:
    """``<object>.<hex nanoseconds>``, unique within the process, like client-go's names."""
    with _counter_lock:
        nonce = time.time_ns() + next(_counter)
    return f"{object_name}.{nonce:x}"


def reference(obj: Mapping[str, Any], field_path: str = "") -> JsonDict:
    """An ``ObjectReference`` to a stored object."""
    meta = obj.get("metadata") or {}
    ref: JsonDict = {
        "apiVersion": obj.get("apiVersion", "v1"),
        "kind": obj.get("kind", ""),
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
        "resourceVersion": meta.get("resourceVersion", ""),
    }
    if meta.get("namespace"):
        ref["namespace"] = meta["namespace"]
    if field_path:
        ref["fieldPath"] = field_path
    return ref


def record(
    writer: Writer,
    obj: Mapping[str, Any],
    reason: str,
    message: str,
    *,
    type: str = NORMAL,
    field_path: str = "",
    component: str = "kubelet",
    host: str = "",
) -> JsonDict:
    """Record (or count once more) an event about ``obj``; returns the stored Event."""
    meta = obj.get("metadata") or {}
    namespace = str(meta.get("namespace") or "default")
    key = (
        str(meta.get("uid", "")),
        field_path,
        reason,
        message,
        type,
        component,
        host,
    )
    stamp, micro = _seconds(), now_micro()
    existing = writer.find_event(key)
    if existing is not None:
        changed = {**existing, "metadata": dict(existing["metadata"])}
        changed["count"] = int(existing.get("count") or 1) + 1
        changed["lastTimestamp"] = stamp
        return writer.store_event(key, changed, new=False)
    source: JsonDict = {"component": component}
    if host:
        source["host"] = host
    event: JsonDict = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": event_name(str(meta.get("name", ""))), "namespace": namespace},
        "involvedObject": reference(obj, field_path),
        "reason": reason,
        "message": message,
        "source": source,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "type": type,
        "eventTime": micro,
        "reportingComponent": component,
        "reportingInstance": host,
    }
    return writer.store_event(key, event, new=True)


def to_events_v1(core: Mapping[str, Any]) -> JsonDict:
    """A core/v1 Event as ``events.k8s.io/v1`` shows it."""
    out: JsonDict = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": core.get("metadata") or {},
        "eventTime": core.get("eventTime"),
        "reason": core.get("reason", ""),
        "regarding": core.get("involvedObject") or {},
        "note": core.get("message", ""),
        "type": core.get("type", ""),
        "reportingController": core.get("reportingComponent")
        or (core.get("source") or {}).get("component", ""),
        "reportingInstance": core.get("reportingInstance")
        or (core.get("source") or {}).get("host", ""),
    }
    for src, dst in (
        ("related", "related"),
        ("action", "action"),
        ("series", "series"),
        ("source", "deprecatedSource"),
        ("firstTimestamp", "deprecatedFirstTimestamp"),
        ("lastTimestamp", "deprecatedLastTimestamp"),
        ("count", "deprecatedCount"),
    ):
        if core.get(src) not in (None, "", {}):
            out[dst] = core[src]
    return out


def from_events_v1(event: Mapping[str, Any]) -> JsonDict:
    """An ``events.k8s.io/v1`` Event in its core/v1 shape (how it is stored)."""
    out: JsonDict = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": dict(event.get("metadata") or {}),
        "involvedObject": event.get("regarding") or {},
        "reason": event.get("reason", ""),
        "message": event.get("note", ""),
        "type": event.get("type", ""),
        "eventTime": event.get("eventTime"),
        "reportingComponent": event.get("reportingController", ""),
        "reportingInstance": event.get("reportingInstance", ""),
    }
    for src, dst in (
        ("related", "related"),
        ("action", "action"),
        ("series", "series"),
        ("deprecatedSource", "source"),
        ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"),
        ("deprecatedCount", "count"),
    ):
        if event.get(src) not in (None, "", {}):
            out[dst] = event[src]
    return out


__all__ = [
    "EVENTS",
    "EVENTS_V1",
    "NORMAL",
    "WARNING",
    "event_name",
    "from_events_v1",
    "now_micro",
    "record",
    "reference",
    "to_events_v1",
]
