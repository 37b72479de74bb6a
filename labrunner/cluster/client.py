"""One connection to the learner's cluster per lab run, built from the lab's kubeconfig.

Checks poll: a step waiting for pods may evaluate its checks dozens of times,
so everything expensive happens once per run and is cached in
``ctx.resources``: reading and merging the kubeconfig files, the TLS context
(CA, client certificate), an exec plugin's credential, and the keep-alive
connection pool behind them.

No ``kubernetes`` package here: the kubeconfig is read by
``labrunner.cluster.kubeconfig`` (kubectl's own rules), credentials come from
``labrunner.cluster.auth`` (tokens, client certificates, exec plugins), TLS
from the standard library, and requests go as plain JSON over kept-alive
HTTP/1.1 connections of our own (``labrunner.cluster.connection``, sockets
and ``ssl``; urllib3 only behind a ``proxy-url``). That keeps ``labrunner
check`` on a token or client-certificate kubeconfig free of the client's
third of a second of imports, and a check at about a millisecond: no typed
models, one code path for every kind, CRDs included. (The port-forward
websocket still uses the official client; see ``portforward``.)

Every request has a *whole-request* deadline (connect, TLS, headers and
body: the caller passes what is left of the check's budget): socket timeouts
alone bound each read, so a server trickling one byte a second would never
time out. ``labrunner.deadlines`` shuts the connection down when the time
is up. A request is retried once when a kept-alive connection turns out to
be stale, and fails as a ``ClusterError`` whose message says what to fix.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

from labrunner import __version__, deadlines
from labrunner.cluster.auth import ClientCert, UserAuth, auth_provider_token, decode_data
from labrunner.cluster.connection import Connections, DeadlinePassed
from labrunner.cluster.errors import (
    RETRYABLE_STATUS,
    ClusterError,
    ErrorKind,
    NotFound,
    http_error,
    timed_out,
    transport_error,
)
from labrunner.cluster.kubeconfig import (
    KubeConfig,
    kubeconfig_stamp,
    load,
    pinned_config,
)
from labrunner.cluster.kubeconfig import resolve_context as _resolve

TYPE_CHECKING = False  # as typing's, without importing typing (a start-up cost)
if TYPE_CHECKING:
    import ssl
    from typing import Any

USER_AGENT = f"labrunner/{__version__}"
CONNECT_TIMEOUT = 5.0
_RETRY_PAUSES = (0.1, 0.3)

__all__ = [
    "CONNECT_TIMEOUT",
    "USER_AGENT",
    "Kube",
    "kubeconfig_stamp",
    "quote_path",
    "resolve_context",
]


def resolve_context(
    env: Mapping[str, str],
    explicit: str | None = None,
    *,
    cwd: str | os.PathLike[str] | None = None,
) -> str:
    """The context a check acts on; raises ClusterError saying what to fix when there is none."""
    return _resolve(load(env, cwd), explicit, env_value=env.get("KUBECONFIG") or "")


# --------------------------------------------------------------------------- proxies

_request = threading.local()
"""The deadline of the request this thread is making through a proxy (read by the pools
below)."""


def _shutdown(conn: Any) -> None:
    sock = getattr(conn, "sock", None)
    if sock is not None:
        # lazy: only a shutdown needs it (start-up speed)
        import socket

        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _deadline_pool(base: Any) -> Any:
    """A urllib3 pool class whose requests end by the thread's current deadline."""

    class DeadlinePool(base):  # type: ignore[misc]
        def _make_request(self, conn: Any, *args: Any, **kwargs: Any) -> Any:
            deadline = getattr(_request, "deadline", None)
            if deadline is None:
                return super()._make_request(conn, *args, **kwargs)
            alarm = deadlines.arm(deadline, lambda: _shutdown(conn))
            try:
                return super()._make_request(conn, *args, **kwargs)
            finally:
                alarm.disarm()
                if alarm.fired:
                    _request.fired = True

    DeadlinePool.__name__ = f"Deadline{base.__name__}"
    return DeadlinePool


_POOLS: dict[str, Any] = {}


def _pool_classes() -> dict[str, Any]:
    if not _POOLS:
        # lazy: urllib3 loads only for a kubeconfig with a proxy-url (start-up speed)
        from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

        _POOLS["http"] = _deadline_pool(HTTPConnectionPool)
        _POOLS["https"] = _deadline_pool(HTTPSConnectionPool)
    return _POOLS


class _Proxied:
    """Requests through the kubeconfig's ``proxy-url``: urllib3's proxy managers (http,
    https, SOCKS) behind the interface of ``Connections``."""

    def __init__(self, manager: Any, origin: str) -> None:
        self.manager = manager
        self.origin = origin

    def clear(self) -> None:
        """Close every pooled connection."""
        self.manager.clear()

    def request(
        self,
        method: str,
        target: str,
        *,
        body: bytes | None,
        headers: dict[str, str],
        connect_timeout: float,
        read_timeout: float,
        deadline: float,
        stream: bool,
    ) -> Any:
        """As ``Connections.request``; the response is urllib3's."""
        import urllib3  # lazy: see _pool_classes

        _request.deadline = deadline
        _request.fired = False
        try:
            return self.manager.request(
                method,
                self.origin + target,
                body=body,
                headers=headers,
                timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
                retries=False,
                preload_content=not stream,
                redirect=False,
            )
        except Exception:
            if getattr(_request, "fired", False):
                raise DeadlinePassed from None
            raise
        finally:
            _request.deadline = None


# --------------------------------------------------------------------------- TLS


def _load_cert(context: ssl.SSLContext, cert: ClientCert | tuple[str, str]) -> None:
    """Load a client certificate into ``context`` (inline data goes through a private
    temporary file, removed at once: the ssl module reads certificates only from files)."""
    import ssl  # lazy: only https servers need it (start-up speed)

    try:
        if isinstance(cert, tuple):
            context.load_cert_chain(cert[0], cert[1])
            return
        import tempfile  # only inline client certificates need it (start-up speed)

        with tempfile.TemporaryDirectory(prefix="labrunner-cert-") as tmp:
            os.chmod(tmp, 0o700)
            cert_path, key_path = Path(tmp) / "client.crt", Path(tmp) / "client.key"
            for path, data in ((cert_path, cert.cert), (key_path, cert.key)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
            context.load_cert_chain(str(cert_path), str(key_path))
    except (ssl.SSLError, OSError) as exc:
        raise ClusterError(
            f"the kubeconfig's client certificate cannot be used: {exc}", kind=ErrorKind.KUBECONFIG
        ) from None


def _ssl_context(cluster: Mapping[str, Any], cert: ClientCert | tuple[str, str] | None) -> Any:
    """The TLS context for ``cluster``: only its CA when it names one (as kubectl)."""
    insecure = bool(cluster.get("insecure-skip-tls-verify"))
    ca_data = cluster.get("certificate-authority-data")
    ca_file = cluster.get("certificate-authority")
    if insecure and (ca_data or ca_file):
        raise ClusterError(
            "the kubeconfig sets both a certificate authority and insecure-skip-tls-verify, "
            "which kubectl refuses too; remove one",
            kind=ErrorKind.KUBECONFIG,
        )
    import ssl  # lazy: only https servers need it (start-up speed)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        try:
            if ca_data:
                pem = decode_data(ca_data, what="certificate-authority-data")
                context.load_verify_locations(cadata=pem.decode("ascii", "replace"))
            elif ca_file:
                context.load_verify_locations(cafile=str(ca_file))
            else:
                context.load_default_certs()
        except (ssl.SSLError, OSError, ValueError) as exc:
            what = ca_file or "certificate-authority-data"
            raise ClusterError(
                f"the kubeconfig's certificate authority ({what}) cannot be loaded: {exc}",
                kind=ErrorKind.KUBECONFIG,
            ) from None
    if cert is not None:
        _load_cert(context, cert)
    return context


def _cluster_info(cluster: Mapping[str, Any]) -> dict[str, Any]:
    """The cluster as an exec plugin's ``KUBERNETES_EXEC_INFO`` describes it."""
    info: dict[str, Any] = {"server": cluster.get("server", "")}
    for key in ("tls-server-name", "insecure-skip-tls-verify", "proxy-url", "disable-compression"):
        if cluster.get(key):
            info[key] = cluster[key]
    if cluster.get("certificate-authority-data"):
        info["certificate-authority-data"] = cluster["certificate-authority-data"]
    elif cluster.get("certificate-authority"):
        try:
            # lazy: only inline certificate data needs it (start-up speed)
            import base64

            data = Path(str(cluster["certificate-authority"])).read_bytes()
            info["certificate-authority-data"] = base64.b64encode(data).decode()
        except OSError:
            pass
    for ext in cluster.get("extensions") or []:
        if isinstance(ext, dict) and ext.get("name") == "client.authentication.k8s.io/exec":
            info["config"] = ext.get("extension")
    return info


class Kube:
    """A connection to one cluster: raw JSON requests, discovery and watches.

    Thread-safe: checks may run from the TUI's worker threads while a
    port-forward relays traffic over the same connection settings.
    """

    def __init__(
        self,
        config: KubeConfig,
        *,
        context: str,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.context = context
        self.namespace = config.namespace(context)
        cluster = dict(config.cluster_of(context) or {})
        server = str(cluster.get("server") or "").rstrip("/")
        scheme = urlsplit(server).scheme
        if not server or scheme not in ("http", "https") or not urlsplit(server).hostname:
            raise ClusterError(
                f"kube context {context!r} has no usable server URL ({server or 'none'}); "
                "check the cluster entry in the kubeconfig",
                kind=ErrorKind.KUBECONFIG,
            )
        self.server: str = server
        parts = urlsplit(server)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self.cluster = cluster
        self.config_dict = pinned_config(config, context)
        """The one-context kubeconfig this connection was built from (for the port-forward)."""
        user = config.user_of(context)
        provider = None
        if isinstance(user.get("auth-provider"), dict) and not (
            user.get("token") or user.get("tokenFile")
        ):
            provider = auth_provider_token(self.config_dict, context)
        self.auth = UserAuth(
            user,
            env=dict(env if env is not None else os.environ),
            cluster_info=_cluster_info(cluster),
            provider_token=provider,
        )
        self.proxy_url = str(cluster.get("proxy-url") or "") or None
        self.tls_server_name = str(cluster.get("tls-server-name") or "") or None
        self.insecure = bool(cluster.get("insecure-skip-tls-verify"))
        self.discovery_cache: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._pool: Any = None
        self._pool_cert: Any = None
        self._closed = False
        if self.auth.exec is None:  # a TLS or certificate problem shows now, not mid-check
            self._ensure_pool(self.auth.static_cert)

    @classmethod
    def connect(
        cls,
        env: Mapping[str, str],
        context: str,
        *,
        cwd: str | os.PathLike[str] | None = None,
    ) -> Kube:
        """A connection to ``context`` of ``env``'s kubeconfig (raises ClusterError)."""
        config = load(env, cwd)
        name = _resolve(config, context, env_value=env.get("KUBECONFIG") or "")
        return cls(config, context=name, env=env)

    def _ensure_pool(self, cert: ClientCert | tuple[str, str] | None) -> Any:
        """The connection pool, rebuilt when an exec plugin's client certificate changed."""
        if not self.server.startswith("https"):
            cert = None
        with self._lock:
            if self._pool is not None and cert is self._pool_cert:
                return self._pool
            old, self._pool = self._pool, self._make_pool(cert)
            self._pool_cert = cert
        if old is not None:
            old.clear()
        return self._pool

    def _make_pool(self, cert: ClientCert | tuple[str, str] | None) -> Any:
        context = _ssl_context(self.cluster, cert) if self.server.startswith("https") else None
        if not self.proxy_url:
            parts = urlsplit(self.server)
            return Connections(
                parts.hostname or "",
                parts.port,
                tls=context,
                server_hostname=self.tls_server_name,
            )
        import urllib3  # lazy: see _pool_classes

        options: dict[str, Any] = {"maxsize": 8, "block": False, "retries": False}
        if context is not None:
            options["ssl_context"] = context
            if self.tls_server_name:
                options["server_hostname"] = self.tls_server_name
            if self.insecure:
                options["cert_reqs"] = "CERT_NONE"
                options["assert_hostname"] = False
                # The kubeconfig asked for insecure-skip-tls-verify; urllib3 would warn on
                # every poll and bury the lab's output.
                import warnings

                warnings.filterwarnings(
                    "ignore", category=urllib3.exceptions.InsecureRequestWarning
                )
        manager: Any
        scheme = urlsplit(self.proxy_url).scheme
        if scheme in ("http", "https"):
            manager = urllib3.ProxyManager(self.proxy_url, num_pools=4, **options)
        elif scheme.startswith("socks"):
            try:
                # lazy: only a socks5 proxy-url needs it (and its optional dependency)
                from urllib3.contrib.socks import SOCKSProxyManager
            except ImportError:
                raise ClusterError(
                    f"the kubeconfig's proxy-url {self.proxy_url} is a SOCKS proxy, which "
                    "needs the PySocks package (pip install pysocks)",
                    kind=ErrorKind.KUBECONFIG,
                ) from None
            manager = SOCKSProxyManager(self.proxy_url, num_pools=4, **options)
        else:
            raise ClusterError(
                f"the kubeconfig's proxy-url {self.proxy_url} is not an http, https or socks5 URL",
                kind=ErrorKind.KUBECONFIG,
            )
        manager.pool_classes_by_scheme = _pool_classes()
        return _Proxied(manager, self._origin)

    @property
    def pool(self) -> Any:
        """The connections (None before the first request of an exec-plugin user)."""
        return self._pool

    def close(self) -> None:
        """Close the connection pool."""
        with self._lock:
            pool, self._pool = self._pool, None
            self._closed = True
        if pool is not None:
            try:
                pool.clear()
            except Exception:  # noqa: S110 - closing is best effort
                pass

    # ------------------------------------------------------------------ requests

    def _prepare(self, accept: str, deadline: float) -> tuple[dict[str, str], Any]:
        """The headers and the pool for one request (one look at the credential)."""
        credentials, cert = self.auth.current(deadline=deadline)
        headers: dict[str, str] = {"Accept": accept, "User-Agent": USER_AGENT}
        headers.update(credentials)
        return headers, self._ensure_pool(cert)

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
        method: str = "GET",
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> Any:
        """Send a request (a GET unless told) and return the response (status not checked;
        the caller reads it: ``status``, ``headers``, ``data`` or ``read``/``read1`` when
        ``stream``, then ``release_conn``). ``body`` goes out as ``content_type``.

        The whole request (connect, TLS, headers and, unless ``stream``, the
        body) ends within ``timeout`` seconds, however slowly the server
        answers.
        """
        timeout = max(timeout, 0.05)
        deadline = time.monotonic() + timeout
        connect = min(timeout, CONNECT_TIMEOUT)
        read = max(read_timeout if read_timeout is not None else timeout, 0.05)
        target = self.url(path, query)[len(self._origin) :]
        headers, pool = self._prepare(accept, deadline)
        if body is not None:
            headers = {**headers, "Content-Type": content_type}
        for attempt in (1, 2):
            try:
                return pool.request(
                    method,
                    target,
                    body=body,
                    headers=headers,
                    connect_timeout=connect,
                    read_timeout=read,
                    deadline=deadline,
                    stream=stream,
                )
            except DeadlinePassed:
                raise timed_out(
                    f"the API server at {self.server} did not answer",
                    timeout,
                    "it answers too slowly or not at all",
                ) from None
            except Exception as exc:
                error = transport_error(
                    exc, server=self.server, timeout=timeout, connect_timeout=connect
                )
                # A kept-alive connection the server closed shows up as a reset or
                # protocol error on first use; one immediate retry on a fresh one fixes it.
                if attempt == 1 and error.kind is ErrorKind.RESET and time.monotonic() < deadline:
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
        refreshed = False
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
            if status == 401 and self.auth.refreshable and not refreshed:
                # an exec plugin's token may have been revoked early: ask it once more
                refreshed = True
                self.auth.invalidate()
                continue
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
