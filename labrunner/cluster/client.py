"""One connection to the learner's cluster per lab run, built from the lab's kubeconfig.

Checks poll: a step waiting for pods may evaluate its checks dozens of times,
so everything expensive happens once per run and is cached in
``ctx.resources``: reading and merging the kubeconfig files, building the
``kubernetes`` client (which runs exec credential plugins and writes
certificate files), and the keep-alive connection pool behind it.

The ``kubernetes`` package does what it is best at here, turning a
kubeconfig into a configured client (TLS, client certificates, tokens, exec
plugins, proxies). Requests themselves go through the client's own urllib3
pool as plain JSON (``Kube.request``): the typed models of ``kubernetes`` 37
validate every object with pydantic, which costs milliseconds per pod and
rejects objects a check would happily read. Raw JSON keeps a check at about a
millisecond, and lets one code path serve every kind, CRDs included.

Every request has a bounded timeout (the caller passes what is left of the
check's deadline), is retried once when a kept-alive connection turns out to
be stale, and fails as a ``ClusterError`` whose message says what to fix.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from labrunner import __version__
from labrunner.cluster.errors import (
    RETRYABLE_STATUS,
    ClusterError,
    ErrorKind,
    NotFound,
    http_error,
    transport_error,
)
from labrunner.cluster.kubeconfig import (
    context_namespace,
    contexts,
    current_context,
    kubeconfig_paths,
)

USER_AGENT = f"labrunner/{__version__}"
CONNECT_TIMEOUT = 5.0
_RETRY_PAUSES = (0.1, 0.3)


def _merged_config(env: Mapping[str, str]) -> dict[str, Any]:
    """The kubeconfig files in KUBECONFIG merged the way kubectl merges them.

    The first file that sets a value wins: ``current-context`` and every named
    context, cluster and user. Relative certificate and token paths are made
    absolute against the file that named them, as kubectl does.
    """
    import yaml  # lazy, like the client below: the CLI's start-up path imports this module

    merged: dict[str, Any] = {"contexts": [], "clusters": [], "users": []}
    seen: dict[str, set[str]] = {"contexts": set(), "clusters": set(), "users": set()}
    for path in kubeconfig_paths(env):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            continue
        except (OSError, yaml.YAMLError) as exc:
            raise ClusterError(
                f"cannot read kubeconfig {path}: {exc}", kind=ErrorKind.KUBECONFIG
            ) from None
        if not isinstance(data, dict):
            continue
        if "current-context" not in merged and data.get("current-context"):
            merged["current-context"] = data["current-context"]
        for key in ("contexts", "clusters", "users"):
            for item in data.get(key) or []:
                name = item.get("name") if isinstance(item, dict) else None
                if isinstance(name, str) and name not in seen[key]:
                    seen[key].add(name)
                    entry = dict(item)
                    if key != "contexts":
                        entry = _absolute_files(entry, key, path.parent)
                    merged[key].append(entry)
    return merged


def _absolute_files(entry: dict[str, Any], key: str, base: Path) -> dict[str, Any]:
    inner_key = "cluster" if key == "clusters" else "user"
    inner = dict(entry.get(inner_key) or {})
    for name in ("certificate-authority", "client-certificate", "client-key", "tokenFile"):
        value = inner.get(name)
        if isinstance(value, str) and value and not os.path.isabs(value):
            inner[name] = str(base / value)
    return {**entry, inner_key: inner}


def resolve_context(env: Mapping[str, str], explicit: str | None = None) -> str:
    """The context a check acts on; raises ClusterError saying what to fix when there is none."""
    paths = kubeconfig_paths(env)
    existing = [p for p in paths if p.is_file()]
    if not existing:
        if env.get("KUBECONFIG"):
            shown = os.pathsep.join(str(p) for p in paths)
            raise ClusterError(
                f"no kubeconfig: KUBECONFIG={shown} but no such file exists; create a workshop "
                "cluster (e.g. `kind create cluster`) or point KUBECONFIG at its kubeconfig",
                kind=ErrorKind.KUBECONFIG,
            )
        raise ClusterError(
            "no kubeconfig: KUBECONFIG is unset and ~/.kube/config does not exist; create a "
            "workshop cluster (e.g. `kind create cluster`) or set KUBECONFIG to its kubeconfig",
            kind=ErrorKind.KUBECONFIG,
        )
    name = explicit or current_context(env)
    known = contexts(env)
    if name is None:
        choices = ", ".join(sorted(known)) or "none defined"
        raise ClusterError(
            "the kubeconfig has no current context; choose one with `kubectl config "
            f"use-context NAME` or --context NAME (contexts: {choices})",
            kind=ErrorKind.KUBECONFIG,
        )
    if name not in known:
        choices = ", ".join(sorted(known)) or "none"
        raise ClusterError(
            f"kube context {name!r} is not in the kubeconfig ({', '.join(map(str, existing))}); "
            f"contexts there: {choices}",
            kind=ErrorKind.KUBECONFIG,
        )
    return name


def build_api_client(env: Mapping[str, str], context: str) -> Any:
    """A new ``kubernetes.client.ApiClient`` for ``context`` of the merged kubeconfig."""
    from kubernetes import config  # lazy: a third of a second, paid only when connecting

    try:
        return config.new_client_from_config_dict(  # type: ignore[no-untyped-call]
            _merged_config(env), context=context
        )
    except ClusterError:
        raise
    except Exception as exc:  # ConfigException, a failing exec plugin, a bad certificate file
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClusterError(
            f"the kubeconfig of context {context!r} is unusable: {message}",
            kind=ErrorKind.KUBECONFIG,
        ) from None


class Kube:
    """A connection to one cluster: raw JSON requests, discovery and watches.

    Thread-safe: checks may run from the TUI's worker threads while a
    port-forward relays traffic over the same client configuration.
    """

    def __init__(self, api: Any, *, context: str, namespace: str = "default") -> None:
        self.api = api
        self.context = context
        self.namespace = namespace
        self.server: str = str(api.configuration.host).rstrip("/")
        self._pool: Any = api.rest_client.pool_manager
        self.discovery_cache: dict[str, Any] = {}
        if not getattr(api.configuration, "verify_ssl", True):
            # The kubeconfig asked for insecure-skip-tls-verify; urllib3 would warn on
            # every poll and bury the lab's output.
            import warnings

            from urllib3.exceptions import InsecureRequestWarning

            warnings.filterwarnings("ignore", category=InsecureRequestWarning)

    @classmethod
    def connect(cls, env: Mapping[str, str], context: str) -> Kube:
        """A connection to ``context`` of ``env``'s kubeconfig (raises ClusterError)."""
        return cls(
            build_api_client(env, context),
            context=context,
            namespace=context_namespace(env, context),
        )

    def close(self) -> None:
        """Close the connection pool."""
        try:
            self.api.close()
        except Exception:  # noqa: S110 - closing is best effort
            pass

    # ------------------------------------------------------------------ requests

    def headers(self, accept: str = "application/json") -> dict[str, str]:
        """Request headers: Accept, User-Agent and the kubeconfig's credentials."""
        headers: dict[str, str] = {"Accept": accept, "User-Agent": USER_AGENT}
        # auth_settings() refreshes exec-plugin and OIDC tokens when they expire.
        for entry in (self.api.configuration.auth_settings() or {}).values():
            if entry.get("in") == "header" and entry.get("value"):
                headers[str(entry["key"])] = str(entry["value"])
        return headers

    def url(self, path: str, query: Iterable[tuple[str, str]] = ()) -> str:
        """The absolute URL of an API path with query parameters."""
        params = [(k, v) for k, v in query if v not in ("", None)]
        return self.server + path + (f"?{urlencode(params)}" if params else "")

    def open(
        self,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        timeout: float,
        read_timeout: float | None = None,
        accept: str = "application/json",
        stream: bool = False,
    ) -> Any:
        """Send a GET and return the urllib3 response (status not checked; caller reads it)."""
        import urllib3  # lazy: comes with the kubernetes client, loaded on first request

        connect = min(max(timeout, 0.05), CONNECT_TIMEOUT)
        limit = urllib3.Timeout(
            connect=connect,
            read=max(read_timeout if read_timeout is not None else timeout, 0.05),
        )
        url = self.url(path, query)
        headers = self.headers(accept)
        for attempt in (1, 2):
            try:
                return self._pool.request(
                    "GET",
                    url,
                    headers=headers,
                    timeout=limit,
                    retries=False,
                    preload_content=not stream,
                    redirect=False,
                )
            except Exception as exc:
                error = transport_error(
                    exc, server=self.server, timeout=timeout, connect_timeout=connect
                )
                # A kept-alive connection the server closed shows up as a reset or
                # protocol error on first use; one immediate retry on a fresh one fixes it.
                if attempt == 1 and error.kind is ErrorKind.RESET:
                    continue
                raise error from None
        raise AssertionError("unreachable")  # pragma: no cover

    def get(
        self,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        timeout: float,
        accept: str = "application/json",
    ) -> Any:
        """GET a path and decode its JSON; raises NotFound on 404, ClusterError otherwise."""
        deadline = time.monotonic() + timeout
        pauses = list(_RETRY_PAUSES)
        while True:
            left = max(deadline - time.monotonic(), 0.05)
            response = self.open(path, query=query, timeout=left, accept=accept)
            status = int(response.status)
            body = response.data
            if 200 <= status < 300:
                try:
                    return json.loads(body)
                except ValueError:
                    raise ClusterError(
                        f"the API server at {self.server} answered {path} with something that "
                        "is not JSON (is the kubeconfig pointing at a Kubernetes API server?)"
                    ) from None
            if status == 404:
                raise NotFound(f"{path} not found")
            if status in RETRYABLE_STATUS and pauses and deadline - time.monotonic() > pauses[0]:
                time.sleep(pauses.pop(0))
                continue
            raise http_error(
                status,
                body,
                method="GET",
                path=path,
                retry_after=response.headers.get("Retry-After"),
            )

    def version(self, *, timeout: float) -> dict[str, Any]:
        """The server's ``/version`` document."""
        data = self.get("/version", timeout=timeout)
        return data if isinstance(data, dict) else {}


def quote_path(*segments: str) -> str:
    """``/``-joined, percent-encoded path segments."""
    return "/".join(quote(s, safe="") for s in segments)


def kubeconfig_stamp(env: Mapping[str, str]) -> str:
    """Which kubeconfig files are in effect and when they last changed.

    A connection cached under this stamp is rebuilt when a step recreates the
    cluster (``kind create cluster`` rewrites the kubeconfig).
    """
    parts = []
    for path in kubeconfig_paths(env):
        try:
            info = path.stat()
        except OSError:
            parts.append(f"{path}@-")
            continue
        parts.append(f"{path}@{info.st_mtime_ns}:{info.st_size}")
    return os.pathsep.join(parts)
