"""Istio verifiers: the control plane is installed, sidecars are injected, mTLS is enforced.

These read Kubernetes objects only (no ``istioctl``), through the same
cluster layer and with the same pending/failed rule as
``labrunner.verify.kubernetes``:

* pending while Istio converges or the learner has not acted yet: istiod or
  a gateway still rolling out, CRDs or the injector webhook not there yet,
  pods without a sidecar (pods created before the namespace was labelled get
  one only when restarted, and a ``rollout restart`` replaces them
  gradually), no PeerAuthentication yet;
* failed when a settled object says otherwise: istiod runs another Istio
  version than the workshop pins, a PeerAuthentication has the wrong mode or
  a selector where a mesh-wide policy was asked for.

Facts from the Istio releases these follow (notes/istio-labs.md): since 1.27
``istio-proxy`` may be a native sidecar (an init container with
``restartPolicy: Always``) rather than a container; CRD counts change from
release to release, so installation is checked by name; the sidecar injector
is a MutatingWebhookConfiguration named ``istio-sidecar-injector*`` or
``istio-revision-tag-*``; PeerAuthentication is read through
``security.istio.io/v1``; a policy in the mesh root namespace (istio-system)
without a selector is mesh-wide, one elsewhere without a selector covers its
namespace, and when several qualify Istio uses the oldest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from labrunner.verify.context import CheckContext
from labrunner.verify.kubernetes import (
    NAMESPACE,
    SELECTOR,
    cluster_check,
    deployment_problems,
    lint_selector,
    select_pods,
    selector_param,
)
from labrunner.verify.outcome import Outcome
from labrunner.verify.params import BOOLEAN, STRING, STRING_LIST, STRING_MAP, described, obj
from labrunner.verify.registry import verifier

PROXY = "istio-proxy"
STATUS_ANNOTATION = "sidecar.istio.io/status"
ROOT_NAMESPACE = "istio-system"
DEFAULT_GATEWAYS = ("istio-ingressgateway",)
DEFAULT_CRDS = (
    "virtualservices.networking.istio.io",
    "gateways.networking.istio.io",
    "destinationrules.networking.istio.io",
    "peerauthentications.security.istio.io",
    "authorizationpolicies.security.istio.io",
    "telemetries.telemetry.istio.io",
)
INJECTOR_PREFIXES = ("istio-sidecar-injector", "istio-revision-tag-")
MTLS_MODES = ("STRICT", "PERMISSIVE", "DISABLE", "UNSET")
_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


# --------------------------------------------------------------------------- sidecar_injected


def proxy_kind(pod: Mapping[str, Any]) -> str | None:
    """``container`` or ``native`` when the pod has an istio-proxy sidecar, else None."""
    spec = pod.get("spec") or {}
    if any(c.get("name") == PROXY for c in spec.get("containers") or []):
        return "container"
    for c in spec.get("initContainers") or []:
        if c.get("name") == PROXY and c.get("restartPolicy") == "Always":
            return "native"
    return None


def _proxy_ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    for key in ("containerStatuses", "initContainerStatuses"):
        for cs in status.get(key) or []:
            if cs.get("name") == PROXY:
                return bool(cs.get("ready"))
    return False


def _injection_hint(cluster: Any, namespace: str) -> str:
    """Why pods of ``namespace`` may lack the sidecar (its labels), for the message."""
    from labrunner.cluster.api import NAMESPACES, labels_of

    found = cluster.read(NAMESPACES, namespace)
    labels = labels_of(found) if found else {}
    flag = labels.get("istio-injection")
    if flag == "enabled" or (flag is None and labels.get("istio.io/rev")):
        return "pods created before injection was enabled need `kubectl rollout restart`"
    if flag is not None:
        return f"namespace {namespace} has istio-injection={flag}; it needs istio-injection=enabled"
    return f"namespace {namespace} is not labelled istio-injection=enabled"


@verifier(
    "sidecar_injected",
    params=obj(
        {
            "namespace": NAMESPACE,
            "selector": SELECTOR,
            "injected": described(
                BOOLEAN, "false: pass when no matching pod has a sidecar (default true)"
            ),
            "ready": described(BOOLEAN, "also require the istio-proxy container to be ready"),
        }
    ),
    needs=("cluster",),
    describe=lambda p: (
        ("no sidecar: " if p.get("injected") is False else "sidecar injected: ")
        + (selector_param(p) or "all pods")
        + f" in {p.get('namespace', 'default')}"
    ),
    lint=lint_selector,
)
@cluster_check
def sidecar_injected(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
    """Every matching pod has Istio's sidecar (container or native sidecar) and its annotation."""
    from labrunner.cluster.api import name_of

    pods = select_pods(ctx, params)
    if not pods.live:
        return pods.none_yet()
    ns, live, pods_word, wait = pods.namespace, pods.live, pods.pods_word, pods.wait()
    missing = [p for p in live if proxy_kind(p) is None or STATUS_ANNOTATION not in _annotations(p)]
    if params.get("injected") is False:
        with_proxy = [name_of(p) for p in live if proxy_kind(p) is not None]
        if with_proxy:
            shown = ", ".join(with_proxy[:3]) + (
                f" and {len(with_proxy) - 3} more" if len(with_proxy) > 3 else ""
            )
            one = len(with_proxy) == 1
            return Outcome.pending(
                f"{shown} in {ns} {'has' if one else 'have'} the Istio sidecar, which "
                f"{'it' if one else 'they'} should not (is namespace {ns} labelled for injection?)",
                wait=wait,
            )
        return Outcome.passed(f"none of the {len(live)} {pods_word} in {ns} has a sidecar")
    if missing:
        names = [name_of(p) for p in missing]
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        injected = len(live) - len(missing)
        message = (
            f"{injected} of {len(live)} {pods_word} in {ns} have the Istio sidecar; "
            f"missing in {shown} ({_injection_hint(pods.cluster, ns)})"
        )
        return Outcome.pending(message, wait=wait)
    if params.get("ready"):
        unready = [name_of(p) for p in live if not _proxy_ready(p)]
        if unready:
            return Outcome.pending(
                f"istio-proxy not ready yet in {', '.join(unready[:3])}", wait=wait
            )
    native = sum(1 for p in live if proxy_kind(p) == "native")
    how = " (native sidecars)" if native == len(live) else ""
    return Outcome.passed(f"{len(live)} of {len(live)} {pods_word} in {ns} have the sidecar{how}")


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return (obj.get("metadata") or {}).get("annotations") or {}


# --------------------------------------------------------------------------- istio_installed


def version_of(deployment: Mapping[str, Any]) -> str | None:
    """The Istio version istiod runs: its image tag, else its version labels."""
    spec = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = spec.get("containers") or []
    chosen = next((c for c in containers if c.get("name") == "discovery"), None)
    for c in [chosen, *containers]:
        image = str((c or {}).get("image") or "")
        ref = image.split("@", 1)[0]
        tag = ref.rsplit(":", 1)[1] if ":" in ref.rsplit("/", 1)[-1] else ""
        match = _VERSION.match(tag)
        if match:
            return match.group(0).lstrip("v")
    labels = (deployment.get("metadata") or {}).get("labels") or {}
    for key in ("app.kubernetes.io/version", "operator.istio.io/version"):
        match = _VERSION.match(str(labels.get(key) or ""))
        if match:
            return match.group(0).lstrip("v")
    rev = str(labels.get("istio.io/rev") or "")
    match = re.match(r"^(\d+)-(\d+)(?:-(\d+))?", rev)
    if match:
        return ".".join(g for g in match.groups() if g is not None)
    return None


def version_matches(found: str, wanted: str) -> bool:
    """``1.30.3`` matches ``1.30.3`` and ``1.30``; a leading ``v`` is ignored."""
    have = found.lstrip("v").split(".")
    want = wanted.strip().lstrip("v").split(".")
    return have[: len(want)] == want


def find_istiod(deployments: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The istiod Deployment (``istiod``, else the first revisioned ``istiod-<rev>``)."""
    from labrunner.cluster.api import name_of

    by_name = {name_of(d): d for d in deployments}
    if "istiod" in by_name:
        return by_name["istiod"]
    revisioned = sorted(n for n in by_name if n.startswith("istiod-"))
    return by_name[revisioned[0]] if revisioned else None


@verifier(
    "istio_installed",
    params=obj(
        {
            "version": described(
                STRING, "the pinned Istio release (default: $ISTIO_VERSION when it is set)"
            ),
            "namespace": described(STRING, "the control plane's namespace (istio-system)"),
            "gateways": described(STRING_LIST, "gateway Deployments that must be available"),
            "crds": described(STRING_LIST, "CRDs that must exist (default: core Istio CRDs)"),
        }
    ),
    needs=("cluster",),
    describe=lambda p: f"Istio {p['version']} installed" if p.get("version") else "Istio installed",
)
@cluster_check
def istio_installed(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
    """istiod and the gateways are available, the CRDs and injector exist, the version is pinned."""
    from labrunner.cluster.api import (
        CRDS,
        DEPLOYMENTS,
        METADATA_ONLY,
        MUTATING_WEBHOOKS,
        connect,
        name_of,
    )

    cluster = connect(ctx)
    ns = params.get("namespace", ROOT_NAMESPACE)
    deployments = cluster.list(DEPLOYMENTS, namespace=ns)
    istiod = find_istiod(deployments.items)
    if istiod is None:
        return Outcome.pending(
            f"Istio is not installed: no istiod Deployment in {ns}",
            wait=cluster.waiter(deployments),
        )
    found_version = version_of(istiod)
    wanted = params.get("version") or ctx.env.get("ISTIO_VERSION")
    if wanted and found_version and not version_matches(found_version, wanted):
        return Outcome.failed(
            f"{name_of(istiod)} runs Istio {found_version}, but this workshop pins {wanted}; "
            f"install Istio {wanted} (its istioctl: istioctl install)"
        )
    crds = cluster.list(CRDS, accept=METADATA_ONLY)
    have = {name_of(c) for c in crds.items}
    missing = [n for n in params.get("crds", DEFAULT_CRDS) if n not in have]
    if missing:
        return Outcome.pending(
            f"Istio CRDs missing: {', '.join(missing)}", wait=cluster.waiter(crds)
        )
    hooks = cluster.list(MUTATING_WEBHOOKS, accept=METADATA_ONLY)
    if not any(name_of(h).startswith(INJECTOR_PREFIXES) for h in hooks.items):
        return Outcome.pending(
            "no sidecar injector webhook yet (MutatingWebhookConfiguration "
            "istio-sidecar-injector or istio-revision-tag-*)",
            wait=cluster.waiter(hooks),
        )
    by_name = {name_of(d): d for d in deployments.items}
    wanted_deployments: dict[str, Mapping[str, Any] | None] = {name_of(istiod): istiod}
    for gateway in params.get("gateways", DEFAULT_GATEWAYS):
        wanted_deployments[gateway] = by_name.get(gateway)
    problems, final = deployment_problems(cluster, wanted_deployments, ns)
    if problems:
        text = "; ".join(problems)
        return (
            Outcome.failed(text)
            if final
            else Outcome.pending(text, wait=cluster.waiter(deployments))
        )
    version_text = found_version or "unknown version (istiod's image has no version tag)"
    parts = ", ".join(wanted_deployments)
    return Outcome.passed(f"Istio {version_text} installed in {ns}: {parts} available")


# --------------------------------------------------------------------------- peer_authentication


def _describe_pa(params: Mapping[str, Any]) -> str:
    root = params.get("root_namespace", ROOT_NAMESPACE)
    ns = params.get("namespace", root)
    if params.get("selector"):
        where = f"for {selector_param(params)} in {ns}"
    elif ns == root:
        where = "mesh-wide"
    else:
        where = f"in {ns}"
    return f"mTLS {params['mode']} {where}"


def _oldest(items: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    from labrunner.cluster.api import name_of

    return sorted(
        items,
        key=lambda i: (str((i.get("metadata") or {}).get("creationTimestamp") or ""), name_of(i)),
    )[0]


@verifier(
    "peer_authentication",
    params=obj(
        {
            "mode": {"enum": list(MTLS_MODES), "description": "the expected spec.mtls.mode"},
            "namespace": described(
                STRING, "where the policy lives (default: the root namespace, i.e. mesh-wide)"
            ),
            "name": described(STRING, "a specific policy (default: whichever applies)"),
            "selector": described(STRING_MAP, "workload labels (spec.selector.matchLabels)"),
            "root_namespace": described(STRING, "the mesh root namespace (istio-system)"),
        },
        required=("mode",),
    ),
    needs=("cluster",),
    describe=_describe_pa,
)
@cluster_check
def peer_authentication(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
    """The PeerAuthentication that applies (mesh, namespace or workload) has the given mode."""
    from labrunner.cluster.api import connect, name_of, terminating
    from labrunner.cluster.resources import UnknownType

    cluster = connect(ctx)
    root = params.get("root_namespace", ROOT_NAMESPACE)
    ns = params.get("namespace", root)
    want_selector = dict(params.get("selector") or {})
    try:
        rt = cluster.resource_type(api_version="security.istio.io/v1", kind="PeerAuthentication")
    except UnknownType:
        return Outcome.pending(
            "the cluster does not serve security.istio.io/v1 PeerAuthentication "
            "(is Istio 1.22 or newer installed?)"
        )
    listed = cluster.list(rt, namespace=ns)
    wait = cluster.waiter(listed)
    live = [i for i in listed.items if not terminating(i)]
    if want_selector:
        scope = f"for workloads {selector_param(params)} in {ns}"
    elif ns == root:
        scope = f"mesh-wide (in the root namespace {root}, without a selector)"
    else:
        scope = f"namespace-wide in {ns} (without a selector)"

    def selector_of(item: Mapping[str, Any]) -> dict[str, Any]:
        return dict((((item.get("spec") or {}).get("selector") or {}).get("matchLabels")) or {})

    if params.get("name"):
        named = [i for i in live if name_of(i) == params["name"]]
        if not named:
            return Outcome.pending(f"no PeerAuthentication {params['name']} in {ns} yet", wait=wait)
        chosen: Mapping[str, Any] = named[0]
        if selector_of(chosen) != want_selector:
            has = selector_of(chosen)
            why = f"selects {has}" if has else "has no selector"
            return Outcome.failed(
                f"PeerAuthentication {ns}/{name_of(chosen)} {why}, so it does not apply {scope}"
            )
    else:
        candidates = [i for i in live if selector_of(i) == want_selector]
        if not candidates:
            return Outcome.pending(f"no PeerAuthentication {scope} yet", wait=wait)
        chosen = _oldest(candidates)
    mode = str(((chosen.get("spec") or {}).get("mtls") or {}).get("mode") or "UNSET")
    label = f"PeerAuthentication {ns}/{name_of(chosen)}"
    if mode != params["mode"]:
        return Outcome.failed(f"{label}: spec.mtls.mode is {mode}, expected {params['mode']}")
    return Outcome.passed(f"mTLS {mode} {scope.split(' (')[0]} ({label})")
