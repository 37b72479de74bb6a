"""Kubernetes verifiers: resources of any kind, namespaces, pods, Deployments, Secrets, CRDs.

Every check reads the cluster through ``labrunner.verify.kube`` (the
``kubernetes`` client itself is imported only when a check first connects, so
loading a lab never imports it) with one list call, and keeps the list's
resourceVersion so a pending outcome can carry a watch-based ``wait``: the
step passes within milliseconds of the cluster converging.

Pending or failed? The rule every verifier here follows:

* **pending** while the cluster may still converge on its own or the learner
  has not acted yet: an object or label that does not exist yet, pods not
  Ready (ContainerCreating, ImagePullBackOff and CrashLoopBackOff included:
  the message names them, and the step's ``within`` budget bounds the wait),
  a rollout in progress, an object being deleted, a ``status`` field a
  controller has not written yet, a resource type whose CRD is not
  established yet.
* **failed** when something was written and it is wrong: once ``kubectl
  apply`` or ``kubectl label`` has returned, the object is settled, so a
  spec field, label or annotation with another value (``spec.mtls.mode:
  expected STRICT, found PERMISSIVE``), a Secret of the wrong type or without
  a key, a CRD that does not serve a version, or a rollout past its progress
  deadline will not fix itself; waiting out the budget would only delay the
  message.
* **error** when the environment is broken (no kubeconfig, unreachable
  cluster, RBAC): ``labrunner.verify.kube`` maps ``labrunner.cluster.errors``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from labrunner.cluster.errors import UnknownType
from labrunner.cluster.objects import ObjectList, Reader
from labrunner.cluster.resources import (
    CRDS,
    DEPLOYMENTS,
    NAMESPACES,
    PODS,
    label_selector,
    name_of,
    selector_problem,
    terminating,
)
from labrunner.cluster.status import (
    condition,
    desired_replicas,
    is_ready,
    rollout_problem,
    selector_string,
    waiting_messages,
    why_not_ready,
)
from labrunner.lab.catalog import ParamProblem
from labrunner.verify.context import CheckContext
from labrunner.verify.kube import (
    CheckAbort,
    cluster_check,
    connect,
    missing_key,
    read_secret,
    secret_keys,
)
from labrunner.verify.outcome import Outcome, Waiter
from labrunner.verify.params import (
    BOOLEAN,
    STRING,
    STRING_LIST,
    STRING_MAP,
    described,
    obj,
    one_or_many,
)
from labrunner.verify.registry import verifier

TYPE_CHECKING = False  # as typing's, without importing typing (a start-up cost)
if TYPE_CHECKING:
    from typing import Any

NAMESPACE = described(STRING, "namespace (default: default)")
SELECTOR = described(
    {"anyOf": [STRING, STRING_MAP]},
    "label selector: a string like 'app=web,version!=v2' or a map of labels",
)
NULLABLE_STRING_MAP = {
    "type": "object",
    "additionalProperties": {"type": ["string", "null"]},
}
COUNT = {
    "anyOf": [
        {"type": "integer", "minimum": 0},
        obj({"min": {"type": "integer", "minimum": 0}, "max": {"type": "integer", "minimum": 0}}),
    ],
    "description": "how many objects must match: a number, or {min, max}",
}
_MISSING = object()


# --------------------------------------------------------------------------- field matching


@dataclass(frozen=True)
class Difference:
    """One place where an object differs from what a check expects."""

    path: str
    message: str

    @property
    def in_status(self) -> bool:
        """True when the field is written by a controller (``status``)."""
        return self.path == "status" or self.path.startswith(("status.", "status["))

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value if value else "''"
    return json.dumps(value, separators=(", ", ": "))


def _join(path: str, key: str) -> str:
    if key.replace("_", "").replace("-", "").isalnum():
        return f"{path}.{key}" if path else key
    return f'{path}["{key}"]'


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def scalars_equal(expected: Any, actual: Any) -> bool:
    """Equal, or equal once both are written as text (``"8080"`` matches ``8080``)."""
    if isinstance(expected, bool) != isinstance(actual, bool):
        return _scalar_text(expected) == _scalar_text(actual)
    return bool(expected == actual) or _scalar_text(expected) == _scalar_text(actual)


def field_differences(expected: Any, actual: Any, path: str = "") -> list[Difference]:
    """Where ``actual`` fails to contain ``expected`` (a subset match), as readable lines.

    Mappings match key by key (``null`` means the key must be absent); lists
    match when every expected item matches some item of the actual list, in
    any order; scalars match when equal or equal as text.
    """
    if expected is None:
        if actual is _MISSING or actual is None:
            return []
        return [Difference(path, f"expected not set, found {_show(actual)}")]
    if actual is _MISSING or actual is None:
        return [Difference(path, f"expected {_show(expected)}, not set")]
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return [Difference(path, f"expected a mapping, found {_show(actual)}")]
        found: list[Difference] = []
        for key, want in expected.items():
            found += field_differences(want, actual.get(key, _MISSING), _join(path, str(key)))
        return found
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [Difference(path, f"expected a list, found {_show(actual)}")]
        unused = list(actual)
        for want in expected:
            match = next((a for a in unused if not field_differences(want, a, path)), _MISSING)
            if match is _MISSING:
                return [Difference(path, f"no item matches {_show(want)} (found {_show(actual)})")]
            unused.remove(match)
        return []
    if isinstance(actual, Mapping | list):
        return [Difference(path, f"expected {_show(expected)}, found {_show(actual)}")]
    if scalars_equal(expected, actual):
        return []
    return [Difference(path, f"expected {_show(expected)}, found {_show(actual)}")]


# --------------------------------------------------------------------------- shared helpers


def _has_var(value: Any) -> bool:
    return "${" in json.dumps(value)


def lint_selector(params: Mapping[str, Any], key: str = "selector") -> list[ParamProblem]:
    """A load-time problem for a malformed label selector string (none for ${VAR}s)."""
    value = params.get(key)
    if not isinstance(value, str) or _has_var(value):
        return []
    problem = selector_problem(value)
    return [ParamProblem((key,), problem)] if problem else []


def selector_param(params: Mapping[str, Any]) -> str:
    """The ``selector`` parameter (string or map) as the API's query string."""
    return label_selector(params.get("selector"))


def wants_absent(params: Mapping[str, Any]) -> bool:
    """True for ``exists: false`` (or its synonym ``absent: true``)."""
    return bool(params.get("absent")) or params.get("exists") is False


def _lint_exists(params: Mapping[str, Any]) -> list[ParamProblem]:
    if "absent" in params and "exists" in params:
        return [ParamProblem(("absent",), "use exists or absent, not both")]
    return []


def _where(namespace: str | None) -> str:
    return f" in {namespace}" if namespace else ""


def workload_word(selector: str) -> str:
    """``web-api`` from ``app=web-api`` (what learners call the pods), else ''."""
    for part in selector.split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip() in ("app", "app.kubernetes.io/name", "k8s-app", "name"):
            return value.strip().lstrip("=")
    return ""


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


def _names(items: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _count_problem(count: Any, found: int, what: str) -> str | None:
    if isinstance(count, int):
        return None if found == count else f"found {found} {what}, expected {count}"
    low, high = count.get("min"), count.get("max")
    if low is not None and found < low:
        return f"found {found} {what}, expected at least {low}"
    if high is not None and found > high:
        return f"found {found} {what}, expected at most {high}"
    return None


# --------------------------------------------------------------------------- resource


def _type_label(params: Mapping[str, Any]) -> str:
    return str(params.get("kind") or params.get("resource") or "object")


def _describe_resource(params: Mapping[str, Any]) -> str:
    what = _type_label(params)
    if params.get("name"):
        what += f" {params['name']}"
    elif params.get("selector"):
        what += f" ({label_selector(params['selector'])})"
    ns = params.get("namespace")
    text = what + (f" in {ns}" if ns and ns != "*" else "")
    if wants_absent(params):
        return f"absent: {text}"
    return text


def _lint_resource(params: Mapping[str, Any]) -> list[ParamProblem]:
    problems = lint_selector(params) + _lint_exists(params)
    by_kind = "kind" in params or "apiVersion" in params
    if by_kind and "resource" in params:
        problems.append(ParamProblem((), "name the type with apiVersion+kind or with resource"))
    elif by_kind and not ("kind" in params and "apiVersion" in params):
        missing = "kind" if "kind" not in params else "apiVersion"
        problems.append(ParamProblem((), f"apiVersion and kind go together; {missing} is missing"))
    elif not by_kind and "resource" not in params:
        problems.append(
            ParamProblem((), "name the type: apiVersion and kind, or resource (e.g. pods)")
        )
    if wants_absent(params) and ("fields" in params or "count" in params):
        key = "absent" if "absent" in params else "exists"
        problems.append(ParamProblem((key,), "an absence check cannot have fields or count"))
    return problems


@verifier(
    "resource",
    params=obj(
        {
            "apiVersion": described(STRING, "e.g. security.istio.io/v1 (with kind)"),
            "kind": described(STRING, "e.g. PeerAuthentication (with apiVersion)"),
            "resource": described(
                STRING, "the type by name instead: peerauthentications.security.istio.io, pods"
            ),
            "name": STRING,
            "namespace": described(STRING, "namespace (default: default; '*' for all)"),
            "selector": SELECTOR,
            "fields": described(
                {"type": "object"},
                "fields the object must contain (a subset match; null = must not be set)",
            ),
            "count": COUNT,
            "exists": described(BOOLEAN, "false: pass when no such object exists"),
            "absent": described(BOOLEAN, "true: the same as exists: false"),
        }
    ),
    needs=("cluster",),
    describe=_describe_resource,
    lint=_lint_resource,
)
@cluster_check
def resource(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
    """An object of any kind (CRDs included) exists, is absent, or has the given fields."""
    cluster = connect(ctx)
    absent = wants_absent(params)
    try:
        rt = cluster.resource_type(
            api_version=params.get("apiVersion"),
            kind=params.get("kind"),
            resource=params.get("resource"),
        )
    except UnknownType as exc:
        if absent:
            return Outcome.passed(f"none: {exc.message}")
        raise
    namespace: str | None = None
    if rt.namespaced:
        namespace = params.get("namespace", "default")
        if namespace == "*":
            namespace = None
    selector = selector_param(params)
    name = params.get("name")
    if name:
        listed = cluster.list(
            rt,
            namespace=namespace,
            label_selector=selector,
            field_selector=f"metadata.name={name}",
        )
    else:
        listed = cluster.list(rt, namespace=namespace, label_selector=selector)
    what = (
        f"{rt.kind} {name}"
        if name
        else f"{rt.kind} objects" + (f" matching {selector}" if selector else "")
    )
    where = _where(namespace)
    wait = cluster.waiter(listed)
    items = listed.items
    live = [i for i in items if not terminating(i)]
    if absent:
        if not items:
            return Outcome.passed(f"no {what}{where}")
        if not live:
            return Outcome.pending(f"{what}{where} is still being deleted", wait=wait)
        return Outcome.pending(
            f"{what}{where} still exists ({_names([name_of(i) for i in live])})", wait=wait
        )
    if "count" in params:
        problem = _count_problem(params["count"], len(live), f"{rt.kind} objects{where}")
        if problem:
            return Outcome.pending(
                problem + (f" matching {selector}" if selector else ""), wait=wait
            )
    elif not live:
        if items:
            return Outcome.pending(f"{what}{where} is being deleted", wait=wait)
        return Outcome.pending(f"{what} not found{where}", wait=wait)
    expected = params.get("fields")
    if expected:
        for item in sorted(live, key=name_of):
            diffs = field_differences(expected, item)
            if diffs:
                label = f"{rt.kind} {name_of(item)}{where}"
                text = f"{label}: " + "; ".join(str(d) for d in diffs[:3])
                if len(diffs) > 3:
                    text += f" (and {len(diffs) - 3} more)"
                details = "\n".join(str(d) for d in diffs)
                if all(d.in_status for d in diffs):
                    return Outcome.pending(text, details, wait=wait)
                return Outcome.failed(text, details)
    if "count" in params:
        return Outcome.passed(f"{_plural(len(live), rt.kind + ' object')}{where}")
    if name:
        suffix = " with the expected fields" if expected else " exists"
        return Outcome.passed(f"{rt.kind} {name}{where}{suffix}")
    return Outcome.passed(f"{_plural(len(live), rt.kind + ' object')}{where}")


# --------------------------------------------------------------------------- namespace


def _describe_namespace(params: Mapping[str, Any]) -> str:
    text = f"namespace {params['name']}"
    if wants_absent(params):
        return f"absent: {text}"
    labels = params.get("labels") or {}
    if labels:
        shown = ", ".join(f"{k}={v}" if v is not None else f"no {k}" for k, v in labels.items())
        text += f" ({shown})"
    return text


def _metadata_problems(
    have: Mapping[str, Any], want: Mapping[str, Any], what: str
) -> tuple[list[str], list[str]]:
    """(wrong, missing): settled wrong values, and values not set yet."""
    wrong, missing = [], []
    for key, value in want.items():
        current = have.get(key)
        if value is None:
            if current is not None:
                wrong.append(f"{what} {key} is set to {_show(current)}; it must not be set")
        elif current is None:
            missing.append(f"no {what} {key} (expected {_show(value)})")
        elif not scalars_equal(value, current):
            wrong.append(f"{what} {key} is {_show(current)}, expected {_show(value)}")
    return wrong, missing


@verifier(
    "namespace",
    params=obj(
        {
            "name": STRING,
            "labels": described(NULLABLE_STRING_MAP, "labels it must have (null: must not have)"),
            "annotations": described(NULLABLE_STRING_MAP, "annotations it must have"),
            "exists": described(BOOLEAN, "false: pass when the namespace does not exist"),
            "absent": described(BOOLEAN, "true: the same as exists: false"),
        },
        required=("name",),
    ),
    needs=("cluster",),
    describe=_describe_namespace,
    lint=_lint_exists,
)
@cluster_check
def namespace(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
    """A namespace exists (with the given labels and annotations), or does not."""
    cluster = connect(ctx)
    name = params["name"]
    listed = cluster.named(NAMESPACES, name)
    wait = cluster.waiter(listed)
    found = listed.items[0] if listed.items else None
    if wants_absent(params):
        if found is None:
            return Outcome.passed(f"namespace {name} does not exist")
        if terminating(found):
            return Outcome.pending(f"namespace {name} is still terminating", wait=wait)
        return Outcome.pending(f"namespace {name} still exists", wait=wait)
    if found is None:
        return Outcome.pending(f"namespace {name} does not exist", wait=wait)
    if terminating(found):
        return Outcome.pending(f"namespace {name} is terminating", wait=wait)
    meta = found.get("metadata") or {}
    wrong, missing = [], []
    for key, what in (("labels", "label"), ("annotations", "annotation")):
        w, m = _metadata_problems(meta.get(key) or {}, params.get(key) or {}, what)
        wrong += w
        missing += m
    if wrong:
        return Outcome.failed(f"namespace {name}: " + "; ".join(wrong))
    if missing:
        return Outcome.pending(f"namespace {name} has " + "; ".join(missing), wait=wait)
    extra = params.get("labels") or {}
    shown = ", ".join(f"{k}={v}" for k, v in extra.items() if v is not None)
    return Outcome.passed(f"namespace {name} exists" + (f" with {shown}" if shown else ""))


# --------------------------------------------------------------------------- pods_ready


def _describe_pods(params: Mapping[str, Any], word: str = "pods ready") -> str:

    selector = label_selector(params.get("selector")) or "all pods"
    return f"{word}: {selector} in {params.get('namespace', 'default')}"


def _lint_pods(params: Mapping[str, Any]) -> list[ParamProblem]:
    problems = lint_selector(params)
    if "count" in params and "min" in params:
        problems.append(ParamProblem(("min",), "use count or min, not both"))
    return problems


@dataclass
class PodSelection:
    """The live (not terminating) pods a pod check covers, and how to word and watch them."""

    cluster: Reader
    namespace: str
    selector: str
    listed: ObjectList
    live: list[dict[str, Any]]

    @property
    def pods_word(self) -> str:
        """``web-api pods`` for ``app=web-api``, plain ``pods`` otherwise."""
        word = workload_word(self.selector)
        return f"{word} pods" if word else "pods"

    @property
    def scope(self) -> str:
        """`` matching <selector>`` when the selector names no workload, else ''."""
        return (
            f" matching {self.selector}"
            if self.selector and not workload_word(self.selector)
            else ""
        )

    def wait(self) -> Waiter:
        """A watch-based ``wait`` on the listed pods."""
        return self.cluster.waiter(self.listed)

    def none_yet(self) -> Outcome:
        """Pending: no pod matches yet."""
        return Outcome.pending(
            f"no {self.pods_word}{self.scope} in {self.namespace} yet", wait=self.wait()
        )


def select_pods(ctx: CheckContext, params: Mapping[str, Any]) -> PodSelection:
    """List the pods of ``namespace``/``selector``, dropping terminating ones."""
    cluster = connect(ctx)
    ns = params.get("namespace", "default")
    selector = selector_param(params)
    listed = cluster.list(PODS, namespace=ns, label_selector=selector)
    live = sorted((p for p in listed.items if not terminating(p)), key=name_of)
    return PodSelection(cluster, ns, selector, listed, live)


def not_ready_summary(pods: Sequence[Mapping[str, Any]], limit: int = 2) -> str:
    """``web-api-7d5c-x is Pending: ImagePullBackOff; ...`` for the first unready pods."""
    shown = [f"{name_of(p)} is {why_not_ready(p)}" for p in pods[:limit]]
    if len(pods) > limit:
        shown.append(f"{len(pods) - limit} more not ready")
    return "; ".join(shown)


@verifier(
    "pods_ready",
    params=obj(
        {
            "namespace": NAMESPACE,
            "selector": SELECTOR,
            "count": described(
                {"type": "integer", "minimum": 0}, "exactly this many pods, all ready"
            ),
            "min": described(
                {"type": "integer", "minimum": 1},
                "at least this many ready pods (others may not be)",
            ),
        }
    ),
    needs=("cluster",),
    describe=_describe_pods,
    lint=_lint_pods,
)
@cluster_check
def pods_ready(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
    """Matching pods are Ready; terminating pods are ignored, unready ones are named."""
    pods = select_pods(ctx, params)
    if not pods.live:
        return pods.none_yet()
    ns, live = pods.namespace, pods.live
    ready = [p for p in live if is_ready(p)]
    unready = [p for p in live if not is_ready(p)]
    wait = pods.wait()
    details = "\n".join(m for p in unready for m in waiting_messages(p)) or None
    summary = f"{len(ready)} of {len(live)} {pods.pods_word}{pods.scope} ready"
    if "min" in params:
        if len(ready) >= params["min"]:
            return Outcome.passed(f"{summary} in {ns} (at least {params['min']} needed)")
        return Outcome.pending(
            f"{summary}, need {params['min']}; {not_ready_summary(unready)}", details, wait=wait
        )
    if unready:
        return Outcome.pending(f"{summary}; {not_ready_summary(unready)}", details, wait=wait)
    if "count" in params and len(live) != params["count"]:
        return Outcome.pending(
            f"{len(live)} {pods.pods_word}{pods.scope} ready in {ns}, expected {params['count']}",
            wait=wait,
        )
    return Outcome.passed(f"{summary} in {ns}")


# --------------------------------------------------------------------------- deployment_available


def _describe_deployment(params: Mapping[str, Any]) -> str:
    names = params["name"] if isinstance(params["name"], list) else [params["name"]]
    where = params.get("namespace", "default")
    return f"deployment available: {', '.join(map(str, names))} in {where}"


@verifier(
    "deployment_available",
    params=obj(
        {
            "namespace": NAMESPACE,
            "name": described(one_or_many(STRING), "a Deployment name, or a list of them"),
        },
        required=("name",),
    ),
    needs=("cluster",),
    describe=_describe_deployment,
)
@cluster_check
def deployment_available(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
    """Deployments are rolled out to their latest generation and Available."""
    cluster = connect(ctx)
    ns = params.get("namespace", "default")
    names = params["name"] if isinstance(params["name"], list) else [params["name"]]
    if len(names) == 1:
        listed = cluster.named(DEPLOYMENTS, names[0], namespace=ns)
    else:
        listed = cluster.list(DEPLOYMENTS, namespace=ns)
    found = {name_of(d): d for d in listed.items}
    wanted = {n: found.get(n) for n in names}
    problems, final = deployment_problems(cluster, wanted, ns)
    if problems:
        text = "; ".join(problems)
        if final:
            return Outcome.failed(text)
        return Outcome.pending(text, wait=cluster.waiter(listed))
    shown = ", ".join(
        f"{n} ({desired_replicas(d)}/{desired_replicas(d)})" for n, d in wanted.items() if d
    )
    return Outcome.passed(f"available in {ns}: {shown}")


def deployment_problems(
    cluster: Reader, deployments: Mapping[str, Mapping[str, Any] | None], namespace: str
) -> tuple[list[str], bool]:
    """Messages for Deployments that are missing or not rolled out, and whether any is final.

    The first unfinished Deployment's message also names one of its unready pods
    (one extra list call, only while something is pending).
    """
    problems, final, explained = [], False, False
    for name, dep in deployments.items():
        if dep is None:
            problems.append(f"deployment {name} not found in {namespace}")
            continue
        problem, stuck = rollout_problem(dep)
        if problem is None:
            continue
        final = final or stuck
        text = f"deployment {name}: {problem}"
        selector = selector_string((dep.get("spec") or {}).get("selector"))
        if selector and not stuck and not explained:
            explained = True
            pods = cluster.list(PODS, namespace=namespace, label_selector=selector).items
            unready = [p for p in pods if not terminating(p) and not is_ready(p)]
            if unready:
                text += f"; {not_ready_summary(unready, limit=1)}"
        problems.append(text)
    return problems, final


# --------------------------------------------------------------------------- secret


@verifier(
    "secret",
    params=obj(
        {
            "namespace": NAMESPACE,
            "name": STRING,
            "type": described(STRING, "e.g. kubernetes.io/tls or Opaque"),
            "keys": described(STRING_LIST, "data keys that must be present and non-empty"),
        },
        required=("name",),
    ),
    needs=("cluster",),
    describe=lambda p: f"secret {p['name']} in {p.get('namespace', 'default')}",
)
@cluster_check
def secret(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
    """A Secret exists with the given type and non-empty keys (values are never shown)."""
    ns = params.get("namespace", "default")
    name = params["name"]
    try:
        item, _ = read_secret(ctx, namespace=ns, name=name)
    except CheckAbort as stop:
        return stop.outcome
    kind = str(item.get("type") or "Opaque")
    if params.get("type") and kind != params["type"]:
        return Outcome.failed(f"secret {name} in {ns} has type {kind}, expected {params['type']}")
    data = secret_keys(item)
    for key in params.get("keys") or []:
        if key not in data:
            return missing_key(namespace=ns, name=name, key=key, keys=data)
        if not data[key]:
            return Outcome.failed(f"secret {name} in {ns}: key {key} is empty")
    keys = ", ".join(sorted(data)) or "none"
    return Outcome.passed(f"secret {name} in {ns} ({kind}; keys: {keys})")


# --------------------------------------------------------------------------- crd


@verifier(
    "crd",
    params=obj(
        {
            "name": described(STRING, "e.g. peerauthentications.security.istio.io"),
            "version": described(STRING, "a version it must serve, e.g. v1"),
            "established": described(BOOLEAN, "require the Established condition (default true)"),
        },
        required=("name",),
    ),
    needs=("cluster",),
    describe=lambda p: f"CRD {p['name']}" + (f" serves {p['version']}" if p.get("version") else ""),
)
@cluster_check
def crd(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
    """A CustomResourceDefinition exists, is established, and serves a version."""
    cluster = connect(ctx)
    name = params["name"]
    listed = cluster.named(CRDS, name)
    wait = cluster.waiter(listed)
    if not listed.items:
        return Outcome.pending(f"CRD {name} is not installed", wait=wait)
    item = listed.items[0]
    accepted = condition(item, "NamesAccepted")
    if accepted and accepted.get("status") == "False":
        return Outcome.failed(f"CRD {name}: names not accepted: {accepted.get('message', '')}")
    established = condition(item, "Established")
    if params.get("established", True) and not (
        established and established.get("status") == "True"
    ):
        return Outcome.pending(f"CRD {name} is not established yet", wait=wait)
    served = [
        str(v.get("name"))
        for v in (item.get("spec") or {}).get("versions") or []
        if v.get("served")
    ]
    want = params.get("version")
    if want and want not in served:
        return Outcome.failed(
            f"CRD {name} does not serve {want} (served: {', '.join(served) or 'none'})"
        )
    return Outcome.passed(f"CRD {name} established; serves {', '.join(served)}")


__all__ = [
    "Difference",
    "PodSelection",
    "crd",
    "deployment_available",
    "deployment_problems",
    "field_differences",
    "namespace",
    "not_ready_summary",
    "pods_ready",
    "resource",
    "scalars_equal",
    "secret",
    "select_pods",
]
