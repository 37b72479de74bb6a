"""Hostile API servers (trickling, hanging, cut, stalled, bad certificates) and traffic counting.

These are the servers the context guard and the error classifier must survive. Each test also
checks what the server itself saw, because a safety test's strongest claim is "the production
server received nothing": every TCP connection, TLS handshake and request is counted.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
import yaml
from kubernetes import client, config

from labrunner.testing.fakecluster import EKS_URL, FakeCluster
from labrunner.testing.fixtures import FakeClusterHandle, FakeClusters

needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is missing")


@pytest.fixture
def plain() -> Iterator[FakeCluster]:
    with FakeCluster() as server:
        yield server


def raw_get(server: FakeCluster, path: str = "/version", timeout: float = 5) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=timeout)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return sock


def core_api(handle: FakeClusterHandle | FakeClusters, context: str | None = None) -> Any:
    configuration = client.Configuration()
    config.load_kube_config(
        config_file=str(handle.kubeconfig), context=context, client_configuration=configuration
    )
    configuration.retries = 0
    return client.ApiClient(configuration)


def test_trickle_defeats_a_per_read_timeout(plain: FakeCluster) -> None:
    plain.faults.trickle(0.1, path="/version")
    sock = raw_get(plain, timeout=1.0)
    started = time.monotonic()
    received = b""
    chunks = 0
    while len(received) < 20:
        data = sock.recv(100)  # never times out: a byte arrives every 0.1 s
        assert data
        received += data
        chunks += 1
    elapsed = time.monotonic() - started
    sock.close()
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert chunks >= 15  # one byte at a time, bar the odd coalesced pair
    assert elapsed >= 1.5
    # Other paths are served at full speed.
    conn = http.client.HTTPConnection(plain.host, plain.port, timeout=5)
    conn.request("GET", "/api")
    assert conn.getresponse().status == 200
    conn.close()


def test_stopping_the_server_ends_a_trickle_promptly() -> None:
    server = FakeCluster().start()
    server.faults.trickle(1.0)
    sock = raw_get(server)
    assert sock.recv(1) == b"H"
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 5
    sock.close()


def test_a_hanging_server_reads_the_request_and_never_answers(plain: FakeCluster) -> None:
    rule = plain.faults.hang(resource="namespaces")
    configuration = client.Configuration(host=plain.url)
    configuration.retries = 0
    api = client.ApiClient(configuration)
    core = client.CoreV1Api(api)
    started = time.monotonic()
    with pytest.raises(urllib3.exceptions.MaxRetryError) as timed_out:
        core.list_namespace(_request_timeout=(2, 1))
    assert isinstance(timed_out.value.reason, urllib3.exceptions.ReadTimeoutError)
    assert time.monotonic() - started >= 1
    assert rule.hits == 1
    assert core.list_namespaced_pod("default").items == []
    plain.faults.clear()
    plain.faults.hang(seconds=0.2, times=1)
    with pytest.raises((urllib3.exceptions.ProtocolError, urllib3.exceptions.MaxRetryError)):
        core.list_namespace(_request_timeout=5)
    hung = [r for r in plain.requests(path_prefix="/api/v1/namespaces") if r.status == 0]
    assert len(hung) == 2
    api.close()


@pytest.mark.parametrize("after", ["headers", "body"])
def test_a_cut_connection_ends_mid_response(plain: FakeCluster, after: str) -> None:
    plain.faults.cut(after, verb="list", resource="namespaces")
    conn = http.client.HTTPConnection(plain.host, plain.port, timeout=5)
    conn.request("GET", "/api/v1/namespaces")
    response = conn.getresponse()
    assert response.status == 200
    promised = int(response.headers["Content-Length"])
    with pytest.raises(http.client.IncompleteRead) as short:
        response.read()
    got = len(short.value.partial)
    if after == "headers":
        assert got == 0
    else:
        assert 0 < got < promised
    conn.close()


@needs_kubectl
def test_kubectl_against_cut_and_trickling_servers(fake_cluster: FakeClusterHandle) -> None:
    fake_cluster.kubectl("get", "ns", check=True)  # warm the discovery cache
    fake_cluster.server.faults.cut("body", verb="list", resource="namespaces")
    cut = fake_cluster.kubectl("get", "ns")
    assert cut.returncode == 1
    assert "unexpected EOF" in cut.stderr
    fake_cluster.server.faults.clear()
    fake_cluster.server.faults.trickle(1.0)
    started = time.monotonic()
    slow = fake_cluster.kubectl("get", "ns", "--request-timeout=2s", timeout=60)
    assert slow.returncode == 1
    assert "Timeout" in slow.stderr or "deadline exceeded" in slow.stderr, slow.stderr
    assert time.monotonic() - started < 45


def test_stalled_connections_are_accepted_and_never_read(fake_cluster_https: Any) -> None:
    server: FakeCluster = fake_cluster_https.server
    server.reset_traffic()
    server.faults.stall_connections()
    context = ssl.create_default_context(cadata=(server.ca_pem or b"").decode())
    raw = socket.create_connection((server.host, server.port), timeout=1.0)
    with pytest.raises((TimeoutError, socket.timeout)):
        context.wrap_socket(raw, server_hostname="127.0.0.1")
    raw.close()
    seen = server.traffic()
    assert (seen.connections, seen.stalled, seen.requests) == (1, 1, 0)
    server.faults.stall_connections(False)
    api = fake_cluster_https.api_client()
    assert client.CoreV1Api(api).list_namespace().items
    api.close()


BAD_TLS = {
    "untrusted": "x509: certificate signed by unknown authority",
    "expired": "x509: certificate has expired or is not yet valid",
    "wrong-name": "x509: cannot validate certificate for 127.0.0.1",
}


@pytest.mark.parametrize("fault", sorted(BAD_TLS))
def test_bad_certificates_fail_the_handshake_and_are_counted(
    fault: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeCluster(token="admin-token", tls_fault=fault) as server:
        assert server.url.startswith("https://")
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        configuration = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
        configuration.retries = 0
        api = client.ApiClient(configuration)
        with pytest.raises(urllib3.exceptions.MaxRetryError) as failure:
            client.CoreV1Api(api).list_namespace(_request_timeout=5)
        assert isinstance(failure.value.reason, urllib3.exceptions.SSLError)
        api.close()
        if shutil.which("kubectl"):
            monkeypatch.setenv("KUBECACHEDIR", str(tmp_path / "cache"))
            result = subprocess.run(
                ["kubectl", "--kubeconfig", str(kubeconfig), "get", "ns"],
                env=dict(os.environ),
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 1
            assert BAD_TLS[fault] in result.stderr
        seen = server.traffic()
        assert seen.requests == 0
        assert seen.connections >= 1
        assert len(seen.tls_failures) == seen.connections


def test_plain_http_to_the_https_port_gets_a_400(fake_cluster_https: Any) -> None:
    server: FakeCluster = fake_cluster_https.server
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    conn.request("GET", "/version")
    response = conn.getresponse()
    assert response.status == 400
    assert b"Client sent an HTTP request to an HTTPS server." in response.read()
    conn.close()


def test_every_connection_is_counted_even_a_silent_one(plain: FakeCluster) -> None:
    assert plain.traffic().untouched
    plain.assert_untouched()
    socket.create_connection((plain.host, plain.port), timeout=5).close()
    seen = plain.traffic()
    assert (seen.connections, seen.requests) == (1, 0)
    assert plain.traffic() == seen  # settling does not count its own probe
    with pytest.raises(AssertionError, match=r"1 connection\(s\), 0 request\(s\)"):
        plain.assert_untouched()
    plain.reset_traffic()
    plain.assert_untouched()


def test_safe_and_prod_kubeconfig_shape(safe_and_prod: FakeClusters) -> None:
    doc = yaml.safe_load(safe_and_prod.kubeconfig.read_text())
    assert doc["current-context"] == "kind-safe"
    clusters = {c["name"]: c["cluster"] for c in doc["clusters"]}
    prod = safe_and_prod.servers["prod"]
    safe = safe_and_prod.servers["safe"]
    assert clusters["kind-safe"]["server"] == safe.url
    assert "proxy-url" not in clusters["kind-safe"]
    for name in ("prod-eks", "kind-prod"):
        assert clusters[name]["server"] == EKS_URL
        assert clusters[name]["proxy-url"] == f"http://127.0.0.1:{prod.port}"
    assert clusters["prod-local"]["server"] == prod.url
    assert safe_and_prod.server_of("kind-prod") is prod


@needs_kubectl
def test_only_the_chosen_cluster_sees_traffic(safe_and_prod: FakeClusters) -> None:
    prod = safe_and_prod.servers["prod"]
    safe = safe_and_prod.servers["safe"]
    shown = safe_and_prod.kubectl("get", "ns", "kube-system", "-o", "jsonpath={.metadata.uid}")
    assert shown.stdout == safe.cluster_uid
    assert not safe.traffic().untouched
    prod.assert_untouched()
    # The EKS-looking contexts really reach prod, through the CONNECT tunnel, no DNS.
    for context in ("prod-eks", "kind-prod"):
        reached = safe_and_prod.kubectl(
            "--context", context, "get", "ns", "kube-system", "-o", "jsonpath={.metadata.uid}"
        )
        assert reached.stdout == prod.cluster_uid, reached.stderr
    tunnels = prod.requests(method="CONNECT")
    assert tunnels and {r.path for r in tunnels} == {"ABC.gr7.us-west-2.eks.amazonaws.com:443"}
    assert any(r.path == "/api/v1/namespaces/kube-system" for r in prod.requests())
    with pytest.raises(AssertionError, match="was reached"):
        prod.assert_untouched()
    safe_and_prod.reset_traffic()
    prod.assert_untouched()
    safe.assert_untouched()


def test_the_python_client_follows_the_proxy_url(safe_and_prod: FakeClusters) -> None:
    prod = safe_and_prod.servers["prod"]
    api = core_api(safe_and_prod, "prod-eks")
    uid = client.CoreV1Api(api).read_namespace("kube-system").metadata.uid
    assert uid == prod.cluster_uid
    assert prod.traffic().requests >= 2  # the CONNECT and the GET
    safe_and_prod.servers["safe"].assert_untouched()
    api.close()
