"""What a verifier uses to read the cluster: one facade over connection, discovery and watches.

Verifiers should not care about kubeconfigs, timeouts, REST paths or watch
plumbing. ``connect(ctx)`` gives them a ``Cluster`` bound to the check's
context: every call is bounded by what is left of the check's deadline, types
are resolved through the run's discovery cache, lists return their
resourceVersion, and ``waiter`` turns that into the ``wait`` callable of a
pending outcome. ``handles_cluster_errors`` turns any ``ClusterError`` raised
on the way into the matching outcome (pending when transient, else error), so
verifier bodies read as the rule they check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from labrunner.cluster import resources
from labrunner.cluster.client import Kube, kube
from labrunner.cluster.errors import ClusterError, NotFound
from labrunner.cluster.resources import ResourceType, UnknownType
from labrunner.cluster.watch import watch_waiter

if TYPE_CHECKING:
    from labrunner.verify.context import CheckContext
    from labrunner.verify.outcome import Outcome, Waiter

REQUEST_CAP = 10.0
"""No single read waits longer than this, whatever the step's budget."""

PODS = ResourceType("", "v1", "pods", "Pod", True, "pod", ("po",))
NAMESPACES = ResourceType("", "v1", "namespaces", "Namespace", False, "namespace", ("ns",))
SECRETS = ResourceType("", "v1", "secrets", "Secret", True, "secret")
SERVICES = ResourceType("", "v1", "services", "Service", True, "service", ("svc",))
DEPLOYMENTS = ResourceType(
    "apps", "v1", "deployments", "Deployment", True, "deployment", ("deploy",)
)
CRDS = ResourceType(
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    "CustomResourceDefinition",
    False,
    "customresourcedefinition",
    ("crd", "crds"),
)
MUTATING_WEBHOOKS = ResourceType(
    "admissionregistration.k8s.io",
    "v1",
    "mutatingwebhookconfigurations",
    "MutatingWebhookConfiguration",
    False,
    "mutatingwebhookconfiguration",
)
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
"""Accept header for lists where only names and labels matter (CRDs are large)."""


@dataclass
class ObjectList:
    """Objects from one list call and the resourceVersion to watch from."""

    rt: ResourceType
    items: list[dict[str, Any]]
    resource_version: str
    namespace: str | None = None
    label_selector: str = ""
    field_selector: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Cluster:
    """The cluster as one check sees it: reads bounded by the check's deadline."""

    def __init__(self, ctx: CheckContext, connection: Kube) -> None:
        self.ctx = ctx
        self.kube = connection

    @property
    def server(self) -> str:
        """The API server URL."""
        return self.kube.server

    def timeout(self, cap: float = REQUEST_CAP) -> float:
        """Seconds one request may take."""
        return self.ctx.remaining(cap)

    def resource_type(
        self,
        *,
        api_version: str | None = None,
        kind: str | None = None,
        resource: str | None = None,
    ) -> ResourceType:
        """Resolve a type by ``apiVersion``+``kind`` or by name; raises UnknownType."""
        if resource:
            return resources.by_name(self.kube, resource, timeout=self.timeout())
        if api_version and kind:
            return resources.by_kind(self.kube, api_version, kind, timeout=self.timeout())
        raise ValueError("name a type with apiVersion and kind, or with resource")

    def list(
        self,
        rt: ResourceType,
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
        accept: str = "application/json",
    ) -> ObjectList:
        """List objects; a namespaced type with ``namespace`` None lists all namespaces."""
        query = [("labelSelector", label_selector), ("fieldSelector", field_selector)]
        try:
            doc = self.kube.get(
                rt.collection(namespace), query=query, timeout=self.timeout(), accept=accept
            )
        except NotFound:
            self.kube.discovery_cache.pop(f"gv:{rt.api_version}", None)
            raise UnknownType(
                f"the cluster no longer serves {rt.qualified} (was its CRD deleted?)"
            ) from None
        items = [i for i in doc.get("items") or [] if isinstance(i, dict)]
        version = str((doc.get("metadata") or {}).get("resourceVersion") or "")
        return ObjectList(rt, items, version, namespace, label_selector, field_selector)

    def named(self, rt: ResourceType, name: str, *, namespace: str | None = None) -> ObjectList:
        """A list holding at most the object called ``name`` (so it can be watched)."""
        return self.list(rt, namespace=namespace, field_selector=f"metadata.name={name}")

    def read(self, rt: ResourceType, name: str, *, namespace: str | None = None) -> Any:
        """One object, or None when it does not exist."""
        try:
            return self.kube.get(rt.item(name, namespace), timeout=self.timeout())
        except NotFound:
            return None

    def waiter(self, listed: ObjectList) -> Waiter:
        """A ``wait`` callable that returns on the first change to what ``listed`` covers."""
        return watch_waiter(
            self.kube,
            listed.rt.collection(listed.namespace),
            resource_version=listed.resource_version,
            label_selector=listed.label_selector,
            field_selector=listed.field_selector,
            cancel=self.ctx.cancel,
        )


def connect(ctx: CheckContext) -> Cluster:
    """The cluster of ``ctx`` (raises ClusterError when the kubeconfig is unusable)."""
    return Cluster(ctx, kube(ctx))


def outcome_for(exc: BaseException, ctx: CheckContext) -> Outcome | None:
    """The outcome for a cluster problem raised by a verifier (None: not a cluster problem)."""
    if isinstance(exc, ClusterError):
        return exc.outcome(sleep=ctx.cancel.wait)
    if isinstance(exc, UnknownType):
        from labrunner.verify.outcome import Outcome

        return Outcome.pending(exc.message)
    return None


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    """An object's labels (empty when it has none)."""
    return dict((obj.get("metadata") or {}).get("labels") or {})


def name_of(obj: Mapping[str, Any]) -> str:
    """An object's name."""
    return str((obj.get("metadata") or {}).get("name", ""))


def terminating(obj: Mapping[str, Any]) -> bool:
    """True when the object is being deleted (it has a deletionTimestamp)."""
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))
