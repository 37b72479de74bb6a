"""The resource table: built-in kinds plus whatever the stored CRDs define.

Discovery, routing, tables and validation all ask one :class:`ResourceRegistry` what a
``(group, version, plural)`` is. CRDs rebuild their entries on every create, update and delete,
so a group shows up in discovery the moment its CRD exists, exactly as kubectl expects.
Objects are stored per ``(group, plural)``; the version only changes the ``apiVersion`` the
client sees (CRD conversion strategy ``None``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

JsonDict = dict[str, Any]

ALL_VERBS: tuple[str, ...] = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)

_VERSION_RE = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key putting versions in Kubernetes preference order (v2 > v1 > v1beta1 > v1alpha1)."""
    m = _VERSION_RE.match(version)
    if not m:
        return (3, 0, 0, version)
    major = int(m.group(1))
    stage = {"alpha": 2, "beta": 1, None: 0}[m.group(2)]
    minor = int(m.group(3) or 0)
    return (stage, -major, -minor, version)


@dataclass(frozen=True)
class PrinterColumn:
    """One ``additionalPrinterColumns`` entry of a CRD version."""

    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0
    format: str = ""


@dataclass(frozen=True)
class ResourceType:
    """What the API knows about one resource (a built-in kind or a CRD)."""

    group: str
    versions: tuple[str, ...]
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[str, ...] = ()
    returns_object_on_delete: bool = False
    custom: bool = False
    storage_version: str = ""
    schemas: Mapping[str, JsonDict] = field(default_factory=dict, compare=False, hash=False)
    columns: Mapping[str, tuple[PrinterColumn, ...]] = field(
        default_factory=dict, compare=False, hash=False
    )

    @property
    def key(self) -> tuple[str, str]:
        """The storage key ``(group, plural)``."""
        return (self.group, self.plural)

    @property
    def preferred_version(self) -> str:
        """The version discovery advertises first."""
        return sorted(self.versions, key=version_priority)[0]

    @property
    def has_status(self) -> bool:
        """Whether ``.status`` is a subresource (main writes must not touch it)."""
        return "status" in self.subresources

    @property
    def group_resource(self) -> str:
        """``deployments.apps`` or ``pods``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        """The kind of a list response."""
        return f"{self.kind}List"

    def api_version(self, version: str | None = None) -> str:
        """``apps/v1`` or ``v1`` for the given (default: preferred) version."""
        v = version or self.preferred_version
        return f"{self.group}/{v}" if self.group else v

    def schema(self, version: str) -> JsonDict | None:
        """The CRD's ``openAPIV3Schema`` for a version, if it has one."""
        return self.schemas.get(version)


_SUBRESOURCE_KINDS = {
    "status": None,
    "scale": ("autoscaling", "v1", "Scale"),
    "exec": ("", "v1", "PodExecOptions"),
    "portforward": ("", "v1", "PodPortForwardOptions"),
    "log": ("", "v1", "Pod"),
    "proxy": ("", "v1", "ServiceProxyOptions"),
    "finalize": None,
    "token": ("authentication.k8s.io", "v1", "TokenRequest"),
}


def subresource_kind(rt: ResourceType, sub: str) -> tuple[str, str, str]:
    """``(group, version, kind)`` that discovery lists for ``plural/sub``."""
    found = _SUBRESOURCE_KINDS.get(sub)
    if found is None:
        return (rt.group, "", rt.kind)
    return found


def subresource_verbs(sub: str) -> list[str]:
    """The verbs discovery lists for a subresource."""
    if sub in ("status", "scale"):
        return ["get", "patch", "update"]
    if sub in ("exec", "portforward"):
        return ["create", "get"]
    if sub == "token":
        return ["create"]
    if sub == "log":
        return ["get"]
    if sub == "finalize":
        return ["update"]
    return ["create", "delete", "get", "patch", "update"]


def _builtin(
    group: str,
    plural: str,
    kind: str,
    *,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    subresources: tuple[str, ...] = (),
    returns_object: bool = False,
    verbs: tuple[str, ...] = ALL_VERBS,
) -> ResourceType:
    return ResourceType(
        group=group,
        versions=("v1",),
        plural=plural,
        singular=kind.lower(),
        kind=kind,
        namespaced=namespaced,
        short_names=short,
        categories=categories,
        subresources=subresources,
        returns_object_on_delete=returns_object,
        storage_version="v1",
        verbs=verbs,
    )


BUILTIN_TYPES: tuple[ResourceType, ...] = (
    _builtin(
        "",
        "namespaces",
        "Namespace",
        namespaced=False,
        short=("ns",),
        subresources=("status", "finalize"),
        returns_object=True,
    ),
    _builtin(
        "",
        "pods",
        "Pod",
        short=("po",),
        categories=("all",),
        subresources=("status", "exec", "portforward", "log"),
        returns_object=True,
    ),
    _builtin(
        "",
        "services",
        "Service",
        short=("svc",),
        categories=("all",),
        subresources=("status", "proxy"),
        returns_object=True,
    ),
    _builtin(
        "",
        "serviceaccounts",
        "ServiceAccount",
        short=("sa",),
        subresources=("token",),
        returns_object=True,
    ),
    _builtin("", "secrets", "Secret"),
    _builtin("", "configmaps", "ConfigMap", short=("cm",)),
    _builtin("", "events", "Event", short=("ev",)),
    _builtin(
        "",
        "nodes",
        "Node",
        namespaced=False,
        short=("no",),
        subresources=("status",),
    ),
    _builtin(
        "apps",
        "deployments",
        "Deployment",
        short=("deploy",),
        categories=("all",),
        subresources=("status", "scale"),
    ),
    _builtin(
        "apps",
        "replicasets",
        "ReplicaSet",
        short=("rs",),
        categories=("all",),
        subresources=("status", "scale"),
    ),
    _builtin(
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        namespaced=False,
        categories=("api-extensions",),
    ),
    _builtin(
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        namespaced=False,
        categories=("api-extensions",),
    ),
    _builtin(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short=("crd", "crds"),
        categories=("api-extensions",),
        subresources=("status",),
    ),
    _builtin(
        "events.k8s.io",
        "events",
        "Event",
        short=("ev",),
    ),
    _builtin("rbac.authorization.k8s.io", "roles", "Role"),
    _builtin("rbac.authorization.k8s.io", "rolebindings", "RoleBinding"),
    _builtin("rbac.authorization.k8s.io", "clusterroles", "ClusterRole", namespaced=False),
    _builtin(
        "rbac.authorization.k8s.io", "clusterrolebindings", "ClusterRoleBinding", namespaced=False
    ),
    _builtin(
        "authorization.k8s.io",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        namespaced=False,
        verbs=("create",),
    ),
    _builtin(
        "authorization.k8s.io",
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
        namespaced=False,
        verbs=("create",),
    ),
    _builtin(
        "authorization.k8s.io",
        "subjectaccessreviews",
        "SubjectAccessReview",
        namespaced=False,
        verbs=("create",),
    ),
    _builtin(
        "authorization.k8s.io",
        "localsubjectaccessreviews",
        "LocalSubjectAccessReview",
        verbs=("create",),
    ),
    _builtin(
        "authentication.k8s.io",
        "selfsubjectreviews",
        "SelfSubjectReview",
        namespaced=False,
        verbs=("create",),
    ),
    _builtin(
        "authentication.k8s.io",
        "tokenreviews",
        "TokenReview",
        namespaced=False,
        verbs=("create",),
    ),
)

REVIEWS: frozenset[tuple[str, str]] = frozenset(
    {
        ("authorization.k8s.io", "selfsubjectaccessreviews"),
        ("authorization.k8s.io", "selfsubjectrulesreviews"),
        ("authorization.k8s.io", "subjectaccessreviews"),
        ("authorization.k8s.io", "localsubjectaccessreviews"),
        ("authentication.k8s.io", "selfsubjectreviews"),
        ("authentication.k8s.io", "tokenreviews"),
    }
)
"""Kinds that are never stored: a create asks a question and the reply is the answer."""


def type_from_crd(crd: Mapping[str, Any]) -> ResourceType | None:
    """The resource a CRD defines, or None when it serves no version."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    served = [v for v in spec.get("versions") or [] if v.get("served", True)]
    if not served or not names.get("plural") or not names.get("kind"):
        return None
    schemas: dict[str, JsonDict] = {}
    columns: dict[str, tuple[PrinterColumn, ...]] = {}
    subresources: set[str] = set()
    storage = served[0]["name"]
    for v in served:
        if v.get("storage"):
            storage = v["name"]
        schema = (v.get("schema") or {}).get("openAPIV3Schema")
        if isinstance(schema, dict):
            schemas[v["name"]] = schema
        columns[v["name"]] = tuple(
            PrinterColumn(
                name=c.get("name", ""),
                type=c.get("type", "string"),
                json_path=c.get("jsonPath", ""),
                description=c.get("description", ""),
                priority=int(c.get("priority", 0)),
                format=c.get("format", ""),
            )
            for c in v.get("additionalPrinterColumns") or []
        )
        subresources.update((v.get("subresources") or {}).keys())
    return ResourceType(
        group=spec.get("group", ""),
        versions=tuple(v["name"] for v in served),
        plural=names["plural"],
        singular=names.get("singular") or names["kind"].lower(),
        kind=names["kind"],
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        short_names=tuple(names.get("shortNames") or ()),
        categories=tuple(names.get("categories") or ()),
        subresources=tuple(sorted(subresources)),
        custom=True,
        storage_version=storage,
        schemas=schemas,
        columns=columns,
    )


class ResourceRegistry:
    """Thread-safe lookup of resource types by path, kind or the names kubectl accepts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._types: dict[tuple[str, str], ResourceType] = {t.key: t for t in BUILTIN_TYPES}

    def add(self, rt: ResourceType) -> None:
        """Register or replace a type (CRD create/update)."""
        with self._lock:
            self._types[rt.key] = rt

    def remove(self, group: str, plural: str) -> None:
        """Forget a type (CRD delete)."""
        with self._lock:
            self._types.pop((group, plural), None)

    def all(self) -> list[ResourceType]:
        """Every registered type."""
        with self._lock:
            return list(self._types.values())

    def get(self, group: str, plural: str) -> ResourceType | None:
        """The type stored under ``(group, plural)`` regardless of version."""
        with self._lock:
            return self._types.get((group, plural))

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        """The type served at ``/apis/group/version/plural``."""
        rt = self.get(group, plural)
        if rt is None or version not in rt.versions:
            return None
        return rt

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        """The type for an object's ``apiVersion`` and ``kind``."""
        group, _, version = api_version.rpartition("/")
        for rt in self.all():
            if rt.group == group and rt.kind == kind and version in rt.versions:
                return rt
        return None

    def resolve(self, name: str) -> ResourceType:
        """Find a type the way kubectl does: plural, singular, short name, kind or plural.group."""
        wanted = name.lower()
        plural_part, _, group_part = wanted.partition(".")
        for rt in self.all():
            names = {rt.plural, rt.singular, rt.kind.lower(), *rt.short_names}
            if group_part:
                if plural_part in names and rt.group == group_part:
                    return rt
            elif wanted in names:
                return rt
        raise KeyError(f"unknown resource type {name!r}")

    def groups(self) -> list[tuple[str, list[str]]]:
        """``(group, versions in preference order)`` for every non-core group."""
        found: dict[str, set[str]] = {}
        for rt in self.all():
            if rt.group:
                found.setdefault(rt.group, set()).update(rt.versions)
        builtin_order = [t.group for t in BUILTIN_TYPES if t.group]
        ordered = sorted(
            found,
            key=lambda g: (builtin_order.index(g) if g in builtin_order else len(builtin_order), g),
        )
        return [(g, sorted(found[g], key=version_priority)) for g in ordered]

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        """The types served at ``group/version``, in a stable order."""
        return sorted(
            (rt for rt in self.all() if rt.group == group and version in rt.versions),
            key=lambda rt: rt.plural,
        )
