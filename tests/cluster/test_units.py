"""Pure logic of the cluster layer: diffs, pod and rollout wording, versions, errors, selectors."""

from __future__ import annotations

from typing import Any

import pytest

from labrunner.cluster import status
from labrunner.cluster.errors import forbidden_message, http_error, transport_error
from labrunner.cluster.resources import label_selector, selector_problem
from labrunner.cluster.versions import istio_version_of as version_of
from labrunner.cluster.versions import kubernetes_support, minor, version_matches
from labrunner.verify.istio import proxy_kind
from labrunner.verify.kubernetes import field_differences
from labrunner.verify.registry import builtin_registry

# --------------------------------------------------------------------------- field differences


def diff(expected: Any, actual: Any) -> list[str]:
    return [str(d) for d in field_differences(expected, actual)]


def test_field_diff_names_the_path_and_both_values() -> None:
    actual = {"spec": {"mtls": {"mode": "PERMISSIVE"}}}
    assert diff({"spec": {"mtls": {"mode": "STRICT"}}}, actual) == [
        "spec.mtls.mode: expected STRICT, found PERMISSIVE"
    ]


def test_field_diff_subset_lists_and_text_numbers() -> None:
    actual = {"spec": {"ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}}
    assert diff({"spec": {"ports": [{"port": "8080"}]}}, actual) == []
    assert diff({"spec": {"ports": [{"port": 9090}]}}, actual) == [
        'spec.ports: no item matches {"port": 9090} (found [{"name": "http", "port": 8080, '
        '"protocol": "TCP"}])'
    ]


def test_field_diff_null_means_absent_and_keys_with_dots_are_quoted() -> None:
    actual = {"metadata": {"labels": {"app.kubernetes.io/name": "web", "team": "blue"}}}
    assert diff({"metadata": {"labels": {"team": None}}}, actual) == [
        "metadata.labels.team: expected not set, found blue"
    ]
    assert diff({"metadata": {"labels": {"app.kubernetes.io/name": "api"}}}, actual) == [
        'metadata.labels["app.kubernetes.io/name"]: expected api, found web'
    ]
    assert diff({"spec": {"replicas": 2}}, {}) == ['spec: expected {"replicas": 2}, not set']


def test_field_diff_does_not_confuse_booleans_and_numbers() -> None:
    assert diff({"enabled": True}, {"enabled": 1}) == ["enabled: expected true, found 1"]
    assert diff({"enabled": "true"}, {"enabled": True}) == []


# ---------------------------------------------------------------- pod and rollout wording


def pod(**status_fields: Any) -> dict[str, Any]:
    spec = status_fields.pop("spec", {"containers": [{"name": "web"}]})
    return {"metadata": {"name": "web-7d5c-x"}, "spec": spec, "status": status_fields}


def waiting(name: str, reason: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "ready": False, "state": {"waiting": {"reason": reason}}, **extra}


def test_why_not_ready_uses_kubectls_status_words() -> None:
    assert (
        status.why_not_ready(
            pod(phase="Pending", containerStatuses=[waiting("web", "ImagePullBackOff")])
        )
        == "Pending: ImagePullBackOff"
    )
    assert (
        status.why_not_ready(
            pod(
                phase="Running",
                containerStatuses=[waiting("web", "CrashLoopBackOff", restartCount=4)],
            )
        )
        == "Running: CrashLoopBackOff, 4 restarts"
    )
    unscheduled = pod(
        phase="Pending",
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/1 nodes are available: 1 Insufficient cpu.",
            }
        ],
    )
    assert status.why_not_ready(unscheduled) == (
        "Pending (Unschedulable: 0/1 nodes are available: 1 Insufficient cpu.)"
    )


def test_why_not_ready_counts_init_containers_but_not_native_sidecars() -> None:
    spec = {
        "initContainers": [
            {"name": "istio-proxy", "restartPolicy": "Always"},
            {"name": "migrate"},
        ],
        "containers": [{"name": "web"}],
    }
    initializing = pod(
        spec=spec,
        phase="Pending",
        initContainerStatuses=[
            {"name": "istio-proxy", "started": True, "ready": True, "state": {"running": {}}},
            waiting("migrate", "PodInitializing"),
        ],
        containerStatuses=[waiting("web", "PodInitializing")],
    )
    assert status.why_not_ready(initializing) == "Pending: Init:1/2"
    not_ready = pod(
        spec=spec,
        phase="Running",
        initContainerStatuses=[
            {"name": "istio-proxy", "started": True, "ready": False, "state": {"running": {}}},
            {"name": "migrate", "ready": False, "state": {"terminated": {"exitCode": 0}}},
        ],
        containerStatuses=[{"name": "web", "ready": True, "state": {"running": {}}}],
    )
    assert status.why_not_ready(not_ready) == "Running, not ready (istio-proxy)"


def test_rollout_problem_follows_rollout_status() -> None:
    dep: dict[str, Any] = {
        "metadata": {"generation": 3},
        "spec": {"replicas": 3},
        "status": {"observedGeneration": 2},
    }
    assert status.rollout_problem(dep) == (
        "the controller has not yet seen generation 3 (saw 2)",
        False,
    )
    dep["status"] = {"observedGeneration": 3, "replicas": 4, "updatedReplicas": 3}
    assert status.rollout_problem(dep) == ("1 old replica still terminating", False)
    dep["status"].update(replicas=3, availableReplicas=3)
    dep["status"]["conditions"] = [{"type": "Available", "status": "True"}]
    assert status.rollout_problem(dep) == (None, False)
    dep["status"]["conditions"].append(
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
    )
    assert status.rollout_problem(dep) == ("rollout is stuck: progress deadline exceeded", True)


def test_selector_string_from_a_label_selector_object() -> None:
    selector = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    }
    assert status.selector_string(selector) == "app=web,tier in (a,b),!legacy"


# --------------------------------------------------------------------------- istio helpers


def test_version_of_istiod_from_tag_labels_or_revision() -> None:
    def istiod(image: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        return {
            "metadata": {"labels": labels or {}},
            "spec": {"template": {"spec": {"containers": [{"name": "discovery", "image": image}]}}},
        }

    assert version_of(istiod("docker.io/istio/pilot:1.30.3")) == "1.30.3"
    assert version_of(istiod("gcr.io/istio-release/pilot:1.30.3-distroless")) == "1.30.3"
    assert version_of(istiod("localhost:5000/pilot")) is None
    digest = "docker.io/istio/pilot@sha256:" + "0" * 64
    assert version_of(istiod(digest, {"app.kubernetes.io/version": "1.29.1"})) == "1.29.1"
    assert version_of(istiod(digest, {"istio.io/rev": "1-30-3"})) == "1.30.3"
    assert version_matches("1.30.3", "1.30") and version_matches("1.30.3", "v1.30.3")
    assert not version_matches("1.30.3", "1.3")


def test_proxy_kind_finds_container_and_native_sidecars() -> None:
    assert proxy_kind({"spec": {"containers": [{"name": "istio-proxy"}]}}) == "container"
    native = {"spec": {"initContainers": [{"name": "istio-proxy", "restartPolicy": "Always"}]}}
    assert proxy_kind(native) == "native"
    assert proxy_kind({"spec": {"initContainers": [{"name": "istio-proxy"}]}}) is None


# ---------------------------------------------------------------- versions, errors, selectors


def test_istio_kubernetes_support_table() -> None:
    assert minor("v1.32.2") == 32 and minor("1.33+") == 33 and minor("x") is None
    ok, why = kubernetes_support("1.30.3", 32)
    assert ok is True and why == "Istio 1.30.3 supports Kubernetes 1.32–1.34"
    ok, why = kubernetes_support("1.30.3", 31)
    assert ok is False and "needs Kubernetes ≥ 1.32" in why
    ok, why = kubernetes_support("1.30.3", 36)
    assert ok is False and "untested" in why
    assert kubernetes_support("1.99.0", 32)[0] is None


def test_forbidden_messages_are_shortened() -> None:
    message = (
        'pods is forbidden: User "system:serviceaccount:dev:learner" cannot list resource '
        '"pods" in API group "" in the namespace "istio-system"'
    )
    assert forbidden_message(message) == (
        "forbidden: user system:serviceaccount:dev:learner cannot list pods in istio-system"
    )
    crds = (
        'customresourcedefinitions.apiextensions.k8s.io is forbidden: User "bob" cannot list '
        'resource "customresourcedefinitions" in API group "apiextensions.k8s.io" at the '
        "cluster scope"
    )
    assert forbidden_message(crds) == (
        "forbidden: user bob cannot list customresourcedefinitions.apiextensions.k8s.io "
        "at cluster scope"
    )


def test_transient_and_broken_http_errors() -> None:
    throttled = http_error(429, b"{}", method="GET", path="/api/v1/pods", retry_after="2")
    assert throttled.transient and throttled.message == "429 too many requests (retry after 2s)"
    unavailable = http_error(503, b'{"message": "etcd leader changed"}', method="GET", path="/x")
    assert unavailable.transient
    assert unavailable.message == "503 service unavailable: etcd leader changed"
    unauthorized = http_error(401, b"", method="GET", path="/x")
    assert not unauthorized.transient and unauthorized.message.startswith("unauthorized:")


def test_transport_errors_by_cause() -> None:
    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except ConnectionRefusedError as exc:
        error = transport_error(exc, server="https://127.0.0.1:6443")
    assert error.message.startswith(
        "cluster unreachable at https://127.0.0.1:6443: connection refused"
    )
    timeout = transport_error(TimeoutError("timed out"), server="https://x", timeout=2)
    assert (
        timeout.transient
        and timeout.message == "the API server at https://x did not answer within 2s (timeout)"
    )


@pytest.mark.parametrize(
    ("selector", "problem"),
    [
        ("app=web,version!=v2", None),
        ("app in (web, api),!legacy", None),
        ("app=", None),
        ("app=web,", "empty requirement in label selector 'app=web,'"),
        ("app in (web", "unbalanced parentheses in label selector 'app in (web'"),
        ("app web", "'app web' is not a valid label selector requirement"),
    ],
)
def test_label_selector_syntax(selector: str, problem: str | None) -> None:
    assert selector_problem(selector) == problem


def test_selector_maps_become_query_strings() -> None:
    assert label_selector({"app": "web", "version": "v1"}) == "app=web,version=v1"
    assert label_selector(None) == ""


# --------------------------------------------------------------------------- schemas and labels


def test_parameters_are_validated_when_labs_load() -> None:
    import jsonschema

    registry = builtin_registry()
    schema = registry.get("pods_ready")
    assert schema is not None
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"namespace": "shop", "selektor": "app=web"}, dict(schema.params))
    resource = registry.get("resource")
    assert resource is not None and resource.lint is not None
    problems = resource.lint({"kind": "Pod", "name": "x"})
    assert [p.message for p in problems] == [
        "apiVersion and kind go together; apiVersion is missing"
    ]
    label = schema.label({"namespace": "istioinaction", "selector": "app=web-api"})
    assert label == "pods ready: app=web-api in istioinaction"
