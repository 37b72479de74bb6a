"""Server-side ``Table`` responses, so ``kubectl get`` prints the columns a learner expects.

kubectl asks for ``as=Table`` and prints whatever columns the server sends; with a plain list it
shows only NAME and AGE. Checks that read ``kubectl get pods`` output need READY and STATUS, so
each built-in kind gets the columns the real apiserver prints, and custom resources use their
CRD's ``additionalPrinterColumns`` (PeerAuthentication's MODE, VirtualService's HOSTS, ...).
Each row carries the object's metadata so ``-A`` can add a NAMESPACE column.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from .resources import PrinterColumn, ResourceType
from .simulation import pod_display_status

JsonDict = dict[str, Any]
Cell = str | int | float | bool | None
RowFn = Callable[[JsonDict], list[Cell]]


def human_duration(seconds: float) -> str:
    """Age formatting of ``kubectl get`` (2m30s, 5h, 3d4h, 2y)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years = days // 365
    if years < 8 and days % 365:
        return f"{years}y{days % 365}d"
    return f"{years}y"


def age(timestamp: Any) -> str:
    """How long ago an RFC 3339 timestamp was, or ``<unknown>``."""
    if not isinstance(timestamp, str) or not timestamp:
        return "<unknown>"
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    return human_duration((datetime.now(UTC) - then).total_seconds())


def _meta(obj: JsonDict) -> JsonDict:
    return obj.get("metadata") or {}


def _created(obj: JsonDict) -> str:
    return age(_meta(obj).get("creationTimestamp"))


def _col(name: str, kind: str = "string", *, priority: int = 0, fmt: str = "") -> JsonDict:
    out: JsonDict = {
        "name": name,
        "type": kind,
        "format": fmt,
        "description": "",
        "priority": priority,
    }
    return out


_NAME = _col("Name", fmt="name")
_AGE = _col("Age")


def _selector(sel: Mapping[str, Any] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in (sel or {}).items()) or "<none>"


def _pod_row(pod: JsonDict) -> list[Cell]:
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    containers = (pod.get("spec") or {}).get("containers") or []
    sidecars = [
        c
        for c in (pod.get("spec") or {}).get("initContainers") or []
        if c.get("restartPolicy") == "Always"
    ]
    init_statuses = {cs.get("name"): cs for cs in status.get("initContainerStatuses") or []}
    total = len(containers) + len(sidecars)
    ready = sum(1 for cs in statuses if cs.get("ready")) + sum(
        1 for c in sidecars if init_statuses.get(c.get("name"), {}).get("ready")
    )
    restarts = sum(int(cs.get("restartCount", 0)) for cs in statuses)
    restart_cell = str(restarts)
    last = [
        ((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt") for cs in statuses
    ]
    finished = max((t for t in last if t), default=None)
    if restarts and finished:
        restart_cell = f"{restarts} ({age(finished)} ago)"
    return [
        _meta(pod).get("name"),
        f"{ready}/{total}",
        pod_display_status(pod),
        restart_cell,
        _created(pod),
        status.get("podIP") or "<none>",
        (pod.get("spec") or {}).get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        "<none>",
    ]


def _images(obj: JsonDict) -> tuple[str, str]:
    containers = (((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "containers"
    ) or []
    names = ",".join(str(c.get("name", "")) for c in containers)
    images = ",".join(str(c.get("image", "")) for c in containers)
    return names, images


def _deployment_row(dep: JsonDict) -> list[Cell]:
    spec, status = dep.get("spec") or {}, dep.get("status") or {}
    names, images = _images(dep)
    return [
        _meta(dep).get("name"),
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
        int(status.get("updatedReplicas", 0)),
        int(status.get("availableReplicas", 0)),
        _created(dep),
        names,
        images,
        _selector((spec.get("selector") or {}).get("matchLabels")),
    ]


def _replicaset_row(rs: JsonDict) -> list[Cell]:
    spec, status = rs.get("spec") or {}, rs.get("status") or {}
    names, images = _images(rs)
    return [
        _meta(rs).get("name"),
        int(spec.get("replicas", 1)),
        int(status.get("replicas", 0)),
        int(status.get("readyReplicas", 0)),
        _created(rs),
        names,
        images,
        _selector((spec.get("selector") or {}).get("matchLabels")),
    ]


def _external_ip(svc: JsonDict) -> str:
    spec = svc.get("spec") or {}
    kind = spec.get("type", "ClusterIP")
    extra = list(spec.get("externalIPs") or [])
    if kind == "ExternalName":
        return str(spec.get("externalName") or "<none>")
    if kind == "LoadBalancer":
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        found = [i.get("ip") or i.get("hostname") for i in ingress] + extra
        return ",".join(str(f) for f in found if f) or "<pending>"
    return ",".join(extra) or "<none>"


def _service_row(svc: JsonDict) -> list[Cell]:
    spec = svc.get("spec") or {}
    ports = []
    for p in spec.get("ports") or []:
        proto = p.get("protocol", "TCP")
        if p.get("nodePort"):
            ports.append(f"{p.get('port')}:{p['nodePort']}/{proto}")
        else:
            ports.append(f"{p.get('port')}/{proto}")
    return [
        _meta(svc).get("name"),
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP") or "<none>",
        _external_ip(svc),
        ",".join(ports) or "<none>",
        _created(svc),
        _selector(spec.get("selector")),
    ]


def _node_row(node: JsonDict) -> list[Cell]:
    status = node.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    labels = _meta(node).get("labels") or {}
    roles = [
        k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/") and "/" in k
    ]
    info = status.get("nodeInfo") or {}
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    return [
        _meta(node).get("name"),
        "Ready" if ready else "NotReady",
        ",".join(roles) or "<none>",
        _created(node),
        info.get("kubeletVersion", ""),
        addresses.get("InternalIP") or "<none>",
        addresses.get("ExternalIP") or "<none>",
        info.get("osImage", ""),
        info.get("kernelVersion", ""),
        info.get("containerRuntimeVersion", ""),
    ]


def _event_row(ev: JsonDict) -> list[Cell]:
    first = _meta_time(ev.get("firstTimestamp")) or _meta_time(ev.get("eventTime"))
    last = _meta_time(ev.get("lastTimestamp")) or first
    count = int(ev.get("count") or 0)
    series = ev.get("series") or {}
    if series:
        last = _meta_time(series.get("lastObservedTime")) or last
        count = int(series.get("count") or count)
    elif count == 0:
        count = 1
    involved = ev.get("involvedObject") or {}
    kind = str(involved.get("kind", "")).lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source = ev.get("source") or {}
    component = source.get("component") or ev.get("reportingComponent") or ""
    instance = source.get("host") or ev.get("reportingInstance") or ""
    return [
        last,
        ev.get("type", ""),
        ev.get("reason", ""),
        target,
        involved.get("fieldPath", ""),
        f"{component}, {instance}" if instance else component,
        str(ev.get("message", "")).strip(),
        first,
        count,
        _meta(ev).get("name"),
    ]


def _meta_time(value: Any) -> str:
    return age(value) if isinstance(value, str) and value else ""


def _binding_row(b: JsonDict) -> list[Cell]:
    ref = b.get("roleRef") or {}
    subjects = b.get("subjects") or []

    def names(kind: str) -> str:
        found = [
            (
                f"{s.get('namespace', '')}/{s.get('name', '')}"
                if kind == "ServiceAccount"
                else str(s.get("name", ""))
            )
            for s in subjects
            if s.get("kind") == kind
        ]
        return ", ".join(found)

    return [
        _meta(b).get("name"),
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        _created(b),
        names("User"),
        names("Group"),
        names("ServiceAccount"),
    ]


_BINDING_COLUMNS = [
    _NAME,
    _col("Role"),
    _AGE,
    _col("Users", priority=1),
    _col("Groups", priority=1),
    _col("ServiceAccounts", priority=1),
]
_ROLE_COLUMNS = [_NAME, _col("Created At", "date")]


def _role_row(o: JsonDict) -> list[Cell]:
    return [_meta(o).get("name"), _meta(o).get("creationTimestamp")]


_BUILTIN: dict[tuple[str, str], tuple[list[JsonDict], RowFn]] = {
    ("", "events"): (
        [
            _col("Last Seen"),
            _col("Type"),
            _col("Reason"),
            _col("Object"),
            _col("Subobject", priority=1),
            _col("Source", priority=1),
            _col("Message"),
            _col("First Seen", priority=1),
            _col("Count", priority=1),
            _col("Name", priority=1, fmt="name"),
        ],
        _event_row,
    ),
    ("rbac.authorization.k8s.io", "roles"): (_ROLE_COLUMNS, _role_row),
    ("rbac.authorization.k8s.io", "clusterroles"): (_ROLE_COLUMNS, _role_row),
    ("rbac.authorization.k8s.io", "rolebindings"): (_BINDING_COLUMNS, _binding_row),
    ("rbac.authorization.k8s.io", "clusterrolebindings"): (_BINDING_COLUMNS, _binding_row),
    ("", "pods"): (
        [
            _NAME,
            _col("Ready"),
            _col("Status"),
            _col("Restarts"),
            _AGE,
            _col("IP", priority=1),
            _col("Node", priority=1),
            _col("Nominated Node", priority=1),
            _col("Readiness Gates", priority=1),
        ],
        _pod_row,
    ),
    ("apps", "deployments"): (
        [
            _NAME,
            _col("Ready"),
            _col("Up-to-date", "integer"),
            _col("Available", "integer"),
            _AGE,
            _col("Containers", priority=1),
            _col("Images", priority=1),
            _col("Selector", priority=1),
        ],
        _deployment_row,
    ),
    ("apps", "replicasets"): (
        [
            _NAME,
            _col("Desired", "integer"),
            _col("Current", "integer"),
            _col("Ready", "integer"),
            _AGE,
            _col("Containers", priority=1),
            _col("Images", priority=1),
            _col("Selector", priority=1),
        ],
        _replicaset_row,
    ),
    ("", "services"): (
        [
            _NAME,
            _col("Type"),
            _col("Cluster-IP"),
            _col("External-IP"),
            _col("Port(s)"),
            _AGE,
            _col("Selector", priority=1),
        ],
        _service_row,
    ),
    ("", "namespaces"): (
        [_NAME, _col("Status"), _AGE],
        lambda o: [
            _meta(o).get("name"),
            (o.get("status") or {}).get("phase", "Active"),
            _created(o),
        ],
    ),
    ("", "secrets"): (
        [_NAME, _col("Type"), _col("Data", "integer"), _AGE],
        lambda o: [
            _meta(o).get("name"),
            o.get("type", "Opaque"),
            len(o.get("data") or {}),
            _created(o),
        ],
    ),
    ("", "configmaps"): (
        [_NAME, _col("Data", "integer"), _AGE],
        lambda o: [
            _meta(o).get("name"),
            len(o.get("data") or {}) + len(o.get("binaryData") or {}),
            _created(o),
        ],
    ),
    ("", "serviceaccounts"): (
        [_NAME, _col("Secrets", "integer"), _AGE],
        lambda o: [_meta(o).get("name"), len(o.get("secrets") or []), _created(o)],
    ),
    ("", "nodes"): (
        [
            _NAME,
            _col("Status"),
            _col("Roles"),
            _AGE,
            _col("Version"),
            _col("Internal-IP", priority=1),
            _col("External-IP", priority=1),
            _col("OS-Image", priority=1),
            _col("Kernel-Version", priority=1),
            _col("Container-Runtime", priority=1),
        ],
        _node_row,
    ),
    ("apiextensions.k8s.io", "customresourcedefinitions"): (
        [_NAME, _col("Created At", "date")],
        lambda o: [_meta(o).get("name"), _meta(o).get("creationTimestamp")],
    ),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"): (
        [_NAME, _col("Webhooks", "integer"), _AGE],
        lambda o: [_meta(o).get("name"), len(o.get("webhooks") or []), _created(o)],
    ),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"): (
        [_NAME, _col("Webhooks", "integer"), _AGE],
        lambda o: [_meta(o).get("name"), len(o.get("webhooks") or []), _created(o)],
    ),
}

_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+|\*)\]")


def json_path(obj: Any, path: str) -> list[Any]:
    """Evaluate the simple JSONPath subset CRD printer columns use (``.a.b``, ``[0]``, ``[*]``)."""
    current: list[Any] = [obj]
    for m in _SEGMENT.finditer(path.strip().strip("{}")):
        key, index = m.group(1), m.group(2)
        nxt: list[Any] = []
        for value in current:
            if key is not None and isinstance(value, dict) and key in value:
                nxt.append(value[key])
            elif index == "*" and isinstance(value, list):
                nxt.extend(value)
            elif index not in (None, "*") and isinstance(value, list) and int(index) < len(value):
                nxt.append(value[int(index)])
        current = nxt
    return current


def _custom_cell(obj: JsonDict, column: PrinterColumn) -> Cell:
    found = json_path(obj, column.json_path)
    if not found:
        return None
    value = found[0] if len(found) == 1 else found
    if column.type == "date":
        return age(value)
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _columns_for(rt: ResourceType, version: str) -> tuple[list[JsonDict], RowFn]:
    builtin = _BUILTIN.get(rt.key)
    if builtin is not None:
        return builtin
    custom = rt.columns.get(version) or ()
    if not custom:
        return [_NAME, _AGE], lambda o: [_meta(o).get("name"), _created(o)]
    defs = [_NAME] + [
        _col(
            c.name,
            "string" if c.type == "date" else c.type,
            priority=c.priority,
            fmt=c.format,
        )
        | {"description": c.description}
        for c in custom
    ]

    def row(o: JsonDict) -> list[Cell]:
        return [_meta(o).get("name"), *(_custom_cell(o, c) for c in custom)]

    return defs, row


def _row_object(obj: JsonDict, include: str) -> JsonDict | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": _meta(obj),
    }


def build_table(
    rt: ResourceType,
    version: str,
    objects: list[JsonDict],
    *,
    resource_version: str = "",
    include_object: str = "Metadata",
    with_columns: bool = True,
    continue_token: str = "",
) -> JsonDict:
    """A ``meta.k8s.io/v1`` Table for the given objects."""
    columns, row_fn = _columns_for(rt, version)
    rows = []
    for obj in objects:
        row: JsonDict = {"cells": row_fn(obj)}
        embedded = _row_object(obj, include_object)
        if embedded is not None:
            row["object"] = embedded
        rows.append(row)
    metadata: JsonDict = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns if with_columns else [],
        "rows": rows,
    }


__all__ = ["age", "build_table", "human_duration", "json_path"]
