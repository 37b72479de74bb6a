"""What counts as mesh-wide or gateway policy, and which labs can meet a lab's leftovers.

A lab that leaves policy behind breaks the labs after it in ways the fake
cluster cannot show (it enforces nothing): a leftover ``require-jwt`` makes
every tokenless call through the gateway a 403, a leftover ``allow-nothing``
refuses the tracing lab's calls to httpbin. So the tests look at the cause:
the policy objects themselves.

Policy here is whatever refuses, reroutes, delays or fails traffic that is
not the lab's own: PeerAuthentication, AuthorizationPolicy,
RequestAuthentication, Sidecar, EnvoyFilter and WasmPlugin objects;
Gateways (they claim ports and hosts on a shared gateway); VirtualServices
bound to a Gateway, or carrying faults, timeouts or retries. Routing inside
a lab's own namespace for its own hosts (subsets, weights, header matches)
and configuration that changes no verdict (Telemetry, ServiceEntry,
DestinationRule TLS for one host) are not.
"""

from __future__ import annotations

import json
from typing import Any

from labrunner.lab.model import Workshop
from labrunner.testing.fixtures import FakeClusterHandle

POLICY_KINDS = (
    "peerauthentications.security.istio.io",
    "authorizationpolicies.security.istio.io",
    "requestauthentications.security.istio.io",
    "sidecars.networking.istio.io",
    "envoyfilters.networking.istio.io",
    "wasmplugins.extensions.istio.io",
    "gateways.networking.istio.io",
    "virtualservices.networking.istio.io",
)
# Labs that never meet another lab's leftovers: clean-up removes them all, and the
# Helm install starts only on a cluster without Istio (its first step checks that).
NEVER_MEETS_LEFTOVERS = frozenset({"clean-up", "install-istio", "install-istio-helm"})


def _is_policy(item: dict[str, Any]) -> bool:
    if item.get("kind") != "VirtualService":
        return True
    spec = item.get("spec") or {}
    if any(g != "mesh" for g in spec.get("gateways") or []):
        return True
    return any(
        key in route for route in spec.get("http") or [] for key in ("fault", "timeout", "retries")
    )


def policy_objects(cluster: FakeClusterHandle) -> dict[tuple[str, str, str], str]:
    """Every policy object in the cluster: (kind, namespace, name) → its spec as JSON."""
    result = cluster.kubectl("get", ",".join(POLICY_KINDS), "-A", "-o", "json")
    assert result.returncode == 0, result.stderr
    found = {}
    for item in json.loads(result.stdout).get("items") or []:
        if _is_policy(item):
            meta = item["metadata"]
            key = (item["kind"], meta.get("namespace", ""), meta["name"])
            found[key] = json.dumps(item.get("spec"), sort_keys=True)
    return found


def requires_closure(workshop: Workshop, lab_id: str) -> set[str]:
    """Every lab ``lab_id`` requires, directly or through the labs it requires."""
    seen: set[str] = set()
    pending = list(workshop.lab(lab_id).requires)
    while pending:
        current = pending.pop()
        if current not in seen:
            seen.add(current)
            pending += workshop.lab(current).requires
    return seen


def followers(workshop: Workshop, lab_id: str) -> set[str]:
    """Cluster labs a learner may do after ``lab_id``: all but its ancestors and itself."""
    ancestors = requires_closure(workshop, lab_id)
    return {
        lab.id
        for lab in workshop.labs
        if "cluster" in lab.needs
        and lab.id != lab_id
        and lab.id not in ancestors
        and lab.id not in NEVER_MEETS_LEFTOVERS
    }
