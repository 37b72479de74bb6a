"""RBAC evaluation: Roles, ClusterRoles and their bindings decide what an identity may do.

The class feature rests on one claim: a learner's join file can write that learner's progress
object and nothing else. A test only proves it if the fake refuses the rest the way Kubernetes'
RBAC authorizer does, so this follows its rules:

* A Role applies in its namespace through a RoleBinding there; a ClusterRole applies in one
  namespace through a RoleBinding, everywhere through a ClusterRoleBinding. Subjects are users,
  groups or ServiceAccounts (a RoleBinding's ServiceAccount subject without a namespace means the
  binding's own).
* A rule matches on ``apiGroups``, ``resources`` (``pods/log`` for a subresource, ``*/log``,
  ``*``), ``verbs`` (``*`` for all) and ``resourceNames``. A request without a name (create,
  list, watch) never matches a rule that lists names, except a list or watch whose field selector
  pins ``metadata.name``, which the apiserver authorizes as a request for that name.
* A request for a namespace object is authorized in that namespace.
* Writing a Role or binding cannot grant more than the writer holds, unless the writer may
  ``escalate`` (roles) or ``bind`` (bindings), as in the apiserver's escalation check.

Denials read exactly like the apiserver's, e.g. ``configmaps "x" is forbidden: User
"system:serviceaccount:c:alice" cannot update resource "configmaps" in API group "" in the
namespace "c"``, which kubectl prints verbatim.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from . import errors
from .auth import AUTHENTICATED, MASTERS, UNAUTHENTICATED, Identity
from .errors import ApiError

JsonDict = dict[str, Any]
TypeKey = tuple[str, str]

GROUP = "rbac.authorization.k8s.io"
ROLES: TypeKey = (GROUP, "roles")
ROLE_BINDINGS: TypeKey = (GROUP, "rolebindings")
CLUSTER_ROLES: TypeKey = (GROUP, "clusterroles")
CLUSTER_ROLE_BINDINGS: TypeKey = (GROUP, "clusterrolebindings")
RBAC_KEYS = (ROLES, ROLE_BINDINGS, CLUSTER_ROLES, CLUSTER_ROLE_BINDINGS)

READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]


class Objects(Protocol):
    """The part of the store RBAC reads."""

    def get(self, key: TypeKey, namespace: str, name: str) -> JsonDict | None:
        """One stored object."""
        ...

    def list(self, key: TypeKey, namespace: str | None = None) -> list[JsonDict]:
        """Stored objects of a type."""
        ...


@dataclass(frozen=True)
class Attributes:
    """What a request asks to do, as the authorizer sees it."""

    verb: str
    resource: str = ""
    group: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""

    @property
    def is_resource(self) -> bool:
        """Whether this is a resource request (else a non-resource URL such as ``/version``)."""
        return bool(self.resource)

    @property
    def combined(self) -> str:
        """``pods`` or ``pods/log``."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    @classmethod
    def from_review(cls, spec: Mapping[str, Any]) -> Attributes:
        """The attributes of a SubjectAccessReview's spec."""
        res = spec.get("resourceAttributes") or {}
        if res:
            return cls(
                verb=str(res.get("verb", "")),
                resource=str(res.get("resource", "")),
                group=str(res.get("group", "")),
                subresource=str(res.get("subresource", "")),
                namespace=str(res.get("namespace", "")),
                name=str(res.get("name", "")),
            )
        non = spec.get("nonResourceAttributes") or {}
        return cls(verb=str(non.get("verb", "")), path=str(non.get("path", "")))


@dataclass(frozen=True)
class Grant:
    """One rule an identity holds, and the binding and role it came through."""

    rule: JsonDict
    binding: str
    role: str
    subject: str


@dataclass(frozen=True)
class Decision:
    """The authorizer's answer."""

    allowed: bool
    reason: str = ""


def _subject_text(subject: Mapping[str, Any], binding_ns: str) -> str:
    kind = subject.get("kind", "")
    name = subject.get("name", "")
    if kind == "ServiceAccount":
        return f'ServiceAccount "{name}/{subject.get("namespace") or binding_ns}"'
    return f'{kind} "{name}"'


def applies_to(subject: Mapping[str, Any], identity: Identity, binding_ns: str) -> bool:
    """Whether a binding subject names this identity."""
    kind = subject.get("kind")
    name = subject.get("name", "")
    if kind == "User":
        return bool(identity.user == name)
    if kind == "Group":
        return name in identity.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_ns
        return bool(identity.user == f"system:serviceaccount:{namespace}:{name}")
    return False


def _role_rules(
    store: Objects, ref: Mapping[str, Any], namespace: str
) -> tuple[list[JsonDict], str]:
    kind, name = ref.get("kind", ""), ref.get("name", "")
    if kind == "ClusterRole":
        role = store.get(CLUSTER_ROLES, "", name)
    elif kind == "Role":
        role = store.get(ROLES, namespace, name)
    else:
        role = None
    rules = [r for r in (role or {}).get("rules") or [] if isinstance(r, dict)]
    where = f'{kind} "{name}"'
    return rules, where


def grants(store: Objects, identity: Identity, namespace: str) -> list[Grant]:
    """Every rule that applies to ``identity`` in ``namespace`` ("" for cluster-wide only)."""
    out: list[Grant] = []
    for binding in store.list(CLUSTER_ROLE_BINDINGS):
        for subject in binding.get("subjects") or []:
            if applies_to(subject, identity, ""):
                rules, role = _role_rules(store, binding.get("roleRef") or {}, "")
                name = binding["metadata"]["name"]
                out.extend(
                    Grant(r, f'ClusterRoleBinding "{name}"', role, _subject_text(subject, ""))
                    for r in rules
                )
                break
    if namespace:
        for binding in store.list(ROLE_BINDINGS, namespace):
            for subject in binding.get("subjects") or []:
                if applies_to(subject, identity, namespace):
                    rules, role = _role_rules(store, binding.get("roleRef") or {}, namespace)
                    name = binding["metadata"]["name"]
                    out.extend(
                        Grant(
                            {k: v for k, v in r.items() if k != "nonResourceURLs"},
                            f'RoleBinding "{name}/{namespace}"',
                            role,
                            _subject_text(subject, namespace),
                        )
                        for r in rules
                        if r.get("resources")
                    )
                    break
    return out


def _resource_matches(rule_resources: Iterable[str], attrs: Attributes) -> bool:
    for res in rule_resources:
        if res in ("*", attrs.combined):
            return True
        if attrs.subresource and res == f"*/{attrs.subresource}":
            return True
    return False


def rule_allows(rule: Mapping[str, Any], attrs: Attributes) -> bool:
    """Whether one PolicyRule allows the request (the RBAC authorizer's ``RuleAllows``)."""
    verbs = rule.get("verbs") or []
    if "*" not in verbs and attrs.verb not in verbs:
        return False
    if not attrs.is_resource:
        for url in rule.get("nonResourceURLs") or []:
            if url in ("*", attrs.path):
                return True
            if url.endswith("*") and attrs.path.startswith(url[:-1]):
                return True
        return False
    groups = rule.get("apiGroups") or []
    if "*" not in groups and attrs.group not in groups:
        return False
    if not _resource_matches(rule.get("resources") or [], attrs):
        return False
    names = rule.get("resourceNames") or []
    return not names or attrs.name in names


def authorize(store: Objects, identity: Identity, attrs: Attributes) -> Decision:
    """Allow or deny like the RBAC authorizer (the admin and ``system:masters`` always pass)."""
    if identity.admin or MASTERS in identity.groups:
        return Decision(True, "the cluster administrator may do anything")
    for grant in grants(store, identity, attrs.namespace):
        if rule_allows(grant.rule, attrs):
            return Decision(
                True,
                f"RBAC: allowed by {grant.binding} of {grant.role} to {grant.subject}",
            )
    return Decision(False)


def forbidden(identity: Identity, attrs: Attributes, *, kind_plural: str = "") -> ApiError:
    """The 403 Status the apiserver sends for a denied request."""
    user = identity.user
    if not attrs.is_resource:
        return errors.forbidden(f'forbidden: User "{user}" cannot {attrs.verb} path "{attrs.path}"')
    where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    reason = (
        f'User "{user}" cannot {attrs.verb} resource "{attrs.combined}" in API group '
        f'"{attrs.group}" {where}'
    )
    what = errors.qualified(kind_plural or attrs.resource, attrs.group)
    message = (
        f'{what} "{attrs.name}" is forbidden: {reason}'
        if attrs.name
        else (f"{what} is forbidden: {reason}")
    )
    return errors.forbidden(
        message, plural=kind_plural or attrs.resource, group=attrs.group, name=attrs.name
    )


# --- rules review and escalation ------------------------------------------------------------


def rules_review(store: Objects, identity: Identity, namespace: str) -> JsonDict:
    """The status of a SelfSubjectRulesReview: every rule that applies in ``namespace``."""
    if identity.admin or MASTERS in identity.groups:
        resource = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]
        return {
            "resourceRules": resource,
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": False,
        }
    resource_rules: list[JsonDict] = []
    non_resource: list[JsonDict] = []
    for grant in grants(store, identity, namespace):
        rule = grant.rule
        if rule.get("nonResourceURLs"):
            non_resource.append(
                {"verbs": list(rule.get("verbs") or []), "nonResourceURLs": rule["nonResourceURLs"]}
            )
        if rule.get("resources"):
            entry: JsonDict = {
                "verbs": list(rule.get("verbs") or []),
                "apiGroups": list(rule.get("apiGroups") or []),
                "resources": list(rule.get("resources") or []),
            }
            if rule.get("resourceNames"):
                entry["resourceNames"] = list(rule["resourceNames"])
            resource_rules.append(entry)
    return {"resourceRules": resource_rules, "nonResourceRules": non_resource, "incomplete": False}


def _atoms(rule: Mapping[str, Any]) -> list[JsonDict]:
    verbs = list(rule.get("verbs") or [])
    if rule.get("nonResourceURLs"):
        return [
            {"verbs": [v], "nonResourceURLs": [u]}
            for u in rule.get("nonResourceURLs") or []
            for v in verbs
        ]
    names = list(rule.get("resourceNames") or []) or [""]
    return [
        {"apiGroups": [g], "resources": [r], "verbs": [v], "resourceNames": [n] if n else []}
        for g in rule.get("apiGroups") or []
        for r in rule.get("resources") or []
        for v in verbs
        for n in names
    ]


def _owner_has_resource(owner: Iterable[str], resource: str) -> bool:
    for own in owner:
        if own in ("*", resource):
            return True
        base, _, sub = resource.partition("/")
        if own == f"{base}/*" and sub:
            return True
        if sub and own == f"*/{sub}":
            return True
    return False


def _covers_atom(owner: Mapping[str, Any], atom: Mapping[str, Any]) -> bool:
    verbs = owner.get("verbs") or []
    if "*" not in verbs and atom["verbs"][0] not in verbs:
        return False
    if "nonResourceURLs" in atom:
        url = atom["nonResourceURLs"][0]
        return any(
            own in ("*", url) or (own.endswith("*") and url.startswith(own[:-1]))
            for own in owner.get("nonResourceURLs") or []
        )
    groups = owner.get("apiGroups") or []
    if "*" not in groups and atom["apiGroups"][0] not in groups:
        return False
    if not _owner_has_resource(owner.get("resources") or [], atom["resources"][0]):
        return False
    names = owner.get("resourceNames") or []
    return not names or (bool(atom["resourceNames"]) and atom["resourceNames"][0] in names)


def missing_rules(held: list[JsonDict], wanted: list[JsonDict]) -> list[JsonDict]:
    """The atomic rules of ``wanted`` that no rule in ``held`` covers (RBAC's ``Covers``)."""
    return [
        atom
        for rule in wanted
        for atom in _atoms(rule)
        if not any(_covers_atom(own, atom) for own in held)
    ]


def _compact(rule: Mapping[str, Any]) -> str:
    parts = []
    for key, label in (
        ("apiGroups", "APIGroups"),
        ("resources", "Resources"),
        ("resourceNames", "ResourceNames"),
        ("nonResourceURLs", "NonResourceURLs"),
        ("verbs", "Verbs"),
    ):
        values = rule.get(key)
        if values:
            parts.append(f"{label}:[{' '.join(json.dumps(v) for v in values)}]")
    return "{" + ", ".join(parts) + "}"


def check_escalation(
    store: Objects, identity: Identity, kind_key: TypeKey, obj: Mapping[str, Any]
) -> None:
    """Refuse a Role/ClusterRole/binding write that grants more than the writer holds."""
    if identity.admin or MASTERS in identity.groups:
        return
    meta = obj.get("metadata") or {}
    namespace = str(meta.get("namespace") or "")
    name = str(meta.get("name") or "")
    plural = kind_key[1]
    if kind_key in (ROLES, CLUSTER_ROLES):
        escalate = Attributes("escalate", plural, GROUP, namespace=namespace, name=name)
        if authorize(store, identity, escalate).allowed:
            return
        wanted = [r for r in obj.get("rules") or [] if isinstance(r, dict)]
    else:
        ref = obj.get("roleRef") or {}
        ref_plural = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
        bind = Attributes(
            "bind", ref_plural, GROUP, namespace=namespace, name=str(ref.get("name", ""))
        )
        if authorize(store, identity, bind).allowed:
            return
        wanted, _ = _role_rules(store, ref, namespace)
    held = [g.rule for g in grants(store, identity, namespace)]
    missing = missing_rules(held, wanted)
    if not missing:
        return
    groups = "[" + " ".join(json.dumps(g) for g in identity.groups) + "]"
    listing = "\n".join(_compact(m) for m in missing)
    raise errors.forbidden(
        f'{plural}.{GROUP} "{name}" is forbidden: user "{identity.user}" (groups={groups}) is '
        f"attempting to grant RBAC permissions not currently held:\n{listing}",
        plural=plural,
        group=GROUP,
        name=name,
    )


# --- the bootstrap policy of a fresh cluster ------------------------------------------------


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> JsonDict:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


_VIEW_CORE = [
    "configmaps",
    "endpoints",
    "persistentvolumeclaims",
    "persistentvolumeclaims/status",
    "pods",
    "pods/log",
    "pods/status",
    "replicationcontrollers",
    "replicationcontrollers/scale",
    "replicationcontrollers/status",
    "resourcequotas",
    "resourcequotas/status",
    "services",
    "services/status",
    "serviceaccounts",
    "events",
    "limitranges",
    "namespaces",
    "namespaces/status",
    "bindings",
]
_VIEW_APPS = [
    "controllerrevisions",
    "daemonsets",
    "daemonsets/status",
    "deployments",
    "deployments/scale",
    "deployments/status",
    "replicasets",
    "replicasets/scale",
    "replicasets/status",
    "statefulsets",
    "statefulsets/scale",
    "statefulsets/status",
]
_EDIT_CORE = [
    "configmaps",
    "endpoints",
    "persistentvolumeclaims",
    "pods",
    "pods/attach",
    "pods/exec",
    "pods/portforward",
    "pods/proxy",
    "replicationcontrollers",
    "replicationcontrollers/scale",
    "secrets",
    "serviceaccounts",
    "services",
    "services/proxy",
]
_EDIT_APPS = [
    "daemonsets",
    "deployments",
    "deployments/rollback",
    "deployments/scale",
    "replicasets",
    "replicasets/scale",
    "statefulsets",
    "statefulsets/scale",
]


def _view_rules() -> list[JsonDict]:
    return [
        _rule([""], _VIEW_CORE, READ),
        _rule(["apps"], _VIEW_APPS, READ),
        _rule(["events.k8s.io"], ["events"], READ),
        _rule(["batch"], ["cronjobs", "cronjobs/status", "jobs", "jobs/status"], READ),
        _rule(["networking.k8s.io"], ["ingresses", "ingresses/status", "networkpolicies"], READ),
        _rule(["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"], READ),
    ]


def _edit_rules() -> list[JsonDict]:
    return [
        _rule(
            [""], ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets"], READ
        ),
        _rule([""], ["serviceaccounts/token"], ["create"]),
        _rule([""], ["serviceaccounts"], ["impersonate"]),
        _rule([""], _EDIT_CORE, WRITE),
        _rule(["apps"], _EDIT_APPS, WRITE),
        _rule(["batch"], ["cronjobs", "jobs"], WRITE),
        _rule(["networking.k8s.io"], ["ingresses", "networkpolicies"], WRITE),
        _rule(["policy"], ["poddisruptionbudgets"], WRITE),
        *_view_rules(),
    ]


def _admin_rules() -> list[JsonDict]:
    return [
        _rule(["authorization.k8s.io"], ["localsubjectaccessreviews"], ["create"]),
        _rule([GROUP], ["rolebindings", "roles"], READ + WRITE),
        *_edit_rules(),
    ]


def _cluster_role(name: str, rules: list[JsonDict], labels: Mapping[str, str]) -> JsonDict:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults", **labels},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        },
        "rules": rules,
    }


def _cluster_binding(name: str, role: str, groups: list[str]) -> JsonDict:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        },
        "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": GROUP, "kind": "Group", "name": g} for g in groups],
    }


def bootstrap_policy() -> list[tuple[TypeKey, JsonDict]]:
    """The default ClusterRoles and bindings of a kind cluster (a faithful subset)."""
    facing = {"kubernetes.io/bootstrapping": "rbac-defaults"}
    reviews = _rule(
        ["authorization.k8s.io"],
        ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
        ["create"],
    )
    whoami = _rule(["authentication.k8s.io"], ["selfsubjectreviews"], ["create"])
    discovery_urls = [
        "/api",
        "/api/*",
        "/apis",
        "/apis/*",
        "/healthz",
        "/livez",
        "/openapi",
        "/openapi/*",
        "/readyz",
        "/version",
        "/version/",
    ]
    public_urls = ["/healthz", "/livez", "/readyz", "/version", "/version/"]
    roles = [
        _cluster_role(
            "cluster-admin",
            [_rule(["*"], ["*"], ["*"]), {"nonResourceURLs": ["*"], "verbs": ["*"]}],
            {},
        ),
        _cluster_role("admin", _admin_rules(), {"kubernetes.io/bootstrapping": "rbac-defaults"}),
        _cluster_role(
            "edit", _edit_rules(), {"rbac.authorization.k8s.io/aggregate-to-admin": "true"}
        ),
        _cluster_role(
            "view", _view_rules(), {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}
        ),
        _cluster_role("system:basic-user", [reviews, whoami], facing),
        _cluster_role(
            "system:discovery", [{"nonResourceURLs": discovery_urls, "verbs": ["get"]}], facing
        ),
        _cluster_role(
            "system:public-info-viewer",
            [{"nonResourceURLs": public_urls, "verbs": ["get"]}],
            facing,
        ),
    ]
    bindings = [
        _cluster_binding("cluster-admin", "cluster-admin", [MASTERS]),
        _cluster_binding("kubeadm:cluster-admins", "cluster-admin", ["kubeadm:cluster-admins"]),
        _cluster_binding("system:basic-user", "system:basic-user", [AUTHENTICATED]),
        _cluster_binding("system:discovery", "system:discovery", [AUTHENTICATED]),
        _cluster_binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            [AUTHENTICATED, UNAUTHENTICATED],
        ),
    ]
    return [(CLUSTER_ROLES, r) for r in roles] + [(CLUSTER_ROLE_BINDINGS, b) for b in bindings]


__all__ = [
    "CLUSTER_ROLES",
    "CLUSTER_ROLE_BINDINGS",
    "ROLES",
    "ROLE_BINDINGS",
    "Attributes",
    "Decision",
    "Grant",
    "applies_to",
    "authorize",
    "bootstrap_policy",
    "check_escalation",
    "forbidden",
    "grants",
    "missing_rules",
    "rule_allows",
    "rules_review",
]
