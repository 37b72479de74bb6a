"""JSON merge patch (RFC 7386), strategic merge patch and JSON patch (RFC 6902).

``kubectl apply`` on built-in kinds sends a strategic merge patch whose lists are merged by key
(containers by name, container ports by containerPort, ...). A plain merge patch would replace
those lists and silently drop ``env`` and ``ports`` from a container whose image changed, so the
merge-key table below mirrors the ``patchMergeKey`` tags of the Kubernetes API types that labs
touch. All functions return new structures and never modify their inputs.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

_MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "schedulingGates": "name",
    "secrets": "name",
    "webhooks": "name",
    "addresses": "type",
}
_PRIMITIVE_MERGE_LISTS = frozenset({"finalizers"})
_DELETE = object()


class PatchError(ValueError):
    """A patch that cannot be applied; the API answers 422 (or 400 for garbage)."""


def merge_key(path: Sequence[str], kind: str) -> str | None:
    """The SMP merge key for the list at ``path`` in an object of ``kind``."""
    if not path:
        return None
    name = path[-1]
    if name == "ports":
        if kind == "Service" and tuple(path) == ("spec", "ports"):
            return "port"
        if "containers" in path or "initContainers" in path or "ephemeralContainers" in path:
            return "containerPort"
        return None
    return _MERGE_KEYS.get(name)


def json_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge recursively, ``null`` deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(original: Any, patch: Any, kind: str) -> Any:
    """Apply a strategic merge patch (with ``$patch``, ``$retainKeys``, ``$setElementOrder`` and
    ``$deleteFromPrimitiveList`` directives) to an object of ``kind``."""
    result = _smp_map(original, patch, (), kind)
    return {} if result is _DELETE else result


def _smp_value(original: Any, patch: Any, path: tuple[str, ...], kind: str) -> Any:
    if isinstance(patch, dict):
        return _smp_map(original, patch, path, kind)
    if isinstance(patch, list):
        return _smp_list(original, patch, path, kind)
    return patch


def _smp_map(original: Any, patch: Any, path: tuple[str, ...], kind: str) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return _DELETE
    if directive == "replace":
        return _smp_map({}, {k: v for k, v in patch.items() if k != "$patch"}, path, kind)
    result: dict[str, Any] = dict(original) if isinstance(original, dict) else {}
    deferred: list[tuple[str, Any]] = []
    for key, value in patch.items():
        if key.startswith("$"):
            deferred.append((key, value))
            continue
        if value is None:
            result.pop(key, None)
            continue
        merged = _smp_value(result.get(key), value, (*path, key), kind)
        if merged is _DELETE:
            result.pop(key, None)
        else:
            result[key] = merged
    for key, value in deferred:
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [x for x in result[field] if x not in (value or [])]
        elif key.startswith("$setElementOrder/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list) and isinstance(value, list):
                result[field] = _reorder(result[field], value, merge_key((*path, field), kind))
        elif key == "$retainKeys" and isinstance(value, list):
            result = {k: v for k, v in result.items() if k in value}
        elif key not in ("$patch",):
            raise PatchError(f"unknown patch directive {key!r}")
    return result


def _reorder(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    def ident(item: Any) -> Any:
        return item.get(key) if key and isinstance(item, dict) else item

    wanted = [ident(o) for o in order]
    listed: list[Any] = []
    for w in wanted:
        listed.extend(i for i in items if ident(i) == w)
    rest = [i for i in items if ident(i) not in wanted]
    return listed + rest


def _smp_list(original: Any, patch: list[Any], path: tuple[str, ...], kind: str) -> list[Any]:
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        kept = [i for i in patch if not (isinstance(i, dict) and i.get("$patch") == "replace")]
        return [_smp_value(None, i, path, kind) for i in kept]
    old = list(original) if isinstance(original, list) else []
    field = path[-1] if path else ""
    key = merge_key(path, kind)
    if key and all(isinstance(i, dict) for i in patch) and all(isinstance(i, dict) for i in old):
        result = list(old)
        for item in patch:
            ident = item.get(key)
            index = next((n for n, o in enumerate(result) if o.get(key) == ident), None)
            if item.get("$patch") == "delete":
                if index is not None:
                    del result[index]
                continue
            if index is None:
                result.append(_smp_map({}, item, path, kind))
            else:
                result[index] = _smp_map(result[index], item, path, kind)
        return result
    if field in _PRIMITIVE_MERGE_LISTS:
        return old + [i for i in patch if i not in old]
    return [_smp_value(None, i, path, kind) for i in patch]


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str], path: str) -> Any:
    cur = doc
    for part in parts:
        if isinstance(cur, dict):
            if part not in cur:
                raise PatchError(f"doc is missing path: {path!r}")
            cur = cur[part]
        elif isinstance(cur, list):
            cur = cur[_index(cur, part, path, allow_end=False)]
        else:
            raise PatchError(f"doc is missing path: {path!r}")
    return cur


def _index(seq: list[Any], part: str, path: str, *, allow_end: bool) -> int:
    if part == "-" and allow_end:
        return len(seq)
    if not part.isdigit():
        raise PatchError(f"invalid array index {part!r} in {path!r}")
    idx = int(part)
    if idx > len(seq) or (idx == len(seq) and not allow_end):
        raise PatchError(f"array index out of bounds: {path!r}")
    return idx


def _add(doc: Any, path: str, value: Any) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, path, allow_end=True), value)
    else:
        raise PatchError(f"doc is missing path: {path!r}")
    return doc


def _remove(doc: Any, path: str) -> tuple[Any, Any]:
    parts = _pointer(path)
    if not parts:
        raise PatchError("cannot remove the whole document")
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"unable to remove nonexistent key: {last}: missing value")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, last, path, allow_end=False))
    raise PatchError(f"doc is missing path: {path!r}")


def json_patch(doc: Any, operations: Any) -> Any:
    """RFC 6902 (add, remove, replace, move, copy, test) on a copy of ``doc``."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    result = copy.deepcopy(doc)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid JSON patch operation: {json.dumps(op)}")
        kind, path = op["op"], op["path"]
        if kind == "add":
            result = _add(result, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            result, _ = _remove(result, path)
        elif kind == "replace":
            _walk(result, _pointer(path), path)
            parts = _pointer(path)
            if not parts:
                result = copy.deepcopy(op.get("value"))
            else:
                result, _ = _remove(result, path)
                result = _add(result, path, copy.deepcopy(op.get("value")))
        elif kind == "move":
            result, value = _remove(result, op["from"])
            result = _add(result, path, value)
        elif kind == "copy":
            value = copy.deepcopy(_walk(result, _pointer(op["from"]), op["from"]))
            result = _add(result, path, value)
        elif kind == "test":
            if _walk(result, _pointer(path), path) != op.get("value"):
                raise PatchError(f"testing value {path} failed")
        else:
            raise PatchError(f"unexpected kind of JSON patch operation: {kind!r}")
    return result
