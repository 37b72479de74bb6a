"""The cluster layer against the fake API server: kubeconfig, client, discovery, watches, errors.

These call the cluster layer and single verifiers directly (no shell), so
each scenario costs milliseconds: which kubeconfig and context a check uses,
that one client serves a whole run, what discovery resolves, how a watch
waiter behaves when the cluster changes, stays quiet, drops the watch or
forbids it, and how transport failures read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import labrunner
from labrunner.cluster.errors import UnknownType
from labrunner.cluster.resources import PODS
from labrunner.testing.fakecluster import FakeCluster
from labrunner.testing.fixtures import FakeClusterHandle
from labrunner.verify.context import CheckContext
from labrunner.verify.kube import connect
from labrunner.verify.kube import connection as kube
from labrunner.verify.outcome import Outcome, Status
from labrunner.verify.registry import builtin_registry

NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}


def run(name: str, ctx: CheckContext, params: dict[str, Any]) -> Outcome:
    spec = builtin_registry().get(name)
    assert spec is not None
    return spec.func(ctx, params)


def context_for(env: dict[str, str], tmp_path: Path, **kw: Any) -> CheckContext:
    return CheckContext(
        env=env, cwd=tmp_path, workdir=tmp_path, deadline=time.monotonic() + 10, **kw
    )


# --------------------------------------------------------------------------- kubeconfig


def test_no_kubeconfig_at_all(tmp_path: Path) -> None:
    ctx = context_for({"HOME": str(tmp_path)}, tmp_path)
    outcome = run("namespace", ctx, {"name": "default"})
    assert outcome.status is Status.ERROR
    assert outcome.message.startswith(
        "no kubeconfig: KUBECONFIG is unset and ~/.kube/config does not exist; create a "
        "workshop cluster"
    )


def test_kubeconfig_pointing_at_missing_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    ctx = context_for({"HOME": str(tmp_path), "KUBECONFIG": str(missing)}, tmp_path)
    outcome = run("namespace", ctx, {"name": "default"})
    assert outcome.status is Status.ERROR
    assert outcome.message.startswith(f"no kubeconfig: KUBECONFIG={missing} but no such file")


@pytest.fixture
def two_clusters(tmp_path: Path) -> Iterator[tuple[FakeCluster, FakeCluster, dict[str, str]]]:
    """Clusters A and B, their contexts in separate files, and an overlay choosing kind-b."""
    with FakeCluster() as a, FakeCluster() as b:
        a_file = a.write_kubeconfig(tmp_path / "a.yaml", context="kind-a")
        b_file = b.write_kubeconfig(tmp_path / "b.yaml", context="kind-b")
        overlay = tmp_path / "overlay.yaml"
        overlay.write_text(yaml.safe_dump({"current-context": "kind-b"}))
        joined = ":".join(str(p) for p in (overlay, a_file, b_file))
        yield a, b, {"HOME": str(tmp_path), "KUBECONFIG": joined}


def test_merged_kubeconfig_files_and_explicit_context(
    two_clusters: tuple[FakeCluster, FakeCluster, dict[str, str]], tmp_path: Path
) -> None:
    a, b, env = two_clusters
    b.create(NAMESPACE)
    current = context_for(env, tmp_path)
    assert run("namespace", current, {"name": "shop"}).status is Status.PASSED
    chosen = context_for(env, tmp_path, kube_context="kind-a")
    outcome = run("namespace", chosen, {"name": "shop"})
    assert outcome.status is Status.PENDING
    assert outcome.message == "namespace shop does not exist"
    assert a.requests(path_prefix="/api/v1/namespaces") and b.requests(
        path_prefix="/api/v1/namespaces"
    )
    current.resources.close()
    chosen.resources.close()


def test_unknown_context_lists_the_known_ones(
    two_clusters: tuple[FakeCluster, FakeCluster, dict[str, str]], tmp_path: Path
) -> None:
    _, _, env = two_clusters
    ctx = context_for(env, tmp_path, kube_context="prod-eu")
    outcome = run("namespace", ctx, {"name": "shop"})
    assert outcome.status is Status.ERROR
    assert outcome.message.startswith("kube context 'prod-eu' is not in the kubeconfig (")
    assert outcome.message.endswith("contexts there: kind-a, kind-b")


def test_one_client_per_run_reused_by_every_check(
    fake_cluster: FakeClusterHandle, check_ctx: CheckContext
) -> None:
    first = kube(check_ctx)
    for _ in range(5):
        assert run("namespace", check_ctx, {"name": "default"}).ok
    assert kube(check_ctx) is first
    agents = {r.user_agent for r in fake_cluster.server.requests(path_prefix="/api/v1")}
    assert agents == {f"labrunner/{labrunner.__version__}"}
    closed: list[bool] = []
    first.pool.clear = lambda: closed.append(True)
    check_ctx.resources.close()
    assert closed == [True]


def test_https_with_a_token_and_a_wrong_token(
    fake_cluster_https: FakeClusterHandle, tmp_path: Path
) -> None:
    ctx = context_for(dict(fake_cluster_https.env), tmp_path)
    assert run("namespace", ctx, {"name": "default"}).ok
    ctx.resources.close()
    fake_cluster_https.server.token = "rotated"
    stale = context_for(dict(fake_cluster_https.env), tmp_path)
    outcome = run("namespace", stale, {"name": "default"})
    assert outcome.status is Status.ERROR
    assert outcome.message.startswith("unauthorized: the API server rejected")
    stale.resources.close()


def test_a_slow_api_server_is_pending_within_the_checks_deadline(
    fake_cluster: FakeClusterHandle, tmp_path: Path
) -> None:
    fake_cluster.server.faults.delay(3.0, verb="list", resource="namespaces")
    ctx = CheckContext(
        env=dict(fake_cluster.env),
        cwd=tmp_path,
        workdir=tmp_path,
        deadline=time.monotonic() + 0.5,
    )
    started = time.monotonic()
    outcome = run("namespace", ctx, {"name": "default"})
    assert time.monotonic() - started < 1.5
    assert outcome.status is Status.PENDING
    assert outcome.message.startswith(f"the API server at {fake_cluster.server.url} did not answer")
    ctx.resources.close()


# --------------------------------------------------------------------------- discovery


def test_discovery_resolves_builtin_and_custom_types(
    fake_cluster_istio: FakeClusterHandle, check_ctx: CheckContext
) -> None:
    cluster = connect(check_ctx)
    pa = cluster.resource_type(api_version="security.istio.io/v1", kind="PeerAuthentication")
    assert (pa.plural, pa.namespaced) == ("peerauthentications", True)
    assert pa.collection("istio-system") == (
        "/apis/security.istio.io/v1/namespaces/istio-system/peerauthentications"
    )
    assert cluster.resource_type(resource="peerauthentications.security.istio.io") == pa
    assert cluster.resource_type(resource="pa.security.istio.io") == pa
    deploy = cluster.resource_type(resource="deploy")
    assert deploy.qualified == "deployments.apps"
    assert cluster.resource_type(resource="deployments.v1.apps") == deploy
    namespaces = cluster.resource_type(resource="namespaces")
    assert not namespaces.namespaced and namespaces.collection("x") == "/api/v1/namespaces"
    with pytest.raises(UnknownType, match=r"no resource type 'widgets\.example\.com'"):
        cluster.resource_type(resource="widgets.example.com")
    with pytest.raises(UnknownType, match=r"does not serve security\.istio\.io/v9"):
        cluster.resource_type(api_version="security.istio.io/v9", kind="PeerAuthentication")


def test_discovery_answers_are_cached_for_the_run(
    fake_cluster_istio: FakeClusterHandle, check_ctx: CheckContext
) -> None:
    server = fake_cluster_istio.server
    params = {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication", "exists": False}
    for _ in range(4):
        assert run("resource", check_ctx, params).ok
    lists = server.requests(path_prefix="/apis/security.istio.io/v1/namespaces/default/")
    discovery = [r for r in server.requests() if r.path == "/apis/security.istio.io/v1"]
    assert len(discovery) == 1
    assert len(lists) >= 3  # the last record may land after the check returned


# --------------------------------------------------------------------------- watches


@pytest.fixture
def shop(fake_cluster: FakeClusterHandle) -> FakeCluster:
    server = fake_cluster.server
    server.create(NAMESPACE)
    return server


def pod_waiter(ctx: CheckContext) -> Any:
    cluster = connect(ctx)
    return cluster.waiter(cluster.list(PODS, namespace="shop", label_selector="app=web"))


def add_pod(server: FakeCluster, name: str = "web-1") -> None:
    server.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "shop", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]},
        }
    )


def timed(wait: Any, timeout: float) -> tuple[bool, float]:
    started = time.monotonic()
    changed = wait(timeout)
    return changed, time.monotonic() - started


def test_waiter_returns_on_the_first_change(shop: FakeCluster, check_ctx: CheckContext) -> None:
    wait = pod_waiter(check_ctx)
    threading.Timer(0.2, add_pod, args=(shop,)).start()
    changed, took = timed(wait, 5)
    assert changed and 0.15 < took < 0.6


def test_waiter_sees_a_change_made_before_it_started(
    shop: FakeCluster, check_ctx: CheckContext
) -> None:
    wait = pod_waiter(check_ctx)
    add_pod(shop)  # between the list and the watch: the resourceVersion covers it
    changed, took = timed(wait, 5)
    assert changed and took < 0.3


def test_waiter_times_out_quietly(shop: FakeCluster, check_ctx: CheckContext) -> None:
    add_pod(shop, "other")
    shop.patch("pods", "other", {"metadata": {"labels": {"app": "other"}}}, "shop")
    wait = pod_waiter(check_ctx)
    changed, took = timed(wait, 0.4)
    assert not changed and 0.35 < took < 0.9


def test_a_dropped_watch_asks_for_a_fresh_look(shop: FakeCluster, check_ctx: CheckContext) -> None:
    """An event may have been lost with the stream, so the waiter returns (the check
    lists again) instead of trusting a new watch from the old resourceVersion."""
    shop.faults.drop_watch(resource="pods", after_seconds=0.1, times=1)
    wait = pod_waiter(check_ctx)
    changed, took = timed(wait, 5)
    assert changed and took < 0.8
    (dropped,) = shop.requests(verb="watch")
    assert dropped.duration < 0.3


def test_waiter_falls_back_to_polling_when_watch_is_forbidden(
    shop: FakeCluster, check_ctx: CheckContext
) -> None:
    shop.faults.fail("watch", status=403, resource="pods")
    wait = pod_waiter(check_ctx)
    changed, took = timed(wait, 5)
    assert not changed and 0.9 < took < 1.5


def test_waiter_returns_promptly_when_the_run_is_cancelled(
    shop: FakeCluster, check_ctx: CheckContext
) -> None:
    wait = pod_waiter(check_ctx)
    threading.Timer(0.2, check_ctx.cancel.set).start()
    changed, took = timed(wait, 10)
    assert not changed and took < 0.8


def test_a_rewritten_kubeconfig_gets_a_new_connection(tmp_path: Path) -> None:
    """A step that recreates the cluster rewrites the kubeconfig; checks follow it."""
    with FakeCluster() as old, FakeCluster() as new:
        path = old.write_kubeconfig(tmp_path / "config")
        ctx = context_for({"HOME": str(tmp_path), "KUBECONFIG": str(path)}, tmp_path)
        new.create(NAMESPACE)
        assert run("namespace", ctx, {"name": "shop"}).status is Status.PENDING
        new.write_kubeconfig(path)
        assert run("namespace", ctx, {"name": "shop"}).status is Status.PASSED
        ctx.resources.close()
