"""The kubeconfig settings labrunner's own client honours, against real TLS fake servers.

``tls-server-name``, ``insecure-skip-tls-verify``, ``proxy-url`` (the EKS
URL reached through the fake's CONNECT), ``tokenFile`` read again when it
rotates, and an ``auth-provider`` user, the one case handed to the official
client. Each is what kubectl does with the same kubeconfig.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from labrunner.cluster.client import Kube
from labrunner.cluster.errors import ClusterError, ErrorKind
from labrunner.testing.fakecluster import FakeCluster
from labrunner.testing.fakecluster.auth import ADMIN
from labrunner.testing.fakecluster.server import EKS_URL
from labrunner.testing.fixtures import SAFE_AND_PROD, FakeClusters


@pytest.fixture(scope="module")
def server() -> Iterator[FakeCluster]:
    with FakeCluster(https=True, token="admin-token") as found:
        yield found


def kubeconfig(tmp_path: Path, server: FakeCluster, **changes: Any) -> dict[str, str]:
    """The server's kubeconfig with cluster (``cluster_*``) and user (``user_*``) changes."""
    data = yaml.safe_load(server.kubeconfig_text("kind-x"))
    for key, value in changes.items():
        where, _, name = key.partition("_")
        entry = data["clusters" if where == "cluster" else "users"][0][where]
        name = name.replace("_", "-")
        if value is None:
            entry.pop(name, None)
        else:
            entry[name] = value
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(data))
    return {"HOME": str(tmp_path), "KUBECONFIG": str(path), "PATH": os.environ["PATH"]}


def version(env: dict[str, str]) -> dict[str, Any]:
    kube = Kube.connect(env, "kind-x")
    try:
        return kube.version(timeout=5)
    finally:
        kube.close()


def test_tls_server_name_names_the_certificate_to_expect(
    tmp_path: Path, server: FakeCluster
) -> None:
    right = kubeconfig(tmp_path, server, cluster_tls_server_name="localhost")
    assert version(right)["gitVersion"]
    wrong = kubeconfig(tmp_path, server, cluster_tls_server_name="elsewhere.example")
    with pytest.raises(ClusterError) as caught:
        version(wrong)
    assert caught.value.kind is ErrorKind.TLS
    assert "its certificate is for another name" in caught.value.message


def test_insecure_skip_tls_verify_trusts_any_certificate(tmp_path: Path) -> None:
    with FakeCluster(tls_fault="untrusted", token="admin-token") as untrusted:
        env = kubeconfig(
            tmp_path,
            untrusted,
            cluster_certificate_authority_data=None,
            cluster_insecure_skip_tls_verify=True,
        )
        assert version(env)["gitVersion"]
        both = kubeconfig(tmp_path, untrusted, cluster_insecure_skip_tls_verify=True)
        with pytest.raises(ClusterError, match="sets both a certificate authority and insecure"):
            version(both)


def test_a_token_file_is_read_again_when_it_rotates(tmp_path: Path) -> None:
    with FakeCluster(https=True, token="first-token") as rotating:
        token = tmp_path / "token"
        token.write_text("first-token\n")
        env = kubeconfig(tmp_path, rotating, user_token=None, user_tokenFile="token")
        kube = Kube.connect(env, "kind-x")
        try:
            assert kube.version(timeout=5)
            rotating.token = "second-token"  # the first one stops working
            token.write_text("second-token")
            os.utime(token, ns=(time.time_ns(), time.time_ns() + 10**9))
            assert kube.get("/api/v1/namespaces", timeout=5)["items"]
        finally:
            kube.close()


def test_an_auth_provider_user_goes_through_the_official_client(
    tmp_path: Path, server: FakeCluster
) -> None:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    id_token = ".".join(
        [part({"alg": "RS256"}), part({"exp": int(time.time()) + 3600, "sub": "me"}), "sig"]
    )
    server.tokens.add(id_token, ADMIN)
    env = kubeconfig(
        tmp_path,
        server,
        user_token=None,
        user_auth_provider={
            "name": "oidc",
            "config": {"id-token": id_token, "idp-issuer-url": "https://issuer.invalid"},
        },
    )
    assert version(env)["gitVersion"]


def test_proxy_url_reaches_a_cloud_looking_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labrunner.testing.fixtures import running_fake_clusters

    with running_fake_clusters(
        tmp_path,
        monkeypatch,
        servers={"prod": {"https": True, "token": "prod-token"}},
        contexts=[c for c in SAFE_AND_PROD if c.cluster == "prod"],
    ) as clusters:
        assert isinstance(clusters, FakeClusters)
        kube = Kube.connect(clusters.env, "prod-eks")
        try:
            assert kube.server == EKS_URL
            assert kube.get("/api/v1/namespaces/default", timeout=5)["metadata"]["name"]
        finally:
            kube.close()
        assert clusters.servers["prod"].traffic().requests >= 1
