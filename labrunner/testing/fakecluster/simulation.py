"""The pretend cluster behind the API: defaults, pod lifecycle, controllers and Istio injection.

Labs and verifiers look at what controllers and kubelets would have written (ready pods,
deployment status, a cluster IP, an injected ``istio-proxy``), so the fake plays those parts
synchronously: every API write that affects a Deployment or ReplicaSet marks it dirty, and the
API core reconciles dirty objects before the request returns. A rollout therefore converges
before kubectl even starts ``rollout status``, and a test that holds pods back decides exactly
when they become Ready.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import json
import secrets
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from .selectors import LabelSelector, labels_match, selector_from_object, selector_to_string
from .store import Store

JsonDict = dict[str, Any]
TypeKey = tuple[str, str]

PODS: TypeKey = ("", "pods")
DEPLOYMENTS: TypeKey = ("apps", "deployments")
REPLICASETS: TypeKey = ("apps", "replicasets")
NAMESPACES: TypeKey = ("", "namespaces")
WEBHOOKS: TypeKey = ("admissionregistration.k8s.io", "mutatingwebhookconfigurations")

NOT_READY_ANNOTATION = "fake.labrunner.dev/not-ready"
HASH_LABEL = "pod-template-hash"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
ISTIO_STATUS_ANNOTATION = "sidecar.istio.io/status"
PENDING_REASONS = frozenset(
    {
        "ContainerCreating",
        "ErrImagePull",
        "ImagePullBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
        "InvalidImageName",
        "PodInitializing",
    }
)
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now() -> str:
    """The current time in RFC 3339 with a ``Z`` suffix, as the API writes timestamps."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_uid() -> str:
    """A fresh object UID."""
    return str(uuid.uuid4())


def random_suffix(length: int = 5) -> str:
    """A suffix like the ones ``generateName`` appends."""
    return "".join(secrets.choice(_SAFE_ALPHABET) for _ in range(length))


def template_hash(template: Any) -> str:
    """A stable ``pod-template-hash`` for a pod template."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(_SAFE_ALPHABET[b % len(_SAFE_ALPHABET)] for b in digest[:10])


@dataclass
class SimulationSettings:
    """Knobs a test may turn; the defaults look like a single-node kind cluster."""

    injection: str = "label"  # "label": follow namespace/pod labels; "webhook": also need the
    # istio-sidecar-injector MutatingWebhookConfiguration; "off": never inject
    native_sidecars: bool = False
    proxy_image: str = "docker.io/istio/proxyv2:1.30.3"
    node_name: str = "labrunner-control-plane"
    host_ip: str = "172.18.0.2"
    kubelet_version: str = "v1.32.2"
    record_events: bool = True
    readiness_failure: str = "HTTP probe failed with statuscode: 503"


class IpAllocator:
    """Hands out consecutive addresses from a network (pod IPs, cluster IPs)."""

    def __init__(self, network: str, first: int) -> None:
        self._net = ipaddress.ip_network(network)
        self._next = first
        self._lock = threading.Lock()

    def allocate(self) -> str:
        """The next free address."""
        with self._lock:
            addr = self._net[self._next]
            self._next += 1
            return str(addr)


@dataclass
class PodHolds:
    """Rules that keep new pods from becoming Ready until a test releases them."""

    rules: list[tuple[str, LabelSelector]] = field(default_factory=list)

    def matches(self, pod: JsonDict) -> bool:
        """Whether a pod falls under a hold rule or carries the not-ready annotation."""
        meta = pod.get("metadata") or {}
        if (meta.get("annotations") or {}).get(NOT_READY_ANNOTATION) == "true":
            return True
        ns = meta.get("namespace", "")
        return any(
            rule_ns in (ns, "*") and labels_match(sel, meta.get("labels"))
            for rule_ns, sel in self.rules
        )


def is_ready(pod: Mapping[str, Any]) -> bool:
    """Whether the pod's Ready condition is True."""
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def is_deleting(obj: Mapping[str, Any]) -> bool:
    """Whether the object carries a deletionTimestamp."""
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def controller_ref(owner: Mapping[str, Any]) -> JsonDict:
    """An ownerReferences entry marking ``owner`` as the controller."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    """Whether ``obj`` lists ``uid`` as its controller."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == uid and r.get("controller") for r in refs)


# --- defaults -------------------------------------------------------------------------------


def _pull_policy(image: str) -> str:
    tail = image.rsplit("/", 1)[-1]
    if "@" in tail:
        return "IfNotPresent"
    if ":" not in tail or tail.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def _default_container(c: JsonDict) -> None:
    c.setdefault("imagePullPolicy", _pull_policy(str(c.get("image", ""))))
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    for port in c.get("ports") or []:
        port.setdefault("protocol", "TCP")


def default_pod_spec(spec: JsonDict) -> None:
    """Fill the fields the apiserver defaults on every pod spec (also in templates)."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    for c in spec.get("containers") or []:
        _default_container(c)
    for c in spec.get("initContainers") or []:
        _default_container(c)


def default_namespace(ns: JsonDict) -> None:
    """Namespace phase, finalizer and the ``kubernetes.io/metadata.name`` label."""
    meta = ns["metadata"]
    meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
    ns.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    ns["status"] = {"phase": "Terminating" if is_deleting(ns) else "Active"}


def default_service(svc: JsonDict, cluster_ips: IpAllocator, node_ports: IpAllocator) -> None:
    """Type, cluster IP, protocols, target ports and node ports, as the apiserver assigns them."""
    spec = svc.setdefault("spec", {})
    kind = spec.setdefault("type", "ClusterIP")
    if kind != "ExternalName":
        if not spec.get("clusterIP"):
            spec["clusterIP"] = cluster_ips.allocate()
        spec["clusterIPs"] = [spec["clusterIP"]]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
        if kind in ("NodePort", "LoadBalancer") and not port.get("nodePort"):
            port["nodePort"] = 30000 + int(node_ports.allocate().rsplit(".", 1)[-1]) % 2768
    if kind in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if kind == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    svc.setdefault("status", {}).setdefault("loadBalancer", {})


def default_deployment(dep: JsonDict) -> None:
    """Replicas, strategy and history limits, plus pod-spec defaults in the template."""
    spec = dep.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        strategy.setdefault("type", "RollingUpdate")
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", "25%")
        rolling.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    template_spec = (spec.get("template") or {}).get("spec")
    if isinstance(template_spec, dict):
        default_pod_spec(template_spec)


def default_replicaset(rs: JsonDict) -> None:
    """Replicas plus pod-spec defaults in the template."""
    spec = rs.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    template_spec = (spec.get("template") or {}).get("spec")
    if isinstance(template_spec, dict):
        default_pod_spec(template_spec)


def crd_status(crd: JsonDict) -> JsonDict:
    """The status of an accepted, established CRD."""
    spec = crd.get("spec") or {}
    names = dict(spec.get("names") or {})
    names.setdefault("singular", str(names.get("kind", "")).lower())
    names.setdefault("listKind", f"{names.get('kind', '')}List")
    stamp = now()
    storage = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
    return {
        "acceptedNames": names,
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
                "lastTransitionTime": stamp,
            },
            {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
                "lastTransitionTime": stamp,
            },
        ],
        "storedVersions": storage,
    }


def node_object(settings: SimulationSettings) -> JsonDict:
    """The single Ready node of the pretend kind cluster."""
    stamp = now()
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": settings.node_name,
            "labels": {
                "kubernetes.io/hostname": settings.node_name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node-role.kubernetes.io/control-plane": "",
            },
        },
        "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": settings.host_ip},
                {"type": "Hostname", "address": settings.node_name},
            ],
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": stamp,
                    "lastTransitionTime": stamp,
                }
            ],
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": new_uid(),
                "containerRuntimeVersion": "containerd://1.7.24",
                "kernelVersion": "6.1.0",
                "kubeProxyVersion": settings.kubelet_version,
                "kubeletVersion": settings.kubelet_version,
                "machineID": uuid.uuid4().hex,
                "operatingSystem": "linux",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "systemUUID": new_uid(),
            },
        },
    }


# --- pods -----------------------------------------------------------------------------------


def pod_containers(pod: Mapping[str, Any]) -> list[tuple[str, JsonDict]]:
    """``(spec path, container)`` for init containers, then containers, in start order."""
    spec = pod.get("spec") or {}
    return [("spec.initContainers", c) for c in spec.get("initContainers") or []] + [
        ("spec.containers", c) for c in spec.get("containers") or []
    ]


def pull_seconds(image: str) -> str:
    """A plausible, stable pull time for an image (Go's duration format)."""
    millis = 400 + int(hashlib.sha256(image.encode()).hexdigest()[:4], 16) % 4000
    if millis < 1000:
        return f"{millis}ms"
    return f"{millis / 1000:.3f}".rstrip("0").rstrip(".") + "s"


def image_size(image: str) -> int:
    """A plausible, stable image size in bytes."""
    return 8_000_000 + int(hashlib.sha256(image.encode()).hexdigest()[4:10], 16) % 90_000_000


def _image_id(image: str) -> str:
    digest = hashlib.sha256(image.encode()).hexdigest()
    name = image.split("@", 1)[0].rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    if "/" not in name:
        name = f"docker.io/library/{name}"
    return f"{name}@sha256:{digest}"


def _container_status(c: JsonDict, uid: str, started: str, *, ready: bool, init: bool) -> JsonDict:
    image = str(c.get("image", ""))
    status: JsonDict = {
        "name": c.get("name", ""),
        "image": image,
        "imageID": _image_id(image),
        "containerID": "containerd://"
        + hashlib.sha256(f"{uid}/{c.get('name')}".encode()).hexdigest(),
        "restartCount": 0,
        "started": True,
        "ready": ready,
        "state": {"running": {"startedAt": started}},
        "lastState": {},
    }
    if init and c.get("restartPolicy") != "Always":
        status["state"] = {
            "terminated": {
                "exitCode": 0,
                "reason": "Completed",
                "startedAt": started,
                "finishedAt": started,
                "containerID": status["containerID"],
            }
        }
        status["started"] = False
        status["ready"] = True
    return status


def running_pod_status(pod: JsonDict, *, ready: bool, pod_ip: str, host_ip: str) -> JsonDict:
    """A Running pod whose containers are started and (unless held back) ready."""
    uid = pod["metadata"].get("uid", "")
    old = pod.get("status") or {}
    started = old.get("startTime") or now()
    spec = pod.get("spec") or {}
    status: JsonDict = {
        "phase": "Running",
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": started,
        "qosClass": "BestEffort",
        "initContainerStatuses": [
            _container_status(
                c, uid, started, ready=ready or c.get("restartPolicy") != "Always", init=True
            )
            for c in spec.get("initContainers") or []
        ],
        "containerStatuses": [
            _container_status(c, uid, started, ready=ready, init=False)
            for c in spec.get("containers") or []
        ],
    }
    if not status["initContainerStatuses"]:
        del status["initContainerStatuses"]
    refresh_pod_conditions(status, old.get("conditions") or [])
    return status


def set_container_waiting(
    status: JsonDict, container: str | None, reason: str, message: str
) -> JsonDict:
    """A copy of ``status`` with one (or every) container waiting for ``reason``."""
    out = copy.deepcopy(status)
    for cs in out.get("containerStatuses") or []:
        if container is not None and cs.get("name") != container:
            continue
        if reason == "CrashLoopBackOff":
            cs["restartCount"] = int(cs.get("restartCount", 0)) + 1
            cs["lastState"] = {
                "terminated": {"exitCode": 1, "reason": "Error", "finishedAt": now()}
            }
        waiting: JsonDict = {"reason": reason}
        if message:
            waiting["message"] = message
        cs["state"] = {"waiting": waiting}
        cs["ready"] = False
        cs["started"] = False
    refresh_pod_conditions(out, out.get("conditions") or [])
    return out


def restart_container(
    status: JsonDict,
    container: str,
    *,
    exit_code: int,
    reason: str,
    crash_loop: bool,
    pod_name: str,
) -> JsonDict:
    """A copy of ``status`` after ``container`` exited and the kubelet restarted it."""
    out = copy.deepcopy(status)
    stamp = now()
    for cs in out.get("containerStatuses") or []:
        if cs.get("name") != container:
            continue
        started = ((cs.get("state") or {}).get("running") or {}).get("startedAt") or stamp
        cs["restartCount"] = int(cs.get("restartCount", 0)) + 1
        cs["lastState"] = {
            "terminated": {
                "exitCode": exit_code,
                "reason": reason,
                "startedAt": started,
                "finishedAt": stamp,
                "containerID": cs.get("containerID", ""),
            }
        }
        cs["containerID"] = (
            "containerd://"
            + hashlib.sha256(f"{cs.get('containerID')}/{cs['restartCount']}".encode()).hexdigest()
        )
        if crash_loop:
            delay = min(10 * 2 ** (cs["restartCount"] - 1), 300)
            cs["state"] = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {_go_duration(delay)} restarting failed "
                    f"container={container} pod={pod_name}",
                }
            }
            cs["ready"] = False
            cs["started"] = False
        else:
            cs["state"] = {"running": {"startedAt": stamp}}
            cs["started"] = True
    refresh_pod_conditions(out, out.get("conditions") or [])
    return out


def _go_duration(seconds: int) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"


def refresh_pod_conditions(status: JsonDict, previous: list[JsonDict]) -> None:
    """Derive phase and the four standard conditions from the container statuses."""
    containers = status.get("containerStatuses") or []
    waiting = [
        cs["state"]["waiting"].get("reason", "")
        for cs in containers
        if "waiting" in (cs.get("state") or {})
    ]
    if any(r in PENDING_REASONS for r in waiting):
        status["phase"] = "Pending"
    elif status.get("phase") == "Pending":
        status["phase"] = "Running"
    unready = [cs.get("name", "") for cs in containers if not cs.get("ready")]
    all_ready = not unready
    init_done = all(cs.get("ready") for cs in status.get("initContainerStatuses") or [])
    prior = {c.get("type"): c for c in previous}
    stamp = now()

    def cond(kind: str, ok: bool, reason: str = "", message: str = "") -> JsonDict:
        value = "True" if ok else "False"
        old = prior.get(kind)
        out: JsonDict = {
            "type": kind,
            "status": value,
            "lastProbeTime": None,
            "lastTransitionTime": old["lastTransitionTime"]
            if old and old.get("status") == value and old.get("lastTransitionTime")
            else stamp,
        }
        if not ok and reason:
            out["reason"] = reason
            out["message"] = message
        return out

    message = f"containers with unready status: [{' '.join(unready)}]"
    status["conditions"] = [
        cond("PodReadyToStartContainers", True),
        cond(
            "Initialized",
            init_done,
            "ContainersNotInitialized",
            "containers with incomplete status",
        ),
        cond("Ready", all_ready, "ContainersNotReady", message),
        cond("ContainersReady", all_ready, "ContainersNotReady", message),
        cond("PodScheduled", True),
    ]


def pod_display_status(pod: Mapping[str, Any]) -> str:
    """The STATUS column of ``kubectl get pods``."""
    if is_deleting(pod):
        return "Terminating"
    status = pod.get("status") or {}
    reason = status.get("phase") or "Pending"
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            reason = waiting["reason"]
    return str(reason)


# --- Istio sidecar injection ----------------------------------------------------------------

_ISTIO_VOLUMES: list[tuple[str, JsonDict]] = [
    ("workload-socket", {"emptyDir": {}}),
    ("credential-socket", {"emptyDir": {}}),
    ("workload-certs", {"emptyDir": {}}),
    ("istio-envoy", {"emptyDir": {"medium": "Memory"}}),
    ("istio-data", {"emptyDir": {}}),
    (
        "istio-podinfo",
        {
            "downwardAPI": {
                "items": [
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                    {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
                ]
            }
        },
    ),
    (
        "istio-token",
        {
            "projected": {
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": "istio-ca",
                            "expirationSeconds": 43200,
                            "path": "istio-token",
                        }
                    }
                ]
            }
        },
    ),
    ("istiod-ca-cert", {"configMap": {"name": "istio-ca-root-cert"}}),
]
_ISTIO_MOUNTS = [
    ("workload-socket", "/var/run/secrets/workload-spiffe-uds"),
    ("credential-socket", "/var/run/secrets/credential-uds"),
    ("workload-certs", "/var/run/secrets/workload-spiffe-credentials"),
    ("istiod-ca-cert", "/var/run/secrets/istio"),
    ("istio-data", "/var/lib/istio/data"),
    ("istio-envoy", "/etc/istio/proxy"),
    ("istio-token", "/var/run/secrets/tokens"),
    ("istio-podinfo", "/etc/istio/pod"),
]


def injection_revision(
    pod: Mapping[str, Any],
    namespace: Mapping[str, Any] | None,
    settings: SimulationSettings,
    *,
    webhook_installed: bool,
) -> str | None:
    """The Istio revision that would inject this pod, or None when nothing would."""
    if settings.injection == "off":
        return None
    if settings.injection == "webhook" and not webhook_installed:
        return None
    meta = pod.get("metadata") or {}
    pod_labels = meta.get("labels") or {}
    if ISTIO_STATUS_ANNOTATION in (meta.get("annotations") or {}):
        return None
    if pod_labels.get("sidecar.istio.io/inject") == "false":
        return None
    if (meta.get("annotations") or {}).get("sidecar.istio.io/inject") == "false":
        return None
    ns_labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
    flag = ns_labels.get("istio-injection")
    if flag == "disabled":
        return None
    if flag == "enabled":
        return str(pod_labels.get("istio.io/rev") or "default")
    if "istio.io/rev" in ns_labels:
        return str(ns_labels["istio.io/rev"])
    if "istio.io/rev" in pod_labels:
        return str(pod_labels["istio.io/rev"])
    if pod_labels.get("sidecar.istio.io/inject") == "true":
        return "default"
    return None


def inject_sidecar(pod: JsonDict, revision: str, settings: SimulationSettings) -> None:
    """Add istio-init, istio-proxy, their volumes, labels and annotations, like Istio's webhook."""
    meta = pod["metadata"]
    spec = pod.setdefault("spec", {})
    labels = meta.setdefault("labels", {})
    annotations = meta.setdefault("annotations", {})
    app_containers = [c.get("name", "") for c in spec.get("containers") or []]
    workload = labels.get("app") or meta.get("generateName", "").rstrip("-") or meta.get("name", "")
    app_ports = [
        {k: p[k] for k in ("name", "containerPort", "protocol") if k in p}
        for c in spec.get("containers") or []
        for p in c.get("ports") or []
    ]
    security = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsGroup": 1337,
        "runAsNonRoot": True,
        "runAsUser": 1337,
    }
    resources = {
        "limits": {"cpu": "2", "memory": "1Gi"},
        "requests": {"cpu": "100m", "memory": "128Mi"},
    }

    def field_env(name: str, path: str) -> JsonDict:
        return {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}

    proxy: JsonDict = {
        "name": "istio-proxy",
        "image": settings.proxy_image,
        "args": [
            "proxy",
            "sidecar",
            "--domain",
            "$(POD_NAMESPACE).svc.cluster.local",
            "--proxyLogLevel=warning",
            "--proxyComponentLogLevel=misc:error",
            "--log_output_level=default:info",
        ],
        "env": [
            {"name": "PILOT_CERT_PROVIDER", "value": "istiod"},
            {"name": "CA_ADDR", "value": "istiod.istio-system.svc:15012"},
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
            field_env("INSTANCE_IP", "status.podIP"),
            field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"),
            field_env("HOST_IP", "status.hostIP"),
            {
                "name": "ISTIO_CPU_LIMIT",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "0"}},
            },
            {"name": "PROXY_CONFIG", "value": "{}\n"},
            {"name": "ISTIO_META_POD_PORTS", "value": json.dumps(app_ports)},
            {"name": "ISTIO_META_APP_CONTAINERS", "value": ",".join(app_containers)},
            {"name": "ISTIO_META_CLUSTER_ID", "value": "Kubernetes"},
            {"name": "ISTIO_META_NODE_NAME", "value": settings.node_name},
            {"name": "ISTIO_META_INTERCEPTION_MODE", "value": "REDIRECT"},
            {"name": "ISTIO_META_WORKLOAD_NAME", "value": workload},
            {"name": "ISTIO_META_MESH_ID", "value": "cluster.local"},
            {"name": "TRUST_DOMAIN", "value": "cluster.local"},
        ],
        "ports": [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
        "readinessProbe": {
            "failureThreshold": 4,
            "httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"},
            "periodSeconds": 15,
            "successThreshold": 1,
            "timeoutSeconds": 3,
        },
        "resources": resources,
        "securityContext": security,
        "volumeMounts": [{"name": n, "mountPath": p} for n, p in _ISTIO_MOUNTS],
    }
    init: JsonDict = {
        "name": "istio-init",
        "image": settings.proxy_image,
        "args": [
            "istio-iptables",
            "-p",
            "15001",
            "-z",
            "15006",
            "-u",
            "1337",
            "-m",
            "REDIRECT",
            "-i",
            "*",
            "-x",
            "",
            "-b",
            "*",
            "-d",
            "15090,15021,15020",
            "--log_output_level=default:info",
        ],
        "resources": resources,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
            "privileged": False,
            "readOnlyRootFilesystem": False,
            "runAsGroup": 0,
            "runAsNonRoot": False,
            "runAsUser": 0,
        },
    }
    inits = spec.setdefault("initContainers", [])
    if settings.native_sidecars:
        proxy["restartPolicy"] = "Always"
        inits[:0] = [init, proxy]
        status_inits, status_containers = ["istio-init", "istio-proxy"], None
    else:
        inits.insert(0, init)
        spec.setdefault("containers", []).append(proxy)
        status_inits, status_containers = ["istio-init"], ["istio-proxy"]
    volumes = spec.setdefault("volumes", [])
    volumes.extend({"name": n, **copy.deepcopy(v)} for n, v in _ISTIO_VOLUMES)
    labels["security.istio.io/tlsMode"] = "istio"
    labels.setdefault(
        "service.istio.io/canonical-name", labels.get("app.kubernetes.io/name") or workload
    )
    labels.setdefault(
        "service.istio.io/canonical-revision",
        labels.get("app.kubernetes.io/version") or labels.get("version") or "latest",
    )
    status = {
        "initContainers": status_inits,
        "containers": status_containers,
        "volumes": [n for n, _ in _ISTIO_VOLUMES],
        "imagePullSecrets": None,
        "revision": revision,
    }
    annotations[ISTIO_STATUS_ANNOTATION] = json.dumps(status, separators=(",", ":"))
    if app_containers:
        annotations.setdefault("kubectl.kubernetes.io/default-container", app_containers[0])
        annotations.setdefault("kubectl.kubernetes.io/default-logs-container", app_containers[0])
    annotations.setdefault("prometheus.io/path", "/stats/prometheus")
    annotations.setdefault("prometheus.io/port", "15020")
    annotations.setdefault("prometheus.io/scrape", "true")
    annotations.setdefault("istio.io/rev", revision)


# --- controllers ----------------------------------------------------------------------------


class Host(Protocol):
    """What the controllers need from the API core (writes go through it so watches fire)."""

    store: Store

    def create_internal(self, key: TypeKey, obj: JsonDict) -> JsonDict:
        """Create an object through admission (defaults, injection, pod status)."""
        ...

    def delete_internal(self, key: TypeKey, namespace: str, name: str) -> None:
        """Delete an object (and its dependents)."""
        ...

    def write_internal(self, key: TypeKey, obj: JsonDict) -> JsonDict:
        """Store a controller's change (status or spec) without admission."""
        ...

    def record_event(
        self,
        obj: Mapping[str, Any],
        reason: str,
        message: str,
        *,
        type: str = "Normal",
        field_path: str = "",
        component: str = "kubelet",
        host: str | None = None,
    ) -> JsonDict | None:
        """Record an Event about ``obj``."""
        ...


def _max_unavailable(dep: JsonDict, replicas: int) -> int:
    strategy = (dep.get("spec") or {}).get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return 0
    value = (strategy.get("rollingUpdate") or {}).get("maxUnavailable", "25%")
    if isinstance(value, str) and value.endswith("%"):
        return int(replicas * int(value[:-1]) / 100)
    return int(value)


def _condition(
    previous: list[JsonDict], kind: str, status: str, reason: str, message: str
) -> JsonDict:
    stamp = now()
    old = next((c for c in previous if c.get("type") == kind), None)
    same = old is not None and (old.get("status"), old.get("reason"), old.get("message")) == (
        status,
        reason,
        message,
    )
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": old.get("lastUpdateTime", stamp) if same and old else stamp,
        "lastTransitionTime": old.get("lastTransitionTime", stamp)
        if old is not None and old.get("status") == status
        else stamp,
    }


def _revision(obj: Mapping[str, Any]) -> int:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION, "0")
    try:
        return int(value)
    except ValueError:
        return 0


def _scaled(host: Host, dep: JsonDict, rs_name: str, before: int, after: int) -> None:
    direction = "up" if after > before else "down"
    host.record_event(
        dep,
        "ScalingReplicaSet",
        f"Scaled {direction} replica set {rs_name} from {before} to {after}",
        component="deployment-controller",
    )


def reconcile_deployment(host: Host, namespace: str, name: str) -> None:
    """Bring a Deployment's ReplicaSets in line with its spec and refresh its status."""
    store = host.store
    dep = store.get(DEPLOYMENTS, namespace, name)
    if dep is None or is_deleting(dep):
        return
    spec = dep.get("spec") or {}
    uid = dep["metadata"]["uid"]
    template = copy.deepcopy(spec.get("template") or {})
    pod_hash = template_hash(template)
    replicas = int(spec.get("replicas", 1))
    owned = [rs for rs in store.list(REPLICASETS, namespace) if owned_by(rs, uid)]
    current = next(
        (rs for rs in owned if (rs["metadata"].get("labels") or {}).get(HASH_LABEL) == pod_hash),
        None,
    )
    top = max((_revision(rs) for rs in owned), default=0)
    if current is None:
        labels = {**((template.get("metadata") or {}).get("labels") or {}), HASH_LABEL: pod_hash}
        template.setdefault("metadata", {})["labels"] = labels
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
        current = host.create_internal(
            REPLICASETS,
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": f"{name}-{pod_hash}",
                    "namespace": namespace,
                    "labels": labels,
                    "annotations": {
                        REVISION_ANNOTATION: str(top + 1),
                        "deployment.kubernetes.io/desired-replicas": str(replicas),
                        "deployment.kubernetes.io/max-replicas": str(replicas + 1),
                    },
                    "ownerReferences": [controller_ref(dep)],
                },
                "spec": {"replicas": replicas, "selector": selector, "template": template},
            },
        )
        if replicas:
            _scaled(host, dep, current["metadata"]["name"], 0, replicas)
    else:
        changed = copy.deepcopy(current)
        before = int(changed["spec"].get("replicas", 1))
        if before != replicas:
            changed["spec"]["replicas"] = replicas
            _scaled(host, dep, current["metadata"]["name"], before, replicas)
        if _revision(changed) < top:
            changed["metadata"].setdefault("annotations", {})[REVISION_ANNOTATION] = str(top + 1)
        if changed != current:
            current = host.write_internal(REPLICASETS, changed)
    for rs in owned:
        if (
            rs["metadata"]["uid"] != current["metadata"]["uid"]
            and rs["spec"].get("replicas", 1) != 0
        ):
            scaled = copy.deepcopy(rs)
            _scaled(host, dep, rs["metadata"]["name"], int(rs["spec"].get("replicas", 1)), 0)
            scaled["spec"]["replicas"] = 0
            host.write_internal(REPLICASETS, scaled)
    dep = store.get(DEPLOYMENTS, namespace, name)
    if dep is None:
        return
    revision = str(_revision(current))
    if (dep["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION) != revision:
        dep = copy.deepcopy(dep)
        dep["metadata"].setdefault("annotations", {})[REVISION_ANNOTATION] = revision
        dep = host.write_internal(DEPLOYMENTS, dep)
    refresh_deployment_status(host, dep, current)


def refresh_deployment_status(host: Host, dep: JsonDict, current: JsonDict | None = None) -> None:
    """Recompute replicas/updated/ready/available and the Available/Progressing conditions."""
    store = host.store
    namespace = dep["metadata"]["namespace"]
    uid = dep["metadata"]["uid"]
    spec = dep.get("spec") or {}
    desired = int(spec.get("replicas", 1))
    owned = [rs for rs in store.list(REPLICASETS, namespace) if owned_by(rs, uid)]
    if current is None:
        pod_hash = template_hash(spec.get("template") or {})
        current = next(
            (
                rs
                for rs in owned
                if (rs["metadata"].get("labels") or {}).get(HASH_LABEL) == pod_hash
            ),
            None,
        )
    rs_uids = {rs["metadata"]["uid"] for rs in owned}
    pods = [
        p
        for p in store.list(PODS, namespace)
        if not is_deleting(p) and any(owned_by(p, u) for u in rs_uids)
    ]
    updated = [p for p in pods if current is not None and owned_by(p, current["metadata"]["uid"])]
    ready = sum(1 for p in pods if is_ready(p))
    old_status = dep.get("status") or {}
    previous = old_status.get("conditions") or []
    rs_name = current["metadata"]["name"] if current else dep["metadata"]["name"]
    minimum = desired - _max_unavailable(dep, desired)
    available_ok = ready >= minimum
    complete = len(updated) == desired and len(pods) == desired and ready == desired
    status: JsonDict = {
        "observedGeneration": dep["metadata"].get("generation", 1),
        "replicas": len(pods),
        "updatedReplicas": len(updated),
        "readyReplicas": ready,
        "availableReplicas": ready,
    }
    if desired - ready > 0:
        status["unavailableReplicas"] = desired - ready
    status = {k: v for k, v in status.items() if v != 0 or k == "observedGeneration"}
    status["conditions"] = [
        _condition(
            previous,
            "Available",
            "True" if available_ok else "False",
            "MinimumReplicasAvailable" if available_ok else "MinimumReplicasUnavailable",
            "Deployment has minimum availability."
            if available_ok
            else "Deployment does not have minimum availability.",
        ),
        _condition(
            previous,
            "Progressing",
            "True",
            "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
            f'ReplicaSet "{rs_name}" has successfully progressed.'
            if complete
            else f'ReplicaSet "{rs_name}" is progressing.',
        ),
    ]
    if status != old_status:
        changed = copy.deepcopy(dep)
        changed["status"] = status
        host.write_internal(DEPLOYMENTS, changed)


def reconcile_replicaset(host: Host, namespace: str, name: str) -> None:
    """Create or delete pods to match ``spec.replicas`` and refresh the ReplicaSet's status."""
    store = host.store
    rs = store.get(REPLICASETS, namespace, name)
    if rs is None or is_deleting(rs):
        return
    uid = rs["metadata"]["uid"]
    spec = rs.get("spec") or {}
    want = int(spec.get("replicas", 1))
    pods = [p for p in store.list(PODS, namespace) if owned_by(p, uid) and not is_deleting(p)]
    template = spec.get("template") or {}
    for _ in range(want - len(pods)):
        tmeta = template.get("metadata") or {}
        meta: JsonDict = {
            "generateName": f"{name}-",
            "namespace": namespace,
            "labels": dict(tmeta.get("labels") or {}),
            "ownerReferences": [controller_ref(rs)],
        }
        if tmeta.get("annotations"):
            meta["annotations"] = dict(tmeta["annotations"])
        created = host.create_internal(
            PODS,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": meta,
                "spec": copy.deepcopy(template.get("spec") or {}),
            },
        )
        host.record_event(
            rs,
            "SuccessfulCreate",
            f"Created pod: {created['metadata']['name']}",
            component="replicaset-controller",
        )
    for extra in sorted(pods, key=lambda p: not is_ready(p))[: max(len(pods) - want, 0)]:
        host.delete_internal(PODS, namespace, extra["metadata"]["name"])
        host.record_event(
            rs,
            "SuccessfulDelete",
            f"Deleted pod: {extra['metadata']['name']}",
            component="replicaset-controller",
        )
    pods = [p for p in store.list(PODS, namespace) if owned_by(p, uid) and not is_deleting(p)]
    ready = sum(1 for p in pods if is_ready(p))
    status: JsonDict = {
        "observedGeneration": rs["metadata"].get("generation", 1),
        "replicas": len(pods),
        "fullyLabeledReplicas": len(pods),
        "readyReplicas": ready,
        "availableReplicas": ready,
        "selector": selector_to_string(selector_from_object(spec.get("selector"))),
    }
    status = {k: v for k, v in status.items() if v != 0 or k in ("observedGeneration", "replicas")}
    rs = store.get(REPLICASETS, namespace, name)
    if rs is not None and rs.get("status") != status:
        changed = copy.deepcopy(rs)
        changed["status"] = status
        host.write_internal(REPLICASETS, changed)
