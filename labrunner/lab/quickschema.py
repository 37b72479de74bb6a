"""A quick yes to "is this valid?" for the JSON Schema subset our schemas use.

The loader checks every lab file, and every check's parameters, against JSON
Schemas. The ``jsonschema`` package does that with the precise, per-keyword
errors that the loader turns into ``file:line: message`` — but importing it
costs more than loading a whole workshop, on every run of every command. Almost
every file a learner's run loads is valid, so the loader first asks this
module, which answers only one question, cheaply: is the instance *certainly*
valid? Only when the answer is no does the loader import ``jsonschema`` to
explain what is wrong, so every message stays exactly what it was.

The answer is conservative: ``False`` means "invalid, or not sure". A keyword
this module does not implement, a ``$ref`` that is not a local JSON pointer,
or a value that is not plain JSON data (a YAML timestamp, bytes) all answer
``False`` and leave the verdict to ``jsonschema``. The semantics follow
``jsonschema``'s Draft 2020-12 validator (``format`` is an annotation there, as
here); a differential test holds the two to the same verdicts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

# keywords that never make an instance invalid
_ANNOTATIONS = frozenset(
    {
        "$schema",
        "$comment",
        "$defs",
        "definitions",
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "format",
        "markdownDescription",
    }
)


class _Unsure(Exception):
    """The schema or the instance is outside what this module can judge."""


@lru_cache(maxsize=256)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text)


def _is_json(value: Any) -> bool:
    """True for the types ``json.loads`` produces (what the schema keywords know)."""
    return value is None or type(value) in (str, int, float, bool, list, dict)


def _equal(one: Any, two: Any) -> bool:
    """JSON equality as ``jsonschema`` sees it: ``true`` is not ``1``."""
    if isinstance(one, bool) or isinstance(two, bool):
        return type(one) is type(two) and bool(one == two)
    if isinstance(one, str) or isinstance(two, str):
        return bool(one == two)
    if isinstance(one, list) and isinstance(two, list):
        return len(one) == len(two) and all(_equal(a, b) for a, b in zip(one, two, strict=True))
    if isinstance(one, dict) and isinstance(two, dict):
        return one.keys() == two.keys() and all(_equal(one[k], two[k]) for k in one)
    return bool(one == two)


def _type_ok(name: Any, value: Any) -> bool:
    if name == "string":
        return isinstance(value, str)
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if isinstance(value, bool):
        return False
    if name == "number":
        return isinstance(value, int | float)
    if name == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    raise _Unsure(f"type {name!r}")


def _within(count: int, bound: Any, *, at_least: bool) -> bool:
    if not isinstance(bound, int) or isinstance(bound, bool):
        raise _Unsure(f"bound {bound!r}")
    return count >= bound if at_least else count <= bound


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Checker:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.depth = 0

    def resolve(self, ref: Any) -> Any:
        if not isinstance(ref, str) or not (ref == "#" or ref.startswith("#/")):
            raise _Unsure(f"$ref {ref!r}")
        node: Any = self.root
        for raw in ref[2:].split("/") if ref != "#" else ():
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            else:
                raise _Unsure(f"$ref {ref!r}")
        return node

    def valid(self, schema: Any, value: Any) -> bool:
        if schema is True:
            return True
        if schema is False:
            return False
        if not isinstance(schema, Mapping):
            raise _Unsure("schema is not an object")
        self.depth += 1
        try:
            if self.depth > 200:
                raise _Unsure("$ref loop")
            return all(self.keyword(k, v, schema, value) for k, v in schema.items())
        finally:
            self.depth -= 1

    def keyword(self, key: str, arg: Any, schema: Mapping[str, Any], value: Any) -> bool:
        if key in _ANNOTATIONS:
            return True
        if key == "$id":  # changes what a $ref means below it, unless it is the root's
            if schema is not self.root:
                raise _Unsure("$id in a subschema")
            return True
        if key == "$ref":
            return self.valid(self.resolve(arg), value)
        if key == "type":
            names = arg if isinstance(arg, list) else [arg]
            return any(_type_ok(n, value) for n in names)
        if key == "anyOf":
            return any(self.valid(s, value) for s in arg)
        if key == "allOf":
            return all(self.valid(s, value) for s in arg)
        if key == "oneOf":
            return sum(1 for s in arg if self.valid(s, value)) == 1
        if key == "not":
            return not self.valid(arg, value)
        if key == "const":
            return _equal(arg, value)
        if key == "enum":
            return any(_equal(option, value) for option in arg)
        if key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if not _number(value):
                return True
            if not _number(arg):
                raise _Unsure(f"{key} {arg!r}")
            if key == "minimum":
                return bool(value >= arg)
            if key == "maximum":
                return bool(value <= arg)
            return bool(value > arg if key == "exclusiveMinimum" else value < arg)
        if key in ("minLength", "maxLength", "pattern"):
            if not isinstance(value, str):
                return True
            if key == "pattern":
                return _pattern(arg).search(value) is not None
            return _within(len(value), arg, at_least=key == "minLength")
        if key in ("minItems", "maxItems", "items"):
            if not isinstance(value, list):
                return True
            if key == "items":
                if isinstance(arg, list):
                    raise _Unsure("items as a list")
                return all(self.valid(arg, item) for item in value)
            return _within(len(value), arg, at_least=key == "minItems")
        if key == "additionalProperties":
            if not isinstance(value, dict):
                return True
            if "patternProperties" in schema:
                raise _Unsure("patternProperties")
            known = schema.get("properties", {})
            return all(self.valid(arg, v) for k, v in value.items() if k not in known)
        if key in ("properties", "required", "propertyNames", "minProperties", "maxProperties"):
            if not isinstance(value, dict):
                return True
            if key == "properties":
                return all(self.valid(s, value[k]) for k, s in arg.items() if k in value)
            if key == "required":
                return all(k in value for k in arg)
            if key == "propertyNames":
                return all(self.valid(arg, k) for k in value)
            return _within(len(value), arg, at_least=key == "minProperties")
        raise _Unsure(f"keyword {key!r}")


def _plain(value: Any, depth: int = 0) -> bool:
    """True when ``value`` is JSON data all the way down (str keys, JSON scalars)."""
    if depth > 200 or not _is_json(value):
        return False
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v, depth + 1) for v in value)
    return True


def certainly_valid(schema: Mapping[str, Any], instance: Any) -> bool:
    """True only when ``instance`` is valid against ``schema`` (False: invalid, or unsure)."""
    if not _plain(instance):
        return False
    try:
        return _Checker(schema).valid(schema, instance)
    except (_Unsure, re.error, TypeError, RecursionError):
        return False
