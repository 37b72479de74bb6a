"""Checks that go through Kubernetes, against the fake API server with the real kubectl.

``from:`` runs curl "inside a pod": the real kubectl execs over the fake's
websocket, whose ``run_on_host`` handler runs the real curl here. ``via:``
opens a port-forward through the Python client to a pod behind a Service,
which the fake relays to a test server on loopback. Secrets and the Jaeger
service proxy go through the same fake.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from labrunner.testing.fakecluster import ExecResult, run_on_host
from labrunner.testing.fixtures import FakeClusterHandle
from labrunner.verify.context import RunResources
from labrunner.verify.outcome import Status

from .conftest import Certs, Served, make_ctx, one_line, run_check


def deployment(
    name: str, namespace: str, *, port: int = 8080, account: str | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": name,
                "image": "docker.io/curlimages/curl:8.11.1",
                "ports": [{"name": "http", "containerPort": port}],
            }
        ]
    }
    if account:
        spec["serviceAccountName"] = account
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }


def service(
    name: str, namespace: str, port: int, target: int | str, selector: dict[str, str]
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": port, "targetPort": target}],
        },
    }


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def wait_ready(cluster: FakeClusterHandle, ns: str, app: str) -> None:
    done = cluster.kubectl(
        "wait", "--for=condition=Ready", "pod", "-l", f"app={app}", "-n", ns, "--timeout=30s"
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture
def sleep_pod(fake_cluster: FakeClusterHandle) -> FakeClusterHandle:
    """A ready ``sleep`` deployment in ``default`` whose exec runs commands on this host."""
    fake_cluster.server.apply(deployment("sleep", "default"))
    wait_ready(fake_cluster, "default", "sleep")
    fake_cluster.server.exec_handler = run_on_host
    return fake_cluster


FROM_SLEEP = {"namespace": "default", "deployment": "sleep"}


def test_from_pod_gets_the_response(
    tmp_path: Path, sleep_pod: FakeClusterHandle, serve: Any
) -> None:
    server: Served = serve()
    ctx = make_ctx(tmp_path, env=sleep_pod.env, budget=60)
    outcome = one_line(
        run_check(
            "http",
            {
                "url": server.url("/"),
                "host": "istioinaction.io",
                "from": FROM_SLEEP,
                "expect": {"status": 200, "json": {"name": "web-api"}},
            },
            ctx,
        )
    )
    assert outcome.status is Status.PASSED, outcome
    assert outcome.message.startswith(f"GET {server.url('/')} from default/sleep → HTTP 200")
    assert server.requests[0]["headers"]["Host"] == "istioinaction.io"


def test_from_pod_failures_carry_curls_exit_code(
    tmp_path: Path, sleep_pod: FakeClusterHandle, closed_port: int
) -> None:
    ctx = make_ctx(tmp_path, env=sleep_pod.env, budget=60)
    url = f"http://127.0.0.1:{closed_port}/"
    waiting = one_line(run_check("http", {"url": url, "from": FROM_SLEEP}, ctx))
    assert waiting.status is Status.PENDING
    assert "the connection was refused (curl exit 7:" in waiting.message
    expected = one_line(
        run_check("http", {"url": url, "from": FROM_SLEEP, "expect": {"fails": "refused"}}, ctx)
    )
    assert expected.ok and "curl exit 7" in expected.message


def test_from_pod_mutual_tls_and_counts(
    tmp_path: Path, sleep_pod: FakeClusterHandle, serve: Any, certs: Certs
) -> None:
    server: Served = serve(tls="payments", client_ca="mesh-ca")
    ctx = make_ctx(tmp_path, env=sleep_pod.env, budget=60)
    base = {
        "url": f"https://localhost:{server.port}/",
        "ca": str(certs.crt("mesh-ca")),
        "from": FROM_SLEEP,
    }
    rejected = one_line(run_check("http", {**base, "expect": {"fails": "tls"}}, ctx))
    assert rejected.ok and "curl exit 56" in rejected.message
    accepted = one_line(
        run_check(
            "http",
            {
                **base,
                "cert": str(certs.crt("frontend")),
                "key": str(certs.key("frontend")),
                "count": 5,
            },
            ctx,
        )
    )
    assert accepted.ok, accepted
    assert accepted.message.endswith("5 of 5 requests matched")
    assert len(server.requests) == 5


def test_from_a_missing_deployment_fails(tmp_path: Path, fake_cluster: FakeClusterHandle) -> None:
    ctx = make_ctx(tmp_path, env=fake_cluster.env, budget=60)
    outcome = one_line(
        run_check(
            "http",
            {"url": "http://x/", "from": {"namespace": "default", "deployment": "nope"}},
            ctx,
        )
    )
    assert outcome.status is Status.FAILED
    assert "default/deploy/nope not found" in outcome.message


def test_from_a_pod_without_curl(tmp_path: Path, sleep_pod: FakeClusterHandle) -> None:
    def no_curl(ns: str, pod: str, container: str, command: list[str]) -> ExecResult:
        done = subprocess.run(
            ["/bin/sh", *command[1:]],
            capture_output=True,
            env={"PATH": "/nonexistent"},
            check=False,
        )
        return ExecResult(done.stdout, done.stderr, done.returncode)

    sleep_pod.server.exec_handler = no_curl
    ctx = make_ctx(tmp_path, env=sleep_pod.env, budget=60)
    outcome = one_line(run_check("http", {"url": "http://x/", "from": FROM_SLEEP}, ctx))
    assert outcome.status is Status.ERROR
    assert outcome.message.startswith("curl is not available in default/deploy/sleep")


@pytest.mark.parametrize(
    ("stderr", "status", "message"),
    [
        (
            'error: unable to upgrade connection: container not found ("istio-proxy")\n',
            Status.FAILED,
            "container not found",
        ),
        (
            "error: unable to upgrade connection: pod does not exist\n",
            Status.PENDING,
            "pod does not exist",
        ),
        (
            "error: Internal error occurred: error executing command in container:"
            ' exec: "sh": executable file not found in $PATH\n',
            Status.ERROR,
            "cannot run sh in default/deploy/sleep",
        ),
        (
            "Unable to connect to the server: dial tcp 127.0.0.1:6443:"
            " connect: connection refused\n",
            Status.ERROR,
            "cannot reach the Kubernetes API",
        ),
    ],
)
def test_exec_failures_as_kubectl_reports_them(stderr: str, status: Status, message: str) -> None:
    from labrunner import procs
    from labrunner.verify.requests import _exec_problem

    result = procs.ProcResult(
        argv=("kubectl",), returncode=1, stdout="", stderr=stderr, duration=0.1
    )
    outcome = _exec_problem(result, where="default/deploy/sleep")
    assert outcome.status is status
    assert message in outcome.message


# --------------------------------------------------------------------------- via port-forward


@pytest.fixture
def web_api(fake_cluster: FakeClusterHandle) -> FakeClusterHandle:
    server = fake_cluster.server
    server.apply(namespace("istioinaction"))
    server.apply(deployment("web-api", "istioinaction", port=8081, account="web-api"))
    server.apply(service("web-api", "istioinaction", 8080, "http", {"app": "web-api"}))
    wait_ready(fake_cluster, "istioinaction", "web-api")
    return fake_cluster


def test_via_port_forward_reaches_the_pod(
    tmp_path: Path, web_api: FakeClusterHandle, serve: Any
) -> None:
    backend: Served = serve()
    web_api.server.port_forward_target(
        "istioinaction", {"app": "web-api"}, 8081, "127.0.0.1", backend.port
    )
    resources = RunResources()
    ctx = make_ctx(tmp_path, env=web_api.env, budget=30, resources=resources)
    params = {
        "url": "http://web-api.istioinaction:8080/",
        "via": {"namespace": "istioinaction", "service": "web-api", "port": 8080},
        "expect": {"json": {"name": "web-api"}},
        "count": 3,
    }
    outcome = one_line(run_check("http", params, ctx))
    assert outcome.status is Status.PASSED, outcome
    assert backend.requests[0]["headers"]["Host"] == "web-api.istioinaction:8080"
    # The forward is cached for the run: a second check reuses the same local port.
    forward = next(v for k, v in resources._items.items() if k.startswith("port-forward:"))
    assert run_check("http", params, make_ctx(tmp_path, env=web_api.env, resources=resources)).ok
    address = forward.address
    resources.close()
    with pytest.raises(OSError):
        socket.create_connection(address, timeout=2).close()


def test_via_port_forward_keeps_sni_for_the_gateway(
    tmp_path: Path, fake_cluster: FakeClusterHandle, serve: Any, certs: Certs
) -> None:
    gateway: Served = serve(tls="server", only_sni="istioinaction.io")
    server = fake_cluster.server
    server.apply(namespace("istio-system"))
    server.apply(deployment("istio-ingressgateway", "istio-system", port=8443))
    server.apply(
        service("istio-ingressgateway", "istio-system", 443, 8443, {"app": "istio-ingressgateway"})
    )
    wait_ready(fake_cluster, "istio-system", "istio-ingressgateway")
    server.port_forward_target(
        "istio-system", {"app": "istio-ingressgateway"}, 8443, "127.0.0.1", gateway.port
    )
    resources = RunResources()
    ctx = make_ctx(tmp_path, env=fake_cluster.env, budget=30, resources=resources)
    try:
        outcome = one_line(
            run_check(
                "http",
                {
                    "url": "https://istioinaction.io/",
                    "ca": str(certs.crt("workshop-ca")),
                    "via": {
                        "namespace": "istio-system",
                        "service": "istio-ingressgateway",
                        "port": 443,
                    },
                    "expect": {"status": 200},
                },
                ctx,
            )
        )
    finally:
        resources.close()
    assert outcome.status is Status.PASSED, outcome
    assert gateway.requests[0]["sni"] == "istioinaction.io"


def test_via_a_service_without_ready_pods_is_pending(
    tmp_path: Path, fake_cluster: FakeClusterHandle
) -> None:
    server = fake_cluster.server
    server.hold_pods("istioinaction", {"app": "web-api"})
    server.apply(namespace("istioinaction"))
    server.apply(deployment("web-api", "istioinaction", port=8081))
    server.apply(service("web-api", "istioinaction", 8080, 8081, {"app": "web-api"}))
    ctx = make_ctx(tmp_path, env=fake_cluster.env, budget=30)
    via = {"namespace": "istioinaction", "service": "web-api", "port": 8080}
    outcome = one_line(run_check("http", {"url": "http://web-api:8080/", "via": via}, ctx))
    assert outcome.status is Status.PENDING
    assert outcome.message.startswith("no ready pod behind service istioinaction/web-api yet")
    missing = one_line(
        run_check(
            "http",
            {
                "url": "http://x:80/",
                "via": {"namespace": "istioinaction", "service": "nope", "port": 80},
            },
            ctx,
        )
    )
    assert (
        missing.status is Status.FAILED
        and missing.message == "service istioinaction/nope not found"
    )
    wrong_port = one_line(
        run_check("http", {"url": "http://x:80/", "via": {**via, "port": 9090}}, ctx)
    )
    assert (
        wrong_port.status is Status.FAILED
        and "has no port 9090 (ports: 8080)" in wrong_port.message
    )


def test_via_an_unreachable_cluster_is_an_error(tmp_path: Path, closed_port: int) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: kind-gone\n"
        f"clusters: [{{name: gone, cluster: {{server: 'http://127.0.0.1:{closed_port}'}}}}]\n"
        "users: [{name: u, user: {}}]\n"
        "contexts: [{name: kind-gone, context: {cluster: gone, user: u}}]\n"
    )
    ctx = make_ctx(
        tmp_path, env={"KUBECONFIG": str(kubeconfig), "PATH": "/usr/bin:/bin"}, budget=20
    )
    via = {"namespace": "istioinaction", "service": "web-api", "port": 8080}
    outcome = one_line(run_check("http", {"url": "http://web-api:8080/", "via": via}, ctx))
    assert outcome.status is Status.ERROR
    assert "unreachable" in outcome.message and "connection refused" in outcome.message


# --------------------------------------------------------------------------- secrets, Jaeger


def test_certificate_from_a_real_secret(
    tmp_path: Path, fake_cluster: FakeClusterHandle, certs: Certs
) -> None:
    fake_cluster.server.apply(namespace("istio-system"))
    fake_cluster.server.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {"name": "istioinaction-cert", "namespace": "istio-system"},
            "data": {
                "tls.crt": base64.b64encode(certs.crt("server").read_bytes()).decode(),
                "tls.key": base64.b64encode(certs.key("server").read_bytes()).decode(),
            },
        }
    )
    ctx = make_ctx(tmp_path, env=fake_cluster.env, budget=30)
    secret = {"namespace": "istio-system", "name": "istioinaction-cert"}
    outcome = one_line(
        run_check(
            "certificate",
            {
                "secret": secret,
                "san_dns": {"contains": "istioinaction.io"},
                "key_matches": True,
                "chain_to": str(certs.crt("workshop-ca")),
            },
            ctx,
        )
    )
    assert outcome.status is Status.PASSED, outcome
    wrong_ns = one_line(
        run_check("certificate", {"secret": {**secret, "namespace": "default"}}, ctx)
    )
    assert wrong_ns.status is Status.PENDING, "not created yet: waited on, like the secret verifier"
    assert wrong_ns.message == "secret istioinaction-cert not found in default"
    assert wrong_ns.wait is not None


def test_workload_identity_read_from_the_deployment(
    tmp_path: Path, web_api: FakeClusterHandle, certs: Certs
) -> None:
    from .test_workload_certificate import sds_dump

    tools = tmp_path / "istioctl-bin"
    tools.mkdir()
    (tools / "dump.json").write_text(
        sds_dump(certs.issued["web-api"].cert_pem(), certs.issued["mesh-ca"].cert_pem())
    )
    script = tools / "istioctl"
    script.write_text(f'#!/bin/sh\ncat "{tools / "dump.json"}"\n')
    script.chmod(0o755)
    env = dict(web_api.env)
    env["PATH"] = f"{tools}:{env['PATH']}"
    ctx = make_ctx(tmp_path, env=env, budget=30)
    outcome = one_line(
        run_check(
            "workload_certificate", {"target": "deploy/web-api", "namespace": "istioinaction"}, ctx
        )
    )
    assert outcome.status is Status.PASSED, outcome


def test_traces_through_the_service_proxy(
    tmp_path: Path, fake_cluster: FakeClusterHandle, serve: Any
) -> None:
    from .test_traffic_and_traces import SERVICES, TRACE_SPEC, _trace, jaeger

    backend: Served = serve(jaeger(SERVICES, [_trace("abc123", SERVICES, 6)]))
    server = fake_cluster.server
    server.apply(namespace("istio-system"))
    server.apply(service("tracing", "istio-system", 80, 16686, {"app": "jaeger"}))
    server.service_proxy_target("istio-system", "tracing", 80, backend.url(""))
    ctx = make_ctx(tmp_path, env=fake_cluster.env, budget=30)
    params = {
        "service": {"namespace": "istio-system", "name": "tracing", "port": 80},
        "services": SERVICES,
        "trace": TRACE_SPEC,
    }
    outcome = one_line(run_check("traces", params, ctx))
    assert outcome.status is Status.PASSED, outcome
    assert backend.requests[0]["path"] == "/jaeger/api/services"
    no_endpoints = one_line(
        run_check(
            "traces",
            {
                "service": {"namespace": "istio-system", "name": "tracing", "port": 9411},
                "services": ["x"],
            },
            ctx,
        )
    )
    assert no_endpoints.status is Status.PENDING and "answered HTTP 503" in no_endpoints.message
    assert json.loads(json.dumps(params))  # parameters stay plain data
