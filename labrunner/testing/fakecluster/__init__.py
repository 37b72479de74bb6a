"""A fake Kubernetes API server that the real ``kubectl`` and ``kubernetes`` client accept.

No machine we build on has a cluster, so Kubernetes code is tested against this HTTP fake:
discovery, OpenAPI v3 (enough for ``kubectl apply``), CRUD with watches and patches, CRDs with
schema validation, Tables for ``kubectl get``, WebSocket exec and port-forward, a simulated
kind cluster (deployments roll out, pods become Ready, Istio injects sidecars, events and
container logs are recorded), per-identity tokens with RBAC, and fault injection down to the
transport (trickling, hanging and cut connections, bad certificates, traffic counting).
See :class:`FakeCluster`.
"""

from __future__ import annotations

from .api import ApiCore, Target
from .auth import Identity
from .errors import ApiError
from .faults import FaultRule, Faults
from .server import EKS_URL, FakeCluster, RequestRecord, Traffic, parse_manifests
from .simulation import NOT_READY_ANNOTATION, SimulationSettings
from .store import WatchEvent
from .websocket import ExecHandler, ExecResult, run_on_host, unconfigured_exec

FakeApiServer = FakeCluster

__all__ = [
    "EKS_URL",
    "NOT_READY_ANNOTATION",
    "ApiCore",
    "ApiError",
    "ExecHandler",
    "ExecResult",
    "FakeApiServer",
    "FakeCluster",
    "FaultRule",
    "Faults",
    "Identity",
    "RequestRecord",
    "SimulationSettings",
    "Target",
    "Traffic",
    "WatchEvent",
    "parse_manifests",
    "run_on_host",
    "unconfigured_exec",
]
