"""Forensics on failure: what an engineer would look at when a cluster step fails.

When a step that acts on a cluster fails or errors, the engine asks here for
the evidence while it is still fresh: the events in the lab's namespaces
(newest first), the pods that are not ready with their conditions and
container states, the last lines each failing container logged (and its
previous instance's, after a restart), and, when istioctl is on the lab's
PATH, ``istioctl proxy-status`` and ``istioctl analyze -n NS``. It reaches the
cluster the way the checks do (``verify.kube.connection``, the run's shared
client, every read bounded by one deadline); only istioctl runs as a
subprocess, because it has no API.

Which namespaces are "the lab's": the ones the lab declares (``namespaces:``
in the lab file), every ``namespace`` the failing step's checks name (at any
depth, so ``from: {namespace: …}`` counts), and the lab's env values whose
name says they are one (``NS``, ``NAMESPACE``, ``*_NS``, ``*_NAMESPACE``),
all ``${VAR}``-expanded with the lab shell's environment, in that order.

Everything is bounded (so many events, pods, containers and lines, each line
clipped) and redacted before it leaves: a log line with a token is masked
like any other output.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterable, Mapping
from typing import Any

from labrunner import procs
from labrunner.cluster import resources, status
from labrunner.cluster.errors import ClusterError
from labrunner.cluster.objects import Reader
from labrunner.lab.expand import UnsetVariable, expand, expand_str
from labrunner.lab.model import Lab, Step
from labrunner.redact import LineRedactor, redact
from labrunner.verify.context import CheckContext
from labrunner.verify.evidence import Section
from labrunner.verify.kube import connection

BUDGET = 20.0
"""Seconds all of a step's forensics may take together."""
MAX_NAMESPACES = 8
MAX_EVENTS = 60
MAX_PODS = 20
MAX_CONTAINERS = 12
LOG_LINES = 50
MAX_LINE = 500
MAX_TOOL_OUTPUT = 200
MAX_TEXT = 64 * 1024
"""The most a step's forensics may add to a report, all sections together."""
_NAMESPACE_VAR = re.compile(r"^(?:NS|NAMESPACE|.+_NS|.+_NAMESPACE)$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def lab_namespaces(lab: Lab, step: Step, env: Mapping[str, str]) -> list[str]:
    """The namespaces to look in when ``step`` of ``lab`` fails (see the module docstring)."""
    found: list[str] = []

    def add(value: Any) -> None:
        if isinstance(value, str):
            try:
                text = expand_str(value, env)
            except UnsetVariable:
                return
            if _NAME.match(text) and text not in found:
                found.append(text)

    for value in lab.namespaces:
        add(value)
    for check in step.check:
        try:
            params = expand(dict(check.params), env)
        except UnsetVariable:
            params = dict(check.params)
        for value in _values_of("namespace", params):
            add(value)
    for key, value in lab.env.items():
        if _NAMESPACE_VAR.match(key):
            add(env.get(key, value))
    return found[:MAX_NAMESPACES]


def _values_of(key: str, value: Any) -> Iterable[Any]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            if k == key:
                yield v
            yield from _values_of(key, v)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _values_of(key, item)


def collect(ctx: CheckContext, namespaces: list[str]) -> list[Section]:
    """Every section of evidence for ``namespaces`` within ``ctx``'s deadline; a section
    that cannot be read says why instead (forensics never fail the run)."""
    sections: list[Section] = []
    try:
        reader = Reader(connection(ctx), deadline=ctx.deadline, cancel=ctx.cancel)
    except ClusterError as exc:
        return [Section("cluster.txt", "cluster", f"cannot reach the cluster: {exc.message}")]
    events, pods, logs = [], [], []
    for namespace in namespaces:
        if ctx.cancel.is_set() or time.monotonic() >= ctx.deadline:
            break
        events.append(_events(reader, namespace))
        pod_text, failing = _pods(reader, namespace)
        pods.append(pod_text)
        logs += _logs(reader, namespace, failing)
    sections.append(Section("events.txt", "events, newest first", "\n\n".join(events)))
    sections.append(Section("pods.txt", "pods that are not ready", "\n\n".join(pods)))
    if logs:
        sections.append(Section("logs.txt", "logs of failing containers", "\n\n".join(logs)))
    sections += _istioctl(ctx, namespaces)
    return _bounded(sections)


def _when(event: Mapping[str, Any]) -> str:
    meta = event.get("metadata") or {}
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or (event.get("series") or {}).get("lastObservedTime")
        or event.get("firstTimestamp")
        or meta.get("creationTimestamp")
        or ""
    )


def _events(reader: Reader, namespace: str) -> str:
    head = f"# namespace {namespace}"
    try:
        items = reader.list(resources.EVENTS, namespace=namespace).items
    except ClusterError as exc:
        return f"{head}\ncannot list events: {exc.message}"
    if not items:
        return f"{head}\nno events"
    items.sort(key=_when, reverse=True)
    lines = [head]
    for event in items[:MAX_EVENTS]:
        obj = event.get("involvedObject") or event.get("regarding") or {}
        count = event.get("count") or (event.get("series") or {}).get("count")
        times = f" (×{count})" if count and int(count) > 1 else ""
        message = str(event.get("message") or event.get("note") or "").strip()
        lines.append(
            f"{_when(event)}  {event.get('type', '')}  {event.get('reason', '')}  "
            f"{obj.get('kind', '')}/{obj.get('name', '')}{times}: {message}"
        )
    if len(items) > MAX_EVENTS:
        lines.append(f"… {len(items) - MAX_EVENTS} older events not shown")
    return "\n".join(lines)


def _container_lines(pod: Mapping[str, Any]) -> tuple[list[str], list[tuple[str, bool]]]:
    """One line per container status, and the failing containers (name, restarted)."""
    lines: list[str] = []
    failing: list[tuple[str, bool]] = []
    pod_status = pod.get("status") or {}
    for key in ("initContainerStatuses", "containerStatuses"):
        for cs in pod_status.get(key) or []:
            name = str(cs.get("name", ""))
            state = cs.get("state") or {}
            (kind, detail), *_ = list(state.items()) or [("unknown", {})]
            words = [f"container {name}: {kind}"]
            detail = detail or {}
            if detail.get("reason"):
                words.append(str(detail["reason"]))
            if "exitCode" in detail:
                words.append(f"exit {detail['exitCode']}")
            if detail.get("message"):
                words.append(f"({str(detail['message']).strip()})")
            words.append("ready" if cs.get("ready") else "not ready")
            count = int(cs.get("restartCount") or 0)
            if count:
                words.append(f"{count} restart{'s' if count != 1 else ''}")
            last = (cs.get("lastState") or {}).get("terminated")
            if last:
                words.append(
                    f"last terminated: exit {last.get('exitCode')} {last.get('reason', '')}".strip()
                )
            lines.append("  " + ", ".join(words))
            done = key == "initContainerStatuses" and kind == "terminated"
            if (not cs.get("ready") and not done) or count:
                failing.append((name, count > 0))
    return lines, failing


def _pods(reader: Reader, namespace: str) -> tuple[str, list[tuple[str, str, bool]]]:
    head = f"# namespace {namespace}"
    try:
        items = reader.list(resources.PODS, namespace=namespace).items
    except ClusterError as exc:
        return f"{head}\ncannot list pods: {exc.message}", []
    troubled = [
        p
        for p in items
        if (not status.is_ready(p) and (p.get("status") or {}).get("phase") != "Succeeded")
        or status.restarts(p)
    ]
    if not troubled:
        return f"{head}\n{len(items)} pods, all ready" if items else f"{head}\nno pods", []
    lines = [head]
    failing: list[tuple[str, str, bool]] = []
    for pod in troubled[:MAX_PODS]:
        name = resources.name_of(pod)
        lines.append(f"pod {name}: {status.why_not_ready(pod)}")
        conditions = [
            f"{c.get('type')}={c.get('status')}"
            + (f" ({c.get('reason')}: {c.get('message')})" if c.get("reason") else "")
            for c in (pod.get("status") or {}).get("conditions") or []
        ]
        if conditions:
            lines.append("  conditions: " + "; ".join(conditions))
        container_lines, bad = _container_lines(pod)
        lines += container_lines
        failing += [(name, container, restarted) for container, restarted in bad]
    if len(troubled) > MAX_PODS:
        lines.append(f"… {len(troubled) - MAX_PODS} more pods not shown")
    return "\n".join(lines), failing


def _logs(reader: Reader, namespace: str, failing: list[tuple[str, str, bool]]) -> list[str]:
    out = []
    for pod, container, restarted in failing[:MAX_CONTAINERS]:
        for previous in (False, True) if restarted else (False,):
            label = f"# {namespace}/{pod} [{container}]" + (" previous" if previous else "")
            try:
                text = reader.log(namespace, pod, container, tail=LOG_LINES, previous=previous)
            except ClusterError as exc:
                out.append(f"{label}\ncannot read the log: {exc.message}")
                continue
            lines = text.splitlines()[-LOG_LINES:]
            redactor = LineRedactor()
            body = "\n".join(_clip(redactor(line)) for line in lines) if lines else "(empty)"
            out.append(f"{label}\n{body}")
    return out


def _istioctl(ctx: CheckContext, namespaces: list[str]) -> list[Section]:
    binary = shutil.which("istioctl", path=ctx.env.get("PATH", os.defpath))
    if binary is None:
        return []
    runs = [("istioctl-proxy-status.txt", [binary, "proxy-status"])]
    runs += [(f"istioctl-analyze-{ns}.txt", [binary, "analyze", "-n", ns]) for ns in namespaces]
    sections = []
    for name, argv in runs:
        if ctx.cancel.is_set() or time.monotonic() >= ctx.deadline:
            break
        try:
            result = procs.run(
                argv,
                timeout=ctx.remaining(cap=15.0),
                env=ctx.env,
                cwd=ctx.cwd,
                cancel=ctx.cancel,
            )
        except procs.ToolNotFound:
            break
        text = (result.stdout + result.stderr).strip()
        if result.timed_out:
            text += "\n(timed out)"
        lines = text.splitlines()[-MAX_TOOL_OUTPUT:]
        sections.append(
            Section(name, " ".join(argv[1:]), "\n".join(_clip(redact(x)) for x in lines))
        )
    return sections


def _clip(line: str) -> str:
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"


def _bounded(sections: list[Section]) -> list[Section]:
    """Redacted sections whose texts add up to at most ``MAX_TEXT`` characters."""
    out = []
    left = MAX_TEXT
    for section in sections:
        text = redact(section.text)
        if len(text) > left:
            text = text[: max(left, 0)] + "\n… cut: forensics are capped"
        left -= len(text)
        out.append(Section(section.name, section.title, text))
    return out
