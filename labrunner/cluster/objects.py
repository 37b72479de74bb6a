"""Read Kubernetes objects within a deadline, and wait for them to change.

A ``Reader`` is the cluster as one caller sees it for a while: a connection,
a deadline (``time.monotonic()`` seconds) that bounds every request, and a
cancel event that ends a wait at once. It resolves types through the
connection's discovery cache, returns lists with their resourceVersion
(``ObjectList``), and turns such a list into a ``wait`` callable that returns
on the first change to what the list covered (``labrunner.cluster.watch``).

It returns data or raises ``ClusterError`` kinds (``NotFound``,
``UnknownType``, transport and HTTP failures); what a check makes of them is
``labrunner.verify.kube``'s business.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from labrunner.cluster import resources
from labrunner.cluster.client import Kube
from labrunner.cluster.errors import NotFound, UnknownType, http_error
from labrunner.cluster.resources import ResourceType
from labrunner.cluster.watch import Waiter, watch_waiter

TYPE_CHECKING = False  # as typing's, without importing typing (a start-up cost)
if TYPE_CHECKING:
    from typing import Any

REQUEST_CAP = 10.0
"""No single read waits longer than this, whatever the deadline."""
REQUEST_FLOOR = 0.05
"""Every request gets at least this long, even past the deadline (one last look)."""


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


class Reader:
    """Reads bounded by one deadline, waits ended by one cancel event."""

    def __init__(self, kube: Kube, *, deadline: float, cancel: threading.Event) -> None:
        self.kube = kube
        self.deadline = deadline
        self.cancel = cancel

    @property
    def server(self) -> str:
        """The API server URL."""
        return self.kube.server

    @property
    def namespace(self) -> str:
        """The kube context's namespace (``default`` when it names none)."""
        return self.kube.namespace

    def timeout(self, cap: float = REQUEST_CAP) -> float:
        """Seconds one request may take: what is left of the deadline, capped."""
        return min(max(self.deadline - time.monotonic(), REQUEST_FLOOR), cap)

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

    def log(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        tail: int,
        previous: bool = False,
        limit_bytes: int = 256 * 1024,
    ) -> str:
        """The last ``tail`` lines a container logged (of its previous instance with
        ``previous``); empty when there is none. Raises ClusterError kinds."""
        query = [
            ("container", container),
            ("tailLines", str(tail)),
            ("limitBytes", str(limit_bytes)),
            ("previous", "true" if previous else ""),
        ]
        path = resources.PODS.item(pod, namespace) + "/log"
        response = self.kube.open(path, query=query, timeout=self.timeout(), accept="text/plain")
        status = int(response.status)
        if status in (400, 404):  # no previous instance, or the pod is gone
            return ""
        if status >= 300:
            raise http_error(status, response.data, method="GET", path=path)
        return bytes(response.data[:limit_bytes]).decode("utf-8", errors="replace")

    def waiter(self, listed: ObjectList) -> Waiter:
        """A ``wait`` callable that returns on the first change to what ``listed`` covers."""
        return watch_waiter(
            self.kube,
            listed.rt.collection(listed.namespace),
            resource_version=listed.resource_version,
            label_selector=listed.label_selector,
            field_selector=listed.field_selector,
            cancel=self.cancel,
        )
