"""Unknown-field detection for built-in kinds, from Kubernetes' own OpenAPI-derived schemas.

A real apiserver decodes built-in kinds into Go structs: with ``fieldValidation=Strict`` (what
``kubectl apply`` sends) a misspelt ``spec.replica`` is an error, otherwise the field silently
disappears. The fake reproduces both when the ``kubernetes-validate`` package (a test extra)
is installed, using its strict JSON schemas for Kubernetes 1.32. Without that package built-in
kinds keep unknown fields, which only makes the fake more lenient than a cluster.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from typing import Any

JsonDict = dict[str, Any]
SCHEMA_SET = "v1.32.0-local-strict"
_REF_MARKER = "#/$defs/"


@functools.cache
def _definitions() -> dict[str, JsonDict] | None:
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "kubernetes-json-schema" / SCHEMA_SET / "_definitions.json"
    if not path.is_file():
        return None
    defs = json.loads(path.read_text()).get("$defs")
    return defs if isinstance(defs, dict) else None


@functools.cache
def _kind_index() -> dict[tuple[str, str, str], str]:
    index: dict[tuple[str, str, str], str] = {}
    for name, schema in (_definitions() or {}).items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or []:
            index[(gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", ""))] = name
    return index


def available() -> bool:
    """Whether built-in schemas could be loaded."""
    return _definitions() is not None


def _resolve(schema: JsonDict, defs: dict[str, JsonDict]) -> JsonDict:
    seen = 0
    while "$ref" in schema and seen < 20:
        ref = str(schema["$ref"])
        target = defs.get(ref.split(_REF_MARKER, 1)[-1]) if _REF_MARKER in ref else None
        if target is None:
            return {}
        schema = target
        seen += 1
    return schema


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _walk(
    value: Any, schema: JsonDict, path: str, unknown: list[str], defs: dict[str, JsonDict]
) -> Any:
    schema = _resolve(schema, defs)
    if isinstance(value, dict):
        props = schema.get("properties")
        additional = schema.get("additionalProperties")
        if props is None and not isinstance(additional, dict) and additional is not False:
            return value
        out: JsonDict = {}
        for key, child in value.items():
            if isinstance(props, dict) and key in props:
                out[key] = _walk(child, props[key], _join(path, key), unknown, defs)
            elif isinstance(additional, dict):
                out[key] = _walk(child, additional, _join(path, key), unknown, defs)
            elif additional is False:
                unknown.append(_join(path, key))
            else:
                out[key] = child
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [
            _walk(item, schema["items"], f"{path}[{n}]", unknown, defs)
            for n, item in enumerate(value)
        ]
    return value


def prune_unknown(group: str, version: str, kind: str, obj: JsonDict) -> tuple[JsonDict, list[str]]:
    """``obj`` without fields the kind does not have, and the paths of those fields."""
    defs = _definitions()
    if defs is None:
        return obj, []
    name = _kind_index().get((group, version, kind))
    if name is None:
        return obj, []
    unknown: list[str] = []
    pruned = _walk(obj, defs[name], "", unknown, defs)
    return (pruned if isinstance(pruned, dict) else obj), unknown
