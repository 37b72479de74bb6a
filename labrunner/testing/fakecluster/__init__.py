"""A fake Kubernetes API server that the real ``kubectl`` and ``kubernetes`` client accept.

No machine we build on has a cluster, so Kubernetes code is tested against this HTTP fake:
discovery, OpenAPI v3 (enough for ``kubectl apply``), CRUD with watches and patches, CRDs with
schema validation, Tables for ``kubectl get``, WebSocket exec and port-forward, a simulated
kind cluster (deployments roll out, pods become Ready, Istio injects sidecars) and fault
injection. See :class:`FakeCluster`.
"""

from __future__ import annotations

from .api import ApiCore, Target
from .errors import ApiError
from .faults import FaultRule, Faults
from .server import FakeCluster, RequestRecord, parse_manifests
from .simulation import NOT_READY_ANNOTATION, SimulationSettings
from .store import WatchEvent
from .websocket import ExecHandler, ExecResult, run_on_host, unconfigured_exec

FakeApiServer = FakeCluster

__all__ = [
    "NOT_READY_ANNOTATION",
    "ApiCore",
    "ApiError",
    "ExecHandler",
    "ExecResult",
    "FakeApiServer",
    "FakeCluster",
    "FaultRule",
    "Faults",
    "RequestRecord",
    "SimulationSettings",
    "Target",
    "WatchEvent",
    "parse_manifests",
    "run_on_host",
    "unconfigured_exec",
]
