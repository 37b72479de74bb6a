"""Which cluster answers behind a kube context: the UID of its ``kube-system`` namespace.

A kube context is only a name, and so is its server address: ``kind delete
cluster`` then ``kind create cluster`` gives a brand-new cluster under the
same context and, often, the same port. Progress on the old cluster says
nothing about the new one, so progress of cluster labs is tied to the
cluster's identity. Every Kubernetes cluster creates ``kube-system`` once, at
birth, and never renames it, so that namespace's UID is a stable,
readable-by-anyone identity of the cluster (the same choice tools such as
Velero and Kubecost make for a cluster id).

One request, bounded by a deadline, through the same client as every check.
"""

from __future__ import annotations

from collections.abc import Mapping

from labrunner.cluster.client import Kube
from labrunner.cluster.errors import ClusterError

IDENTITY_TIMEOUT = 2.0
"""One small GET: a server that takes longer is in trouble the lab's own checks will name,
and the wait comes before the first cluster lab, outside every step's budget."""


def cluster_uid(env: Mapping[str, str], context: str, *, timeout: float = IDENTITY_TIMEOUT) -> str:
    """The UID of ``kube-system`` on the cluster behind ``context`` (raises ClusterError)."""
    kube = Kube.connect(env, context)
    try:
        doc = kube.get("/api/v1/namespaces/kube-system", timeout=timeout)
    finally:
        kube.close()
    uid = (doc.get("metadata") or {}).get("uid") if isinstance(doc, dict) else None
    if not isinstance(uid, str) or not uid:
        raise ClusterError(
            f"the API server at {kube.server} answered without a kube-system UID; "
            "is it a Kubernetes API server?"
        )
    return uid
