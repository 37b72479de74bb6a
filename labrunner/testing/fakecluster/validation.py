"""Lightweight validation of built-in kinds: names, labels, and the fields clients rely on.

The generated Python client (v37, pydantic) refuses to deserialise a Pod without
``spec.containers`` or a Deployment without ``spec.selector``, so the fake must never store such
objects. Rejecting them with the apiserver's 422 wording also keeps labs honest. This is not the
full apiserver validation, only what protects readers and catches common manifest mistakes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

from .errors import Cause
from .resources import ResourceType
from .selectors import SelectorError, labels_match, selector_from_object

JsonDict = dict[str, Any]

_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_LABEL_1123 = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_LABEL_1035 = r"[a-z]([-a-z0-9]*[a-z0-9])?"
_LABEL_VALUE = r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"
_QUALIFIED_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
MAX_ANNOTATION_BYTES = 256 * 1024

_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    f"for validation is '{_SUBDOMAIN}')"
)
_LABEL_1123_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used "
    f"for validation is '{_LABEL_1123}')"
)
_LABEL_1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
    f"regex used for validation is '{_LABEL_1035}')"
)
_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    f"'my_value',  or '12345', regex used for validation is '{_LABEL_VALUE}')"
)
_KEY_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    f"validation is '{_QUALIFIED_NAME}')"
)


def _q(value: Any) -> str:
    return json.dumps(value)


def _required(path: str) -> Cause:
    return Cause("FieldValueRequired", "Required value", path)


def _invalid(path: str, value: Any, detail: str) -> Cause:
    return Cause("FieldValueInvalid", f"Invalid value: {_q(value)}: {detail}", path)


def name_causes(rt: ResourceType, name: str) -> list[Cause]:
    """Problems with ``metadata.name`` for this kind."""
    if rt.key == ("", "services"):
        pattern, limit, msg = _LABEL_1035, 63, _LABEL_1035_MSG
    elif rt.key == ("", "namespaces"):
        pattern, limit, msg = _LABEL_1123, 63, _LABEL_1123_MSG
    else:
        pattern, limit, msg = _SUBDOMAIN, 253, _SUBDOMAIN_MSG
    out: list[Cause] = []
    if len(name) > limit:
        out.append(_invalid("metadata.name", name, f"must be no more than {limit} characters"))
    if not re.fullmatch(pattern, name):
        out.append(_invalid("metadata.name", name, msg))
    return out


def metadata_causes(meta: Mapping[str, Any]) -> list[Cause]:
    """Problems with labels and annotations."""
    out: list[Cause] = []
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        return [_invalid("metadata.labels", labels, "must be a map of strings")]
    for key, value in labels.items():
        _, _, short = str(key).rpartition("/")
        if not re.fullmatch(_QUALIFIED_NAME, short) or len(short) > 63:
            out.append(_invalid("metadata.labels", key, _KEY_MSG))
        if not isinstance(value, str):
            out.append(_invalid("metadata.labels", value, "label values must be strings"))
        elif len(value) > 63 or not re.fullmatch(_LABEL_VALUE, value):
            out.append(_invalid("metadata.labels", value, _VALUE_MSG))
    annotations = meta.get("annotations") or {}
    if not isinstance(annotations, dict):
        return [*out, _invalid("metadata.annotations", annotations, "must be a map of strings")]
    size = sum(len(str(k)) + len(str(v)) for k, v in annotations.items())
    if size > MAX_ANNOTATION_BYTES:
        out.append(
            Cause(
                "FieldValueTooLong",
                f"Too long: may not be more than {MAX_ANNOTATION_BYTES} bytes",
                "metadata.annotations",
            )
        )
    for key, value in annotations.items():
        if not isinstance(value, str):
            out.append(_invalid(f"metadata.annotations[{key}]", value, "must be a string"))
    return out


def _containers(spec: Mapping[str, Any], path: str) -> list[Cause]:
    out: list[Cause] = []
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        return [_required(f"{path}.containers")]
    seen: set[str] = set()
    for key in ("containers", "initContainers"):
        for n, c in enumerate(spec.get(key) or []):
            where = f"{path}.{key}[{n}]"
            if not isinstance(c, dict):
                out.append(_invalid(where, c, "must be an object"))
                continue
            if not c.get("name"):
                out.append(_required(f"{where}.name"))
            elif c["name"] in seen:
                out.append(
                    Cause(
                        "FieldValueDuplicate", f"Duplicate value: {_q(c['name'])}", f"{where}.name"
                    )
                )
            else:
                seen.add(c["name"])
            if not c.get("image"):
                out.append(_required(f"{where}.image"))
            for m, p in enumerate(c.get("ports") or []):
                port = p.get("containerPort") if isinstance(p, dict) else None
                if not isinstance(port, int) or not 0 < port < 65536:
                    out.append(
                        _invalid(
                            f"{where}.ports[{m}].containerPort",
                            port,
                            "must be between 1 and 65535, inclusive",
                        )
                    )
            for m, e in enumerate(c.get("env") or []):
                if not isinstance(e, dict) or not e.get("name"):
                    out.append(_required(f"{where}.env[{m}].name"))
    return out


def _workload(obj: Mapping[str, Any]) -> list[Cause]:
    spec = obj.get("spec") or {}
    out: list[Cause] = []
    selector = spec.get("selector")
    template = spec.get("template")
    if not isinstance(selector, dict) or not (
        selector.get("matchLabels") or selector.get("matchExpressions")
    ):
        out.append(_required("spec.selector"))
    if not isinstance(template, dict):
        out.append(_required("spec.template"))
        return out
    labels = (template.get("metadata") or {}).get("labels") or {}
    if isinstance(selector, dict) and not out:
        try:
            matches = labels_match(selector_from_object(selector), labels)
        except SelectorError as exc:
            return [_invalid("spec.selector", "selector", str(exc))]
        if not matches:
            rendered = (
                "map[string]string{" + ", ".join(f'"{k}":"{v}"' for k, v in labels.items()) + "}"
            )
            out.append(
                Cause(
                    "FieldValueInvalid",
                    f"Invalid value: {rendered}: `selector` does not match template `labels`",
                    "spec.template.metadata.labels",
                )
            )
    tspec = template.get("spec")
    if not isinstance(tspec, dict):
        out.append(_required("spec.template.spec.containers"))
    else:
        out.extend(_containers(tspec, "spec.template.spec"))
    replicas = spec.get("replicas")
    if replicas is not None and (not isinstance(replicas, int) or replicas < 0):
        out.append(_invalid("spec.replicas", replicas, "must be greater than or equal to 0"))
    return out


def _service(obj: Mapping[str, Any]) -> list[Cause]:
    spec = obj.get("spec") or {}
    kind = spec.get("type", "ClusterIP")
    if kind not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        return [
            Cause(
                "FieldValueNotSupported",
                f'Unsupported value: {_q(kind)}: supported values: "ClusterIP", '
                '"ExternalName", "LoadBalancer", "NodePort"',
                "spec.type",
            )
        ]
    ports = spec.get("ports") or []
    out: list[Cause] = []
    if not ports and kind != "ExternalName" and spec.get("clusterIP") != "None":
        out.append(_required("spec.ports"))
    names: set[str] = set()
    for n, p in enumerate(ports):
        port = p.get("port") if isinstance(p, dict) else None
        if not isinstance(port, int) or not 0 < port < 65536:
            out.append(
                _invalid(f"spec.ports[{n}].port", port, "must be between 1 and 65535, inclusive")
            )
        if len(ports) > 1 and isinstance(p, dict) and not p.get("name"):
            out.append(_required(f"spec.ports[{n}].name"))
        if isinstance(p, dict) and p.get("name"):
            if p["name"] in names:
                out.append(
                    Cause(
                        "FieldValueDuplicate",
                        f"Duplicate value: {_q(p['name'])}",
                        f"spec.ports[{n}].name",
                    )
                )
            names.add(p["name"])
    return out


def _secret(obj: Mapping[str, Any]) -> list[Cause]:
    out: list[Cause] = []
    for key, value in (obj.get("data") or {}).items():
        try:
            base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            out.append(
                _invalid(f"data[{key}]", "<secret contents redacted>", "illegal base64 data")
            )
    return out


def _webhooks(obj: Mapping[str, Any]) -> list[Cause]:
    out: list[Cause] = []
    for n, hook in enumerate(obj.get("webhooks") or []):
        for key in ("name", "clientConfig", "sideEffects", "admissionReviewVersions"):
            if not isinstance(hook, dict) or not hook.get(key):
                out.append(_required(f"webhooks[{n}].{key}"))
    return out


def _crd(obj: Mapping[str, Any]) -> list[Cause]:
    spec = obj.get("spec") or {}
    names = spec.get("names") or {}
    out: list[Cause] = []
    for path, value in (
        ("spec.group", spec.get("group")),
        ("spec.names.plural", names.get("plural")),
        ("spec.names.kind", names.get("kind")),
        ("spec.scope", spec.get("scope")),
    ):
        if not value:
            out.append(_required(path))
    versions = spec.get("versions") or []
    if not versions:
        out.append(_required("spec.versions"))
    elif sum(1 for v in versions if v.get("storage")) != 1:
        out.append(
            _invalid(
                "spec.versions", "array", "must have exactly one version marked as storage version"
            )
        )
    name = (obj.get("metadata") or {}).get("name")
    wanted = f"{names.get('plural')}.{spec.get('group')}"
    if not out and name != wanted:
        out.append(_invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    return out


def _event(obj: Mapping[str, Any]) -> list[Cause]:
    return [] if isinstance(obj.get("involvedObject"), dict) else [_required("involvedObject")]


def _policy_rules(obj: Mapping[str, Any], *, namespaced: bool) -> list[Cause]:
    out: list[Cause] = []
    for i, rule in enumerate(obj.get("rules") or []):
        path = f"rules[{i}]"
        if not isinstance(rule, dict):
            out.append(_invalid(path, rule, "must be an object"))
            continue
        if not rule.get("verbs"):
            out.append(
                Cause(
                    "FieldValueRequired",
                    "Required value: verbs must contain at least one value",
                    f"{path}.verbs",
                )
            )
        urls = rule.get("nonResourceURLs") or []
        if urls and namespaced:
            out.append(
                _invalid(
                    f"{path}.nonResourceURLs",
                    urls,
                    "namespaced rules cannot apply to non-resource URLs",
                )
            )
        if urls and (rule.get("apiGroups") or rule.get("resources")):
            out.append(
                _invalid(
                    f"{path}.nonResourceURLs",
                    urls,
                    "rules cannot apply to both regular resources and non-resource URLs",
                )
            )
        if not urls:
            if not rule.get("apiGroups"):
                out.append(
                    Cause(
                        "FieldValueRequired",
                        "Required value: resource rules must supply at least one api group",
                        f"{path}.apiGroups",
                    )
                )
            if not rule.get("resources"):
                out.append(
                    Cause(
                        "FieldValueRequired",
                        "Required value: resource rules must supply at least one resource",
                        f"{path}.resources",
                    )
                )
    return out


_SUBJECT_KINDS = ("User", "Group", "ServiceAccount")


def _binding(obj: Mapping[str, Any], *, namespaced: bool) -> list[Cause]:
    out: list[Cause] = []
    ref = obj.get("roleRef")
    if not isinstance(ref, dict) or not ref:
        return [_required("roleRef")]
    allowed = ("Role", "ClusterRole") if namespaced else ("ClusterRole",)
    if ref.get("apiGroup") != "rbac.authorization.k8s.io":
        out.append(
            Cause(
                "FieldValueNotSupported",
                f"Unsupported value: {_q(ref.get('apiGroup', ''))}: supported values: "
                '"rbac.authorization.k8s.io"',
                "roleRef.apiGroup",
            )
        )
    if ref.get("kind") not in allowed:
        out.append(
            Cause(
                "FieldValueNotSupported",
                f"Unsupported value: {_q(ref.get('kind', ''))}: supported values: "
                + ", ".join(_q(k) for k in allowed),
                "roleRef.kind",
            )
        )
    if not ref.get("name"):
        out.append(_required("roleRef.name"))
    for i, subject in enumerate(obj.get("subjects") or []):
        path = f"subjects[{i}]"
        if not isinstance(subject, dict):
            out.append(_invalid(path, subject, "must be an object"))
            continue
        if subject.get("kind") not in _SUBJECT_KINDS:
            out.append(
                Cause(
                    "FieldValueNotSupported",
                    f"Unsupported value: {_q(subject.get('kind', ''))}: supported values: "
                    '"ServiceAccount", "User", "Group"',
                    f"{path}.kind",
                )
            )
        if not subject.get("name"):
            out.append(_required(f"{path}.name"))
        if (
            subject.get("kind") == "ServiceAccount"
            and not namespaced
            and not subject.get("namespace")
        ):
            out.append(_required(f"{path}.namespace"))
    return out


def kind_causes(rt: ResourceType, obj: Mapping[str, Any]) -> list[Cause]:
    """Field problems for a built-in kind (nothing for kinds without rules)."""
    if rt.group == "rbac.authorization.k8s.io":
        if rt.plural in ("roles", "clusterroles"):
            return _policy_rules(obj, namespaced=rt.namespaced)
        return _binding(obj, namespaced=rt.namespaced)
    if rt.key == ("", "pods"):
        return _containers(obj.get("spec") or {}, "spec")
    if rt.key in (("apps", "deployments"), ("apps", "replicasets")):
        return _workload(obj)
    if rt.key == ("", "services"):
        return _service(obj)
    if rt.key == ("", "secrets"):
        return _secret(obj)
    if rt.key == ("", "events"):
        return _event(obj)
    if rt.group == "admissionregistration.k8s.io":
        return _webhooks(obj)
    if rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        return _crd(obj)
    return []


__all__ = ["JsonDict", "kind_causes", "metadata_causes", "name_causes"]
