"""Structural-schema validation, defaulting and pruning of custom resources.

A lab that writes ``mode: STRIKT`` in a PeerAuthentication must fail the way a real cluster
fails, with the apiserver's wording, or the fake would teach learners that a broken manifest
works. This module walks a CRD version's ``openAPIV3Schema`` the way apiextensions-apiserver
does: it applies ``default`` values, prunes unknown fields (reporting them for
``fieldValidation=Strict``/``Warn``), then checks types (including ``x-kubernetes-int-or-string``),
enums, required fields, bounds, patterns, ``oneOf``/``anyOf``/``allOf``/``not`` and the few
``x-kubernetes-validations`` rules simple enough to evaluate without CEL (others are ignored).
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .errors import Cause

JsonDict = dict[str, Any]

_PRUNE = object()
_ROOT_ALWAYS = frozenset({"apiVersion", "kind", "metadata"})
OBJECT_META_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)


def type_name(value: Any) -> str:
    """The JSON-schema type of a decoded JSON value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def shown(value: Any) -> str:
    """How the apiserver shows a value in ``Invalid value: ...`` (objects by their type)."""
    if isinstance(value, dict | list) or value is None:
        return json.dumps(type_name(value))
    return json.dumps(value)


def _type_ok(value: Any, wanted: str) -> bool:
    have = type_name(value)
    if wanted == "number":
        return have in ("integer", "number")
    if wanted == "integer" and have == "number":
        return float(value).is_integer()
    return have == wanted


@dataclass
class ValidationResult:
    """What validation found; ``obj`` is the defaulted and pruned object."""

    obj: Any
    unknown_fields: list[str] = field(default_factory=list)
    causes: list[Cause] = field(default_factory=list)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _Walker:
    def __init__(self, *, value_only: bool = False) -> None:
        self.value_only = value_only
        self.unknown: list[str] = []
        self.causes: list[Cause] = []

    def invalid(self, path: str, value: Any, detail: str) -> None:
        self.causes.append(
            Cause(
                "FieldValueInvalid", f"Invalid value: {shown(value)}: {path} in body {detail}", path
            )
        )

    def walk(self, value: Any, schema: JsonDict, path: str, *, root: bool = False) -> Any:
        if value is None:
            if schema.get("nullable"):
                return None
            return _PRUNE
        if schema.get("x-kubernetes-int-or-string"):
            if type_name(value) not in ("integer", "string"):
                self.causes.append(
                    Cause(
                        "FieldValueTypeInvalid",
                        f"Invalid value: {shown(value)}: {path} in body must be of type "
                        f"integer-or-string: {shown(type_name(value))}",
                        path,
                    )
                )
                return value
        elif (wanted := schema.get("type")) and not _type_ok(value, wanted):
            self.causes.append(
                Cause(
                    "FieldValueTypeInvalid",
                    f"Invalid value: {shown(type_name(value))}: {path} in body must be of type "
                    f"{wanted}: {shown(type_name(value))}",
                    path,
                )
            )
            return value
        if isinstance(value, dict):
            value = self._object(value, schema, path, root=root)
        elif isinstance(value, list):
            value = self._array(value, schema, path)
        else:
            self._scalar(value, schema, path)
        self._enum(value, schema, path)
        self._combinators(value, schema, path)
        self._rules(value, schema, path)
        return value

    def _object(self, value: JsonDict, schema: JsonDict, path: str, *, root: bool) -> JsonDict:
        props: JsonDict = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        embedded = bool(schema.get("x-kubernetes-embedded-resource"))
        out: JsonDict = {}
        for key, child in value.items():
            child_path = _join(path, key)
            if (root or embedded) and key in _ROOT_ALWAYS and key not in props:
                out[key] = child
                continue
            sub: JsonDict | None = props.get(key)
            if sub is None and isinstance(additional, dict):
                sub = additional
            if sub is None:
                if preserve or additional is True or self.value_only:
                    out[key] = child
                else:
                    self.unknown.append(child_path)
                continue
            if root and key == "metadata":
                out[key] = child
                continue
            walked = self.walk(child, sub, child_path)
            if walked is not _PRUNE:
                out[key] = walked
        if not self.value_only:
            for key, sub in props.items():
                if key not in out and isinstance(sub, dict) and "default" in sub:
                    out[key] = copy.deepcopy(sub["default"])
        for key in schema.get("required") or []:
            if key not in out:
                self.causes.append(Cause("FieldValueRequired", "Required value", _join(path, key)))
        count = len(out)
        if "maxProperties" in schema and count > schema["maxProperties"]:
            self.causes.append(
                Cause(
                    "FieldValueTooMany",
                    f"Too many: {count}: must have at most {schema['maxProperties']} items",
                    path,
                )
            )
        if "minProperties" in schema and count < schema["minProperties"]:
            self.invalid(path, count, f"should have at least {schema['minProperties']} properties")
        return out

    def _array(self, value: list[Any], schema: JsonDict, path: str) -> list[Any]:
        items = schema.get("items")
        out: list[Any] = []
        for n, item in enumerate(value):
            if isinstance(items, dict):
                walked = self.walk(item, items, f"{path}[{n}]")
                out.append(None if walked is _PRUNE else walked)
            else:
                out.append(item)
        if "maxItems" in schema and len(out) > schema["maxItems"]:
            self.causes.append(
                Cause(
                    "FieldValueTooMany",
                    f"Too many: {len(out)}: must have at most {schema['maxItems']} items",
                    path,
                )
            )
        if "minItems" in schema and len(out) < schema["minItems"]:
            self.invalid(path, len(out), f"should have at least {schema['minItems']} items")
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "set":
            seen: list[Any] = []
            for n, item in enumerate(out):
                if item in seen:
                    self.causes.append(
                        Cause(
                            "FieldValueDuplicate", f"Duplicate value: {shown(item)}", f"{path}[{n}]"
                        )
                    )
                seen.append(item)
        elif list_type == "map":
            keys = schema.get("x-kubernetes-list-map-keys") or []
            seen_keys: list[tuple[Any, ...]] = []
            for n, item in enumerate(out):
                if isinstance(item, dict):
                    ident = tuple(item.get(k) for k in keys)
                    if ident in seen_keys:
                        dup = json.dumps(dict(zip(keys, ident, strict=True)), separators=(",", ":"))
                        self.causes.append(
                            Cause("FieldValueDuplicate", f"Duplicate value: {dup}", f"{path}[{n}]")
                        )
                    seen_keys.append(ident)
        return out

    def _scalar(self, value: Any, schema: JsonDict, path: str) -> None:
        if isinstance(value, str):
            if "maxLength" in schema and len(value) > schema["maxLength"]:
                self.causes.append(
                    Cause(
                        "FieldValueTooLong",
                        f"Too long: may not be more than {schema['maxLength']} bytes",
                        path,
                    )
                )
            if "minLength" in schema and len(value) < schema["minLength"]:
                self.invalid(path, value, f"should be at least {schema['minLength']} chars long")
            pattern = schema.get("pattern")
            if pattern:
                try:
                    if not re.search(pattern, value):
                        self.invalid(path, value, f"should match '{pattern}'")
                except re.error:
                    pass
            fmt = schema.get("format")
            if fmt and not _format_ok(value, fmt):
                self.invalid(path, value, f"must be of type {fmt}: {shown(value)}")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if "minimum" in schema:
                low = schema["minimum"]
                if schema.get("exclusiveMinimum") and value <= low:
                    self.invalid(path, value, f"should be greater than {low}")
                elif value < low:
                    self.invalid(path, value, f"should be greater than or equal to {low}")
            if "maximum" in schema:
                high = schema["maximum"]
                if schema.get("exclusiveMaximum") and value >= high:
                    self.invalid(path, value, f"should be less than {high}")
                elif value > high:
                    self.invalid(path, value, f"should be less than or equal to {high}")
            step = schema.get("multipleOf")
            if step and (value / step) != int(value / step):
                self.invalid(path, value, f"should be a multiple of {step}")

    def _enum(self, value: Any, schema: JsonDict, path: str) -> None:
        enum = schema.get("enum")
        if enum is not None and value not in enum:
            supported = ", ".join(json.dumps(e) for e in enum)
            self.causes.append(
                Cause(
                    "FieldValueNotSupported",
                    f"Unsupported value: {json.dumps(value)}: supported values: {supported}",
                    path,
                )
            )

    def _matches(self, value: Any, schema: JsonDict, path: str) -> bool:
        probe = _Walker(value_only=True)
        probe.walk(value, schema, path)
        return not probe.causes

    def _combinators(self, value: Any, schema: JsonDict, path: str) -> None:
        for sub in schema.get("allOf") or []:
            probe = _Walker(value_only=True)
            probe.walk(value, sub, path)
            self.causes.extend(probe.causes)
        any_of = schema.get("anyOf")
        if any_of and not any(self._matches(value, s, path) for s in any_of):
            self.invalid(path, value, "must validate at least one schema (anyOf)")
        one_of = schema.get("oneOf")
        if one_of:
            valid = sum(1 for s in one_of if self._matches(value, s, path))
            if valid != 1:
                found = "Found none valid" if valid == 0 else f"Found {valid} valid alternatives"
                self.invalid(path, value, f"must validate one and only one schema (oneOf). {found}")
        not_schema = schema.get("not")
        if isinstance(not_schema, dict) and self._matches(value, not_schema, path):
            self.invalid(path, value, "must not validate the schema (not)")

    def _rules(self, value: Any, schema: JsonDict, path: str) -> None:
        for rule in schema.get("x-kubernetes-validations") or []:
            text = rule.get("rule", "")
            if evaluate_rule(text, value) is False:
                message = rule.get("message") or f"failed rule: {text}"
                self.causes.append(
                    Cause(
                        "FieldValueInvalid",
                        f"Invalid value: {json.dumps(type_name(value))}: {message}",
                        path,
                    )
                )


def _format_ok(value: str, fmt: str) -> bool:
    if fmt == "date-time":
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return False
        return True
    if fmt == "byte":
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return False
        return True
    return True


_HAS = r"has\(self\.(\w+)\)"
_AT_MOST_ONE = re.compile(rf"^\s*\({_HAS} \? 1 : 0\)(\s*\+\s*\({_HAS} \? 1 : 0\))*\s*<=\s*1\s*$")
_XOR = re.compile(rf"^\s*{_HAS}\s*!=\s*{_HAS}\s*$")
_OR = re.compile(rf"^\s*{_HAS}\s*\|\|\s*{_HAS}\s*$")
_RANGE = re.compile(r"^\s*(\d+)\s*<\s*self\s*&&\s*self\s*<=\s*(\d+)\s*$")
_NOT_EQUAL = re.compile(r'^\s*self\s*!=\s*"([^"]*)"\s*$')
_NOT_CONTAINS = re.compile(r'^\s*!self\.contains\("([^"]*)"\)\s*$')
_IN_LIST = re.compile(r'^\s*self\s+in\s+\[((?:\s*"[^"]*"\s*,?)*)\]\s*$')
_EMPTY = re.compile(r"^\s*self\.size\(\)\s*==\s*0\s*$")


def evaluate_rule(rule: str, value: Any) -> bool | None:
    """Evaluate a trivial CEL rule; None when the rule is beyond this small evaluator."""
    if isinstance(value, dict):
        if _AT_MOST_ONE.match(rule):
            return sum(1 for f in re.findall(_HAS, rule) if f in value) <= 1
        if m := _XOR.match(rule):
            return (m.group(1) in value) != (m.group(2) in value)
        if m := _OR.match(rule):
            return m.group(1) in value or m.group(2) in value
    if isinstance(value, int) and not isinstance(value, bool) and (m := _RANGE.match(rule)):
        return int(m.group(1)) < value <= int(m.group(2))
    if isinstance(value, str):
        if m := _NOT_EQUAL.match(rule):
            return value != m.group(1)
        if m := _NOT_CONTAINS.match(rule):
            return m.group(1) not in value
        if m := _IN_LIST.match(rule):
            return value in re.findall(r'"([^"]*)"', m.group(1))
    if isinstance(value, str | list | dict) and _EMPTY.match(rule):
        return len(value) == 0
    return None


def validate(obj: JsonDict, schema: JsonDict) -> ValidationResult:
    """Default, prune and validate a custom resource against its version's schema."""
    walker = _Walker()
    result = walker.walk(obj, schema, "", root=True)
    pruned = obj if result is _PRUNE else result
    return ValidationResult(pruned, walker.unknown, walker.causes)


def unknown_metadata_fields(obj: JsonDict) -> list[str]:
    """``metadata.*`` keys that ObjectMeta does not have (strict decoding rejects them)."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return []
    return [f"metadata.{k}" for k in meta if k not in OBJECT_META_FIELDS]
