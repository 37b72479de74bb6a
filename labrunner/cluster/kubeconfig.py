"""Kubeconfig files read exactly as kubectl reads them, and the private copies a run pins.

The context guard is only as good as its agreement with kubectl: if labrunner
judged one cluster and kubectl then used another, the guard would approve
the wrong thing. So this module follows client-go's loading rules to the
letter:

* ``KUBECONFIG`` is split on ``:``; empty entries and repeats are dropped; a
  ``~`` is *not* expanded and a relative entry is relative to the process's
  working directory; a file that does not exist is skipped. Unset or empty,
  the file is ``$HOME/.kube/config``.
* The first file that sets ``current-context`` wins; the first file that
  defines a context, cluster or user name wins that whole entry.
* Relative file references in a cluster or user (``certificate-authority``,
  ``client-certificate``, ``client-key``, ``tokenFile``, an exec plugin's
  ``command`` when it contains a ``/``) are relative to the file that
  defined them.

``pinned_config`` builds the one-context kubeconfig a run hands to every
shell and check (see ``labrunner.engine.prepare``); ``NO_CLUSTER`` is the
kubeconfig for labs that need no cluster: a context at an unroutable server,
because an *empty* kubeconfig makes kubectl fall back to
``http://localhost:8080``.

No ``kubernetes`` import here: the CLI reads the kubeconfig on every start.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from labrunner.cluster import yamlcache
from labrunner.cluster.errors import ClusterError, ErrorKind

TYPE_CHECKING = False  # as typing's, without importing typing (a start-up cost)
if TYPE_CHECKING:
    from typing import Any

NO_CLUSTER_SERVER = "https://no-cluster.invalid"
NO_CLUSTER_CONTEXT = "labrunner-no-cluster"

_CLUSTER_FILES = ("certificate-authority",)
_USER_FILES = ("client-certificate", "client-key", "tokenFile")


def kubeconfig_paths(
    env: Mapping[str, str], cwd: str | os.PathLike[str] | None = None
) -> list[Path]:
    """The kubeconfig files kubectl would read with ``env`` from ``cwd``, in order.

    Paths are made absolute against ``cwd`` (default: this process's working
    directory) and ``~`` stays a literal directory name, as in client-go.
    """
    base = Path(cwd) if cwd is not None else Path.cwd()
    value = env.get("KUBECONFIG") or ""
    if value:
        seen: list[Path] = []
        for entry in value.split(os.pathsep):
            if not entry:
                continue
            path = Path(entry) if os.path.isabs(entry) else base / entry
            if path not in seen:
                seen.append(path)
        return seen
    home = env.get("HOME") or ""
    return [Path(home) / ".kube" / "config" if home else base / ".kube" / "config"]


@dataclass(frozen=True)
class KubeConfig:
    """The merged view of a KUBECONFIG chain (read with ``load``)."""

    paths: tuple[Path, ...]
    """Every file of the chain, whether it exists or not."""
    files: tuple[Path, ...]
    """The files that exist and were read."""
    current_context: str | None
    contexts: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    clusters: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    users: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    origins: Mapping[str, Path] = field(default_factory=dict)
    """``"context:NAME"``, ``"cluster:NAME"``, ``"user:NAME"`` → the file that defined it."""

    def describe(self) -> str:
        """The chain as KUBECONFIG would spell it (absolute paths)."""
        return os.pathsep.join(str(p) for p in self.paths)

    def context(self, name: str) -> dict[str, Any]:
        """The ``context`` mapping of ``name`` (empty when unknown)."""
        return self.contexts.get(name) or {}

    def cluster_of(self, name: str) -> dict[str, Any] | None:
        """The cluster entry the context ``name`` refers to (None when missing)."""
        cluster = self.context(name).get("cluster")
        return self.clusters.get(cluster) if isinstance(cluster, str) else None

    def user_of(self, name: str) -> dict[str, Any]:
        """The user entry the context ``name`` refers to (empty when it names none)."""
        user = self.context(name).get("user")
        return (self.users.get(user) if isinstance(user, str) else None) or {}

    def server(self, name: str | None) -> str | None:
        """The API server URL of context ``name`` (or of the current context)."""
        name = name or self.current_context
        cluster = self.cluster_of(name) if name else None
        server = (cluster or {}).get("server")
        return str(server) if server else None

    def proxy_url(self, name: str | None) -> str | None:
        """The ``proxy-url`` of context ``name``'s cluster, if any."""
        name = name or self.current_context
        cluster = self.cluster_of(name) if name else None
        proxy = (cluster or {}).get("proxy-url")
        return str(proxy) if proxy else None

    def namespace(self, name: str | None) -> str:
        """The namespace the context names, as kubectl uses it; else ``default``."""
        name = name or self.current_context
        namespace = self.context(name).get("namespace") if name else None
        return str(namespace) if namespace else "default"


def _read(path: Path) -> dict[str, Any] | None:
    """One kubeconfig file's mapping; None when it does not exist. Raises ClusterError.

    Parsed by PyYAML, or rebuilt from ``yamlcache`` when this exact content was
    parsed before (a ``check`` then starts without importing PyYAML).
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ClusterError(
            f"cannot read kubeconfig {path}: {exc.strerror or exc}", kind=ErrorKind.KUBECONFIG
        ) from None
    if not raw.strip():
        return {}
    found, data = _json_document(raw)
    if not found:
        found, data = yamlcache.lookup(path, raw)
    if not found:
        data = _parse(path, raw)
        yamlcache.keep(path, raw, data)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ClusterError(
            f"kubeconfig {path} is not a kubeconfig (not a mapping)", kind=ErrorKind.KUBECONFIG
        )
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _json_document(raw: bytes) -> tuple[bool, Any]:
    """``(True, data)`` for a JSON object (labrunner's own pinned kubeconfigs are JSON;
    JSON is YAML, so PyYAML would read the same), else ``(False, None)``."""
    if raw.lstrip()[:1] != b"{":
        return False, None
    try:
        # NaN and Infinity are JavaScript, not JSON: leave them to PyYAML
        return True, json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False, None


def _parse(path: Path, raw: bytes) -> Any:
    """PyYAML's reading of ``raw`` (safe loader). Raises ClusterError."""
    import yaml  # lazy: `labrunner --help` must not pay for the YAML parser

    try:
        return yaml.load(raw, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid YAML"
        raise ClusterError(
            f"kubeconfig {path} is not valid YAML: {first}", kind=ErrorKind.KUBECONFIG
        ) from None


def _absolute(inner: dict[str, Any], keys: tuple[str, ...], base: Path) -> dict[str, Any]:
    out = dict(inner)
    for key in keys:
        value = out.get(key)
        if isinstance(value, str) and value and not os.path.isabs(value):
            out[key] = str(base / value)
    return out


def _resolve_user(user: dict[str, Any], base: Path) -> dict[str, Any]:
    out = _absolute(user, _USER_FILES, base)
    exec_config = out.get("exec")
    if isinstance(exec_config, dict):
        command = exec_config.get("command")
        # client-go: a command with a path separator is relative to the kubeconfig's
        # folder; a bare name is looked up on PATH.
        if isinstance(command, str) and "/" in command and not os.path.isabs(command):
            out["exec"] = {**exec_config, "command": str(base / command)}
    return out


_CACHE: dict[str, KubeConfig] = {}


def _stamp(paths: list[Path]) -> str:
    parts = []
    for path in paths:
        try:
            info = path.stat()
        except OSError:
            parts.append(f"{path}@-")
            continue
        parts.append(f"{path}@{info.st_mtime_ns}:{info.st_size}:{info.st_ino}")
    return os.pathsep.join(parts)


def load(env: Mapping[str, str], cwd: str | os.PathLike[str] | None = None) -> KubeConfig:
    """The merged kubeconfig kubectl would use with ``env`` from ``cwd``.

    Raises ClusterError (kind ``kubeconfig``) when a file of the chain cannot
    be read or parsed, as kubectl refuses to run then. Missing files are
    skipped. Cached by the files' modification stamps.
    """
    paths = kubeconfig_paths(env, cwd)
    stamp = _stamp(paths)
    cached = _CACHE.get(stamp)
    if cached is not None:
        return cached
    files: list[Path] = []
    current: str | None = None
    merged: dict[str, dict[str, dict[str, Any]]] = {"contexts": {}, "clusters": {}, "users": {}}
    origins: dict[str, Path] = {}
    for path in paths:
        data = _read(path)
        if data is None:
            continue
        files.append(path)
        base = path.parent
        value = data.get("current-context")
        if current is None and isinstance(value, str) and value:
            current = value
        for key, inner_key, prefix in (
            ("contexts", "context", "context"),
            ("clusters", "cluster", "cluster"),
            ("users", "user", "user"),
        ):
            items = data.get(key) or []
            if not isinstance(items, list):
                continue
            for item in items:
                if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                    continue
                name = item["name"]
                if name in merged[key]:
                    continue
                inner = item.get(inner_key) or {}
                if not isinstance(inner, dict):
                    inner = {}
                if key == "clusters":
                    inner = _absolute(inner, _CLUSTER_FILES, base)
                elif key == "users":
                    inner = _resolve_user(inner, base)
                merged[key][name] = inner
                origins[f"{prefix}:{name}"] = path
    config = KubeConfig(
        paths=tuple(paths),
        files=tuple(files),
        current_context=current,
        contexts=merged["contexts"],
        clusters=merged["clusters"],
        users=merged["users"],
        origins=origins,
    )
    if len(_CACHE) > 32:
        _CACHE.clear()
    _CACHE[stamp] = config
    return config


def _quiet_load(env: Mapping[str, str], cwd: str | os.PathLike[str] | None) -> KubeConfig | None:
    try:
        return load(env, cwd)
    except ClusterError:
        return None


def current_context(
    env: Mapping[str, str], cwd: str | os.PathLike[str] | None = None
) -> str | None:
    """The context kubectl would use with ``env`` (first current-context set wins)."""
    config = _quiet_load(env, cwd)
    return config.current_context if config else None


def contexts(
    env: Mapping[str, str], cwd: str | os.PathLike[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Every context defined in the kubeconfig files, by name (first definition wins)."""
    config = _quiet_load(env, cwd)
    return dict(config.contexts) if config else {}


def context_namespace(
    env: Mapping[str, str], context: str | None, cwd: str | os.PathLike[str] | None = None
) -> str:
    """The namespace ``context`` (or the current one) names, as kubectl uses it; else default."""
    config = _quiet_load(env, cwd)
    return config.namespace(context) if config else "default"


def server_for(
    env: Mapping[str, str], context: str | None, cwd: str | os.PathLike[str] | None = None
) -> str | None:
    """The API server URL behind ``context`` (or the current one)."""
    config = _quiet_load(env, cwd)
    return config.server(context) if config else None


def resolve_context(config: KubeConfig, explicit: str | None = None, *, env_value: str = "") -> str:
    """The context to act on (``explicit`` or the current one); raises ClusterError saying
    what to fix when there is none or it is not defined.

    ``env_value`` is the KUBECONFIG value as the user set it, for the messages.
    """
    if not config.files:
        if env_value:
            raise ClusterError(
                f"no kubeconfig: KUBECONFIG={env_value} but no such file exists; create a "
                "workshop cluster (e.g. `kind create cluster`) or point KUBECONFIG at its "
                "kubeconfig",
                kind=ErrorKind.KUBECONFIG,
            )
        raise ClusterError(
            "no kubeconfig: KUBECONFIG is unset and ~/.kube/config does not exist; create a "
            "workshop cluster (e.g. `kind create cluster`) or set KUBECONFIG to its kubeconfig",
            kind=ErrorKind.KUBECONFIG,
        )
    name = explicit or config.current_context
    if name is None:
        choices = ", ".join(sorted(config.contexts)) or "none defined"
        raise ClusterError(
            "the kubeconfig has no current context; choose one with `kubectl config "
            f"use-context NAME` or --context NAME (contexts: {choices})",
            kind=ErrorKind.KUBECONFIG,
        )
    if name not in config.contexts:
        choices = ", ".join(sorted(config.contexts)) or "none"
        files = ", ".join(map(str, config.files))
        raise ClusterError(
            f"kube context {name!r} is not in the kubeconfig ({files}); contexts there: {choices}",
            kind=ErrorKind.KUBECONFIG,
        )
    if config.cluster_of(name) is None:
        cluster = config.context(name).get("cluster")
        raise ClusterError(
            f"kube context {name!r} names cluster {cluster!r}, which the kubeconfig does not "
            "define",
            kind=ErrorKind.KUBECONFIG,
        )
    return name


def cluster_entry(env: Mapping[str, str], context: str) -> dict[str, Any] | None:
    """A copy of the cluster entry ``context`` refers to (file paths made absolute), or None
    when there is none. Raises ClusterError when the kubeconfig cannot be read."""
    cluster = load(env).cluster_of(context)
    return copy.deepcopy(dict(cluster)) if cluster is not None else None


def pinned_config(config: KubeConfig, context: str) -> dict[str, Any]:
    """A kubeconfig holding only ``context``, its cluster and its user, as current context.

    File references are already absolute (resolved against the file that
    named them); inline data, exec-plugin and auth-provider settings are
    copied as they are, ``proxy-url`` and ``tls-server-name`` included.
    """
    ctx = copy.deepcopy(config.context(context))
    cluster_name = str(ctx.get("cluster") or "")
    user_name = ctx.get("user")
    out: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {"name": cluster_name, "cluster": copy.deepcopy(config.clusters.get(cluster_name, {}))}
        ],
        "users": [],
        "contexts": [{"name": context, "context": ctx}],
        "current-context": context,
    }
    if isinstance(user_name, str) and user_name:
        out["users"] = [{"name": user_name, "user": copy.deepcopy(config.users.get(user_name, {}))}]
    return out


NO_CLUSTER: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Config",
    "preferences": {},
    "clusters": [{"name": NO_CLUSTER_CONTEXT, "cluster": {"server": NO_CLUSTER_SERVER}}],
    # a user with no credentials at all makes kubectl prompt for a username and password
    "users": [{"name": NO_CLUSTER_CONTEXT, "user": {"token": "no-cluster"}}],
    "contexts": [
        {
            "name": NO_CLUSTER_CONTEXT,
            "context": {"cluster": NO_CLUSTER_CONTEXT, "user": NO_CLUSTER_CONTEXT},
        }
    ],
    "current-context": NO_CLUSTER_CONTEXT,
}
"""The kubeconfig of a lab that needs no cluster: its only context leads nowhere."""


def write_kubeconfig(path: Path, config: Mapping[str, Any]) -> Path:
    """Write ``config`` to ``path`` readable only by its owner (JSON, which kubectl reads)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(config, fh, indent=1)
        fh.write("\n")
    os.replace(tmp, path)
    return path


def kubeconfig_stamp(env: Mapping[str, str], cwd: str | os.PathLike[str] | None = None) -> str:
    """Which kubeconfig files are in effect and when they last changed.

    A connection cached under this stamp is rebuilt when a step rewrites the
    kubeconfig (``kind create cluster`` does).
    """
    return _stamp(kubeconfig_paths(env, cwd))
