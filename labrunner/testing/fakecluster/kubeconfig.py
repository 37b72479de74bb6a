"""Kubeconfig files that point kubectl and the Python client at a fake server.

The default context name ``kind-labrunner`` looks like a disposable cluster, so labrunner's
context-safety check accepts it just as it would a learner's kind cluster.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import yaml


def render(
    *,
    server: str,
    context: str = "kind-labrunner",
    namespace: str | None = None,
    ca_pem: bytes | None = None,
    token: str | None = None,
) -> str:
    """A single-context kubeconfig as YAML text."""
    cluster: dict[str, object] = {"server": server}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    user: dict[str, object] = {"token": token} if token else {}
    ctx: dict[str, object] = {"cluster": context, "user": context}
    if namespace:
        ctx["namespace"] = namespace
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": context, "cluster": cluster}],
        "users": [{"name": context, "user": user}],
        "contexts": [{"name": context, "context": ctx}],
        "current-context": context,
    }
    return yaml.safe_dump(config, sort_keys=False)


def write(path: str | os.PathLike[str], text: str) -> Path:
    """Write a kubeconfig readable only by its owner (it may hold a token)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    target.chmod(0o600)
    return target
