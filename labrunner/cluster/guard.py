"""The context guard: labs change clusters, so only act on ones that look disposable.

A learner with a production cluster in their kubeconfig must not have a lab's
``kubectl delete`` land there because it happened to be the current context.
labrunner acts only on contexts whose names look like throwaway workshop
clusters (kind, k3d, minikube, Docker Desktop, ...), or that the workshop
declares, unless the user names the context explicitly with ``--context``.

The server can refuse, never approve: a *built-in* disposable name whose API
server is a public address (a public IP, a cloud provider's API domain, any
DNS name that is not a local one, or anything reached through ``proxy-url``)
is refused too, because a kind cluster runs on this machine. A name the
workshop declares keeps working wherever its server is: the README promises
that cloud clusters named ``istio-workshop`` are accepted. No DNS lookup is
made; the URL is judged as written.

| name                         | loopback server | private server | public server |
|------------------------------|-----------------|----------------|---------------|
| built-in (kind-*, minikube…) | act             | act            | refuse        |
| the workshop's patterns      | act             | act            | act           |
| any other                    | refuse          | refuse         | refuse        |
| named with --context         | act             | act            | act           |
"""

from __future__ import annotations

import enum
import fnmatch
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

DISPOSABLE = (
    "kind-*",
    "k3d-*",
    "minikube",
    "minikube-*",
    "microk8s",
    "docker-desktop",
    "rancher-desktop",
    "orbstack",
    "colima",
    "colima-*",
)

CLOUD_DOMAINS = {
    ".eks.amazonaws.com": "Amazon EKS",
    ".eks.amazonaws.com.cn": "Amazon EKS",
    ".azmk8s.io": "Azure AKS",
    ".gke.goog": "Google GKE",
    ".googleapis.com": "Google Cloud",
    ".k8s.ondigitalocean.com": "DigitalOcean Kubernetes",
    ".linodelke.net": "Linode LKE",
    ".oraclecloud.com": "Oracle OKE",
    ".appdomain.cloud": "IBM Cloud",
    ".scw.cloud": "Scaleway Kapsule",
    ".ovh.net": "OVHcloud",
    ".civo.com": "Civo",
    ".exoscale.com": "Exoscale SKS",
}
"""API-server domains of managed Kubernetes services, named in the refusal message."""

LOCAL_NAMES = ("localhost", "host.docker.internal", "kubernetes.docker.internal")
LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa")
"""Host names that never leave this machine or its private network."""


class ServerClass(enum.StrEnum):
    """Where an API server is, judged from its URL alone."""

    LOOPBACK = "loopback"
    PRIVATE = "private"
    PUBLIC = "public"


@dataclass(frozen=True)
class ServerPlace:
    """A server's class and, for a public one, why."""

    kind: ServerClass
    why: str = ""


def classify_server(server: str | None, *, proxy_url: str | None = None) -> ServerPlace:
    """Loopback, private or public, from the URL as written (no DNS lookup)."""
    if not server:
        return ServerPlace(ServerClass.PUBLIC, "it names no server")
    place = _classify_host(server)
    if place.kind is not ServerClass.PUBLIC and proxy_url:
        return ServerPlace(
            ServerClass.PUBLIC,
            f"it is reached through the proxy {proxy_url}, which may be anywhere",
        )
    return place


def _classify_host(server: str) -> ServerPlace:
    host = (urlsplit(server if "://" in server else f"https://{server}").hostname or "").lower()
    host = host.rstrip(".")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        if address.is_loopback or address.is_unspecified:
            return ServerPlace(ServerClass.LOOPBACK)
        if not address.is_global:  # RFC 1918, link-local, CGNAT, unique-local IPv6
            return ServerPlace(ServerClass.PRIVATE)
        return ServerPlace(ServerClass.PUBLIC, f"{host} is a public IP address")
    if host in LOCAL_NAMES or host.endswith(".localhost"):
        return ServerPlace(ServerClass.LOOPBACK)
    if host.endswith(LOCAL_SUFFIXES):
        return ServerPlace(ServerClass.PRIVATE)
    for suffix, provider in CLOUD_DOMAINS.items():
        if host.endswith(suffix):
            return ServerPlace(ServerClass.PUBLIC, f"{host} is an API endpoint of {provider}")
    if not host:
        return ServerPlace(ServerClass.PUBLIC, "its URL has no host")
    return ServerPlace(ServerClass.PUBLIC, f"{host} is a public DNS name, not a local one")


@dataclass(frozen=True)
class GuardDecision:
    """Whether labrunner may act on a context, and what to tell the user."""

    context: str | None
    allowed: bool
    reason: str


def looks_disposable(context: str, extra: Iterable[str] = ()) -> bool:
    """True when ``context`` matches a known throwaway-cluster pattern or a workshop one."""
    return any(fnmatch.fnmatchcase(context, p) for p in (*DISPOSABLE, *extra))


def matches_everything(pattern: str) -> bool:
    """True for a context pattern that would accept any name (``*``, ``**``, ``*?*``...)."""
    probes = ("prod", "production-eks-eu-west-1", "arn:aws:eks:us-east-1:1:cluster/main", "x")
    return all(fnmatch.fnmatchcase(p, pattern) for p in probes)


def decide(
    context: str | None,
    *,
    explicit: bool,
    extra: Iterable[str] = (),
    server: str | None = None,
    proxy_url: str | None = None,
) -> GuardDecision:
    """Decide whether the labs may act on ``context`` at ``server`` (see the module table)."""
    patterns = tuple(p for p in extra if p)
    if context is None:
        return GuardDecision(
            None,
            False,
            "no kube context is configured; create a workshop cluster first "
            "(for example `kind create cluster --name istio-workshop`) or point KUBECONFIG at one",
        )
    if explicit:
        return GuardDecision(context, True, f"using context {context!r} (chosen with --context)")
    at = f" at {server}" if server else ""
    if any(fnmatch.fnmatchcase(context, p) for p in patterns):
        return GuardDecision(context, True, f"using context {context!r}{at}")
    if looks_disposable(context):
        place = classify_server(server, proxy_url=proxy_url)
        if place.kind is not ServerClass.PUBLIC:
            return GuardDecision(context, True, f"using context {context!r}{at}")
        return GuardDecision(
            context,
            False,
            f"refusing to act on kube context {context!r}{at}: its name looks like a disposable "
            f"local cluster, but {place.why}. If you are sure, pass --context {context}",
        )
    allowed = ", ".join((*DISPOSABLE, *patterns))
    return GuardDecision(
        context,
        False,
        f"refusing to act on kube context {context!r}{at}: it does not look like a disposable "
        f"workshop cluster ({allowed}). If you are sure, pass --context {context}",
    )
