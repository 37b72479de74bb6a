"""Kubeconfig files that point kubectl and the Python client at fake servers.

The default context name ``kind-labrunner`` looks like a disposable cluster, so labrunner's
context-safety check accepts it just as it would a learner's kind cluster.

A context may also carry a server URL that is not the fake's own address, such as
``https://ABC.gr7.us-west-2.eks.amazonaws.com``: it then gets ``proxy-url`` set to the fake,
which accepts the ``CONNECT`` and serves the tunnel itself (its certificate names that host).
No DNS is involved, so a test can show a cloud-looking server to labrunner's guard while any
request that slips past the guard still lands on a local fake, where it is counted.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Entry:
    """One context with its own cluster and user entries."""

    context: str
    server: str
    ca_pem: bytes | None = None
    token: str | None = None
    namespace: str | None = None
    proxy_url: str | None = None
    tls_server_name: str | None = None
    insecure: bool = False
    client_cert_pem: bytes | None = None
    client_key_pem: bytes | None = None


def render_entries(entries: Sequence[Entry], current: str | None = None) -> str:
    """A kubeconfig with one cluster, user and context per entry, as YAML text."""
    clusters, users, contexts = [], [], []
    for e in entries:
        cluster: dict[str, object] = {"server": e.server}
        if e.ca_pem is not None and not e.insecure:
            cluster["certificate-authority-data"] = base64.b64encode(e.ca_pem).decode()
        if e.insecure:
            cluster["insecure-skip-tls-verify"] = True
        if e.proxy_url:
            cluster["proxy-url"] = e.proxy_url
        if e.tls_server_name:
            cluster["tls-server-name"] = e.tls_server_name
        user: dict[str, object] = {"token": e.token} if e.token else {}
        if e.client_cert_pem and e.client_key_pem:
            user["client-certificate-data"] = base64.b64encode(e.client_cert_pem).decode()
            user["client-key-data"] = base64.b64encode(e.client_key_pem).decode()
        ctx: dict[str, object] = {"cluster": e.context, "user": e.context}
        if e.namespace:
            ctx["namespace"] = e.namespace
        clusters.append({"name": e.context, "cluster": cluster})
        users.append({"name": e.context, "user": user})
        contexts.append({"name": e.context, "context": ctx})
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": clusters,
        "users": users,
        "contexts": contexts,
        "current-context": current if current is not None else entries[0].context,
    }
    return yaml.safe_dump(config, sort_keys=False)


def render(
    *,
    server: str,
    context: str = "kind-labrunner",
    namespace: str | None = None,
    ca_pem: bytes | None = None,
    token: str | None = None,
) -> str:
    """A single-context kubeconfig as YAML text."""
    return render_entries(
        [Entry(context=context, server=server, ca_pem=ca_pem, token=token, namespace=namespace)]
    )


def write(path: str | os.PathLike[str], text: str) -> Path:
    """Write a kubeconfig readable only by its owner (it may hold a token)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    target.chmod(0o600)
    return target
