"""The Istio verifiers through the engine, on a stand-in control plane applied with kubectl.

The fake API server serves Istio 1.30.3's own CRDs and injects sidecars the
way Istio's webhook does (``istio-injection=enabled``), as containers or as
native sidecars. ``manifests/istio/control-plane.yaml`` plays the part of
``istioctl install``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labrunner.engine.events import StepStatus
from labrunner.lab.model import Workshop
from labrunner.testing.fakecluster import run_on_host
from labrunner.testing.fixtures import running_fake_cluster
from labrunner.verify.context import CheckContext
from labrunner.verify.outcome import Status
from labrunner.verify.registry import builtin_registry

from .conftest import Harness, apply, deploy_shop

FAST = 0.5


def install(harness: Harness) -> None:
    apply(harness.cluster, "istio/control-plane.yaml")


def test_istio_installed_passes_and_reads_the_version(istio_harness: Harness) -> None:
    install(istio_harness)
    result = istio_harness.check("istio", "install")
    assert result.status is StepStatus.PASSED
    assert result.message == (
        "Istio 1.30.3 installed in istio-system: istiod, istio-ingressgateway available"
    )


def test_istio_installed_waits_for_the_control_plane_to_become_ready(
    istio_harness: Harness,
) -> None:
    server = istio_harness.cluster.server
    server.hold_pods("istio-system", "app=istiod")
    install(istio_harness)
    istio_harness.when_pending(lambda: server.release_pods("istio-system"))
    result = istio_harness.check("istio", "install")
    assert result.status is StepStatus.PASSED
    assert istio_harness.finished_at("install") - istio_harness.released_at < FAST
    first = istio_harness.checks("install")[0]
    assert first.message.startswith("deployment istiod: 0 of 1 updated replicas available; istiod-")


def test_istio_installed_fails_on_another_istio_version(istio_harness: Harness) -> None:
    install(istio_harness)
    done = istio_harness.cluster.kubectl(
        "set", "image", "deployment/istiod", "discovery=docker.io/istio/pilot:1.29.1",
        "-n", "istio-system",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = istio_harness.check("istio", "install")
    assert result.status is StepStatus.FAILED
    assert result.message.startswith(
        "istiod runs Istio 1.29.1, but this workshop pins 1.30.3; install Istio 1.30.3"
    )


def test_istio_not_installed_is_pending_with_what_is_missing(harness: Harness) -> None:
    result = harness.check("istio", "install", within=0.2)
    assert result.status is StepStatus.FAILED
    assert result.message == (
        "not done after 200ms: Istio is not installed: no istiod Deployment in istio-system"
    )


def test_istio_installed_names_missing_crds(harness: Harness) -> None:
    install(harness)  # no Istio CRDs in this cluster
    result = harness.check("istio", "install", within=0.2)
    assert result.status is StepStatus.FAILED
    assert "Istio CRDs missing: virtualservices.networking.istio.io, " in result.message


def test_istio_installed_needs_the_injector_webhook(istio_harness: Harness) -> None:
    install(istio_harness)
    done = istio_harness.cluster.kubectl(
        "delete", "mutatingwebhookconfiguration", "istio-sidecar-injector"
    )
    assert done.returncode == 0, done.stderr
    result = istio_harness.check("istio", "install", within=0.2)
    assert result.status is StepStatus.FAILED
    assert "no sidecar injector webhook yet" in result.message


# --------------------------------------------------------------------------- sidecar_injected


def test_sidecar_injected_after_label_and_restart_from_another_thread(
    istio_harness: Harness,
) -> None:
    deploy_shop(istio_harness.cluster)
    kubectl = istio_harness.cluster.kubectl

    def inject() -> None:
        for args in (
            ("label", "namespace", "shop", "istio-injection=enabled"),
            ("rollout", "restart", "deployment/web", "-n", "shop"),
        ):
            done = kubectl(*args)
            assert done.returncode == 0, done.stderr

    istio_harness.when_pending(inject)
    result = istio_harness.check("istio", "web-sidecars")
    assert result.status is StepStatus.PASSED
    assert result.message == "2 of 2 web pods in shop have the sidecar"
    assert istio_harness.finished_at("web-sidecars") - istio_harness.released_at < FAST
    first = istio_harness.checks("web-sidecars")[0].message
    assert first.startswith("0 of 2 web pods in shop have the Istio sidecar; missing in web-")
    assert first.endswith("(namespace shop is not labelled istio-injection=enabled)")


def test_sidecar_injected_recognises_native_sidecars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workshop: Workshop
) -> None:
    with running_fake_cluster(tmp_path, monkeypatch, native_sidecars=True) as cluster:
        cluster.server.exec_handler = run_on_host
        harness = Harness(cluster, workshop)
        apply(cluster, "shop/namespace.yaml")
        done = cluster.kubectl("label", "namespace", "shop", "istio-injection=enabled")
        assert done.returncode == 0, done.stderr
        apply(cluster, "shop/web.yaml")
        pod = cluster.server.list("pods", "shop")[0]
        assert [c["name"] for c in pod["spec"]["containers"]] == ["web"]
        result = harness.check("istio", "web-sidecars")
        assert result.status is StepStatus.PASSED
        assert result.message == "2 of 2 web pods in shop have the sidecar (native sidecars)"


def test_no_sidecar_check_flags_an_injected_pod(istio_harness: Harness) -> None:
    install(istio_harness)
    done = istio_harness.cluster.kubectl(
        "label", "namespace", "istio-system", "istio-injection=enabled"
    )
    assert done.returncode == 0, done.stderr
    restart = istio_harness.cluster.kubectl(
        "rollout", "restart", "deployment/istiod", "-n", "istio-system"
    )
    assert restart.returncode == 0, restart.stderr
    result = istio_harness.check("istio", "no-sidecar", within=0.2)
    assert result.status is StepStatus.FAILED
    assert "has the Istio sidecar, which it should not" in result.message


# --------------------------------------------------------------------------- peer_authentication


@pytest.fixture
def mesh(istio_harness: Harness) -> Iterator[Harness]:
    install(istio_harness)
    yield istio_harness


def test_peer_authentication_strict_applied_while_pending(mesh: Harness) -> None:
    mesh.when_pending(lambda: apply(mesh.cluster, "istio/peer-authentication-strict.yaml"))
    result = mesh.check("istio", "strict")
    assert result.status is StepStatus.PASSED
    assert mesh.finished_at("strict") - mesh.released_at < FAST
    first = mesh.checks("strict")[0]
    assert first.status is Status.PENDING
    assert first.message == (
        "no PeerAuthentication mesh-wide (in the root namespace istio-system, without a "
        "selector) yet"
    )


def test_peer_authentication_permissive_fails_with_the_mode(mesh: Harness) -> None:
    apply(mesh.cluster, "istio/peer-authentication-permissive.yaml")
    result = mesh.check("istio", "strict")
    assert result.status is StepStatus.FAILED
    assert result.message == (
        "PeerAuthentication istio-system/default: spec.mtls.mode is PERMISSIVE, expected STRICT"
    )
    assert len(mesh.checks("strict")) == 1  # failed at once, not after the budget


def test_a_policy_with_a_selector_is_not_mesh_wide(mesh: Harness) -> None:
    server = mesh.cluster.server
    policy: dict[str, Any] = {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "gateway-only", "namespace": "istio-system"},
        "spec": {
            "selector": {"matchLabels": {"istio": "ingressgateway"}},
            "mtls": {"mode": "STRICT"},
        },
    }
    server.create(policy)
    result = mesh.check("istio", "strict", within=0.2)
    assert result.status is StepStatus.FAILED
    assert result.message.startswith("not done after 200ms: no PeerAuthentication mesh-wide")


def test_resource_check_reports_the_mode_difference(mesh: Harness, tmp_path: Path) -> None:
    apply(mesh.cluster, "istio/peer-authentication-permissive.yaml")
    spec = builtin_registry().get("resource")
    assert spec is not None
    ctx = CheckContext(env=dict(mesh.cluster.env), cwd=tmp_path, workdir=tmp_path)
    outcome = spec.func(
        ctx,
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "PeerAuthentication",
            "namespace": "istio-system",
            "name": "default",
            "fields": {"spec": {"mtls": {"mode": "STRICT"}}},
        },
    )
    ctx.resources.close()
    assert outcome.status is Status.FAILED
    assert outcome.message == (
        "PeerAuthentication default in istio-system: spec.mtls.mode: expected STRICT, "
        "found PERMISSIVE"
    )
