"""Read just enough of a kubeconfig to know which context a lab will act on.

This module deliberately avoids the ``kubernetes`` package: the CLI needs the
current context (to key progress and to run the context guard) on every
start, and importing the client costs a third of a second.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def kubeconfig_paths(env: Mapping[str, str]) -> list[Path]:
    """The kubeconfig files in effect, in KUBECONFIG order (or ~/.kube/config)."""
    value = env.get("KUBECONFIG")
    if value:
        return [Path(p).expanduser() for p in value.split(os.pathsep) if p]
    home = env.get("HOME") or os.path.expanduser("~")
    return [Path(home) / ".kube" / "config"]


def _read(path: Path) -> dict[str, Any]:
    import yaml  # lazy: `labrunner --help` must not pay for the YAML parser

    try:
        with path.open("rb") as fh:
            data = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def current_context(env: Mapping[str, str]) -> str | None:
    """The context kubectl would use with ``env`` (first current-context set wins)."""
    for path in kubeconfig_paths(env):
        ctx = _read(path).get("current-context")
        if isinstance(ctx, str) and ctx:
            return ctx
    return None


def contexts(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Every context defined in the kubeconfig files, by name (first definition wins)."""
    found: dict[str, dict[str, Any]] = {}
    for path in kubeconfig_paths(env):
        for item in _read(path).get("contexts") or []:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                found.setdefault(item["name"], item.get("context") or {})
    return found


def context_namespace(env: Mapping[str, str], context: str | None) -> str:
    """The namespace ``context`` (or the current one) names, as kubectl uses it; else default."""
    name = context or current_context(env)
    namespace = (contexts(env).get(name) or {}).get("namespace") if name else None
    return str(namespace) if namespace else "default"


def server_for(env: Mapping[str, str], context: str | None) -> str | None:
    """The API server URL behind ``context`` (or the current one)."""
    name = context or current_context(env)
    if name is None:
        return None
    ctx = contexts(env).get(name) or {}
    cluster = ctx.get("cluster")
    for path in kubeconfig_paths(env):
        for item in _read(path).get("clusters") or []:
            if isinstance(item, dict) and item.get("name") == cluster:
                server = (item.get("cluster") or {}).get("server")
                return str(server) if server else None
    return None


def pin_context(env: Mapping[str, str], context: str, directory: Path) -> dict[str, str]:
    """``env`` with KUBECONFIG changed so kubectl uses ``context`` without editing files.

    A one-line kubeconfig that only sets ``current-context`` goes first in the
    KUBECONFIG list; kubectl takes the first current-context it finds, and
    merges the contexts, clusters and users from the learner's own files.
    """
    directory.mkdir(parents=True, exist_ok=True)
    overlay = directory / "kubeconfig-context.yaml"
    overlay.write_text(
        json.dumps({"apiVersion": "v1", "kind": "Config", "current-context": context}) + "\n",
        encoding="utf-8",
    )
    files = [str(p) for p in kubeconfig_paths(env)]
    out = dict(env)
    out["KUBECONFIG"] = os.pathsep.join([str(overlay), *files])
    return out
