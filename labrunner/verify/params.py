"""Small builders for verifier parameter schemas (JSON Schema fragments).

Every verifier declares its parameters with these so the schemas look alike:
objects reject unknown keys (a misspelt parameter is an error, not ignored),
durations share one definition, and descriptions reach editors.
"""

from __future__ import annotations

from labrunner.durations import SCHEMA as _DURATION_SCHEMA
from labrunner.durations import parse_duration

TYPE_CHECKING = False  # as typing's, without importing typing (a start-up cost)
if TYPE_CHECKING:
    from typing import Any

DURATION: dict[str, Any] = dict(_DURATION_SCHEMA)
STRING: dict[str, Any] = {"type": "string"}
INTEGER: dict[str, Any] = {"type": "integer"}
BOOLEAN: dict[str, Any] = {"type": "boolean"}
STRING_LIST: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
STRING_MAP: dict[str, Any] = {"type": "object", "additionalProperties": {"type": "string"}}


def one_or_many(item: dict[str, Any]) -> dict[str, Any]:
    """A value that is either one ``item`` or a list of them."""
    return {"anyOf": [item, {"type": "array", "items": item}]}


def described(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """``schema`` with a description for editors."""
    return {**schema, "description": description}


def obj(
    properties: dict[str, Any],
    *,
    required: tuple[str, ...] = (),
    description: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An object schema that rejects unknown keys."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = list(required)
    if description:
        schema["description"] = description
    schema.update(extra)
    return schema


def as_list(value: Any) -> list[Any]:
    """A parameter that may be one value or a list, as a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def seconds(value: Any, default: float) -> float:
    """A duration parameter in seconds, or ``default`` when absent."""
    return default if value is None else parse_duration(value)
