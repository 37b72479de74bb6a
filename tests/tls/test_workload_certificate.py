"""``workload_certificate``: a sidecar's SDS secret, as ``istioctl proxy-config secret`` shows it.

There is no istioctl here, so a fake one on PATH prints JSON shaped like the
real ``-o json`` output, wrapped around real certificates.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from labrunner.pki import core as pki
from labrunner.testing.fixtures import FakeClusterHandle
from labrunner.verify.outcome import Status

from .conftest import Certs, Tools, make_ctx, one_line, run_check

SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
REDACTED = "W3JlZGFjdGVkXQ=="  # "[redacted]", as istioctl prints private keys


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sds_dump(
    chain: bytes | None,
    root: bytes | None,
    *,
    root_first: bool = True,
    warming: bool = False,
) -> str:
    """JSON like ``istioctl proxy-config secret <pod> -o json``."""
    active: list[dict[str, Any]] = []
    if chain is not None:
        entry = {
            "name": "default",
            "versionInfo": "2026-11-23 10:00:01.123456789 +0000 UTC m=+1.2",
            "lastUpdated": "2026-11-23T10:00:01.200Z",
            "secret": {
                "@type": SECRET_TYPE,
                "name": "default",
                "tlsCertificate": {
                    "certificateChain": {"inlineBytes": _b64(chain)},
                    "privateKey": {"inlineBytes": REDACTED},
                },
            },
        }
        (active if not warming else []).append(entry)
    if root is not None:
        active.insert(
            0 if root_first else len(active),
            {
                "name": "ROOTCA",
                "versionInfo": "2026-11-23 10:00:01.3 +0000 UTC m=+1.3",
                "lastUpdated": "2026-11-23T10:00:01.300Z",
                "secret": {
                    "@type": SECRET_TYPE,
                    "name": "ROOTCA",
                    "validationContext": {"trustedCa": {"inlineBytes": _b64(root)}},
                },
            },
        )
    doc: dict[str, Any] = {"dynamicActiveSecrets": active}
    if warming and chain is not None:
        doc["dynamicWarmingSecrets"] = [{"name": "default", "secret": {"@type": SECRET_TYPE}}]
    return json.dumps(doc, indent=2)


def deployment(name: str, namespace: str, account: str | None) -> str:
    spec: dict[str, Any] = {"containers": [{"name": name, "image": "fake-service"}]}
    if account:
        spec["serviceAccountName"] = account
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
            },
        }
    )


@pytest.fixture
def cluster(fake_cluster: FakeClusterHandle) -> FakeClusterHandle:
    """The fake API server holding the web-api Deployment (the verifier reads it there)."""
    fake_cluster.server.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istioinaction"}}
    )
    fake_cluster.server.apply(json.loads(deployment("web-api", "istioinaction", "web-api")))
    return fake_cluster


@pytest.fixture
def tools(tmp_path: Path, cluster: FakeClusterHandle) -> Tools:
    """Fake istioctl first on PATH, and the fake API server in KUBECONFIG."""
    folder = tmp_path / "tools"
    folder.mkdir()
    env = dict(cluster.env)
    env["PATH"] = f"{folder}{os.pathsep}{env.get('PATH', '')}"
    return Tools(folder, env)


def workload_reads(cluster: FakeClusterHandle) -> list[str]:
    """The API paths the verifier read to learn a workload's service account."""
    return [
        r.path for r in cluster.server.requests() if "/deployments" in r.path or "/pods" in r.path
    ]


@pytest.fixture
def mesh(certs: Certs, tools: Tools) -> Tools:
    """istioctl serving web-api's real certificate; the cluster knowing its deployment."""
    tools.add(
        "istioctl",
        [
            (
                "proxy-config secret deploy/web-api -o json -n istioinaction",
                0,
                sds_dump(certs.issued["web-api"].cert_pem(), certs.issued["mesh-ca"].cert_pem()),
                "",
            )
        ],
    )
    return tools


TARGET = {"target": "deploy/web-api", "namespace": "istioinaction"}


def test_workload_certificate_passes_with_derived_identity(
    tmp_path: Path, mesh: Tools, cluster: FakeClusterHandle
) -> None:
    outcome = one_line(
        run_check("workload_certificate", dict(TARGET), make_ctx(tmp_path, env=mesh.env))
    )
    assert outcome.status is Status.PASSED, outcome
    assert "URI:spiffe://cluster.local/ns/istioinaction/sa/web-api" in outcome.message
    assert "issued by O=cluster.local" in outcome.message
    assert "checked:" in outcome.details and "lifetime" in outcome.details
    reads = workload_reads(cluster)
    assert reads and all("/namespaces/istioinaction/deployments" in path for path in reads), reads


def test_pod_on_the_default_service_account_fails_clearly(
    tmp_path: Path, certs: Certs, tools: Tools, cluster: FakeClusterHandle
) -> None:
    tools.add(
        "istioctl",
        [("proxy-config secret", 0, sds_dump(certs.issued["web-api"].cert_pem(), None), "")],
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-api-7d5c", "namespace": "istioinaction"},
        "spec": {"containers": [{"name": "web-api", "image": "web-api:1"}]},
    }
    cluster.server.apply(pod)
    params = {"target": "web-api-7d5c", "namespace": "istioinaction"}
    outcome = one_line(run_check("workload_certificate", params, make_ctx(tmp_path, env=tools.env)))
    assert outcome.status is Status.FAILED
    assert outcome.message == (
        "workload certificate of istioinaction/web-api-7d5c: SAN URI"
        " spiffe://cluster.local/ns/istioinaction/sa/default expected, certificate has"
        " spiffe://cluster.local/ns/istioinaction/sa/web-api"
    )


def test_explicit_spiffe_id_and_trust_domain(
    tmp_path: Path, mesh: Tools, cluster: FakeClusterHandle
) -> None:
    ctx = make_ctx(tmp_path, env=mesh.env)
    params = {**TARGET, "spiffe_id": "spiffe://cluster.local/ns/istioinaction/sa/web-api"}
    assert run_check("workload_certificate", params, ctx).ok
    assert workload_reads(cluster) == []  # nothing to derive
    wrong_td = one_line(
        run_check("workload_certificate", {**TARGET, "trust_domain": "corp.example"}, ctx)
    )
    assert wrong_td.status is Status.FAILED
    assert (
        "issuer O=corp.example expected, certificate was issued by O=cluster.local"
        in wrong_td.message
    )
    relaxed = {**TARGET, "spiffe_id": False, "issuer": False, "valid_for": False}
    assert run_check("workload_certificate", relaxed, ctx).ok


def test_lifetime_outside_istios_24_hours(tmp_path: Path, certs: Certs, tools: Tools) -> None:
    long_lived = pki.make_workload_cert(
        certs.issued["mesh-ca"],
        namespace="istioinaction",
        service_account="web-api",
        valid_for=pki.dt.timedelta(hours=48),
        key_kind="ec256",
    )
    tools.add("istioctl", [("proxy-config", 0, sds_dump(long_lived.cert_pem(), None), "")])
    ctx = make_ctx(tmp_path, env=tools.env)
    outcome = one_line(run_check("workload_certificate", {**TARGET, "spiffe_id": False}, ctx))
    assert outcome.status is Status.FAILED
    assert (
        "lifetime of about 24h (±10m) expected, certificate is valid for 48h02m" in outcome.message
    )
    custom = {**TARGET, "spiffe_id": False, "valid_for": {"about": "48h", "tolerance": "5m"}}
    assert run_check("workload_certificate", custom, ctx).ok


def test_chain_order_is_leaf_first_and_default_is_picked_by_name(
    tmp_path: Path, certs: Certs, tools: Tools
) -> None:
    root = pki.make_mesh_ca(key_kind="ec256")
    inter = pki.make_ca(
        organization="cluster.local", common_name="plugged", issuer=root, key_kind="ec256"
    )
    leaf = pki.make_workload_cert(
        inter, namespace="istioinaction", service_account="web-api", key_kind="ec256"
    )
    chain = leaf.cert_pem() + inter.cert_pem() + root.cert_pem()
    tools.add(
        "istioctl", [("proxy-config", 0, sds_dump(chain, root.cert_pem(), root_first=False), "")]
    )
    ctx = make_ctx(tmp_path, env=tools.env)
    outcome = run_check(
        "workload_certificate", {**TARGET, "issuer": "CN=plugged, O=cluster.local"}, ctx
    )
    assert outcome.ok, outcome
    assert "3 certificate(s)" in (outcome.details or "")


def test_root_ca_comparison(tmp_path: Path, certs: Certs, mesh: Tools) -> None:
    ctx = make_ctx(tmp_path, env=mesh.env)
    assert run_check(
        "workload_certificate", {**TARGET, "root_ca": str(certs.crt("mesh-ca"))}, ctx
    ).ok
    other = one_line(
        run_check("workload_certificate", {**TARGET, "root_ca": str(certs.crt("workshop-ca"))}, ctx)
    )
    assert other.status is Status.FAILED
    assert "ROOTCA" in other.message and "the proxy trusts O=cluster.local" in other.message


def test_leaf_not_signed_by_the_proxys_root(tmp_path: Path, certs: Certs, tools: Tools) -> None:
    dump = sds_dump(certs.issued["rogue"].cert_pem(), certs.issued["mesh-ca"].cert_pem())
    tools.add("istioctl", [("proxy-config", 0, dump, "")])
    ctx = make_ctx(tmp_path, env=tools.env)
    outcome = one_line(run_check("workload_certificate", {**TARGET, "spiffe_id": False}, ctx))
    assert outcome.status is Status.FAILED
    assert "does not chain to the proxy's ROOTCA" in outcome.message


@pytest.mark.parametrize("warming", [False, True])
def test_no_default_secret_yet_is_pending(
    tmp_path: Path, certs: Certs, tools: Tools, warming: bool
) -> None:
    chain = certs.issued["web-api"].cert_pem() if warming else None
    dump = sds_dump(chain, certs.issued["mesh-ca"].cert_pem(), warming=warming)
    tools.add("istioctl", [("proxy-config", 0, dump, "")])
    outcome = one_line(
        run_check("workload_certificate", dict(TARGET), make_ctx(tmp_path, env=tools.env))
    )
    assert outcome.status is Status.PENDING
    assert "has no 'default' workload certificate" in outcome.message
    assert ("still warming" if warming else "has not arrived yet") in outcome.message
    assert "(secrets: ROOTCA)" in outcome.message


def test_empty_dump_is_pending(tmp_path: Path, tools: Tools) -> None:
    tools.add("istioctl", [("proxy-config", 0, "{}", "")])
    outcome = run_check("workload_certificate", dict(TARGET), make_ctx(tmp_path, env=tools.env))
    assert outcome.status is Status.PENDING and "(secrets: none)" in outcome.message


@pytest.mark.parametrize(
    ("rc", "stdout", "stderr", "status", "message"),
    [
        (0, "Error: not json {", "", Status.ERROR, "did not print JSON"),
        (
            1,
            "",
            'Error: deployments.apps "web-api" not found\n',
            Status.FAILED,
            "istioinaction/deploy/web-api not found",
        ),
        (
            1,
            "",
            "Error: Unable to connect to the server: connection refused\n",
            Status.ERROR,
            "cannot reach the Kubernetes API",
        ),
        (
            1,
            "",
            "Error: failed to execute command on sidecar:"
            " container istio-proxy is not valid for pod web-api-1\n",
            Status.FAILED,
            "has no istio-proxy sidecar",
        ),
        (1, "", "Error: pod web-api-1 is not running\n", Status.PENDING, "is not running"),
    ],
)
def test_istioctl_failures(
    tmp_path: Path, tools: Tools, rc: int, stdout: str, stderr: str, status: Status, message: str
) -> None:
    tools.add("istioctl", [("proxy-config", rc, stdout, stderr)])
    outcome = one_line(
        run_check("workload_certificate", dict(TARGET), make_ctx(tmp_path, env=tools.env))
    )
    assert outcome.status is status, outcome
    assert message in outcome.message


def test_garbage_chain_fails(tmp_path: Path, tools: Tools) -> None:
    tools.add("istioctl", [("proxy-config", 0, sds_dump(b"garbage", None), "")])
    outcome = one_line(
        run_check("workload_certificate", dict(TARGET), make_ctx(tmp_path, env=tools.env))
    )
    assert outcome.status is Status.FAILED
    assert "holds no PEM certificate" in outcome.message


def test_istioctl_missing(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, env={"PATH": str(tmp_path / "nothing"), "HOME": str(tmp_path)})
    outcome = run_check("workload_certificate", dict(TARGET), ctx)
    assert outcome.status is Status.ERROR
    assert outcome.message == "istioctl not found on PATH; install it in lab 1 or add it to PATH"


def test_context_is_passed_to_istioctl(
    tmp_path: Path, mesh: Tools, certs: Certs, cluster: FakeClusterHandle
) -> None:
    dump = sds_dump(certs.issued["web-api"].cert_pem(), None)
    named = f"--context {cluster.context} proxy-config secret"
    mesh.add("istioctl", [(named, 0, dump, "")])
    ctx = make_ctx(tmp_path, env=mesh.env, kube_context=cluster.context)
    assert run_check("workload_certificate", dict(TARGET), ctx).ok
    assert mesh.calls("istioctl")[0].startswith(named)


def test_a_workload_not_created_yet_is_pending_and_watched(
    tmp_path: Path, mesh: Tools, certs: Certs, cluster: FakeClusterHandle
) -> None:
    dump = sds_dump(certs.issued["web-api"].cert_pem(), None)
    mesh.add("istioctl", [("proxy-config secret", 0, dump, "")])
    params = {"target": "deploy/not-yet", "namespace": "istioinaction"}
    outcome = run_check("workload_certificate", params, make_ctx(tmp_path, env=mesh.env))
    assert outcome.status is Status.PENDING
    assert outcome.message == "deployment not-yet not found in istioinaction"
    assert outcome.wait is not None
