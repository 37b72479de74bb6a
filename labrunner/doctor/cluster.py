"""Cluster findings for ``labrunner doctor``: context, reachability, versions, Istio, ingress.

A learner who starts a workshop on the wrong context, a stopped kind cluster,
a Kubernetes release the pinned Istio does not support, or a gateway nobody
can reach loses an hour finding out in lab three. The doctor asks each
question up front, read-only, and words every answer with what to do.

Only a reachable cluster (and a kube context to reach it with) is required,
and only when the workshop has labs that use one; everything else is advice.
Every request is bounded (about 3 s) so a dead cluster costs seconds, not
minutes, and a server that trickles its answer is cut off at the same bound.
The doctor reads the kubeconfig as kubectl does and judges the context with
the same guard (name and server) as ``verify``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from labrunner.cluster.client import Kube
from labrunner.cluster.errors import ClusterError, NotFound
from labrunner.cluster.guard import decide
from labrunner.cluster.kubeconfig import load, resolve_context
from labrunner.cluster.resources import DEPLOYMENTS, SERVICES, name_of
from labrunner.cluster.versions import (
    find_istiod,
    istio_version_of,
    kubernetes_support,
    minor,
    version_matches,
)
from labrunner.doctor.findings import Finding, Topic

if TYPE_CHECKING:
    from labrunner.lab.model import Workshop

TIMEOUT = 3.0
ISTIO_NAMESPACE = "istio-system"
GATEWAY_SERVICE = "istio-ingressgateway"


def _finding(
    topic: Topic,
    name: str,
    ok: bool,
    detail: str,
    fix: str = "",
    *,
    required: bool = False,
    version: str | None = None,
    found: bool = True,
) -> Finding:
    return Finding(name, ok, detail, fix, required, topic, version, found)


def _pinned_istio(workshop: Workshop | None, env: Mapping[str, str]) -> str | None:
    if workshop is not None and workshop.env.get("ISTIO_VERSION"):
        return str(workshop.env["ISTIO_VERSION"])
    return env.get("ISTIO_VERSION") or None


CREATE_CLUSTER = (
    "kind create cluster --name istio-workshop --config manifests/kind/cluster.yaml "
    "--image kindest/node:v1.33.1"
)
"""The README's command (section "Bring a cluster"); a test keeps the two identical."""
CREATE_CLUSTER_FIX = f"create a cluster: see Bring a cluster in the README (`{CREATE_CLUSTER}`)"
"""What to do without a cluster: the same words in ``doctor`` and at a lab's end."""

FIXES = {
    "kubeconfig": f"{CREATE_CLUSTER_FIX}, "
    "or pick a context with --context NAME / `kubectl config use-context NAME`",
    "unreachable": "start the cluster (kind: `docker start <name>-control-plane`) or recreate it",
    "timeout": "start the cluster (kind: `docker start <name>-control-plane`) or recreate it",
    "tls": "re-export the kubeconfig, e.g. `kind export kubeconfig --name <cluster>`",
    "credentials": "re-export the kubeconfig, e.g. `kind export kubeconfig --name <cluster>`",
    "forbidden": "use a context with cluster-admin rights",
}


def _fix_for(error: ClusterError) -> str:
    return FIXES.get(error.kind, "")


MESSAGE_KINDS = (
    (("not found on PATH", "cannot run here"), "tool"),
    (("kubeconfig", "context"), "kubeconfig"),
    (("rejected the credentials", "Unauthorized"), "credentials"),
    (("not allowed", "forbidden"), "forbidden"),
    (("TLS", "certificate"), "tls"),
    (("cannot reach", "unreachable", "refused", "timed out"), "unreachable"),
)


def fix_for_message(message: str) -> str:
    """The fix for an environment error known only by its message (a check's error)."""
    for words, kind in MESSAGE_KINDS:
        if any(word.lower() in message.lower() for word in words):
            if kind == "tool":
                return "install what is missing; `labrunner doctor` lists the tools and versions"
            return FIXES[kind]
    return "run `labrunner doctor` to see what is missing"


def context_finding(
    context: str | None, workshop: Workshop | None, env: Mapping[str, str], *, required: bool
) -> tuple[Finding, str | None]:
    """The kube context labrunner would act on and the guard's verdict; returns the name too."""
    try:
        config = load(env)
        name = resolve_context(config, context, env_value=env.get("KUBECONFIG") or "")
    except ClusterError as exc:
        return _finding(
            Topic.CONTEXT, "kube context", False, exc.message, _fix_for(exc), required=required
        ), None
    patterns = workshop.context_patterns if workshop is not None else ()
    server = config.server(name)
    decision = decide(
        name,
        explicit=context is not None,
        extra=patterns,
        server=server,
        proxy_url=config.proxy_url(name),
    )
    shown = server or "unknown server"
    if decision.allowed:
        return _finding(
            Topic.CONTEXT, "kube context", True, f"{name} ({shown})", required=required
        ), name
    why = decision.reason.partition(": ")[2].partition(". If you are sure")[0]
    return (
        _finding(
            Topic.CONTEXT,
            "kube context",
            False,
            f"{name} ({shown}): {why}",
            f"if you are sure, pass --context {name}; otherwise switch to a workshop cluster",
            required=required,
        ),
        name,
    )


def _version_findings(version: Mapping[str, Any], pinned: str | None) -> Finding:
    git = str(version.get("gitVersion") or "")
    raw_minor = str(version.get("minor") or "").rstrip("+")
    k8s_minor = int(raw_minor) if raw_minor.isdigit() else minor(git)
    shown = git or f"{version.get('major', '?')}.{version.get('minor', '?')}"
    found = git or None
    if k8s_minor is None:
        return _finding(
            Topic.KUBERNETES,
            "kubernetes",
            True,
            f"{shown} (cannot tell the minor version)",
            version=found,
        )
    if pinned is None:
        return _finding(
            Topic.KUBERNETES,
            "kubernetes",
            True,
            f"{shown} (the workshop pins no Istio version)",
            version=found,
        )
    supported, why = kubernetes_support(pinned, k8s_minor)
    return _finding(
        Topic.KUBERNETES,
        "kubernetes",
        supported is not False,
        f"{shown}; {why}",
        ""
        if supported is not False
        else "create the cluster with a supported Kubernetes, "
        "e.g. `kind create cluster --image kindest/node:v1.33.1`",
        version=found,
    )


def _istio_finding(kube: Kube, pinned: str | None) -> tuple[Finding, bool]:
    install = f"istioctl install --set profile=demo -y (Istio {pinned or 'the pinned release'})"
    try:
        listed = kube.get(DEPLOYMENTS.collection(ISTIO_NAMESPACE), timeout=TIMEOUT)
    except ClusterError as exc:
        return (
            _finding(Topic.ISTIO, "istio", False, f"cannot tell: {exc.message}", _fix_for(exc)),
            False,
        )
    istiod = find_istiod(listed.get("items") or [])
    if istiod is None:
        return (
            _finding(
                Topic.ISTIO,
                "istio",
                False,
                f"not installed (no istiod Deployment in {ISTIO_NAMESPACE})",
                f"the workshop's install lab does this: {install}",
                found=False,
            ),
            False,
        )
    found = istio_version_of(istiod)
    detail = f"{name_of(istiod)} runs Istio {found or 'of an unknown version'}"
    if pinned and found and not version_matches(found, pinned):
        return (
            _finding(
                Topic.ISTIO,
                "istio",
                False,
                f"{detail}; the workshop pins {pinned}",
                f"uninstall it (istioctl uninstall --purge -y) and {install}",
                version=found,
            ),
            True,
        )
    return _finding(Topic.ISTIO, "istio", True, detail, version=found), True


def _gateway_finding(kube: Kube) -> Finding:
    def gateway(ok: bool, detail: str, fix: str = "", *, found: bool = True) -> Finding:
        return _finding(Topic.GATEWAY, "ingress gateway", ok, detail, fix, found=found)

    try:
        svc = kube.get(SERVICES.item(GATEWAY_SERVICE, ISTIO_NAMESPACE), timeout=TIMEOUT)
    except NotFound:
        return gateway(
            False,
            f"no {GATEWAY_SERVICE} Service in {ISTIO_NAMESPACE}",
            "install Istio with the demo profile, which includes the ingress gateway",
            found=False,
        )
    except ClusterError as exc:
        return gateway(False, f"cannot tell: {exc.message}", _fix_for(exc))
    spec, status = svc.get("spec") or {}, svc.get("status") or {}
    kind = str(spec.get("type") or "ClusterIP")
    ingress = (status.get("loadBalancer") or {}).get("ingress") or []
    address = next((i.get("ip") or i.get("hostname") for i in ingress if isinstance(i, dict)), None)
    ports = {str(p.get("name")): p for p in spec.get("ports") or [] if isinstance(p, dict)}
    http = ports.get("http2") or next(iter(ports.values()), {})
    port = http.get("port", 80)
    forward = f"kubectl -n {ISTIO_NAMESPACE} port-forward svc/{GATEWAY_SERVICE} 8080:{port}"
    if address:
        return gateway(True, f"{kind} with external address {address}")
    if kind in ("LoadBalancer", "NodePort") and http.get("nodePort"):
        return gateway(
            False,
            f"{kind} without an external address (usual on kind and minikube); "
            f"NodePort {http['nodePort']} on the node's IP also works",
            f"labs reach it through the API server (port-forward): {forward}",
        )
    return gateway(
        False,
        f"{kind} Service without an external address",
        f"labs reach it through the API server (port-forward): {forward}",
    )


def findings(
    *, context: str | None, workshop: Workshop | None, env: Mapping[str, str] | None = None
) -> list[Finding]:
    """Every cluster finding, each with what to do about it."""
    env = dict(os.environ if env is None else env)
    needs_cluster = workshop is not None and any(lab.needs_cluster for lab in workshop.labs)
    context_result, name = context_finding(context, workshop, env, required=needs_cluster)
    out = [context_result]
    if name is None:
        return out
    pinned = _pinned_istio(workshop, env)

    def unreachable(exc: ClusterError) -> Finding:
        return _finding(
            Topic.CLUSTER, "cluster", False, exc.message, _fix_for(exc), required=needs_cluster
        )

    try:
        kube = Kube.connect(env, name)
    except ClusterError as exc:
        out.append(unreachable(exc))
        return out
    try:
        try:
            version = kube.version(timeout=TIMEOUT)
        except NotFound:
            version = {}
        except ClusterError as exc:
            out.append(unreachable(exc))
            return out
        out.append(
            _finding(
                Topic.CLUSTER,
                "cluster",
                True,
                f"reachable at {kube.server}",
                required=needs_cluster,
            )
        )
        out.append(_version_findings(version, pinned))
        istio, installed = _istio_finding(kube, pinned)
        out.append(istio)
        if installed:
            out.append(_gateway_finding(kube))
    finally:
        kube.close()
    return out
