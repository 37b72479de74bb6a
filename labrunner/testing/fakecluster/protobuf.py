"""Decode the protobuf request bodies that kubectl 1.32+ sends for ``kubectl create ...``.

``kubectl create namespace|configmap|secret|serviceaccount|deployment|service|role|rolebinding``,
``kubectl create token`` and ``kubectl auth can-i|whoami`` POST
``application/vnd.kubernetes.protobuf`` and does not retry with JSON after a 415, so the fake
must read that format. The envelope is the magic ``k8s\\x00`` followed by a ``runtime.Unknown``
(``1: TypeMeta{1 apiVersion, 2 kind}, 2: raw, 3: contentEncoding, 4: contentType``); ``raw`` is
the object in the wire format of the Kubernetes ``generated.proto`` files. Only the messages
those commands produce are described below; unknown field numbers are skipped.

gogo-protobuf writes every non-pointer field, so empty strings, zero numbers and false booleans
are dropped unless a field is marked as a pointer (``keep``), which keeps the decoded object as
close as possible to the JSON kubectl would have sent.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

JsonDict = dict[str, Any]
MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    """A body that is not a decodable Kubernetes protobuf message."""


@dataclass(frozen=True)
class F:
    """One field: JSON name, kind (string/int/bool/bytes/map/bytesmap/intstr/msg), flags."""

    name: str
    kind: str
    repeated: bool = False
    msg: str = ""
    keep: bool = False


Schema = dict[int, F]

SCHEMAS: dict[str, Schema] = {
    "TypeMeta": {1: F("apiVersion", "string"), 2: F("kind", "string")},
    "Unknown": {1: F("typeMeta", "msg", msg="TypeMeta"), 2: F("raw", "bytes")},
    "ObjectMeta": {
        1: F("name", "string"),
        2: F("generateName", "string"),
        3: F("namespace", "string"),
        5: F("uid", "string"),
        6: F("resourceVersion", "string"),
        11: F("labels", "map"),
        12: F("annotations", "map"),
        13: F("ownerReferences", "msg", repeated=True, msg="OwnerReference"),
        14: F("finalizers", "string", repeated=True),
    },
    "OwnerReference": {
        1: F("kind", "string"),
        3: F("name", "string"),
        4: F("uid", "string"),
        5: F("apiVersion", "string"),
        6: F("controller", "bool", keep=True),
        7: F("blockOwnerDeletion", "bool", keep=True),
    },
    "Namespace": {
        1: F("metadata", "msg", msg="ObjectMeta"),
        2: F("spec", "msg", msg="NamespaceSpec"),
    },
    "NamespaceSpec": {1: F("finalizers", "string", repeated=True)},
    "ConfigMap": {
        1: F("metadata", "msg", msg="ObjectMeta"),
        2: F("data", "map"),
        3: F("binaryData", "bytesmap"),
        4: F("immutable", "bool", keep=True),
    },
    "Secret": {
        1: F("metadata", "msg", msg="ObjectMeta"),
        2: F("data", "bytesmap"),
        3: F("type", "string"),
        4: F("stringData", "map"),
        5: F("immutable", "bool", keep=True),
    },
    "ServiceAccount": {
        1: F("metadata", "msg", msg="ObjectMeta"),
        2: F("secrets", "msg", repeated=True, msg="ObjectReference"),
        3: F("imagePullSecrets", "msg", repeated=True, msg="LocalObjectReference"),
        4: F("automountServiceAccountToken", "bool", keep=True),
    },
    "ObjectReference": {
        1: F("kind", "string"),
        2: F("namespace", "string"),
        3: F("name", "string"),
        4: F("uid", "string"),
        5: F("apiVersion", "string"),
    },
    "LocalObjectReference": {1: F("name", "string")},
    "Service": {
        1: F("metadata", "msg", msg="ObjectMeta"),
        2: F("spec", "msg", msg="ServiceSpec"),
    },
    "ServiceSpec": {
        1: F("ports", "msg", repeated=True, msg="ServicePort"),
        2: F("selector", "map"),
        3: F("clusterIP", "string"),
        4: F("type", "string"),
        5: F("externalIPs", "string", repeated=True),
        7: F("sessionAffinity", "string"),
        8: F("loadBalancerIP", "string"),
        11: F("externalName", "string"),
    },
    "ServicePort": {
        1: F("name", "string"),
        2: F("protocol", "string"),
        3: F("port", "int"),
        4: F("targetPort", "intstr"),
        5: F("nodePort", "int"),
        6: F("appProtocol", "string"),
    },
    "IntOrString": {
        1: F("type", "int", keep=True),
        2: F("intVal", "int"),
        3: F("strVal", "string"),
    },
    "Deployment": {
        1: F("metadata", "msg", msg="ObjectMeta"),
        2: F("spec", "msg", msg="DeploymentSpec"),
    },
    "DeploymentSpec": {
        1: F("replicas", "int", keep=True),
        2: F("selector", "msg", msg="LabelSelector"),
        3: F("template", "msg", msg="PodTemplateSpec"),
        4: F("strategy", "msg", msg="DeploymentStrategy"),
        5: F("minReadySeconds", "int"),
        6: F("revisionHistoryLimit", "int", keep=True),
        7: F("paused", "bool"),
        9: F("progressDeadlineSeconds", "int", keep=True),
    },
    "DeploymentStrategy": {1: F("type", "string")},
    "LabelSelector": {
        1: F("matchLabels", "map"),
        2: F("matchExpressions", "msg", repeated=True, msg="LabelSelectorRequirement"),
    },
    "LabelSelectorRequirement": {
        1: F("key", "string"),
        2: F("operator", "string"),
        3: F("values", "string", repeated=True),
    },
    "PodTemplateSpec": {
        1: F("metadata", "msg", msg="ObjectMeta"),
        2: F("spec", "msg", msg="PodSpec"),
    },
    "PodSpec": {
        2: F("containers", "msg", repeated=True, msg="Container"),
        3: F("restartPolicy", "string"),
        8: F("serviceAccountName", "string"),
        20: F("initContainers", "msg", repeated=True, msg="Container"),
    },
    "Container": {
        1: F("name", "string"),
        2: F("image", "string"),
        3: F("command", "string", repeated=True),
        4: F("args", "string", repeated=True),
        5: F("workingDir", "string"),
        6: F("ports", "msg", repeated=True, msg="ContainerPort"),
        7: F("env", "msg", repeated=True, msg="EnvVar"),
        14: F("imagePullPolicy", "string"),
        24: F("restartPolicy", "string"),
    },
    "ContainerPort": {
        1: F("name", "string"),
        2: F("hostPort", "int"),
        3: F("containerPort", "int"),
        4: F("protocol", "string"),
        5: F("hostIP", "string"),
    },
    "EnvVar": {1: F("name", "string"), 2: F("value", "string")},
    "SelfSubjectAccessReview": {
        1: F("metadata", "msg", msg="ObjectMeta"),
        2: F("spec", "msg", msg="SelfSubjectAccessReviewSpec"),
    },
    "SelfSubjectAccessReviewSpec": {
        1: F("resourceAttributes", "msg", msg="ResourceAttributes"),
        2: F("nonResourceAttributes", "msg", msg="NonResourceAttributes"),
    },
    "ResourceAttributes": {
        1: F("namespace", "string"),
        2: F("verb", "string"),
        3: F("group", "string"),
        4: F("version", "string"),
        5: F("resource", "string"),
        6: F("subresource", "string"),
        7: F("name", "string"),
    },
    "NonResourceAttributes": {1: F("path", "string"), 2: F("verb", "string")},
    "SelfSubjectRulesReview": {
        1: F("metadata", "msg", msg="ObjectMeta"),
        2: F("spec", "msg", msg="SelfSubjectRulesReviewSpec"),
    },
    "SelfSubjectRulesReviewSpec": {1: F("namespace", "string")},
    "SubjectAccessReview": {
        1: F("metadata", "msg", msg="ObjectMeta"),
        2: F("spec", "msg", msg="SubjectAccessReviewSpec"),
    },
    "LocalSubjectAccessReview": {
        1: F("metadata", "msg", msg="ObjectMeta"),
        2: F("spec", "msg", msg="SubjectAccessReviewSpec"),
    },
    "SubjectAccessReviewSpec": {
        1: F("resourceAttributes", "msg", msg="ResourceAttributes"),
        2: F("nonResourceAttributes", "msg", msg="NonResourceAttributes"),
        3: F("user", "string"),
        4: F("groups", "string", repeated=True),
        6: F("uid", "string"),
    },
    "SelfSubjectReview": {1: F("metadata", "msg", msg="ObjectMeta")},
    "TokenReview": {
        1: F("metadata", "msg", msg="ObjectMeta"),
        2: F("spec", "msg", msg="TokenReviewSpec"),
    },
    "TokenReviewSpec": {1: F("token", "string"), 2: F("audiences", "string", repeated=True)},
    "Role": {
        1: F("metadata", "msg", msg="ObjectMeta"),
        2: F("rules", "msg", repeated=True, msg="PolicyRule"),
    },
    "ClusterRole": {
        1: F("metadata", "msg", msg="ObjectMeta"),
        2: F("rules", "msg", repeated=True, msg="PolicyRule"),
        3: F("aggregationRule", "msg", msg="AggregationRule"),
    },
    "AggregationRule": {
        1: F("clusterRoleSelectors", "msg", repeated=True, msg="LabelSelector"),
    },
    "PolicyRule": {
        1: F("verbs", "string", repeated=True),
        2: F("apiGroups", "string", repeated=True),
        3: F("resources", "string", repeated=True),
        4: F("resourceNames", "string", repeated=True),
        5: F("nonResourceURLs", "string", repeated=True),
    },
    "RoleBinding": {
        1: F("metadata", "msg", msg="ObjectMeta"),
        2: F("subjects", "msg", repeated=True, msg="Subject"),
        3: F("roleRef", "msg", msg="RoleRef"),
    },
    "ClusterRoleBinding": {
        1: F("metadata", "msg", msg="ObjectMeta"),
        2: F("subjects", "msg", repeated=True, msg="Subject"),
        3: F("roleRef", "msg", msg="RoleRef"),
    },
    "Subject": {
        1: F("kind", "string"),
        2: F("apiGroup", "string"),
        3: F("name", "string"),
        4: F("namespace", "string"),
    },
    "RoleRef": {1: F("apiGroup", "string"), 2: F("kind", "string"), 3: F("name", "string")},
    "TokenRequest": {
        1: F("metadata", "msg", msg="ObjectMeta"),
        2: F("spec", "msg", msg="TokenRequestSpec"),
    },
    "TokenRequestSpec": {
        1: F("audiences", "string", repeated=True),
        3: F("boundObjectRef", "msg", msg="BoundObjectReference"),
        4: F("expirationSeconds", "int", keep=True),
    },
    "BoundObjectReference": {
        1: F("kind", "string"),
        2: F("apiVersion", "string"),
        3: F("name", "string"),
        4: F("uid", "string"),
    },
}

_KIND_SCHEMAS = {
    "Namespace",
    "ConfigMap",
    "Secret",
    "ServiceAccount",
    "Service",
    "Deployment",
    "SelfSubjectAccessReview",
    "SelfSubjectRulesReview",
    "SubjectAccessReview",
    "LocalSubjectAccessReview",
    "SelfSubjectReview",
    "TokenReview",
    "TokenRequest",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """Split a message into ``(field number, varint value or raw bytes)`` pairs."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("truncated length-delimited field")
            out.append((number, data[pos : pos + length]))
            pos += length
        elif wire == 1:
            out.append((number, data[pos : pos + 8]))
            pos += 8
        elif wire == 5:
            out.append((number, data[pos : pos + 4]))
            pos += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _map_entry(raw: bytes) -> tuple[str, bytes]:
    key, value = "", b""
    for number, v in fields(raw):
        if number == 1 and isinstance(v, bytes):
            key = v.decode()
        elif number == 2 and isinstance(v, bytes):
            value = v
    return key, value


def decode_message(data: bytes, schema_name: str) -> JsonDict:
    """Decode one message into its JSON form using the named schema."""
    schema = SCHEMAS[schema_name]
    out: JsonDict = {}
    for number, raw in fields(data):
        f = schema.get(number)
        if f is None:
            continue
        value: Any
        if f.kind in ("map", "bytesmap"):
            if not isinstance(raw, bytes):
                raise ProtobufError(f"{f.name}: expected a map entry")
            key, val = _map_entry(raw)
            text = val.decode() if f.kind == "map" else base64.b64encode(val).decode()
            out.setdefault(f.name, {})[key] = text
            continue
        if f.kind == "msg":
            if not isinstance(raw, bytes):
                raise ProtobufError(f"{f.name}: expected a message")
            value = decode_message(raw, f.msg)
            if f.msg == "IntOrString":
                value = (
                    value.get("strVal", "") if value.get("type") == 1 else value.get("intVal", 0)
                )
        elif f.kind == "intstr":
            if not isinstance(raw, bytes):
                raise ProtobufError(f"{f.name}: expected an IntOrString")
            parts = decode_message(raw, "IntOrString")
            value = parts.get("strVal", "") if parts.get("type") == 1 else parts.get("intVal", 0)
            if value in ("", 0):
                continue
        elif f.kind == "string":
            if not isinstance(raw, bytes):
                raise ProtobufError(f"{f.name}: expected a string")
            value = raw.decode()
            if value == "" and not f.keep and not f.repeated:
                continue
        elif f.kind == "bytes":
            value = raw
        elif f.kind == "int":
            if not isinstance(raw, int):
                raise ProtobufError(f"{f.name}: expected a varint")
            value = _signed(raw)
            if value == 0 and not f.keep:
                continue
        elif f.kind == "bool":
            value = bool(raw)
            if not value and not f.keep:
                continue
        else:
            raise ProtobufError(f"unknown field kind {f.kind}")
        if f.repeated:
            out.setdefault(f.name, []).append(value)
        else:
            out[f.name] = value
    for key in [k for k, v in out.items() if v == {} and k not in ("metadata",)]:
        del out[key]
    return out


def decode_object(body: bytes) -> JsonDict:
    """Decode a ``k8s\\x00``-framed ``runtime.Unknown`` into a JSON object."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic prefix")
    envelope = decode_message(body[len(MAGIC) :], "Unknown")
    type_meta = envelope.get("typeMeta") or {}
    kind = type_meta.get("kind", "")
    api_version = type_meta.get("apiVersion", "")
    if kind not in _KIND_SCHEMAS:
        raise ProtobufError(f"cannot decode protobuf for kind {kind!r}; send JSON instead")
    obj = decode_message(envelope.get("raw", b""), kind)
    obj.setdefault("metadata", {})
    return {"apiVersion": api_version, "kind": kind, **obj}
