"""The Kubernetes verifiers through the engine: passed, pending→passed, failed and error.

Each test arranges the fake cluster (with the real kubectl where a learner
would use it), then polls a check-only step of ``labs/20-checks.yaml`` the way
the TUI does. Pending→passed tests change the cluster from another thread as
soon as the engine reports the check pending, and assert the step passed
well before its budget: the watch-based ``wait`` wakes the engine within
milliseconds instead of a polling interval.
"""

from __future__ import annotations

import copy

import pytest

from labrunner.engine.events import StepStatus
from labrunner.verify.outcome import Status

from .conftest import Harness, apply, deploy_shop

FAST = 0.5
"""Seconds a step may take to pass after the cluster converged (watch, not polling)."""


def assert_fast_pass(harness: Harness, step_id: str, result: object) -> None:
    """The step passed, soon after the other thread changed the cluster."""
    assert getattr(result, "status", None) is StepStatus.PASSED, result
    assert harness.released_at, "the cluster was never changed"
    latency = harness.finished_at(step_id) - harness.released_at
    assert latency < FAST, f"passed {latency:.3f}s after the change"


# --------------------------------------------------------------------------- pods_ready


def test_pods_ready_passes_on_a_converged_namespace(harness: Harness) -> None:
    deploy_shop(harness.cluster)
    result = harness.check("checks", "web-pods")
    assert result.status is StepStatus.PASSED
    assert result.message == "2 of 2 web pods ready in shop"


def test_pods_ready_waits_for_held_pods_then_passes_at_once(harness: Harness) -> None:
    server = harness.cluster.server
    server.hold_pods("shop", "app=web")
    deploy_shop(harness.cluster)
    harness.when_pending(lambda: server.release_pods("shop"))
    result = harness.check("checks", "web-pods")
    assert_fast_pass(harness, "web-pods", result)
    first = harness.checks("web-pods")[0]
    assert first.status is Status.PENDING
    assert first.message.startswith("0 of 2 web pods ready; web-")
    assert "is Running, not ready (web)" in first.message


def test_pods_ready_names_the_pod_and_its_reason_when_the_budget_runs_out(
    harness: Harness,
) -> None:
    deploy_shop(harness.cluster)
    server = harness.cluster.server
    pod = sorted(p["metadata"]["name"] for p in server.list("pods", "shop"))[0]
    server.set_container_waiting(
        "shop", pod, "ImagePullBackOff", 'Back-off pulling image "fake-service:v9"'
    )
    result = harness.check("checks", "web-pods", within=0.3)
    assert result.status is StepStatus.FAILED
    assert result.message == (
        f"not done after 300ms: 1 of 2 web pods ready; {pod} is Pending: ImagePullBackOff"
    )
    assert result.details is not None and "fake-service:v9" in result.details


def test_pods_ready_ignores_terminating_pods(harness: Harness) -> None:
    deploy_shop(harness.cluster)
    server = harness.cluster.server
    pod = copy.deepcopy(server.list("pods", "shop")[0])
    pod["metadata"]["name"] = "web-old-xk2p9"
    pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    pod["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    server.core.write_internal(("", "pods"), pod)
    assert len(server.list("pods", "shop")) == 3
    result = harness.check("checks", "web-pods")
    assert result.status is StepStatus.PASSED, result.message


def test_pods_ready_reports_forbidden_as_an_error(harness: Harness) -> None:
    deploy_shop(harness.cluster)
    harness.cluster.server.faults.fail("list", status=403, resource="pods", namespace="shop")
    result = harness.check("checks", "web-pods")
    assert result.status is StepStatus.ERROR
    assert result.message.startswith(
        "forbidden: user labrunner-learner cannot list pods in shop; use a context with"
    )


def test_pods_ready_reports_a_stopped_cluster_as_unreachable(harness: Harness) -> None:
    harness.cluster.server.stop()
    result = harness.check("checks", "web-pods")
    assert result.status is StepStatus.ERROR
    assert result.message.startswith(
        f"cluster unreachable at {harness.cluster.server.url}: connection refused"
    )


def test_a_persistent_500_is_an_error_naming_the_request(harness: Harness) -> None:
    deploy_shop(harness.cluster)
    harness.cluster.server.faults.fail("list", status=500, resource="pods")
    result = harness.check("checks", "web-pods")
    assert result.status is StepStatus.ERROR
    assert result.message == (
        "the server returned 500 Internal Server Error for GET /api/v1/namespaces/shop/pods: "
        "Internal error occurred: injected fault"
    )


def test_a_single_500_is_retried_and_the_check_passes(harness: Harness) -> None:
    deploy_shop(harness.cluster)
    harness.cluster.server.faults.fail("list", status=500, resource="pods", times=1)
    result = harness.check("checks", "web-pods")
    assert result.status is StepStatus.PASSED
    assert [c.status for c in harness.checks()] == [Status.PASSED]


def test_throttling_is_pending_with_the_retry_after(harness: Harness) -> None:
    deploy_shop(harness.cluster)
    harness.cluster.server.faults.fail("list", status=429, resource="pods", times=1, retry_after=1)
    result = harness.check("checks", "web-pods")
    assert result.status is StepStatus.PASSED
    first, second = harness.checks()
    assert first.status is Status.PENDING
    assert first.message == "429 too many requests (retry after 1s)"
    # the engine slept the server's Retry-After, not its own 0.1 s backoff
    times = {id(e): t for t, e in harness.events}
    gap = times[id(second)] - times[id(first)]
    assert 0.9 < gap < 1.5


# --------------------------------------------------------------------------- deployment_available


def test_deployment_available_waits_for_the_rollout(harness: Harness) -> None:
    server = harness.cluster.server
    server.hold_pods("shop", "app=web")
    deploy_shop(harness.cluster)
    harness.when_pending(lambda: server.release_pods("shop"))
    result = harness.check("checks", "web-available")
    assert_fast_pass(harness, "web-available", result)
    first = harness.checks("web-available")[0]
    assert first.message.startswith("deployment web: 0 of 2 updated replicas available; web-")


def test_deployment_available_pending_while_missing(harness: Harness) -> None:
    harness.when_pending(lambda: deploy_shop(harness.cluster))
    result = harness.check("checks", "web-available")
    assert_fast_pass(harness, "web-available", result)
    assert harness.checks()[0].message == "deployment web not found in shop"


# --------------------------------------------------------------------------- namespace


def test_namespace_label_set_by_kubectl_while_pending(harness: Harness) -> None:
    deploy_shop(harness.cluster)

    def label() -> None:
        done = harness.cluster.kubectl("label", "namespace", "shop", "istio-injection=enabled")
        assert done.returncode == 0, done.stderr

    harness.when_pending(label)
    result = harness.check("checks", "shop-labelled")
    assert_fast_pass(harness, "shop-labelled", result)
    first = harness.checks()[0]
    assert first.message == "namespace shop has no label istio-injection (expected enabled)"


def test_namespace_with_a_wrong_label_value_fails_at_once(harness: Harness) -> None:
    deploy_shop(harness.cluster)
    done = harness.cluster.kubectl("label", "namespace", "shop", "istio-injection=disabled")
    assert done.returncode == 0, done.stderr
    result = harness.check("checks", "shop-labelled")
    assert result.status is StepStatus.FAILED
    assert result.message == "namespace shop: label istio-injection is disabled, expected enabled"
    assert len(harness.checks()) == 1


def test_namespace_absent_waits_for_the_namespace_to_terminate(harness: Harness) -> None:
    deploy_shop(harness.cluster)
    done = harness.cluster.kubectl("delete", "namespace", "shop", "--wait=false")
    assert done.returncode == 0, done.stderr
    result = harness.check("checks", "shop-gone")
    assert result.status is StepStatus.PASSED
    assert result.message == "namespace shop does not exist"
    messages = [c.message for c in harness.checks()]
    assert messages[0] == "namespace shop is still terminating"


# --------------------------------------------------------------------------- resource


def test_resource_field_mismatch_fails_with_a_readable_diff(harness: Harness) -> None:
    deploy_shop(harness.cluster)
    result = harness.check("checks", "web-replicas")
    assert result.status is StepStatus.FAILED
    assert result.message == "Deployment web in shop: spec.replicas: expected 3, found 2"


def test_resource_fields_match_after_kubectl_scale(harness: Harness) -> None:
    deploy_shop(harness.cluster)
    done = harness.cluster.kubectl("scale", "deployment/web", "-n", "shop", "--replicas=3")
    assert done.returncode == 0, done.stderr
    result = harness.check("checks", "web-replicas")
    assert result.status is StepStatus.PASSED
    assert result.message == "Deployment web in shop with the expected fields"


def test_custom_resource_appears_once_its_crd_and_object_are_applied(
    harness: Harness, istio_crd_docs: list[dict[str, object]]
) -> None:
    """The type is unknown at first; discovery is asked again, so the check notices the CRD."""
    deploy_shop(harness.cluster)
    server = harness.cluster.server
    gateway = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "web-gateway", "namespace": "shop"},
        "spec": {
            "selector": {"istio": "ingressgateway"},
            "servers": [
                {
                    "port": {"number": 80, "name": "http", "protocol": "HTTP"},
                    "hosts": ["shop.example"],
                }
            ],
        },
    }

    def install() -> None:
        server.load_crds(istio_crd_docs)
        server.create(gateway)

    harness.when_pending(install)
    result = harness.check("checks", "gateway")
    assert result.status is StepStatus.PASSED, result.message
    assert harness.checks()[0].message == (
        "the cluster has no resource type 'gateways.networking.istio.io' (is its CRD installed?)"
    )


# --------------------------------------------------------------------------- secret and crd


def test_secret_pending_until_applied_then_passes(harness: Harness) -> None:
    deploy_shop(harness.cluster)
    harness.when_pending(lambda: apply(harness.cluster, "shop/secret.yaml"))
    result = harness.check("checks", "web-tls")
    assert_fast_pass(harness, "web-tls", result)
    assert result.message == "secret web-tls in shop (kubernetes.io/tls; keys: tls.crt, tls.key)"


def test_secret_of_the_wrong_type_fails(harness: Harness) -> None:
    deploy_shop(harness.cluster)
    made = harness.cluster.kubectl(
        "create", "secret", "generic", "web-tls", "-n", "shop", "--from-literal=tls.crt=x"
    )
    assert made.returncode == 0, made.stderr
    result = harness.check("checks", "web-tls")
    assert result.status is StepStatus.FAILED
    assert result.message == "secret web-tls in shop has type Opaque, expected kubernetes.io/tls"
    assert "x" not in result.message.split("type")[0]


def test_crd_pending_until_installed(
    harness: Harness, istio_crd_docs: list[dict[str, object]]
) -> None:
    server = harness.cluster.server
    harness.when_pending(lambda: server.load_crds(istio_crd_docs))
    result = harness.check("checks", "pa-crd")
    assert_fast_pass(harness, "pa-crd", result)
    assert result.message.startswith(
        "CRD peerauthentications.security.istio.io established; serves"
    )


def test_crd_without_the_version_fails(istio_harness: Harness) -> None:
    result = istio_harness.check("checks", "pa-crd-v2")
    assert result.status is StepStatus.FAILED
    assert result.message.startswith(
        "CRD peerauthentications.security.istio.io does not serve v2 (served: "
    )


# ---------------------------------------------------------------- every verifier's errors

EVERY_VERIFIER = [
    ("checks", "web-pods", "pods_ready"),
    ("checks", "web-available", "deployment_available"),
    ("checks", "shop-labelled", "namespace"),
    ("checks", "web-replicas", "resource"),
    ("checks", "web-tls", "secret"),
    ("checks", "pa-crd", "crd"),
    ("istio", "install", "istio_installed"),
    ("istio", "web-sidecars", "sidecar_injected"),
    ("istio", "strict", "peer_authentication"),
]


@pytest.mark.parametrize(("lab", "step", "verifier"), EVERY_VERIFIER)
def test_every_verifier_reports_rbac_denial_as_an_error(
    istio_harness: Harness, lab: str, step: str, verifier: str
) -> None:
    istio_harness.cluster.server.faults.fail("list", status=403)
    result = istio_harness.check(lab, step)
    assert result.status is StepStatus.ERROR
    assert istio_harness.checks(step)[0].verifier == verifier
    assert result.message.startswith("forbidden: user labrunner-learner cannot list "), result


@pytest.mark.parametrize(("lab", "step", "verifier"), EVERY_VERIFIER)
def test_every_verifier_reports_a_stopped_cluster_as_an_error(
    istio_harness: Harness, lab: str, step: str, verifier: str
) -> None:
    server = istio_harness.cluster.server
    server.stop()
    result = istio_harness.check(lab, step)
    assert result.status is StepStatus.ERROR
    assert istio_harness.checks(step)[0].verifier == verifier
    assert result.message.startswith(f"cluster unreachable at {server.url}: connection refused")
