"""The fake API server judged by the real ``kubernetes`` Python client (v37, pydantic models)."""

from __future__ import annotations

import http.server
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from kubernetes.stream import portforward, stream

from labrunner.testing.fakecluster import ExecResult
from labrunner.testing.fakecluster.tls import generate
from labrunner.testing.fixtures import FakeClusterHandle

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web", "version": "v1"}},
            "spec": {
                "containers": [
                    {
                        "name": "web",
                        "image": "nginx:1.27",
                        "env": [{"name": "A", "value": "1"}],
                        "ports": [{"containerPort": 8080}],
                    }
                ]
            },
        },
    },
}


@pytest.fixture
def api(fake_cluster: FakeClusterHandle) -> Iterator[client.ApiClient]:
    fake_cluster.server.create(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
    )
    api_client = fake_cluster.api_client()
    yield api_client
    api_client.close()


def test_core_reads_and_selectors(fake_cluster: FakeClusterHandle, api: client.ApiClient) -> None:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    assert "kube-system" in {n.metadata.name for n in core.list_namespace().items}
    assert core.read_namespace("shop").status.phase == "Active"
    apps.create_namespaced_deployment("shop", DEPLOYMENT)
    fake_cluster.server.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "canary",
                "namespace": "shop",
                "labels": {"app": "web", "version": "v2"},
            },
            "spec": {"containers": [{"name": "web", "image": "nginx"}]},
        }
    )
    pods = core.list_namespaced_pod("shop", label_selector="app in (web,x),version!=v2")
    assert len(pods.items) == 2
    pod = pods.items[0]
    assert pod.status.phase == "Running"
    assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "True"
    assert pod.status.container_statuses[0].ready is True
    assert pod.status.container_statuses[0].state.running is not None
    assert pod.status.pod_ip and pod.status.host_ip and pod.status.start_time
    assert pod.metadata.owner_references[0].kind == "ReplicaSet"
    assert pod.metadata.labels["pod-template-hash"] in pod.metadata.name
    assert {
        p.metadata.name for p in core.list_namespaced_pod("shop", label_selector="!version").items
    } == set()
    assert len(core.list_namespaced_pod("shop", label_selector="version").items) == 3
    by_name = core.list_namespaced_pod("shop", field_selector="metadata.name=canary")
    assert [p.metadata.name for p in by_name.items] == ["canary"]
    assert len(core.list_pod_for_all_namespaces(label_selector="app=web").items) == 3
    with pytest.raises(ApiException) as bad:
        core.list_namespaced_pod("shop", field_selector="spec.bogus=1")
    assert bad.value.status == 400


def test_list_pages_with_limit_and_continue(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    for n in range(5):
        core.create_namespaced_config_map("shop", {"metadata": {"name": f"cm{n}"}})
    first = core.list_namespaced_config_map("shop", limit=2)
    assert [c.metadata.name for c in first.items] == ["cm0", "cm1"]
    assert first.metadata.remaining_item_count == 3
    rest = core.list_namespaced_config_map("shop", limit=10, _continue=first.metadata._continue)
    assert [c.metadata.name for c in rest.items] == ["cm2", "cm3", "cm4"]


def test_patches_updates_and_conflicts(
    fake_cluster: FakeClusterHandle, api: client.ApiClient
) -> None:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    apps.create_namespaced_deployment("shop", DEPLOYMENT)
    patched = apps.patch_namespaced_deployment(
        "web",
        "shop",
        {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.28"}]}}}},
    )
    container = patched.spec.template.spec.containers[0]
    assert (container.image, container.env[0].name, container.ports[0].container_port) == (
        "nginx:1.28",
        "A",
        8080,
    )
    assert patched.metadata.generation == 2
    status = apps.read_namespaced_deployment_status("web", "shop").status
    assert (status.updated_replicas, status.ready_replicas, status.observed_generation) == (2, 2, 2)

    cm = core.create_namespaced_config_map(
        "shop", {"metadata": {"name": "cfg"}, "data": {"a": "1"}}
    )
    stale = cm.metadata.resource_version
    core.patch_namespaced_config_map("cfg", "shop", {"data": {"b": "2"}})
    body = {"metadata": {"name": "cfg", "resourceVersion": stale}, "data": {"c": "3"}}
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_config_map("cfg", "shop", body)
    assert conflict.value.status == 409
    assert json.loads(conflict.value.body)["reason"] == "Conflict"
    body["metadata"]["resourceVersion"] = core.read_namespaced_config_map(
        "cfg", "shop"
    ).metadata.resource_version
    assert core.replace_namespaced_config_map("cfg", "shop", body).data == {"c": "3"}
    ops = [{"op": "add", "path": "/data/d", "value": "4"}, {"op": "remove", "path": "/data/c"}]
    assert core.patch_namespaced_config_map("cfg", "shop", ops).data == {"d": "4"}

    with pytest.raises(ApiException) as missing:
        core.read_namespaced_pod("nope", "shop")
    assert missing.value.status == 404
    assert json.loads(missing.value.body)["message"] == 'pods "nope" not found'
    with pytest.raises(ApiException) as exists:
        core.create_namespace({"metadata": {"name": "shop"}})
    assert exists.value.status == 409
    with pytest.raises(ApiException) as no_ns:
        core.create_namespaced_config_map("ghost", {"metadata": {"name": "x"}})
    assert (no_ns.value.status, json.loads(no_ns.value.body)["message"]) == (
        404,
        'namespaces "ghost" not found',
    )
    with pytest.raises(ApiException) as invalid:
        core.create_namespaced_pod(
            "shop", {"metadata": {"name": "empty"}, "spec": {"containers": []}}
        )
    assert invalid.value.status == 422
    assert json.loads(invalid.value.body)["details"]["causes"][0]["field"] == "spec.containers"


def test_status_subresource_is_separate_from_the_main_resource(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(
        "shop",
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
    )
    core.patch_namespaced_pod(
        "p", "shop", {"metadata": {"labels": {"x": "y"}}, "status": {"phase": "Failed"}}
    )
    assert core.read_namespaced_pod("p", "shop").status.phase == "Running"
    core.patch_namespaced_pod_status("p", "shop", {"status": {"phase": "Succeeded"}})
    pod = core.read_namespaced_pod("p", "shop")
    assert (pod.status.phase, pod.metadata.labels) == ("Succeeded", {"x": "y"})


def test_delete_return_types_match_the_openapi_spec(
    fake_cluster: FakeClusterHandle, api: client.ApiClient
) -> None:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    core.create_namespaced_service(
        "shop",
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
        },
    )
    core.create_namespaced_service_account("shop", {"metadata": {"name": "robot"}})
    apps.create_namespaced_deployment("shop", DEPLOYMENT)
    assert isinstance(core.delete_namespaced_service("web", "shop"), client.V1Service)
    assert isinstance(
        core.delete_namespaced_service_account("robot", "shop"), client.V1ServiceAccount
    )
    pod_name = core.list_namespaced_pod("shop").items[0].metadata.name
    assert isinstance(core.delete_namespaced_pod(pod_name, "shop"), client.V1Pod)
    replacement = core.list_namespaced_pod("shop").items
    assert len(replacement) == 2
    assert pod_name not in {p.metadata.name for p in replacement}
    assert apps.delete_namespaced_deployment("web", "shop")["status"] == "Success"
    assert core.list_namespaced_pod("shop").items == []
    assert fake_cluster.server.list("replicasets", "shop") == []
    core.delete_namespace("shop")
    assert core.read_namespace("shop").status.phase == "Terminating"


def test_custom_objects(fake_cluster_istio: FakeClusterHandle) -> None:
    fake_cluster_istio.server.create(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
    )
    api = fake_cluster_istio.api_client()
    co = client.CustomObjectsApi(api)
    group, version, plural = "security.istio.io", "v1", "peerauthentications"
    pa = {
        "apiVersion": f"{group}/{version}",
        "kind": "PeerAuthentication",
        "metadata": {"name": "default"},
        "spec": {"mtls": {"mode": "STRICT"}},
    }
    co.create_namespaced_custom_object(group, version, "shop", plural, pa)
    assert (
        co.list_namespaced_custom_object(group, version, "shop", plural)["items"][0]["spec"][
            "mtls"
        ]["mode"]
        == "STRICT"
    )
    assert len(co.list_cluster_custom_object(group, version, plural)["items"]) == 1
    assert (
        co.get_namespaced_custom_object(group, "v1beta1", "shop", plural, "default")["apiVersion"]
        == "security.istio.io/v1beta1"
    )
    patched = co.patch_namespaced_custom_object(
        group, version, "shop", plural, "default", {"spec": {"mtls": {"mode": "PERMISSIVE"}}}
    )
    assert patched["spec"]["mtls"]["mode"] == "PERMISSIVE"
    assert patched["metadata"]["generation"] == 2
    with pytest.raises(ApiException) as invalid:
        co.patch_namespaced_custom_object(
            group, version, "shop", plural, "default", {"spec": {"mtls": {"mode": "STRIKT"}}}
        )
    assert invalid.value.status == 422
    assert (
        co.delete_namespaced_custom_object(group, version, "shop", plural, "default")["status"]
        == "Success"
    )
    with pytest.raises(ApiException) as gone:
        co.get_namespaced_custom_object(group, version, "shop", plural, "default")
    assert gone.value.status == 404
    api.close()


def test_watch_honours_resource_version_selectors_and_timeout(
    fake_cluster: FakeClusterHandle, api: client.ApiClient
) -> None:
    core = client.CoreV1Api(api)
    server = fake_cluster.server
    server.hold_pods("shop", "app=web")
    client.AppsV1Api(api).create_namespaced_deployment("shop", DEPLOYMENT)
    listing = core.list_namespaced_pod("shop", label_selector="app=web")
    assert all(p.status.conditions[2].status == "False" for p in listing.items)

    replay = watch.Watch()
    replayed = []
    for event in replay.stream(
        core.list_namespaced_pod, "shop", label_selector="app=web", resource_version="0"
    ):
        replayed.append(event["type"])
        if len(replayed) == 2:
            replay.stop()
    assert replayed == ["ADDED", "ADDED"]
    ended = list(watch.Watch().stream(core.list_namespaced_config_map, "shop", timeout_seconds=1))
    assert ended == []

    def release() -> None:
        assert server.wait_for_watch("pods", "shop")
        server.release_pods("shop", "app=web")

    releaser = threading.Thread(target=release)
    releaser.start()
    seen: list[tuple[str, bool]] = []
    w = watch.Watch()
    for event in w.stream(
        core.list_namespaced_pod,
        "shop",
        label_selector="app=web",
        resource_version=listing.metadata.resource_version,
        timeout_seconds=10,
    ):
        ready = {c.type: c.status for c in event["object"].status.conditions}["Ready"] == "True"
        seen.append((event["type"], ready))
        if len(seen) == 2:
            w.stop()
    releaser.join()
    assert seen == [("MODIFIED", True), ("MODIFIED", True)]


def test_port_forward_reaches_a_real_tls_server(
    fake_cluster: FakeClusterHandle, api: client.ApiClient, tmp_path: Path
) -> None:
    material = generate(("127.0.0.1", "web.shop.svc"))
    (tmp_path / "cert.pem").write_bytes(material.cert_pem)
    (tmp_path / "key.pem").write_bytes(material.key_pem)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"hello {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Hello)
    httpd.socket = server_context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    ).start()
    try:
        client.AppsV1Api(api).create_namespaced_deployment("shop", DEPLOYMENT)
        fake_cluster.server.port_forward_target(
            "shop", "app=web", 8443, "127.0.0.1", httpd.server_address[1]
        )
        pod = client.CoreV1Api(api).list_namespaced_pod("shop").items[0].metadata.name
        forward = portforward(
            client.CoreV1Api(api).connect_get_namespaced_pod_portforward, pod, "shop", ports="8443"
        )
        raw = forward.socket(8443)
        raw.setblocking(True)
        context = ssl.create_default_context(cadata=material.ca_pem.decode())
        with context.wrap_socket(raw._socket, server_hostname="web.shop.svc") as tls_sock:
            tls_sock.sendall(b"GET /status HTTP/1.0\r\nHost: web\r\n\r\n")
            reply = b""
            while chunk := tls_sock.recv(4096):
                reply += chunk
        assert reply.startswith(b"HTTP/1.0 200")
        assert reply.endswith(b"hello /status")

        unknown = portforward(
            client.CoreV1Api(api).connect_get_namespaced_pod_portforward, pod, "shop", ports="9999"
        )
        sock = unknown.socket(9999)
        sock.setblocking(True)
        assert sock.recv(10) == b""
        assert "no port-forward target registered for port 9999" in (unknown.error(9999) or "")
    finally:
        httpd.shutdown()


def test_exec_stream_and_exit_code(fake_cluster: FakeClusterHandle, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(
        "shop",
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
    )
    fake_cluster.server.exec_handler = lambda ns, pod, container, cmd: ExecResult(
        stdout=f"{ns}/{pod}/{container}: {' '.join(cmd)}\n".encode(),
        exit_code=0 if cmd[0] == "ok" else 7,
    )
    out = stream(
        core.connect_get_namespaced_pod_exec,
        "p",
        "shop",
        command=["ok", "go"],
        stderr=True,
        stdout=True,
        stdin=False,
        tty=False,
    )
    assert out == "shop/p/c: ok go\n"
    resp = stream(
        core.connect_get_namespaced_pod_exec,
        "p",
        "shop",
        command=["bad"],
        stderr=True,
        stdout=True,
        stdin=False,
        tty=False,
        _preload_content=False,
    )
    resp.run_forever(timeout=5)
    assert resp.returncode == 7


def test_service_proxy_relays_to_a_registered_target(
    fake_cluster: FakeClusterHandle, api: client.ApiClient
) -> None:
    class Jaeger(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"path": self.path, "data": [{"traceID": "abc"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Jaeger)
    threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    ).start()
    try:
        core = client.CoreV1Api(api)
        core.create_namespaced_service(
            "shop",
            {
                "metadata": {"name": "tracing"},
                "spec": {"ports": [{"name": "http-query", "port": 16686}]},
            },
        )
        fake_cluster.server.service_proxy_target(
            "shop", "tracing", 16686, f"http://127.0.0.1:{httpd.server_address[1]}"
        )
        reply = core.connect_get_namespaced_service_proxy_with_path(
            "tracing:16686",
            "shop",
            "api/traces",
            path2="api/traces?service=web",
            _preload_content=False,
        )
        data = json.loads(reply.data)
        assert data["path"].startswith("/api/traces")
        assert data["data"] == [{"traceID": "abc"}]
        with pytest.raises(ApiException) as nothing:
            core.connect_get_namespaced_service_proxy_with_path("tracing:9999", "shop", "x")
        assert nothing.value.status == 503
    finally:
        httpd.shutdown()


def test_stopped_server_refuses_connections(fake_cluster: FakeClusterHandle) -> None:
    api = fake_cluster.api_client()
    api.configuration.retries = 0
    core = client.CoreV1Api(api)
    fake_cluster.server.stop()
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", fake_cluster.server.port))
    with pytest.raises(Exception, match=r"(?i)refused"):
        core.list_namespace(_request_timeout=2)
