"""The quick schema check agrees with jsonschema, so skipping jsonschema changes no verdict.

The loader trusts ``certainly_valid`` to skip ``jsonschema`` on valid files, so
a ``True`` for an invalid instance would let a broken lab load. These tests
hold the two to the same verdict on the bundled workshop, on thousands of
mutations of it, and on random data against every schema labrunner has.
"""

from __future__ import annotations

import copy
import datetime
import functools
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from labrunner.lab.quickschema import certainly_valid
from labrunner.lab.schema import CHECK_RESERVED, lab_schema, workshop_schema
from labrunner.verify.registry import builtin_registry

REPO = Path(__file__).resolve().parents[2]
LABS = REPO / "labs"
LAB_SCHEMA = lab_schema(None)


@functools.cache
def documents() -> list[dict[str, Any]]:
    """Every bundled lab file as plain data (copied before any change)."""
    return [
        yaml.load(p.read_text(), Loader=yaml.CSafeLoader)
        for p in sorted(LABS.glob("*.yaml"))
        if p.stem != "workshop"
    ]


@functools.cache
def full_lab_schema() -> Mapping[str, Any]:
    return lab_schema(builtin_registry())


@functools.cache
def _validator(key: int) -> Draft202012Validator:
    return Draft202012Validator(_by_id[key])


_by_id: dict[int, Mapping[str, Any]] = {}


def schemas() -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every schema the loader checks against, by name."""
    yield "lab", lab_schema(None)
    yield "lab (full)", full_lab_schema()
    yield "workshop", workshop_schema()
    for spec in builtin_registry():
        yield spec.name, spec.params


def jsonschema_valid(schema: Mapping[str, Any], instance: Any) -> bool:
    if isinstance(schema, bool):
        return Draft202012Validator(schema).is_valid(instance)
    _by_id.setdefault(id(schema), schema)
    return _validator(id(schema)).is_valid(instance)


def checks(doc: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for step in doc.get("steps", []):
        for item in step.get("check") or []:
            (name,) = (k for k in item if k not in CHECK_RESERVED)
            yield name, item[name] or {}


# --------------------------------------------------------------------------- valid input


def test_every_bundled_lab_and_check_is_quickly_valid() -> None:
    # the point of the quick check: a valid workshop never needs jsonschema
    registry = builtin_registry()
    docs = documents()
    assert len(docs) > 10
    for doc in docs:
        assert certainly_valid(lab_schema(None), doc), doc["id"]
        assert certainly_valid(full_lab_schema(), doc), doc["id"]
        for name, params in checks(doc):
            spec = registry.get(name)
            assert spec is not None
            assert certainly_valid(spec.params, params), (doc["id"], name, params)
    workshop = yaml.safe_load((LABS / "workshop.yaml").read_text())
    assert certainly_valid(workshop_schema(), workshop)


# --------------------------------------------------------------------------- mutations

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(["", "x", "30s", "2m", "kind-*", "ns-1", "Bad Id", "GET", "STRICT", "-1"]),
    st.text(max_size=8),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["id", "title", "run", "cmd", "namespace", "x", "timeout"]),
            inner,
            max_size=3,
        ),
    ),
    max_leaves=6,
)


def _paths(value: Any, base: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield base
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*base, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*base, index))


def _mutate(doc: Any, path: tuple[Any, ...], how: str, value: Any) -> Any:
    doc = copy.deepcopy(doc)
    if not path:
        return value
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if how == "replace":
        parent[last] = value
    elif how == "delete":
        del parent[last]
    elif how == "add" and isinstance(parent, dict):
        parent[f"{last}x" if isinstance(last, str) else "extra"] = value
    elif how == "add" and isinstance(parent, list):
        parent.append(value)
    return doc


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
@given(data=st.data())
def test_mutated_labs_get_the_same_verdict(data: st.DataObject) -> None:
    registry = builtin_registry()
    doc = data.draw(st.sampled_from(documents()), label="lab")
    path = data.draw(st.sampled_from(list(_paths(doc))), label="path")
    how = data.draw(st.sampled_from(["replace", "delete", "add"]), label="how")
    mutated = _mutate(doc, path, how, data.draw(json_values, label="value"))
    for schema in (LAB_SCHEMA, full_lab_schema()):
        assert certainly_valid(schema, mutated) == jsonschema_valid(schema, mutated), mutated
    if isinstance(mutated, dict):
        for name, params in checks_of(mutated):
            spec = registry.get(name)
            if spec is not None:
                quick = certainly_valid(spec.params, params)
                assert quick == jsonschema_valid(spec.params, params), (name, params)


def checks_of(doc: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Checks of a possibly broken lab, skipping whatever is not shaped like one."""
    steps = doc.get("steps")
    for step in steps if isinstance(steps, list) else []:
        items = step.get("check") if isinstance(step, dict) else None
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict):
                for name, params in item.items():
                    if name not in CHECK_RESERVED:
                        yield name, params


@pytest.mark.parametrize(("name", "schema"), list(schemas()), ids=lambda v: str(v)[:30])
@settings(max_examples=150, deadline=None, database=None)
@given(instance=json_values)
def test_random_data_never_quickly_valid_when_invalid(
    name: str, schema: Mapping[str, Any], instance: Any
) -> None:
    if certainly_valid(schema, instance):
        assert jsonschema_valid(schema, instance), (name, instance)


# --------------------------------------------------------------------------- when unsure


@pytest.mark.parametrize(
    ("schema", "instance"),
    [
        ({"type": "string", "maxContains": 1}, "x"),  # a keyword it does not know
        ({"patternProperties": {"^a": {"type": "string"}}}, {"a": "x"}),
        ({"$ref": "https://example.com/other.json"}, 1),
        ({"properties": {"a": {"$id": "inner", "type": "string"}}}, {"a": "x"}),
        ({"items": [{"type": "string"}]}, ["x"]),
        ({"type": "string"}, datetime.date(2024, 1, 1)),  # a YAML timestamp
        ({"type": "object"}, {1: "x"}),  # not JSON data
        ({"type": "string", "pattern": "("}, "x"),  # a broken pattern
    ],
)
def test_outside_the_subset_it_is_never_sure(schema: Mapping[str, Any], instance: Any) -> None:
    assert certainly_valid(schema, instance) is False


@pytest.mark.parametrize(
    ("schema", "instance", "valid"),
    [
        ({"const": 1}, True, False),  # true is not 1
        ({"enum": [True]}, 1, False),
        ({"const": 1}, 1.0, True),
        ({"type": "integer"}, 2.0, True),
        ({"type": "integer"}, True, False),
        ({"type": "number", "minimum": 0}, -0.5, False),
        ({"minLength": 1}, 5, True),  # string keywords ignore other types
        ({"additionalProperties": False, "properties": {"a": {}}}, {"a": 1, "b": 2}, False),
        ({"$defs": {"n": {"type": "null"}}, "$ref": "#/$defs/n"}, None, True),
        ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, 1, False),
        ({"not": {"type": "string"}}, 1, True),
        (True, {"anything": 1}, True),
        (False, 1, False),
    ],
)
def test_keywords_match_jsonschema(schema: Any, instance: Any, valid: bool) -> None:
    assert jsonschema_valid(schema, instance) is valid
    assert certainly_valid(schema, instance) is valid
