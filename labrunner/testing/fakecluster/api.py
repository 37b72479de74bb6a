"""The API core: create, read, list, update, patch and delete with apiserver semantics.

Both the HTTP front end and the test helpers on :class:`~.server.FakeCluster` call these
methods, so seeding state from a test fires the same watches, defaults and controllers as a
``kubectl apply``. Every mutating call runs under the store lock; controllers marked dirty by
its writes are reconciled before the lock is released, which keeps the simulated cluster
converged from any client's point of view.
"""

from __future__ import annotations

import base64
import builtins
import copy
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import yaml

from . import builtin_schema, errors, events, patches, rbac, schema, simulation, validation
from .errors import ApiError
from .logs import PodLogs
from .resources import ResourceRegistry, ResourceType, type_from_crd
from .selectors import (
    SelectorError,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
    selector_from_object,
    selector_to_string,
)
from .store import Store

JsonDict = dict[str, Any]
TypeKey = tuple[str, str]

CRDS: TypeKey = ("apiextensions.k8s.io", "customresourcedefinitions")
SERVICES: TypeKey = ("", "services")
SERVICE_ACCOUNTS: TypeKey = ("", "serviceaccounts")
NODES: TypeKey = ("", "nodes")

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


_NAMESPACE_MISMATCH = (
    "the namespace of the provided object does not match the namespace sent on the request"
)


def _name_mismatch(body_name: str, url_name: str) -> str:
    return f"the name of the object ({body_name}) does not match the name on the URL ({url_name})"


def clone(value: Any) -> Any:
    """A deep copy through JSON, which is also how the object would travel over the wire."""
    return json.loads(json.dumps(value))


@dataclass(frozen=True)
class Target:
    """What a request addresses: a type at a version, a namespace, maybe a name and subresource."""

    rt: ResourceType
    version: str
    namespace: str = ""
    name: str = ""
    subresource: str = ""


@dataclass
class Result:
    """An object (or Status) to send back, its HTTP code and any ``Warning`` headers."""

    obj: JsonDict
    code: int = 200
    warnings: builtins.list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ListResult:
    """One page of a list."""

    items: builtins.list[JsonDict]
    resource_version: str
    continue_token: str = ""
    remaining: int | None = None


def success_status(rt: ResourceType, obj: Mapping[str, Any]) -> JsonDict:
    """The ``Status`` a DELETE returns for kinds whose delete does not return the object."""
    meta = obj.get("metadata") or {}
    details: JsonDict = {
        "name": meta.get("name", ""),
        "kind": rt.plural,
        "uid": meta.get("uid", ""),
    }
    if rt.group:
        details["group"] = rt.group
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }


def with_version(obj: JsonDict, rt: ResourceType, version: str) -> JsonDict:
    """A shallow copy of a stored object showing the requested ``apiVersion``."""
    return {
        "apiVersion": rt.api_version(version),
        "kind": rt.kind,
        **{k: v for k, v in obj.items() if k not in ("apiVersion", "kind")},
    }


def _body_spec(obj: Mapping[str, Any]) -> JsonDict:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


class ApiCore:
    """The cluster's state and every operation on it."""

    def __init__(
        self,
        *,
        registry: ResourceRegistry | None = None,
        store: Store | None = None,
        settings: simulation.SimulationSettings | None = None,
        namespace_purge_delay: float = 0.3,
    ) -> None:
        self.registry = registry or ResourceRegistry()
        self.store = store or Store()
        self.settings = settings or simulation.SimulationSettings()
        self.holds = simulation.PodHolds()
        self.namespace_purge_delay = namespace_purge_delay
        self._pod_ips = simulation.IpAllocator("10.244.0.0/16", 5)
        self._cluster_ips = simulation.IpAllocator("10.96.0.0/16", 10)
        self._node_ports = simulation.IpAllocator("10.0.0.0/8", 0)
        self._dirty: dict[tuple[str, str, str], None] = {}
        self._depth = 0
        self._timers: builtins.list[threading.Timer] = []
        self._closed = False
        self.logs = PodLogs()
        self._event_index: dict[tuple[str, ...], tuple[str, str]] = {}
        self._pulled: set[str] = set()

    # --- bootstrapping ----------------------------------------------------------------------

    def seed(self, cluster_uid: str | None = None) -> None:
        """Create what a fresh kind cluster has: namespaces, the node, the kubernetes Service.

        ``cluster_uid`` fixes the ``kube-system`` namespace's UID, which tools use as the
        cluster's identity; by default it is random, like a new cluster's.
        """
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            meta: JsonDict = {"name": name}
            if name == "kube-system" and cluster_uid:
                meta["uid"] = cluster_uid
            self.create_internal(
                simulation.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}
            )
        for key, obj in rbac.bootstrap_policy():
            self.create_internal(key, obj)
        self.create_internal(NODES, simulation.node_object(self.settings))
        self.create_internal(
            SERVICES,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": "kubernetes",
                    "namespace": "default",
                    "labels": {"component": "apiserver", "provider": "kubernetes"},
                },
                "spec": {
                    "clusterIP": "10.96.0.1",
                    "ports": [
                        {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}
                    ],
                },
            },
        )

    def close(self) -> None:
        """Cancel pending namespace purges."""
        self._closed = True
        for timer in self._timers:
            timer.cancel()

    def reset(self, *, wipe: bool, cluster_uid: str | None = None) -> str:
        """A recreated cluster: new ``kube-system`` UID; with ``wipe`` every object is gone.

        Returns the new UID. Without ``wipe`` only ``kube-system`` is replaced (a DELETED and an
        ADDED event), which is what a tool caching the cluster's identity must notice.
        """
        new_uid = cluster_uid or simulation.new_uid()
        with self._op():
            if wipe:
                for timer in self._timers:
                    timer.cancel()
                self._timers = []
                for crd in self.store.list(CRDS):
                    defined = type_from_crd(crd)
                    if defined is not None:
                        self.registry.remove(*defined.key)
                for key in self.store.type_keys():
                    self.store.drop_type(key)
                self._dirty.clear()
                self._event_index.clear()
                self._pulled.clear()
                self.logs.clear()
                self.holds.rules.clear()
                self.seed(new_uid)
                self.store.forget_history()
                return new_uid
            old = self.store.get(simulation.NAMESPACES, "", "kube-system")
            self.store.remove(simulation.NAMESPACES, "", "kube-system")
            fresh: JsonDict = (
                clone(old)
                if old is not None
                else {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": "kube-system"},
                }
            )
            fresh["metadata"]["uid"] = new_uid
            fresh["metadata"]["creationTimestamp"] = simulation.now()
            simulation.default_namespace(fresh)
            self.store.put(simulation.NAMESPACES, fresh, "ADDED")
            return new_uid

    @property
    def cluster_uid(self) -> str:
        """The ``kube-system`` namespace's UID (the cluster's identity)."""
        ns = self.store.get(simulation.NAMESPACES, "", "kube-system")
        return str((ns or {}).get("metadata", {}).get("uid", ""))

    # --- locking and controllers ------------------------------------------------------------

    @contextmanager
    def _op(self) -> Iterator[None]:
        with self.store.lock:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._drain()

    def _drain(self) -> None:
        rounds = 0
        self._depth += 1
        try:
            while self._dirty:
                rounds += 1
                if rounds > 10_000:
                    self._dirty.clear()
                    raise RuntimeError("fake cluster controllers did not converge")
                kind, ns, name = next(iter(self._dirty))
                del self._dirty[(kind, ns, name)]
                if kind == "deployment":
                    simulation.reconcile_deployment(self, ns, name)
                else:
                    simulation.reconcile_replicaset(self, ns, name)
        finally:
            self._depth -= 1

    def _mark(self, key: TypeKey, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        ns, name = meta.get("namespace", ""), meta.get("name", "")
        if key == simulation.DEPLOYMENTS:
            self._dirty[("deployment", ns, name)] = None
        elif key == simulation.REPLICASETS:
            self._dirty[("replicaset", ns, name)] = None
            for ref in meta.get("ownerReferences") or []:
                if ref.get("kind") == "Deployment" and ref.get("controller"):
                    self._dirty[("deployment", ns, ref.get("name", ""))] = None
        elif key == simulation.PODS:
            for ref in meta.get("ownerReferences") or []:
                if ref.get("kind") == "ReplicaSet" and ref.get("controller"):
                    self._dirty[("replicaset", ns, ref.get("name", ""))] = None

    def _after_write(self, rt: ResourceType, obj: JsonDict) -> None:
        self._mark(rt.key, obj)
        if rt.key == CRDS:
            new_type = type_from_crd(obj)
            if new_type is not None:
                self.registry.add(new_type)

    # --- the Host protocol used by simulation controllers ----------------------------------

    def create_internal(self, key: TypeKey, obj: JsonDict) -> JsonDict:
        """Create through admission, skipping client-facing validation."""
        rt = self.registry.get(*key)
        if rt is None:
            raise KeyError(key)
        with self._op():
            return self._create(rt, rt.preferred_version, obj, internal=True).obj

    def delete_internal(self, key: TypeKey, namespace: str, name: str) -> None:
        """Delete an object and its dependents."""
        rt = self.registry.get(*key)
        if rt is None:
            raise KeyError(key)
        with self._op():
            self._remove(rt, namespace, name, cascade=True)

    def write_internal(self, key: TypeKey, obj: JsonDict) -> JsonDict:
        """Store a controller's change as-is (status included, generation untouched)."""
        rt = self.registry.get(*key)
        if rt is None:
            raise KeyError(key)
        with self._op():
            stored = self.store.put(key, obj, "MODIFIED")
            self._after_write(rt, stored)
            return stored

    # --- reads ------------------------------------------------------------------------------

    def get(self, t: Target) -> JsonDict:
        """The object (404 if missing); ``scale`` returns an autoscaling/v1 Scale."""
        obj = self.store.get(t.rt.key, t.namespace, t.name)
        if obj is None:
            raise errors.not_found(t.rt.plural, t.rt.group, t.name)
        if t.subresource == "scale":
            return self._scale_view(t.rt, obj)
        return with_version(obj, t.rt, t.version)

    def list(
        self,
        t: Target,
        *,
        label_selector: str = "",
        field_selector: str = "",
        limit: int = 0,
        continue_token: str = "",
    ) -> ListResult:
        """Matching objects in one namespace or across all, with optional paging."""
        try:
            labels = parse_label_selector(label_selector)
            fields = parse_field_selector(field_selector, t.rt.group, t.rt.plural)
        except SelectorError as exc:
            raise errors.bad_request(str(exc)) from exc
        start = ""
        if continue_token:
            try:
                start = json.loads(base64.urlsafe_b64decode(continue_token.encode()))["start"]
            except (ValueError, KeyError, TypeError) as exc:
                raise errors.bad_request("continue key is not valid") from exc
        with self.store.lock:
            rv = str(self.store.resource_version)
            items = [
                obj
                for obj in self.store.list(t.rt.key, t.namespace or None)
                if labels_match(labels, (obj.get("metadata") or {}).get("labels"))
                and fields_match(fields, obj)
            ]
        if start:
            items = [o for o in items if self._page_key(o) > start]
        token = ""
        remaining: int | None = None
        if limit and len(items) > limit:
            remaining = len(items) - limit
            items = items[:limit]
            last = self._page_key(items[-1])
            token = base64.urlsafe_b64encode(
                json.dumps({"start": last, "rv": rv}).encode()
            ).decode()
        return ListResult([with_version(o, t.rt, t.version) for o in items], rv, token, remaining)

    @staticmethod
    def _page_key(obj: Mapping[str, Any]) -> str:
        meta = obj.get("metadata") or {}
        return f"{meta.get('namespace', '')}/{meta.get('name', '')}"

    # --- create -----------------------------------------------------------------------------

    def create(
        self,
        t: Target,
        body: Any,
        *,
        dry_run: bool = False,
        field_validation: str = "Ignore",
    ) -> Result:
        """POST to a collection: 201 with the stored object."""
        if t.subresource:
            raise errors.method_not_allowed("create")
        with self._op():
            obj = self._check_body(t, body)
            meta = obj["metadata"]
            if t.rt.namespaced:
                if meta.get("namespace") and meta["namespace"] != t.namespace:
                    raise errors.bad_request(_NAMESPACE_MISMATCH)
                meta["namespace"] = t.namespace
            return self._create(
                t.rt, t.version, obj, dry_run=dry_run, field_validation=field_validation
            )

    def _create(
        self,
        rt: ResourceType,
        version: str,
        body: JsonDict,
        *,
        dry_run: bool = False,
        field_validation: str = "Ignore",
        internal: bool = False,
    ) -> Result:
        obj = clone(body)
        obj["apiVersion"], obj["kind"] = rt.api_version(version), rt.kind
        meta = obj.setdefault("metadata", {})
        if not rt.namespaced:
            meta.pop("namespace", None)
        namespace = meta.get("namespace", "") if rt.namespaced else ""
        if rt.namespaced and not namespace:
            meta["namespace"] = namespace = "default"
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = self._generate_name(rt, namespace, meta["generateName"])
            else:
                raise errors.invalid(
                    rt.kind,
                    rt.group,
                    "",
                    [
                        errors.Cause(
                            "FieldValueRequired",
                            "Required value: name or generateName is required",
                            "metadata.name",
                        )
                    ],
                )
        name = meta["name"]
        warnings: builtins.list[str] = []
        causes: builtins.list[errors.Cause] = []
        if not internal:
            obj, warnings, causes = self._validate(rt, version, obj, field_validation)
            meta = obj["metadata"]
        if rt.namespaced:
            ns_obj = self.store.get(simulation.NAMESPACES, "", namespace)
            if ns_obj is None:
                raise errors.not_found("namespaces", "", namespace)
            if simulation.is_deleting(ns_obj):
                raise errors.forbidden(
                    f'{rt.group_resource} "{name}" is forbidden: unable to create new content in '
                    f"namespace {namespace} because it is being terminated",
                    plural=rt.plural,
                    group=rt.group,
                    name=name,
                )
        if causes:
            raise errors.invalid(rt.kind, rt.group, name, causes)
        if self.store.get(rt.key, namespace, name) is not None:
            raise errors.already_exists(rt.plural, rt.group, name)
        for key in (
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
            "managedFields",
        ):
            meta.pop(key, None)
        meta["uid"] = meta["uid"] if internal and meta.get("uid") else simulation.new_uid()
        meta["creationTimestamp"] = simulation.now()
        if self._has_generation(rt):
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        if rt.has_status and not internal:
            obj.pop("status", None)
        self._admit_create(rt, obj)
        if dry_run:
            return Result(obj, 201, warnings)
        stored = self.store.put(rt.key, obj, "ADDED")
        self._after_write(rt, stored)
        if rt.key == simulation.NAMESPACES:
            self._seed_namespace(name)
        elif rt.key == simulation.PODS:
            self._pod_started(stored)
        return Result(with_version(stored, rt, version), 201, warnings)

    @staticmethod
    def _has_generation(rt: ResourceType) -> bool:
        """Kinds whose controllers track ``metadata.generation`` (core kinds in 1.32 do not)."""
        return rt.custom or rt.group in (
            "apps",
            "apiextensions.k8s.io",
            "admissionregistration.k8s.io",
        )

    def _generate_name(self, rt: ResourceType, namespace: str, prefix: str) -> str:
        for _ in range(100):
            candidate = f"{prefix}{simulation.random_suffix()}"
            if self.store.get(rt.key, namespace, candidate) is None:
                return candidate
        raise errors.internal_error("could not generate a unique name")

    def _seed_namespace(self, name: str) -> None:
        if self.store.get(SERVICE_ACCOUNTS, name, "default") is None:
            self.create_internal(
                SERVICE_ACCOUNTS,
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": "default", "namespace": name},
                },
            )

    def _check_body(self, t: Target, body: Any) -> JsonDict:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        obj: JsonDict = clone(body)
        kind = obj.get("kind")
        if kind and kind != t.rt.kind:
            raise errors.bad_request(
                f"the API version in the data ({obj.get('apiVersion', '')}) does not match the "
                f"expected API version ({t.rt.api_version(t.version)})"
                if obj.get("apiVersion") not in (None, t.rt.api_version(t.version))
                else f'{t.rt.kind} in version "{t.version}" cannot be handled as a {t.rt.kind}: '
                f"kind {kind} does not match"
            )
        api_version = obj.get("apiVersion")
        if api_version and api_version != t.rt.api_version(t.version):
            group = api_version.rpartition("/")[0]
            if group != t.rt.group or api_version.rpartition("/")[2] not in t.rt.versions:
                raise errors.bad_request(
                    f"the API version in the data ({api_version}) does not match the expected API "
                    f"version ({t.rt.api_version(t.version)})"
                )
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        return obj

    def _validate(
        self, rt: ResourceType, version: str, obj: JsonDict, field_validation: str
    ) -> tuple[JsonDict, builtins.list[str], builtins.list[errors.Cause]]:
        """Prune unknown fields (a strict-decoding 400 if asked) and collect 422 causes."""
        meta = obj["metadata"]
        unknown = schema.unknown_metadata_fields(obj)
        for key in list(meta):
            if key not in schema.OBJECT_META_FIELDS:
                del meta[key]
        causes: builtins.list[errors.Cause] = []
        causes.extend(validation.name_causes(rt, str(meta.get("name", ""))))
        causes.extend(validation.metadata_causes(meta))
        custom_schema = rt.schema(version) if rt.custom else None
        if not rt.custom:
            obj, builtin_unknown = builtin_schema.prune_unknown(rt.group, version, rt.kind, obj)
            obj["metadata"] = meta
            unknown.extend(u for u in builtin_unknown if u not in unknown)
        if custom_schema is not None:
            result = schema.validate(obj, custom_schema)
            obj = result.obj
            obj["metadata"] = meta
            unknown.extend(result.unknown_fields)
            causes.extend(result.causes)
        causes.extend(validation.kind_causes(rt, obj))
        warnings: builtins.list[str] = []
        if unknown:
            messages = [f'unknown field "{u}"' for u in unknown]
            if field_validation == "Strict":
                raise errors.bad_request(
                    f'{rt.kind} in version "{version}" cannot be handled as a {rt.kind}: '
                    f"strict decoding error: {', '.join(messages)}"
                )
            if field_validation == "Warn":
                warnings = messages
        return obj, warnings, causes

    def _admit_create(self, rt: ResourceType, obj: JsonDict) -> None:
        key = rt.key
        if key == simulation.PODS:
            self._admit_pod(obj)
        elif key == SERVICES:
            simulation.default_service(obj, self._cluster_ips, self._node_ports)
        elif key == simulation.NAMESPACES:
            simulation.default_namespace(obj)
        elif key == simulation.DEPLOYMENTS:
            simulation.default_deployment(obj)
        elif key == simulation.REPLICASETS:
            simulation.default_replicaset(obj)
        elif key == CRDS:
            obj["status"] = simulation.crd_status(obj)
        elif key == ("", "secrets"):
            obj.setdefault("type", "Opaque")
            self._fold_string_data(obj)

    @staticmethod
    def _fold_string_data(secret: JsonDict) -> None:
        string_data = secret.pop("stringData", None)
        if string_data:
            data = secret.setdefault("data", {})
            for k, v in string_data.items():
                data[k] = base64.b64encode(str(v).encode()).decode()

    def _admit_pod(self, pod: JsonDict) -> None:
        namespace = pod["metadata"]["namespace"]
        ns_obj = self.store.get(simulation.NAMESPACES, "", namespace)
        webhook = any(
            "sidecar-injector" in (w.get("metadata") or {}).get("name", "")
            for w in self.store.list(simulation.WEBHOOKS)
        )
        revision = simulation.injection_revision(
            pod, ns_obj, self.settings, webhook_installed=webhook
        )
        if revision is not None:
            simulation.inject_sidecar(pod, revision, self.settings)
        spec = pod.setdefault("spec", {})
        simulation.default_pod_spec(spec)
        spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        spec.setdefault("nodeName", self.settings.node_name)
        spec.setdefault("priority", 0)
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        pod["status"] = simulation.running_pod_status(
            pod,
            ready=not self.holds.matches(pod),
            pod_ip=self._pod_ips.allocate(),
            host_ip=self.settings.host_ip,
        )

    # --- update (PUT) -----------------------------------------------------------------------

    def update(
        self,
        t: Target,
        body: Any,
        *,
        dry_run: bool = False,
        field_validation: str = "Ignore",
    ) -> Result:
        """PUT: replace the object, its status, or its scale."""
        with self._op():
            old = self.store.get(t.rt.key, t.namespace, t.name)
            if old is None:
                raise errors.not_found(t.rt.plural, t.rt.group, t.name)
            if t.subresource == "scale":
                return self._write_scale(t, old, body, dry_run=dry_run)
            new = self._check_body(t, body)
            return self._replace(t, old, new, dry_run=dry_run, field_validation=field_validation)

    def _replace(
        self,
        t: Target,
        old: JsonDict,
        new: JsonDict,
        *,
        dry_run: bool,
        field_validation: str,
    ) -> Result:
        rt = t.rt
        meta = new.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != t.name:
            raise errors.bad_request(_name_mismatch(meta["name"], t.name))
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != t.namespace:
            raise errors.bad_request(_NAMESPACE_MISMATCH)
        meta["name"] = t.name
        if rt.namespaced:
            meta["namespace"] = t.namespace
        else:
            meta.pop("namespace", None)
        requested_rv = meta.get("resourceVersion")
        if requested_rv and requested_rv != old["metadata"]["resourceVersion"]:
            raise errors.conflict(rt.plural, rt.group, t.name)
        if t.subresource == "status":
            status = new.get("status")
            new = copy.deepcopy(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        elif t.subresource:
            raise errors.method_not_allowed("update")
        new["apiVersion"], new["kind"] = rt.api_version(t.version), rt.kind
        warnings: builtins.list[str] = []
        new, warnings, causes = self._validate(rt, t.version, new, field_validation)
        if causes:
            raise errors.invalid(rt.kind, rt.group, t.name, causes)
        meta = new["metadata"]
        old_meta = old["metadata"]
        for key in ("uid", "creationTimestamp", "deletionTimestamp", "generation"):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        if rt.has_status and t.subresource != "status":
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        if _body_spec(new) != _body_spec(old) and self._has_generation(rt):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        self._admit_update(rt, old, new)
        if dry_run:
            return Result(with_version(new, rt, t.version), 200, warnings)
        stored = self.store.put(rt.key, new, "MODIFIED")
        self._after_write(rt, stored)
        return Result(with_version(stored, rt, t.version), 200, warnings)

    def _admit_update(self, rt: ResourceType, old: JsonDict, new: JsonDict) -> None:
        key = rt.key
        if key == SERVICES:
            old_spec, spec = old.get("spec") or {}, new.setdefault("spec", {})
            for k in ("clusterIP", "clusterIPs"):
                if k in old_spec and not spec.get(k):
                    spec[k] = old_spec[k]
            old_ports = {p.get("port"): p.get("nodePort") for p in old_spec.get("ports") or []}
            for p in spec.get("ports") or []:
                if not p.get("nodePort") and old_ports.get(p.get("port")):
                    p["nodePort"] = old_ports[p.get("port")]
            simulation.default_service(new, self._cluster_ips, self._node_ports)
        elif key == simulation.NAMESPACES:
            simulation.default_namespace(new)
        elif key == simulation.DEPLOYMENTS:
            simulation.default_deployment(new)
        elif key == simulation.REPLICASETS:
            simulation.default_replicaset(new)
        elif key == simulation.PODS:
            simulation.default_pod_spec(new.setdefault("spec", {}))
        elif key == CRDS:
            new["status"] = simulation.crd_status(new)
        elif key == ("", "secrets"):
            self._fold_string_data(new)
        elif key in (rbac.ROLE_BINDINGS, rbac.CLUSTER_ROLE_BINDINGS):
            before, after = old.get("roleRef") or {}, new.get("roleRef") or {}
            if before != after:
                shown = (
                    f'rbac.RoleRef{{APIGroup:"{after.get("apiGroup", "")}", '
                    f'Kind:"{after.get("kind", "")}", Name:"{after.get("name", "")}"}}'
                )
                raise errors.invalid(
                    rt.kind,
                    rt.group,
                    new["metadata"]["name"],
                    [
                        errors.Cause(
                            "FieldValueInvalid",
                            f"Invalid value: {shown}: cannot change roleRef",
                            "roleRef",
                        )
                    ],
                )

    # --- patch ------------------------------------------------------------------------------

    def patch(
        self,
        t: Target,
        body: bytes | Any,
        content_type: str,
        *,
        dry_run: bool = False,
        field_validation: str = "Ignore",
    ) -> Result:
        """PATCH with merge, strategic merge, JSON patch or server-side apply."""
        ctype = content_type.split(";", 1)[0].strip().lower()
        patch_doc = self._decode_patch(body, ctype)
        with self._op():
            old = self.store.get(t.rt.key, t.namespace, t.name)
            if ctype == APPLY_PATCH:
                return self._server_side_apply(
                    t, old, patch_doc, dry_run=dry_run, field_validation=field_validation
                )
            if old is None:
                raise errors.not_found(t.rt.plural, t.rt.group, t.name)
            if t.subresource == "scale":
                current = self._scale_view(t.rt, old)
                return self._write_scale(
                    t,
                    old,
                    self._apply_patch(t.rt, current, patch_doc, ctype, "Scale"),
                    dry_run=dry_run,
                )
            view = with_version(old, t.rt, t.version)
            patched = self._apply_patch(t.rt, view, patch_doc, ctype, t.rt.kind)
            if not isinstance(patched, dict):
                raise errors.bad_request("the patched object is not a JSON object")
            patched.setdefault("metadata", {})
            return self._replace(
                t, old, patched, dry_run=dry_run, field_validation=field_validation
            )

    @staticmethod
    def _decode_patch(body: bytes | Any, ctype: str) -> Any:
        if not isinstance(body, bytes | bytearray):
            return body
        try:
            if ctype == APPLY_PATCH:
                return yaml.safe_load(body.decode())
            return json.loads(body or b"null")
        except (ValueError, yaml.YAMLError) as exc:
            raise errors.bad_request(f"error decoding patch: {exc}") from exc

    def _apply_patch(
        self, rt: ResourceType, current: JsonDict, patch_doc: Any, ctype: str, kind: str
    ) -> Any:
        try:
            if ctype == MERGE_PATCH:
                return patches.json_merge_patch(current, patch_doc)
            if ctype == STRATEGIC_PATCH:
                if rt.custom:
                    raise errors.unsupported_media_type([JSON_PATCH, MERGE_PATCH, APPLY_PATCH])
                return patches.strategic_merge_patch(current, patch_doc, kind)
            if ctype == JSON_PATCH:
                return patches.json_patch(current, patch_doc)
        except patches.PatchError as exc:
            raise errors.ApiError(
                422,
                "Invalid",
                "the server rejected our request due to an error in our request",
                causes=[errors.Cause("UnexpectedServerResponse", str(exc))],
            ) from exc
        accepted = [JSON_PATCH, MERGE_PATCH, APPLY_PATCH] + ([] if rt.custom else [STRATEGIC_PATCH])
        raise errors.unsupported_media_type(accepted)

    def _server_side_apply(
        self,
        t: Target,
        old: JsonDict | None,
        applied: Any,
        *,
        dry_run: bool,
        field_validation: str,
    ) -> Result:
        if (
            not isinstance(applied, dict)
            or not applied.get("apiVersion")
            or not applied.get("kind")
        ):
            raise errors.bad_request("apply patches must specify apiVersion and kind")
        name = (applied.get("metadata") or {}).get("name")
        if name and name != t.name:
            raise errors.bad_request(_name_mismatch(name, t.name))
        applied = self._check_body(t, applied)
        applied["metadata"]["name"] = t.name
        if old is None:
            if t.subresource:
                raise errors.not_found(t.rt.plural, t.rt.group, t.name)
            if t.rt.namespaced:
                applied["metadata"]["namespace"] = t.namespace
            return self._create(
                t.rt, t.version, applied, dry_run=dry_run, field_validation=field_validation
            )
        view = with_version(old, t.rt, t.version)
        applied["metadata"].pop("resourceVersion", None)
        if t.rt.custom:
            merged = patches.json_merge_patch(view, applied)
        else:
            merged = patches.strategic_merge_patch(view, applied, t.rt.kind)
        return self._replace(t, old, merged, dry_run=dry_run, field_validation=field_validation)

    # --- scale ------------------------------------------------------------------------------

    @staticmethod
    def _scale_view(rt: ResourceType, obj: JsonDict) -> JsonDict:
        if rt.key not in (simulation.DEPLOYMENTS, simulation.REPLICASETS):
            raise errors.resource_not_found()
        meta = obj["metadata"]
        spec = obj.get("spec") or {}
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in meta
            },
            "spec": {"replicas": int(spec.get("replicas", 1))},
            "status": {
                "replicas": int((obj.get("status") or {}).get("replicas", 0)),
                "selector": selector_to_string(selector_from_object(spec.get("selector"))),
            },
        }

    def _write_scale(self, t: Target, old: JsonDict, scale: Any, *, dry_run: bool) -> Result:
        if t.rt.key not in (simulation.DEPLOYMENTS, simulation.REPLICASETS):
            raise errors.resource_not_found()
        replicas = (scale.get("spec") or {}).get("replicas") if isinstance(scale, dict) else None
        if not isinstance(replicas, int) or replicas < 0:
            raise errors.invalid(
                "Scale",
                "autoscaling",
                t.name,
                [
                    errors.Cause(
                        "FieldValueInvalid",
                        f"Invalid value: {replicas}: must be greater than or equal to 0",
                        "spec.replicas",
                    )
                ],
            )
        new = clone(old)
        new["spec"]["replicas"] = replicas
        main = Target(t.rt, t.version, t.namespace, t.name)
        result = self._replace(main, old, new, dry_run=dry_run, field_validation="Ignore")
        current = self.store.get(t.rt.key, t.namespace, t.name) or result.obj
        return Result(self._scale_view(t.rt, current), 200)

    # --- delete -----------------------------------------------------------------------------

    def delete(
        self,
        t: Target,
        *,
        dry_run: bool = False,
        propagation: str = "Background",
        preconditions: Mapping[str, Any] | None = None,
    ) -> Result:
        """DELETE: the object for pods/services/serviceaccounts/namespaces, else a Status."""
        rt = t.rt
        with self._op():
            old = self.store.get(rt.key, t.namespace, t.name)
            if old is None:
                raise errors.not_found(rt.plural, rt.group, t.name)
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != old["metadata"].get("uid"):
                raise errors.conflict(rt.plural, rt.group, t.name)
            if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"].get(
                "resourceVersion"
            ):
                raise errors.conflict(rt.plural, rt.group, t.name)
            if dry_run:
                return Result(
                    with_version(old, rt, t.version)
                    if rt.returns_object_on_delete
                    else success_status(rt, old)
                )
            if rt.key == simulation.NAMESPACES:
                return Result(with_version(self._terminate_namespace(old), rt, t.version))
            final = self._remove(rt, t.namespace, t.name, cascade=propagation != "Orphan")
            shown = final or old
            if rt.returns_object_on_delete:
                return Result(with_version(shown, rt, t.version))
            return Result(success_status(rt, shown))

    def delete_collection(
        self,
        t: Target,
        *,
        label_selector: str = "",
        field_selector: str = "",
        dry_run: bool = False,
    ) -> Result:
        """DELETE on a collection: everything the selectors match."""
        page = self.list(t, label_selector=label_selector, field_selector=field_selector)
        with self._op():
            for obj in page.items:
                meta = obj["metadata"]
                target = Target(t.rt, t.version, meta.get("namespace", ""), meta["name"])
                if not dry_run:
                    try:
                        self.delete(target)
                    except ApiError as exc:
                        if exc.code != 404:
                            raise
        return Result({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})

    def _remove(
        self, rt: ResourceType, namespace: str, name: str, *, cascade: bool
    ) -> JsonDict | None:
        if rt.key == CRDS:
            crd = self.store.get(rt.key, namespace, name)
            if crd is not None:
                defined = type_from_crd(crd)
                if defined is not None:
                    self.store.drop_type(defined.key)
                    self.registry.remove(*defined.key)
        final = self.store.remove(rt.key, namespace, name)
        if final is None:
            return None
        if rt.key == simulation.PODS:
            self.logs.forget_pod(namespace, name)
        self._mark(rt.key, final)
        if cascade:
            uid = final["metadata"].get("uid")
            for key in self.store.type_keys():
                dependent_type = self.registry.get(*key)
                if dependent_type is None:
                    continue
                for obj in self.store.list(key, namespace if namespace else None):
                    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
                    if any(r.get("uid") == uid for r in refs):
                        self._remove(
                            dependent_type,
                            obj["metadata"].get("namespace", ""),
                            obj["metadata"]["name"],
                            cascade=True,
                        )
        return final

    def _terminate_namespace(self, ns: JsonDict) -> JsonDict:
        if simulation.is_deleting(ns):
            return ns
        changed = clone(ns)
        changed["metadata"]["deletionTimestamp"] = simulation.now()
        changed["metadata"]["deletionGracePeriodSeconds"] = 0
        changed["status"] = {"phase": "Terminating"}
        stored = self.store.put(simulation.NAMESPACES, changed, "MODIFIED")
        if not self._closed:
            timer = threading.Timer(
                self.namespace_purge_delay, self._purge_namespace, args=(ns["metadata"]["name"],)
            )
            timer.daemon = True
            self._timers = [t for t in self._timers if t.is_alive()] + [timer]
            timer.start()
        return stored

    def _purge_namespace(self, name: str) -> None:
        if self._closed:
            return
        with self._op():
            order = [simulation.DEPLOYMENTS, simulation.REPLICASETS, simulation.PODS]
            keys = order + [k for k in self.store.type_keys() if k not in order]
            for key in keys:
                rt = self.registry.get(*key)
                if rt is None or not rt.namespaced:
                    continue
                for obj in self.store.list(key, name):
                    self.store.remove(key, name, obj["metadata"]["name"])
            self.store.remove(simulation.NAMESPACES, "", name)
            self._dirty = {k: None for k in self._dirty if k[1] != name}

    # --- events ---------------------------------------------------------------------------

    def find_event(self, key: tuple[str, ...]) -> JsonDict | None:
        """The stored event recorded under a correlation key, if it still exists."""
        where = self._event_index.get(key)
        return None if where is None else self.store.get(events.EVENTS, *where)

    def store_event(self, key: tuple[str, ...], event: JsonDict, *, new: bool) -> JsonDict:
        """Write a recorded event (ADDED or MODIFIED for watchers)."""
        stored = self.store.put(events.EVENTS, event, "ADDED" if new else "MODIFIED")
        meta = stored["metadata"]
        self._event_index[key] = (meta["namespace"], meta["name"])
        return stored

    def record_event(
        self,
        obj: Mapping[str, Any],
        reason: str,
        message: str,
        *,
        type: str = events.NORMAL,
        field_path: str = "",
        component: str = "kubelet",
        host: str | None = None,
    ) -> JsonDict | None:
        """Record an Event about ``obj`` (None when the simulation records no events)."""
        if not self.settings.record_events:
            return None
        if host is None:
            host = self.settings.node_name if component == "kubelet" else ""
        with self._op():
            ns = (obj.get("metadata") or {}).get("namespace") or "default"
            if self.store.get(simulation.NAMESPACES, "", ns) is None:
                return None
            return events.record(
                self,
                obj,
                reason,
                message,
                type=type,
                field_path=field_path,
                component=component,
                host=host,
            )

    def _pod_started(self, pod: JsonDict) -> None:
        """What the scheduler and kubelet say while a new pod starts."""
        if not self.settings.record_events:
            return
        meta = pod["metadata"]
        node = (pod.get("spec") or {}).get("nodeName") or self.settings.node_name
        self.record_event(
            pod,
            "Scheduled",
            f"Successfully assigned {meta['namespace']}/{meta['name']} to {node}",
            component="default-scheduler",
        )
        for path, container in simulation.pod_containers(pod):
            self.container_started_events(pod, container, path)
        if not simulation.is_ready(pod):
            self.readiness_failed_events(pod)

    def container_started_events(self, pod: JsonDict, container: JsonDict, path: str) -> None:
        """Pulling/Pulled (or "already present"), Created and Started for one container."""
        image = str(container.get("image", ""))
        name = str(container.get("name", ""))
        field_path = f"{path}{{{name}}}"
        policy = container.get("imagePullPolicy", "IfNotPresent")
        if image in self._pulled and policy != "Always":
            self.record_event(
                pod,
                "Pulled",
                f'Container image "{image}" already present on machine',
                field_path=field_path,
            )
        else:
            self.record_event(pod, "Pulling", f'Pulling image "{image}"', field_path=field_path)
            took = simulation.pull_seconds(image)
            self.record_event(
                pod,
                "Pulled",
                f'Successfully pulled image "{image}" in {took} ({took} including waiting). '
                f"Image size: {simulation.image_size(image)} bytes.",
                field_path=field_path,
            )
            self._pulled.add(image)
        self.record_event(pod, "Created", f"Created container: {name}", field_path=field_path)
        self.record_event(pod, "Started", f"Started container {name}", field_path=field_path)

    def readiness_failed_events(self, pod: JsonDict) -> None:
        """An ``Unhealthy`` warning for each app container of a pod held not Ready."""
        message = f"Readiness probe failed: {self.settings.readiness_failure}"
        for c in (pod.get("spec") or {}).get("containers") or []:
            self.record_event(
                pod,
                "Unhealthy",
                message,
                type=events.WARNING,
                field_path=f"spec.containers{{{c.get('name', '')}}}",
            )

    def waiting_events(
        self, pod: JsonDict, container: str | None, reason: str, message: str
    ) -> None:
        """The warnings a kubelet records for a container stuck in ``reason``."""
        meta = pod["metadata"]
        for path, c in simulation.pod_containers(pod):
            name = str(c.get("name", ""))
            if path != "spec.containers" or (container is not None and name != container):
                continue
            image = str(c.get("image", ""))
            where = f"{path}{{{name}}}"
            warn = events.WARNING
            if reason == "ErrImagePull":
                detail = message or (
                    f"rpc error: code = NotFound desc = failed to pull and unpack image "
                    f'"{image}": not found'
                )
                self.record_event(
                    pod,
                    "Failed",
                    f'Failed to pull image "{image}": {detail}',
                    type=warn,
                    field_path=where,
                )
                self.record_event(pod, "Failed", "Error: ErrImagePull", type=warn, field_path=where)
            elif reason == "ImagePullBackOff":
                self.record_event(
                    pod, "BackOff", f'Back-off pulling image "{image}"', field_path=where
                )
                self.record_event(
                    pod, "Failed", "Error: ImagePullBackOff", type=warn, field_path=where
                )
            elif reason == "CrashLoopBackOff":
                self.record_event(
                    pod,
                    "BackOff",
                    f"Back-off restarting failed container {name} in pod "
                    f"{meta['name']}_{meta['namespace']}({meta.get('uid', '')})",
                    type=warn,
                    field_path=where,
                )
            elif reason not in ("ContainerCreating", "PodInitializing"):
                self.record_event(
                    pod, "Failed", f"Error: {message or reason}", type=warn, field_path=where
                )

    # --- pod lifecycle helpers used by tests ------------------------------------------------

    def set_pod_status(self, namespace: str, name: str, status: JsonDict) -> JsonDict:
        """Replace a pod's status (a MODIFIED event follows at once)."""
        with self._op():
            pod = self.store.get(simulation.PODS, namespace, name)
            if pod is None:
                raise errors.not_found("pods", "", name)
            changed = clone(pod)
            changed["status"] = status
            return self.write_internal(simulation.PODS, changed)

    def pod_ready_status(self, pod: JsonDict, ready: bool) -> JsonDict:
        """The status of ``pod`` once all its containers run and are (not) ready."""
        status = pod.get("status") or {}
        return simulation.running_pod_status(
            pod,
            ready=ready,
            pod_ip=status.get("podIP") or self._pod_ips.allocate(),
            host_ip=self.settings.host_ip,
        )
