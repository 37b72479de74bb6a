"""HTTPS with a throwaway CA and a required bearer token, as kubectl and the client see it."""

from __future__ import annotations

import json
import shutil
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from kubernetes import client

from labrunner.testing.fixtures import FakeClusterHandle


def _get(url: str, ca_pem: bytes, token: str | None) -> tuple[int, dict]:
    context = ssl.create_default_context(cadata=ca_pem.decode())
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, context=context) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_token_is_required(fake_cluster_https: FakeClusterHandle) -> None:
    server = fake_cluster_https.server
    assert server.url.startswith("https://127.0.0.1:")
    assert server.ca_pem is not None
    assert server.token is not None
    status, body = _get(f"{server.url}/api/v1/namespaces", server.ca_pem, server.token)
    assert status == 200
    assert body["kind"] == "NamespaceList"
    for token in ("wrong", None):
        status, body = _get(f"{server.url}/api/v1/namespaces", server.ca_pem, token)
        assert (status, body["reason"], body["code"]) == (401, "Unauthorized", 401)


def test_python_client_over_https(fake_cluster_https: FakeClusterHandle) -> None:
    api = fake_cluster_https.api_client()
    names = {n.metadata.name for n in client.CoreV1Api(api).list_namespace().items}
    assert "default" in names
    api.close()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_over_https(fake_cluster_https: FakeClusterHandle, tmp_path: Path) -> None:
    fc = fake_cluster_https
    result = fc.kubectl("create", "namespace", "secure")
    assert result.returncode == 0, result.stderr
    assert "secure" in fc.kubectl("get", "ns").stdout
    wrong = tmp_path / "wrong-kubeconfig"
    wrong.write_text(fc.kubeconfig.read_text().replace(fc.server.token or "", "not-the-token"))
    denied = fc.kubectl("--kubeconfig", str(wrong), "get", "ns")
    assert denied.returncode == 1
    assert "You must be logged in to the server" in denied.stderr
