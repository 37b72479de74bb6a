"""Find any resource type the cluster serves, built-in or custom, by kind or by name.

Lab authors name what they check the way they write manifests
(``apiVersion: security.istio.io/v1`` + ``kind: PeerAuthentication``) or the
way they type kubectl (``peerauthentications.security.istio.io``, ``pods``,
``deploy``). Either way a check needs the REST path (the plural) and whether
the type is namespaced, which only discovery knows for CRDs. So this module
asks the API server's discovery endpoints, like kubectl does, and caches the
answers on the run's connection.

Only positive answers are cached. A type that is missing now (its CRD is
still being applied, or Istio is not installed yet) is looked up again on the
next poll, so a check notices the moment the CRD becomes established.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from labrunner.cluster.errors import NotFound, UnknownType

TYPE_CHECKING = False  # as typing's, without importing typing (a start-up cost)
if TYPE_CHECKING:
    from typing import Any

    from labrunner.cluster.client import Kube

# a pattern's text: `re` compiles (and caches) it when first used, not at import
_VERSION = r"^v\d+(?:(?:alpha|beta)\d+)?$"


@dataclass(frozen=True)
class ResourceType:
    """A served resource: where its REST collection lives and what it holds."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        """``v1`` or ``group/version``, as manifests write it."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``peerauthentications.security.istio.io``, or ``pods`` for the core group."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def _base(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def collection(self, namespace: str | None = None) -> str:
        """The REST path of the collection (all namespaces when ``namespace`` is None)."""
        if self.namespaced and namespace:
            return f"{self._base()}/namespaces/{quote(namespace, safe='')}/{self.plural}"
        return f"{self._base()}/{self.plural}"

    def item(self, name: str, namespace: str | None = None) -> str:
        """The REST path of one object."""
        return f"{self.collection(namespace)}/{quote(name, safe='')}"

    def matches(self, word: str) -> bool:
        """True when ``word`` names this type (plural, singular, short name or kind)."""
        lowered = word.lower()
        return lowered in (self.plural, self.singular, self.kind.lower()) or (
            lowered in self.short_names
        )


PODS = ResourceType("", "v1", "pods", "Pod", True, "pod", ("po",))
NAMESPACES = ResourceType("", "v1", "namespaces", "Namespace", False, "namespace", ("ns",))
SECRETS = ResourceType("", "v1", "secrets", "Secret", True, "secret")
SERVICES = ResourceType("", "v1", "services", "Service", True, "service", ("svc",))
EVENTS = ResourceType("", "v1", "events", "Event", True, "event", ("ev",))
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


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    """An object's labels (empty when it has none)."""
    return dict((obj.get("metadata") or {}).get("labels") or {})


def name_of(obj: Mapping[str, Any]) -> str:
    """An object's name."""
    return str((obj.get("metadata") or {}).get("name", ""))


def terminating(obj: Mapping[str, Any]) -> bool:
    """True when the object is being deleted (it has a deletionTimestamp)."""
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def _from_list(doc: Any, group: str, version: str) -> list[ResourceType]:
    found = []
    for entry in (doc or {}).get("resources") or []:
        name = str(entry.get("name", ""))
        if not name or "/" in name:
            continue  # subresources such as pods/status
        found.append(
            ResourceType(
                group=group,
                version=version,
                plural=name,
                kind=str(entry.get("kind", "")),
                namespaced=bool(entry.get("namespaced")),
                singular=str(entry.get("singularName") or entry.get("kind", "")).lower(),
                short_names=tuple(str(s) for s in entry.get("shortNames") or ()),
            )
        )
    return found


def group_version(
    kube: Kube, group: str, version: str, *, timeout: float, fresh: bool = False
) -> list[ResourceType] | None:
    """The types served under ``group/version`` (None when it is not served at all)."""
    key = f"gv:{group}/{version}"
    if not fresh:
        cached = kube.discovery_cache.get(key)
        if cached is not None:
            return list(cached)
    path = f"/apis/{group}/{version}" if group else f"/api/{version}"
    try:
        doc = kube.get(path, timeout=timeout)
    except NotFound:
        kube.discovery_cache.pop(key, None)
        return None
    types = _from_list(doc, group, version)
    kube.discovery_cache[key] = types
    return list(types)


def preferred_version(kube: Kube, group: str, *, timeout: float) -> str | None:
    """The version the API server prefers for ``group`` (None when the group is unknown)."""
    key = f"group:{group}"
    cached = kube.discovery_cache.get(key)
    if isinstance(cached, str):
        return cached
    try:
        doc = kube.get(f"/apis/{group}", timeout=timeout)
    except NotFound:
        return None
    preferred = (doc.get("preferredVersion") or {}).get("version")
    if not preferred:
        versions = doc.get("versions") or []
        preferred = versions[0].get("version") if versions else None
    if preferred:
        kube.discovery_cache[key] = str(preferred)
    return str(preferred) if preferred else None


def _all_groups(kube: Kube, *, timeout: float) -> list[tuple[str, str]]:
    doc = kube.get("/apis", timeout=timeout)
    pairs = []
    for entry in doc.get("groups") or []:
        name = entry.get("name")
        version = (entry.get("preferredVersion") or {}).get("version")
        if name and version:
            pairs.append((str(name), str(version)))
    return pairs


def by_kind(kube: Kube, api_version: str, kind: str, *, timeout: float) -> ResourceType:
    """The type behind ``apiVersion`` + ``kind``; raises UnknownType when it is not served."""
    group, _, version = api_version.rpartition("/")
    for fresh in (False, True):
        types = group_version(kube, group, version, timeout=timeout, fresh=fresh)
        if types is None:
            raise UnknownType(
                f"the cluster does not serve {api_version}"
                + (" (is its CRD installed?)" if group and "k8s.io" not in group else "")
            )
        for rt in types:
            if rt.kind == kind:
                return rt
    raise UnknownType(f"the cluster has no kind {kind} in {api_version} (is its CRD installed?)")


def by_name(kube: Kube, resource: str, *, timeout: float) -> ResourceType:
    """The type behind ``plural[.version].group`` or a short name; raises UnknownType."""
    word, _, rest = resource.partition(".")
    candidates: list[tuple[str, str | None]] = []
    if not rest:
        candidates.append(("", "v1"))
    else:
        candidates.append((rest, None))
        first, _, after = rest.partition(".")
        if after and re.match(_VERSION, first):
            candidates.append((after, first))
    for group, version in candidates:
        chosen = version or ("v1" if not group else preferred_version(kube, group, timeout=timeout))
        if chosen is None:
            continue
        for fresh in (False, True):
            types = group_version(kube, group, chosen, timeout=timeout, fresh=fresh)
            if types is None:
                break
            for rt in types:
                if rt.matches(word):
                    return rt
    if not rest:
        for group, version in _all_groups(kube, timeout=timeout):
            for rt in group_version(kube, group, version, timeout=timeout) or []:
                if rt.matches(word):
                    return rt
    raise UnknownType(
        f"the cluster has no resource type {resource!r}"
        + (" (is its CRD installed?)" if rest and "k8s.io" not in rest else "")
    )


def label_selector(selector: str | Mapping[str, Any] | None) -> str:
    """A label selector as the API's query string, from ``"a=b,c"`` or ``{a: b}``."""
    if selector is None:
        return ""
    if isinstance(selector, Mapping):
        return ",".join(f"{key}={value}" for key, value in selector.items())
    return str(selector).strip()


_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
_KEY = rf"(?:[a-z0-9](?:[-a-z0-9.]*[a-z0-9])?/)?{_NAME}"
_VALUE = rf"(?:{_NAME})?"
# a pattern, not a compiled one: ``re`` compiles it (and keeps it) on the first selector
# checked, which spares every start-up that checks none about 1.5 ms
_REQUIREMENT = (
    rf"^\s*(?:!\s*{_KEY}|{_KEY}\s*(?:(?:==?|!=)\s*{_VALUE}|\s(?:in|notin)\s*\(\s*{_VALUE}"
    rf"(?:\s*,\s*{_VALUE})*\s*\))?)\s*$"
)


def selector_problem(selector: str) -> str | None:
    """Why ``selector`` is not a valid label selector (None when it is)."""
    parts, depth, current = [], 0, ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    if depth != 0:
        return f"unbalanced parentheses in label selector {selector!r}"
    for part in parts:
        if not part.strip():
            return f"empty requirement in label selector {selector!r}"
        if not re.match(_REQUIREMENT, part):
            return f"{part.strip()!r} is not a valid label selector requirement"
    return None
