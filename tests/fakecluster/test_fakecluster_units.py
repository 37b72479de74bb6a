"""Unit tests for the fake's pure parts: selectors, patches, schemas, protobuf, tables, store."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labrunner.testing.fakecluster import errors, patches, protobuf, schema, selectors, tables
from labrunner.testing.fakecluster.errors import ApiError
from labrunner.testing.fakecluster.store import Store

# --- selectors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "web"}, True),
        ("app=web", {"app": "api"}, False),
        ("app!=web", {}, True),
        ("app!=web", {"app": "web"}, False),
        ("app in (web, api),version notin (v2)", {"app": "api", "version": "v1"}, True),
        ("app in (web,api),version notin (v2)", {"app": "api", "version": "v2"}, False),
        ("version", {"version": ""}, True),
        ("!version", {"version": "v1"}, False),
        ("!version", {"app": "web"}, True),
        ("tier>2", {"tier": "3"}, True),
        ("tier<2", {"tier": "3"}, False),
        ("", {"anything": "x"}, True),
        ("app.kubernetes.io/name=web", {"app.kubernetes.io/name": "web"}, True),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert selectors.labels_match(selectors.parse_label_selector(selector), labels) is expected


@pytest.mark.parametrize("bad", ["app in web", "a=b=c", "app in (x y)", ",", "a,,b"])
def test_bad_label_selectors_are_rejected(bad: str) -> None:
    with pytest.raises(selectors.SelectorError):
        selectors.parse_label_selector(bad)


_label = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=8)


@given(st.dictionaries(_label, _label, max_size=4), st.dictionaries(_label, _label, max_size=4))
def test_selector_objects_render_to_equivalent_strings(
    match: dict[str, str], labels: dict[str, str]
) -> None:
    compiled = selectors.selector_from_object({"matchLabels": match})
    reparsed = selectors.parse_label_selector(selectors.selector_to_string(compiled))
    assert selectors.labels_match(compiled, labels) == selectors.labels_match(reparsed, labels)
    assert selectors.labels_match(compiled, {**labels, **match})


def test_field_selectors() -> None:
    pod = {"metadata": {"name": "a", "namespace": "n"}, "status": {"phase": "Running"}}
    parse = selectors.parse_field_selector
    assert selectors.fields_match(parse("metadata.name=a", "", "pods"), pod)
    assert not selectors.fields_match(
        parse("metadata.name=a,status.phase!=Running", "", "pods"), pod
    )
    assert selectors.fields_match(parse("metadata.namespace==n", "", "pods"), pod)
    with pytest.raises(selectors.SelectorError, match=r"field label not supported: status\.phase"):
        parse("status.phase=Running", "", "configmaps")


# --- patches -----------------------------------------------------------------------------------

POD_SPEC: dict[str, Any] = {
    "spec": {
        "containers": [
            {
                "name": "web",
                "image": "nginx:1.27",
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                "ports": [{"containerPort": 80}, {"containerPort": 443}],
            },
            {"name": "side", "image": "busybox"},
        ],
        "volumes": [{"name": "data", "emptyDir": {}}],
        "tolerations": [{"key": "a"}],
    },
    "metadata": {"finalizers": ["x"], "labels": {"a": "1"}},
}


def test_merge_patch_follows_rfc_7386() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "list": [1, 2]}
    patch = {"a": "z", "c": {"f": None}, "list": [3], "new": {"x": None}}
    assert patches.json_merge_patch(target, patch) == {
        "a": "z",
        "c": {"d": "e"},
        "list": [3],
        "new": {},
    }
    assert target["c"] == {"d": "e", "f": "g"}


def test_strategic_merge_merges_lists_by_key() -> None:
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "side"}, {"name": "web"}],
            "containers": [
                {"name": "web", "image": "nginx:1.28", "env": [{"name": "B", "value": "3"}]},
            ],
            "tolerations": [{"key": "b"}],
        }
    }
    out = patches.strategic_merge_patch(POD_SPEC, patch, "Pod")
    containers = out["spec"]["containers"]
    assert [c["name"] for c in containers] == ["side", "web"]
    web = containers[1]
    assert web["image"] == "nginx:1.28"
    assert web["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]
    assert web["ports"] == [{"containerPort": 80}, {"containerPort": 443}]
    assert out["spec"]["tolerations"] == [{"key": "b"}]
    assert POD_SPEC["spec"]["containers"][0]["image"] == "nginx:1.27"


def test_strategic_merge_directives() -> None:
    patch = {
        "metadata": {"$deleteFromPrimitiveList/finalizers": ["x"], "labels": {"a": None, "b": "2"}},
        "spec": {
            "containers": [
                {"name": "side", "$patch": "delete"},
                {"name": "web", "ports": [{"containerPort": 443, "$patch": "delete"}]},
            ],
            "volumes": [{"$patch": "replace"}, {"name": "cache", "emptyDir": {}}],
        },
    }
    out = patches.strategic_merge_patch(POD_SPEC, patch, "Pod")
    assert out["metadata"] == {"finalizers": [], "labels": {"b": "2"}}
    assert [c["name"] for c in out["spec"]["containers"]] == ["web"]
    assert out["spec"]["containers"][0]["ports"] == [{"containerPort": 80}]
    assert out["spec"]["volumes"] == [{"name": "cache", "emptyDir": {}}]
    strategy = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    recreate = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    assert patches.strategic_merge_patch(strategy, recreate, "Deployment")["spec"]["strategy"] == {
        "type": "Recreate"
    }
    assert patches.strategic_merge_patch(
        strategy, {"spec": {"strategy": {"$patch": "delete"}}}, "Deployment"
    ) == {"spec": {}}
    finalizers = patches.strategic_merge_patch(
        {"metadata": {"finalizers": ["a"]}}, {"metadata": {"finalizers": ["b"]}}, "X"
    )
    assert finalizers["metadata"]["finalizers"] == ["a", "b"]


def test_service_ports_merge_by_port() -> None:
    svc = {"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}}
    out = patches.strategic_merge_patch(
        svc, {"spec": {"ports": [{"port": 80, "targetPort": 8080}]}}, "Service"
    )
    assert out["spec"]["ports"] == [
        {"port": 80, "name": "http", "targetPort": 8080},
        {"port": 443, "name": "https"},
    ]


def test_json_patch_operations() -> None:
    doc = {"a": {"b~c": 1, "d/e": 2}, "list": [1, 2, 3]}
    ops = [
        {"op": "add", "path": "/list/-", "value": 4},
        {"op": "add", "path": "/list/0", "value": 0},
        {"op": "remove", "path": "/list/1"},
        {"op": "replace", "path": "/a/b~0c", "value": 10},
        {"op": "move", "from": "/a/d~1e", "path": "/moved"},
        {"op": "copy", "from": "/moved", "path": "/copied"},
        {"op": "test", "path": "/copied", "value": 2},
    ]
    assert patches.json_patch(doc, ops) == {
        "a": {"b~c": 10},
        "list": [0, 2, 3, 4],
        "moved": 2,
        "copied": 2,
    }
    with pytest.raises(patches.PatchError, match="testing value /a failed"):
        patches.json_patch(doc, [{"op": "test", "path": "/a", "value": 1}])
    with pytest.raises(patches.PatchError):
        patches.json_patch(doc, [{"op": "remove", "path": "/nope"}])
    with pytest.raises(patches.PatchError):
        patches.json_patch(doc, [{"op": "add", "path": "/list/9", "value": 1}])


# --- schema validation -------------------------------------------------------------------------

MATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["mode"],
            "properties": {
                "mode": {"type": "string", "enum": ["UNSET", "STRICT"]},
                "port": {
                    "x-kubernetes-int-or-string": True,
                    "anyOf": [{"type": "integer"}, {"type": "string"}],
                },
                "count": {"type": "integer", "minimum": 1, "maximum": 3},
                "name": {"type": "string", "maxLength": 5, "pattern": "^[a-z]+$"},
                "uri": {
                    "type": "object",
                    "properties": {"exact": {"type": "string"}, "prefix": {"type": "string"}},
                    "oneOf": [
                        {"not": {"anyOf": [{"required": ["exact"]}, {"required": ["prefix"]}]}},
                        {"required": ["exact"]},
                        {"required": ["prefix"]},
                    ],
                },
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "sel": {
                    "type": "object",
                    "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                    "x-kubernetes-validations": [
                        {
                            "rule": "(has(self.a) ? 1 : 0) + (has(self.b) ? 1 : 0) <= 1",
                            "message": "at most one of a, b",
                        }
                    ],
                },
                "level": {"type": "string", "default": "info"},
                "opt": {"type": "string", "nullable": True},
            },
        }
    },
}


def check(spec: dict[str, Any]) -> schema.ValidationResult:
    return schema.validate(
        {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "n"}, "spec": spec}, MATCH_SCHEMA
    )


def test_schema_accepts_and_defaults() -> None:
    result = check(
        {
            "mode": "STRICT",
            "port": "http",
            "free": {"any": {"thing": 1}},
            "labels": {"a": "b"},
            "opt": None,
        }
    )
    assert result.causes == []
    assert result.unknown_fields == []
    assert result.obj["spec"]["level"] == "info"
    assert result.obj["spec"]["free"] == {"any": {"thing": 1}}
    assert result.obj["spec"]["opt"] is None
    assert check({"mode": "STRICT", "port": 8080}).causes == []


def test_schema_prunes_and_reports_unknown_fields() -> None:
    result = check({"mode": "STRICT", "foo": 1, "uri": {"exact": "/", "bar": 2}})
    assert result.unknown_fields == ["spec.foo", "spec.uri.bar"]
    assert result.obj["spec"] == {"mode": "STRICT", "uri": {"exact": "/"}, "level": "info"}


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        (
            {"mode": "STRIKT"},
            "spec.mode",
            'Unsupported value: "STRIKT": supported values: "UNSET", "STRICT"',
        ),
        ({}, "spec.mode", "Required value"),
        ({"mode": "STRICT", "port": 1.5}, "spec.port", "must be of type integer-or-string"),
        (
            {"mode": "STRICT", "count": "3"},
            "spec.count",
            "spec.count in body must be of type integer",
        ),
        ({"mode": "STRICT", "count": 9}, "spec.count", "should be less than or equal to 3"),
        (
            {"mode": "STRICT", "name": "toolong"},
            "spec.name",
            "Too long: may not be more than 5 bytes",
        ),
        ({"mode": "STRICT", "name": "ABC"}, "spec.name", "should match '^[a-z]+$'"),
        (
            {"mode": "STRICT", "uri": {"exact": "/", "prefix": "/"}},
            "spec.uri",
            "Found 2 valid alternatives",
        ),
        ({"mode": "STRICT", "labels": {"a": 1}}, "spec.labels.a", "must be of type string"),
        ({"mode": "STRICT", "sel": {"a": "x", "b": "y"}}, "spec.sel", "at most one of a, b"),
    ],
)
def test_schema_rejects_like_the_apiserver(spec: dict[str, Any], field: str, message: str) -> None:
    causes = check(spec).causes
    assert [c.field for c in causes] == [field]
    assert message in causes[0].message


def test_invalid_error_message_shape() -> None:
    cause = errors.Cause(
        "FieldValueNotSupported",
        'Unsupported value: "STRIKT": supported values: "STRICT"',
        "spec.mtls.mode",
    )
    err = errors.invalid("PeerAuthentication", "security.istio.io", "default", [cause])
    assert err.message == (
        'PeerAuthentication.security.istio.io "default" is invalid: spec.mtls.mode: '
        'Unsupported value: "STRIKT": supported values: "STRICT"'
    )
    status = err.to_status()
    assert (status["code"], status["reason"], status["details"]["causes"][0]["field"]) == (
        422,
        "Invalid",
        "spec.mtls.mode",
    )


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        ("(has(self.a) ? 1 : 0) + (has(self.b) ? 1 : 0) <= 1", {"a": 1}, True),
        ("has(self.wasm) != has(self.lua)", {}, False),
        ("0 < self && self <= 65535", 70000, False),
        ('self in ["", "HTTP", "HTTPS"]', "TCP", False),
        ('!self.contains("*")', "a*", False),
        ("duration(self) >= duration('1ms')", "1s", None),
    ],
)
def test_trivial_cel_rules(rule: str, value: Any, expected: bool | None) -> None:
    assert schema.evaluate_rule(rule, value) is expected


# --- protobuf ----------------------------------------------------------------------------------


def test_decodes_the_namespace_body_kubectl_sends() -> None:
    observed = bytes.fromhex(
        "6b3873000a0f0a02763112094e616d657370616365121c0a140a0464656d6f12001a0022002a00320038"
        "00420012001a020a001a002200"
    )
    assert protobuf.decode_object(observed) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "demo"},
    }


def test_rejects_bodies_it_cannot_decode() -> None:
    with pytest.raises(protobuf.ProtobufError):
        protobuf.decode_object(b"not protobuf")
    type_meta = b"\x0a\x02v1\x12\x08Eviction"
    unknown_kind = b"k8s\x00\x0a" + bytes([len(type_meta)]) + type_meta
    with pytest.raises(protobuf.ProtobufError, match="Eviction"):
        protobuf.decode_object(unknown_kind)


# --- tables ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (5, "5s"),
        (119, "119s"),
        (150, "2m30s"),
        (600, "10m"),
        (3 * 3600 + 5 * 60, "3h5m"),
        (9 * 3600, "9h"),
        (3 * 86400 + 4 * 3600, "3d4h"),
        (400 * 86400, "400d"),
        (-5, "<invalid>"),
    ],
)
def test_human_durations(seconds: int, shown: str) -> None:
    assert tables.human_duration(seconds) == shown


def test_json_path_subset() -> None:
    obj = {
        "spec": {
            "hosts": ["a", "b"],
            "servers": [{"port": {"number": 80}}, {"port": {"number": 443}}],
        }
    }
    assert tables.json_path(obj, ".spec.hosts") == [["a", "b"]]
    assert tables.json_path(obj, ".spec.servers[*].port.number") == [80, 443]
    assert tables.json_path(obj, ".spec.servers[1].port.number") == [443]
    assert tables.json_path(obj, ".spec.missing") == []


# --- store -------------------------------------------------------------------------------------


def _obj(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "n"}}


def test_watch_replays_history_after_a_resource_version() -> None:
    store = Store(history=3)
    key = ("", "configmaps")
    store.put(key, _obj("a"), "ADDED")
    listed = store.resource_version
    store.put(key, _obj("b"), "ADDED")
    store.remove(key, "n", "a")
    with store.watching(key, namespace="n", label_selector=(), field_selector=(), since=listed) as (
        _,
        initial,
    ):
        assert [(e.type, e.obj["metadata"]["name"]) for e in initial] == [
            ("ADDED", "b"),
            ("DELETED", "a"),
        ]
    with store.watching(key, namespace=None, label_selector=(), field_selector=(), since=None) as (
        watcher,
        initial,
    ):
        assert [e.obj["metadata"]["name"] for e in initial] == ["b"]
        store.put(key, _obj("c"), "ADDED")
        event = watcher.queue.get(timeout=1)
        assert event is not None
        assert (event.type, event.obj["metadata"]["resourceVersion"]) == (
            "ADDED",
            str(store.resource_version),
        )
    store.put(key, _obj("d"), "ADDED")
    with pytest.raises(ApiError) as expired:
        store.watching(
            key, namespace=None, label_selector=(), field_selector=(), since=1
        ).__enter__()
    assert expired.value.code == 410
