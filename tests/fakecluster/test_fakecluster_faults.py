"""Injected faults reach clients the way real apiserver failures do."""

from __future__ import annotations

import json
import shutil
import socket
import time
from collections.abc import Iterator

import pytest
import urllib3
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from labrunner.testing.fixtures import FakeClusterHandle


@pytest.fixture
def core(fake_cluster: FakeClusterHandle) -> Iterator[client.CoreV1Api]:
    # urllib3 would otherwise retry a 429 carrying Retry-After three times (sleeping each time).
    configuration = client.Configuration()
    config.load_kube_config(
        config_file=str(fake_cluster.kubeconfig), client_configuration=configuration
    )
    configuration.retries = 0
    api = client.ApiClient(configuration)
    yield client.CoreV1Api(api)
    api.close()


def test_fail_with_500_a_given_number_of_times(
    fake_cluster: FakeClusterHandle, core: client.CoreV1Api
) -> None:
    rule = fake_cluster.server.faults.fail("list", resource="namespaces", status=500, times=2)
    for _ in range(2):
        with pytest.raises(ApiException) as failure:
            core.list_namespace()
        assert failure.value.status == 500
        assert json.loads(failure.value.body)["reason"] == "InternalError"
    assert core.list_namespace().items
    assert rule.hits == 2
    assert fake_cluster.server.faults.rules == []


def test_throttling_and_forbidden(fake_cluster: FakeClusterHandle, core: client.CoreV1Api) -> None:
    faults = fake_cluster.server.faults
    faults.fail("get", resource="namespaces", name="default", status=429, retry_after=7)
    with pytest.raises(ApiException) as throttled:
        core.read_namespace("default")
    assert throttled.value.status == 429
    assert throttled.value.headers["Retry-After"] == "7"
    assert core.read_namespace("kube-system").metadata.name == "kube-system"
    faults.clear()
    faults.fail("list", resource="pods", namespace="kube-system", status=403)
    with pytest.raises(ApiException) as denied:
        core.list_namespaced_pod("kube-system")
    body = json.loads(denied.value.body)
    assert (denied.value.status, body["reason"]) == (403, "Forbidden")
    assert (
        'cannot list resource "pods" in API group "" in the namespace "kube-system"'
        in body["message"]
    )
    assert core.list_namespaced_pod("default").items == []


def test_delay_slows_matching_requests_only(
    fake_cluster: FakeClusterHandle, core: client.CoreV1Api
) -> None:
    fake_cluster.server.faults.delay(0.3, verb="list", resource="configmaps")
    started = time.monotonic()
    core.list_namespaced_config_map("default")
    slow = time.monotonic() - started
    started = time.monotonic()
    core.list_namespaced_service("default")
    fast = time.monotonic() - started
    assert slow >= 0.3
    assert fast < 0.2


def test_dropped_watch_ends_the_stream(
    fake_cluster: FakeClusterHandle, core: client.CoreV1Api
) -> None:
    fake_cluster.server.faults.drop_watch(resource="namespaces", after_events=2)
    events = [e["type"] for e in watch.Watch().stream(core.list_namespace, timeout_seconds=30)]
    assert events == ["ADDED", "ADDED"]
    fake_cluster.server.faults.drop_watch(resource="namespaces", after_seconds=0.2)
    started = time.monotonic()
    events = [
        e["type"]
        for e in watch.Watch().stream(
            core.list_namespace,
            resource_version=str(fake_cluster.server.resource_version),
            timeout_seconds=30,
        )
    ]
    assert events == []
    assert time.monotonic() - started < 5


def test_abruptly_dropped_watch_breaks_the_connection(
    fake_cluster: FakeClusterHandle, core: client.CoreV1Api
) -> None:
    fake_cluster.server.faults.drop_watch(resource="namespaces", after_events=1, abrupt=True)
    seen: list[str] = []
    with pytest.raises((urllib3.exceptions.ProtocolError, ApiException)):
        for event in watch.Watch().stream(core.list_namespace, timeout_seconds=30):
            seen.append(event["type"])
    assert seen == ["ADDED"]


def test_refused_connections_come_back(
    fake_cluster: FakeClusterHandle, core: client.CoreV1Api
) -> None:
    server = fake_cluster.server
    server.faults.refuse_connections()
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", server.port))
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        core.list_namespace(_request_timeout=2)
    server.faults.refuse_connections(False)
    assert core.list_namespace().items


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_reports_injected_errors(fake_cluster: FakeClusterHandle) -> None:
    fake_cluster.kubectl("get", "ns")  # warm the discovery cache
    fake_cluster.server.faults.fail("list", resource="pods", status=500, message="etcd is on fire")
    result = fake_cluster.kubectl("get", "pods")
    assert result.returncode == 1
    assert "etcd is on fire" in result.stderr
