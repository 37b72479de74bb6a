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
from collections.abc import Callable, Mapping
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


Check = Callable[[Any], bool]


def _always(value: Any) -> bool:
    return True


def _never(value: Any) -> bool:
    return False


def _unsure(reason: str) -> Check:
    """A check that gives up when it is reached (a keyword only some instances meet)."""

    def check(value: Any) -> bool:
        raise _Unsure(reason)

    return check


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


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _type_check(name: Any) -> Check:
    if name == "string":
        return lambda v: isinstance(v, str)
    if name == "object":
        return lambda v: isinstance(v, dict)
    if name == "array":
        return lambda v: isinstance(v, list)
    if name == "boolean":
        return lambda v: isinstance(v, bool)
    if name == "null":
        return lambda v: v is None
    if name == "number":
        return _number
    if name == "integer":
        return lambda v: _number(v) and (isinstance(v, int) or float(v).is_integer())
    return _unsure(f"type {name!r}")


def _count(bound: Any, *, at_least: bool, applies: Callable[[Any], bool]) -> Check:
    """``len(value)`` against ``bound``, for the values the keyword applies to."""
    if not isinstance(bound, int) or isinstance(bound, bool):
        reason = f"bound {bound!r}"
        return lambda v: not applies(v) or _raise(reason)
    if at_least:
        return lambda v: not applies(v) or len(v) >= bound
    return lambda v: not applies(v) or len(v) <= bound


def _raise(reason: str) -> bool:
    raise _Unsure(reason)


def _all(checks: list[Check]) -> Check:
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]

    return lambda value: all(one(value) for one in checks)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_list(value: Any) -> bool:
    return isinstance(value, list)


def _is_dict(value: Any) -> bool:
    return isinstance(value, dict)


class _Compiler:
    """Turns a schema into nested closures, once; ``$ref`` targets on first use."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.refs: dict[str, Check] = {}

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

    def ref(self, ref: Any) -> Check:
        def check(value: Any) -> bool:
            target = self.refs.get(ref)
            if target is None:
                target = self.refs[ref] = self.compile(self.resolve(ref))
            return target(value)

        return check

    def compile(self, schema: Any) -> Check:
        if schema is True:
            return _always
        if schema is False:
            return _never
        if not isinstance(schema, Mapping):
            return _unsure("schema is not an object")
        checks = []
        for key, arg in schema.items():
            check = self.keyword(key, arg, schema)
            if check is not None:
                checks.append(check)
        return _all(checks)

    def keyword(self, key: str, arg: Any, schema: Mapping[str, Any]) -> Check | None:
        if key in _ANNOTATIONS:
            return None
        if key == "$id":  # changes what a $ref means below it, unless it is the root's
            return None if schema is self.root else _unsure("$id in a subschema")
        if key == "$ref":
            return self.ref(arg)
        if key == "type":
            options = [_type_check(n) for n in (arg if isinstance(arg, list) else [arg])]
            return lambda v: any(one(v) for one in options)
        if key in ("anyOf", "allOf", "oneOf"):
            if not isinstance(arg, list):
                return _unsure(f"{key} is not a list")
            branches = [self.compile(s) for s in arg]
            if key == "anyOf":
                return lambda v: any(b(v) for b in branches)
            if key == "allOf":
                return _all(branches)
            return lambda v: sum(1 for b in branches if b(v)) == 1
        if key == "not":
            inner = self.compile(arg)
            return lambda v: not inner(v)
        if key == "const":
            return lambda v: _equal(arg, v)
        if key == "enum":
            if not isinstance(arg, list):
                return _unsure("enum is not a list")
            return lambda v: any(_equal(option, v) for option in arg)
        if key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            return self.bound(key, arg)
        if key in ("minLength", "maxLength"):
            return _count(arg, at_least=key == "minLength", applies=_is_str)
        if key == "pattern":
            try:
                regex = re.compile(arg)
            except (re.error, TypeError):
                return lambda v: not isinstance(v, str) or _raise("pattern")
            return lambda v: not isinstance(v, str) or regex.search(v) is not None
        if key in ("minItems", "maxItems"):
            return _count(arg, at_least=key == "minItems", applies=_is_list)
        if key == "items":
            if isinstance(arg, list):
                return lambda v: not isinstance(v, list) or _raise("items as a list")
            item = self.compile(arg)
            return lambda v: not isinstance(v, list) or all(item(x) for x in v)
        if key == "additionalProperties":
            if "patternProperties" in schema:
                return lambda v: not isinstance(v, dict) or _raise("patternProperties")
            known = schema.get("properties", {})
            rest = self.compile(arg)
            if rest is _never:
                return lambda v: not isinstance(v, dict) or all(k in known for k in v)
            return lambda v: (
                not isinstance(v, dict) or all(rest(x) for k, x in v.items() if k not in known)
            )
        if key == "properties":
            if not isinstance(arg, Mapping):
                return _unsure("properties is not an object")
            props = {name: self.compile(s) for name, s in arg.items()}
            return lambda v: (
                not isinstance(v, dict)
                or all(check(v[name]) for name, check in props.items() if name in v)
            )
        if key == "required":
            if not isinstance(arg, list):
                return _unsure("required is not a list")
            return lambda v: not isinstance(v, dict) or all(k in v for k in arg)
        if key == "propertyNames":
            names = self.compile(arg)
            return lambda v: not isinstance(v, dict) or all(names(k) for k in v)
        if key in ("minProperties", "maxProperties"):
            return _count(arg, at_least=key == "minProperties", applies=_is_dict)
        return _unsure(f"keyword {key!r}")

    def bound(self, key: str, arg: Any) -> Check:
        if not _number(arg):
            return lambda v: not _number(v) or _raise(f"{key} {arg!r}")
        if key == "minimum":
            return lambda v: not _number(v) or bool(v >= arg)
        if key == "maximum":
            return lambda v: not _number(v) or bool(v <= arg)
        if key == "exclusiveMinimum":
            return lambda v: not _number(v) or bool(v > arg)
        return lambda v: not _number(v) or bool(v < arg)


def _plain(value: Any, depth: int = 0) -> bool:
    """True when ``value`` is JSON data all the way down (str keys, JSON scalars)."""
    if depth > 200 or not _is_json(value):
        return False
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v, depth + 1) for v in value)
    return True


_compiled: dict[int, tuple[Mapping[str, Any], Check]] = {}


def _checker(schema: Mapping[str, Any]) -> Check:
    """The compiled check of ``schema`` (kept while the schema object lives)."""
    kept = _compiled.get(id(schema))
    if kept is None or kept[0] is not schema:
        if len(_compiled) >= 512:  # schemas made afresh for each call must not pile up
            _compiled.clear()
        kept = (schema, _Compiler(schema).compile(schema))
        _compiled[id(schema)] = kept
    return kept[1]


def certainly_valid(schema: Mapping[str, Any], instance: Any) -> bool:
    """True only when ``instance`` is valid against ``schema`` (False: invalid, or unsure)."""
    if not _plain(instance):
        return False
    try:
        return _checker(schema)(instance)
    except (_Unsure, re.error, TypeError, RecursionError):
        return False
