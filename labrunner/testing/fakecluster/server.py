"""The HTTP front end and :class:`FakeCluster`, the object tests hold.

A stdlib ``ThreadingHTTPServer`` speaking HTTP/1.1 on 127.0.0.1, optionally over TLS with a
bearer token. Nagle's algorithm is off: without that every response waits ~40 ms for a delayed
ACK and the fake would be slower than the code it tests. Responses always carry
``Content-Length`` except watches, which stream chunked JSON lines; watch, exec and
port-forward connections are closed afterwards.

Every request is authenticated to an :class:`~.auth.Identity` and, when the server was started
with ``rbac=True``, authorized by :mod:`.rbac` before anything else happens. The server also
counts every TCP connection it accepts and every TLS handshake that fails, so a safety test can
prove that a server it must not touch received nothing at all; and it answers ``CONNECT`` by
serving the tunnel itself, which lets a kubeconfig name a cloud-looking URL (``proxy-url``
pointing here) without any DNS.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import queue
import secrets
import select
import socket
import ssl
import tempfile
import threading
import time
import traceback
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from . import auth, discovery, errors, events, kubeconfig, patches, protobuf, rbac, simulation
from .api import MERGE_PATCH, STRATEGIC_PATCH, ApiCore, Target, clone, with_version
from .auth import Identity
from .errors import ApiError
from .faults import FaultRule, Faults
from .proxy import Targets, relay
from .resources import REVIEWS, ResourceType
from .selectors import SelectorError, parse_field_selector, parse_label_selector
from .store import WatchEvent
from .tables import build_table
from .websocket import (
    EXEC_PROTOCOLS,
    PORTFORWARD_PROTOCOLS,
    Connection,
    ExecHandler,
    ExecResult,
    accept_key,
    choose_protocol,
    serve_exec,
    serve_portforward,
    unconfigured_exec,
)

if TYPE_CHECKING:
    from .tls import TlsMaterial

JsonDict = dict[str, Any]
_TRUE = ("true", "1")
_DEFAULT_WATCH_TIMEOUT = 1800.0
_NOT_STARTED = frozenset(
    {
        "ContainerCreating",
        "PodInitializing",
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)
_IMAGE_TROUBLE = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName"})
_AS_ADMIN = "\x00admin"
SERVICE_ACCOUNTS_KEY = ("", "serviceaccounts")
EKS_URL = "https://ABC.gr7.us-west-2.eks.amazonaws.com"


@dataclass(frozen=True)
class Traffic:
    """What reached a server: TCP connections, failed TLS handshakes, HTTP requests."""

    connections: int
    tls_failures: tuple[str, ...]
    requests: int
    stalled: int

    @property
    def untouched(self) -> bool:
        """Whether nothing at all reached the server."""
        return self.connections == 0 and self.requests == 0


class _Severed(ConnectionResetError):
    """The fake cut the connection on purpose (a ``cut`` or ``hang`` fault)."""


class _Trickle:
    """A writer that sends one byte at a time, pausing before each."""

    def __init__(self, raw: Any, interval: float, stopping: threading.Event) -> None:
        self._raw = raw
        self._interval = interval
        self._stopping = stopping

    def write(self, data: bytes) -> int:
        for i in range(len(data)):
            if self._stopping.wait(self._interval):
                raise _Severed("the server is stopping")
            self._raw.write(data[i : i + 1])
        return len(data)

    def flush(self) -> None:
        self._raw.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class _Cut:
    """A writer that lets the headers through, then severs the connection."""

    def __init__(self, raw: Any, sock: Any, after: str) -> None:
        self._raw = raw
        self._sock = sock
        self._after = after
        self._writes = 0

    def write(self, data: bytes) -> int:
        self._writes += 1
        if self._writes == 1:
            return int(self._raw.write(data))
        if self._after == "body" and len(data) > 1:
            self._raw.write(data[: len(data) // 2])
            self._raw.flush()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        raise _Severed("connection cut by an injected fault")

    def flush(self) -> None:
        self._raw.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def _wait_for_hangup(sock: Any, stopping: threading.Event, until: float | None) -> None:
    """Block until the peer closes ``sock``, ``until`` passes or the server stops (data read
    meanwhile is thrown away: nobody will answer it)."""
    while not stopping.is_set():
        if until is not None and time.monotonic() >= until:
            return
        try:
            readable, _, _ = select.select([sock], [], [], 0.1)
        except (OSError, ValueError):
            return
        if not readable:
            continue
        try:
            data = sock.recv(65536)
        except (ssl.SSLWantReadError, BlockingIOError):
            continue
        except (OSError, ValueError):
            return
        if not data:
            return


@dataclass(frozen=True)
class RequestRecord:
    """One request the fake answered (for debugging and assertions)."""

    method: str
    path: str
    query: str
    verb: str
    resource: str
    namespace: str
    name: str
    status: int
    user_agent: str
    content_type: str
    duration: float
    user: str = ""


@dataclass(frozen=True)
class _Route:
    """What a request path names: the resource type, version, namespace and name."""

    rt: ResourceType
    version: str
    namespace: str
    name: str
    subresource: str
    extra: str


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    cluster: FakeCluster

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Count the connection the moment it is accepted (before any TLS or HTTP)."""
        return self.cluster._note_connection(client_address)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Handshake TLS in the connection's own thread, so a bad client never blocks accept()."""
        cluster = self.cluster
        if cluster.faults.stalling:
            cluster._track(request, add=True)
            try:
                cluster._note_stalled()
                _wait_for_hangup(request, cluster._stopping, None)
            finally:
                cluster._track(request, add=False)
                with contextlib.suppress(OSError):
                    request.close()
            return
        conn = self.wrap_tls(request, client_address)
        if conn is None:
            return
        cluster._track(conn, add=True)
        try:
            super().finish_request(conn, client_address)
        finally:
            cluster._track(conn, add=False)
            if conn is not request:
                with contextlib.suppress(OSError):
                    conn.close()

    def wrap_tls(self, request: Any, client_address: Any) -> Any:
        """The TLS connection over ``request`` (itself over plain HTTP); None if the
        handshake failed, which is counted with its reason."""
        context = self.cluster._ssl_context
        if context is None:
            return request
        try:
            request.settimeout(10)
            first = request.recv(1, socket.MSG_PEEK)
            if first and first != b"\x16":
                # Not a TLS hello: plain HTTP, which an HTTPS server only answers with a
                # CONNECT tunnel (``proxy-url``) or a 400.
                request.settimeout(None)
                return request
            conn = context.wrap_socket(request, server_side=True)
            conn.settimeout(None)
        except (OSError, ssl.SSLError) as exc:
            self.cluster._note_tls_failure(client_address, exc)
            with contextlib.suppress(OSError):
                request.close()
            return None
        return conn

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Connection resets are normal for a test server; stay quiet."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _HttpServer
    _identity: Identity = auth.ADMIN

    def log_message(self, format: str, *args: Any) -> None:
        """The request log on :class:`FakeCluster` replaces stderr logging."""

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_CONNECT(self) -> None:
        """Act as the HTTP proxy a kubeconfig's ``proxy-url`` names: serve the tunnel here."""
        self._started = time.monotonic()
        self._status = 200
        self._logged = False
        self._info = ("connect", "", "", "")
        self._path = self.path
        self._raw_query = ""
        self._identity = auth.ANONYMOUS_IDENTITY
        self.send_response(200, "Connection established")
        self.end_headers()
        self._log_request()
        self.wfile.flush()
        self.close_connection = True
        conn = self.server.wrap_tls(self.connection, self.client_address)
        if conn is None:
            return
        self.cluster._track(conn, add=True)
        try:
            _Handler(conn, self.client_address, self.server)
        except OSError:
            pass
        finally:
            self.cluster._track(conn, add=False)
            with contextlib.suppress(OSError):
                conn.close()

    # --- plumbing ---------------------------------------------------------------------------

    @property
    def cluster(self) -> FakeCluster:
        return self.server.cluster

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        code: int,
        body: bytes,
        content_type: str = "application/json",
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        self._status = code
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()
        self._log_request()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, code: int, obj: Any, headers: Iterable[tuple[str, str]] = ()) -> None:
        self._send(code, json.dumps(obj, separators=(",", ":")).encode(), headers=headers)

    def _send_error(self, exc: ApiError) -> None:
        headers = []
        if exc.retry_after is not None:
            headers.append(("Retry-After", str(exc.retry_after)))
        if exc.code == 401:
            headers.append(("WWW-Authenticate", 'Bearer realm="kubernetes"'))
        self._send_json(exc.code, exc.to_status(), headers)

    def _dispatch(self) -> None:
        self._started = time.monotonic()
        self._status = 0
        self._logged = False
        self._info = ("", "", "", "")
        self._identity = auth.ADMIN
        parts = urlsplit(self.path)
        self._query = parse_qs(parts.query, keep_blank_values=True)
        self._raw_query = parts.query
        path = self._path = unquote(parts.path)
        try:
            body = self._read_body()
            if self.cluster._ssl_context is not None and not isinstance(
                self.connection, ssl.SSLSocket
            ):
                self.close_connection = True
                raise errors.bad_request("Client sent an HTTP request to an HTTPS server.")
            self._authenticate()
            self._handle(path, body)
        except ApiError as exc:
            self._safe_error(exc)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True
        except Exception as exc:
            self.cluster.errors.append(traceback.format_exc())
            self._safe_error(errors.internal_error(f"{type(exc).__name__}: {exc}"))
        finally:
            self._log_request()

    def _log_request(self) -> None:
        """Record the request once, before its body goes out (a client may exit right after)."""
        if self._logged:
            return
        self._logged = True
        verb, resource, namespace, name = self._info
        self.cluster._record(
            RequestRecord(
                method=self.command,
                path=self._path,
                query=self._raw_query,
                verb=verb,
                resource=resource,
                namespace=namespace,
                name=name,
                status=self._status,
                user_agent=self.headers.get("User-Agent", ""),
                content_type=self.headers.get("Content-Type", ""),
                duration=time.monotonic() - self._started,
                user=self._identity.user,
            )
        )

    def _safe_error(self, exc: ApiError) -> None:
        try:
            self._send_error(exc)
        except OSError:
            self.close_connection = True

    def _q(self, key: str, default: str = "") -> str:
        values = self._query.get(key)
        return values[0] if values else default

    def _flag(self, key: str) -> bool:
        return self._q(key).lower() in _TRUE

    def _authenticate(self) -> None:
        cluster = self.cluster
        header = self.headers.get("Authorization", "")
        strict = cluster.token is not None or cluster.rbac
        identity: Identity
        if header.startswith("Bearer "):
            check = cluster._check_token(header[len("Bearer ") :].strip())
            if check.identity is not None:
                identity = check.identity
            elif check.known or strict:
                raise errors.unauthorized()
            else:
                identity = auth.ADMIN
        elif header:
            if strict:
                raise errors.unauthorized()
            identity = auth.ADMIN
        elif (peer := self._peer_identity()) is not None:
            identity = peer
        elif cluster.token is not None:
            raise errors.unauthorized()
        else:
            identity = auth.ANONYMOUS_IDENTITY if cluster.rbac else auth.ADMIN
        self._identity = self._impersonate(identity)

    def _peer_identity(self) -> Identity | None:
        """The identity of a verified client certificate: CN is the user, O a group."""
        if not self.cluster.client_certs or not isinstance(self.connection, ssl.SSLSocket):
            return None
        cert = self.connection.getpeercert()
        if not cert:
            return None
        fields = {str(pair[0]): str(pair[1]) for rdn in cert.get("subject", ()) for pair in rdn}
        user = str(fields.get("commonName") or "")
        if not user:
            return None
        group = fields.get("organizationName")
        identity = auth.identity_for(user, (str(group),) if group else ())
        if group == auth.MASTERS or user == auth.ADMIN_USER:
            return auth.ADMIN
        return identity

    def _impersonate(self, identity: Identity) -> Identity:
        """Honour ``Impersonate-User``/``-Group`` (``kubectl --as``) if the requester may."""
        user = self.headers.get("Impersonate-User")
        groups = tuple(self.headers.get_all("Impersonate-Group") or ())
        if not user:
            if groups:
                raise errors.internal_error(
                    f"requested {list(groups)} without impersonating a user"
                )
            return identity
        checks: builtins.list[rbac.Attributes] = []
        as_sa = auth.identity_for(user).service_account
        if as_sa is not None:
            checks.append(
                rbac.Attributes(
                    "impersonate", "serviceaccounts", "", namespace=as_sa[0], name=as_sa[1]
                )
            )
        else:
            checks.append(rbac.Attributes("impersonate", "users", "", name=user))
        checks.extend(rbac.Attributes("impersonate", "groups", "", name=g) for g in groups)
        for attrs in checks:
            self._authorize(attrs, identity=identity)
        return auth.identity_for(user, groups)

    def _authorize(self, attrs: rbac.Attributes, *, identity: Identity | None = None) -> None:
        """Raise the apiserver's 403 unless RBAC allows ``attrs`` (always allowed when off)."""
        cluster = self.cluster
        who = identity or self._identity
        if not cluster.rbac or who.admin:
            return
        if not rbac.authorize(cluster.core.store, who, attrs).allowed:
            raise rbac.forbidden(who, attrs)

    # --- routing ----------------------------------------------------------------------------

    def _handle(self, path: str, body: bytes) -> None:
        registry = self.cluster.core.registry
        segs = [s for s in path.split("/") if s]
        method = self.command
        if not ((len(segs) >= 3 and segs[0] == "api") or (len(segs) >= 4 and segs[0] == "apis")):
            attrs = rbac.Attributes(method.lower(), path=path)
            self._authorize(attrs)
            self._faults(attrs, resource_request=False)
        if path in ("/healthz", "/livez", "/readyz"):
            self._send(200, b"ok", "text/plain; charset=utf-8")
            return
        if path in ("/version", "/version/"):
            self._send_json(200, discovery.version_info())
            return
        if segs and segs[0] == "openapi":
            self._openapi(segs)
            return
        if method == "GET" and segs == ["api"]:
            self._send_json(200, discovery.api_versions(f"{self.cluster.host}:{self.cluster.port}"))
            return
        if method == "GET" and segs == ["apis"]:
            self._send_json(200, discovery.api_group_list(registry))
            return
        if method == "GET" and len(segs) == 2 and segs[0] == "apis":
            group_doc = discovery.api_group(registry, segs[1])
            if group_doc is None:
                raise errors.resource_not_found()
            self._send_json(200, group_doc)
            return
        if method == "GET" and (
            (len(segs) == 2 and segs[0] == "api") or (len(segs) == 3 and segs[0] == "apis")
        ):
            group, version = ("", segs[1]) if segs[0] == "api" else (segs[1], segs[2])
            listing = discovery.api_resource_list(registry, group, version)
            if listing is None:
                raise errors.resource_not_found()
            self._send_json(200, listing)
            return
        route = self._route(segs, path)
        self._resource(route, body)

    def _openapi(self, segs: builtins.list[str]) -> None:
        registry = self.cluster.core.registry
        if segs == ["openapi", "v3"]:
            self._send_json(200, discovery.openapi_root(registry))
            return
        if len(segs) >= 4 and segs[1] == "v3":
            if segs[2] == "api" and len(segs) == 4:
                doc = discovery.openapi_gv_document(registry, "", segs[3])
            elif segs[2] == "apis" and len(segs) == 5:
                doc = discovery.openapi_gv_document(registry, segs[3], segs[4])
            else:
                doc = None
            if doc is not None:
                self._send_json(200, doc)
                return
        raise errors.resource_not_found()

    def _route(self, segs: builtins.list[str], path: str) -> _Route:
        registry = self.cluster.core.registry
        if len(segs) >= 3 and segs[0] == "api":
            group, version, rest = "", segs[1], segs[2:]
        elif len(segs) >= 4 and segs[0] == "apis":
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            raise errors.resource_not_found()
        namespace = ""
        if (
            rest[0] == "namespaces"
            and len(rest) >= 3
            and not (len(rest) == 3 and rest[2] in ("status", "finalize"))
        ):
            namespace, rest = rest[1], rest[2:]
        rt = registry.lookup(group, version, rest[0])
        if rt is None:
            raise errors.resource_not_found()
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        extra = ""
        if sub == "proxy":
            marker = path.find("/proxy", path.find(f"/{rest[0]}/"))
            extra = path[marker + len("/proxy") :] or "/"
        elif len(rest) > 3:
            raise errors.resource_not_found()
        if namespace and not rt.namespaced:
            raise errors.resource_not_found()
        if rt.namespaced and name and not namespace:
            raise errors.resource_not_found()
        if sub and sub not in rt.subresources:
            raise errors.resource_not_found()
        return _Route(rt, version, namespace, name, sub, extra)

    def _verb(self, route: _Route) -> str:
        method = self.command
        if route.subresource in ("exec", "portforward", "attach"):
            return "create"
        if method == "GET":
            if route.name:
                return "get"
            return "watch" if self._flag("watch") else "list"
        if method == "DELETE":
            return "delete" if route.name else "deletecollection"
        return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())

    def _attributes(self, route: _Route, verb: str) -> rbac.Attributes:
        """What the authorizer is asked, named the way the apiserver's request info names it."""
        name = route.name
        if not name and verb in ("list", "watch"):
            name = _exact_name(self._q("fieldSelector"))
        namespace = route.namespace
        if route.rt.key == simulation.NAMESPACES and route.name:
            namespace = route.name
        return rbac.Attributes(
            verb=verb,
            resource=route.rt.plural,
            group=route.rt.group,
            subresource=route.subresource,
            namespace=namespace,
            name=name,
            path=self._path,
        )

    def _faults(
        self, attrs: rbac.Attributes, *, resource_request: bool = True
    ) -> builtins.list[FaultRule]:
        """Fire the armed faults that match; returns the watch-dropping ones."""
        cluster = self.cluster
        fired = cluster.faults.take(
            attrs.verb,
            attrs.resource,
            attrs.namespace if attrs.resource != "namespaces" else "",
            attrs.name,
            attrs.subresource,
            path=self._path,
            resource_request=resource_request,
        )
        drops: builtins.list[FaultRule] = []
        for rule in fired:
            if rule.delay:
                cluster._stopping.wait(rule.delay)
            if rule.hang:
                self.close_connection = True
                until = None if rule.hang_seconds is None else time.monotonic() + rule.hang_seconds
                _wait_for_hangup(self.connection, cluster._stopping, until)
                raise _Severed("request left unanswered by an injected fault")
            if rule.trickle is not None:
                self.close_connection = True
                self.wfile = _Trickle(self.wfile, rule.trickle, cluster._stopping)  # type: ignore[assignment]
            if rule.cut is not None:
                self.close_connection = True
                self.wfile = _Cut(self.wfile, self.connection, rule.cut)  # type: ignore[assignment]
            failure = rule.error(attrs.resource, attrs.group, attrs.namespace, attrs.verb)
            if failure is not None:
                raise failure
            if rule.drop_after_events is not None or rule.drop_after_seconds is not None:
                drops.append(rule)
        return drops

    def _resource(self, route: _Route, body: bytes) -> None:
        verb = self._verb(route)
        self._info = (verb, route.rt.plural, route.namespace, route.name)
        attrs = self._attributes(route, verb)
        self._authorize(attrs)
        drops = self._faults(attrs)
        if route.rt.key in REVIEWS or route.subresource == "token":
            if verb != "create":
                raise errors.method_not_allowed(verb)
            if route.subresource == "token":
                self._token_request(route, body)
            else:
                self._review(route, body)
            return
        if route.rt.key == events.EVENTS_V1:
            self._events_v1(route, verb, body, drops)
            return
        if (
            (verb == "create" and route.name and not route.subresource)
            or (verb == "create" and route.rt.namespaced and not route.namespace)
            or (verb in ("update", "patch") and not route.name)
        ):
            raise errors.method_not_allowed(verb)
        core = self.cluster.core
        target = Target(route.rt, route.version, route.namespace, route.name, route.subresource)
        dry_run = self._q("dryRun") == "All"
        validation = self._q("fieldValidation") or "Ignore"
        if route.subresource in ("exec", "portforward", "log", "proxy"):
            self._pod_or_service(route, body)
            return
        if verb == "watch":
            self._watch(route, drops)
            return
        if verb == "list":
            self._list(route)
            return
        if (
            self.cluster.rbac
            and route.rt.key in rbac.RBAC_KEYS
            and verb in ("create", "update", "patch")
            and not self._identity.admin
        ):
            self._check_escalation(target, verb, body, validation)
        if verb == "get":
            obj = core.get(target)
            if self._wants_table() and not route.subresource:
                self._send_json(200, self._table(route.rt, route.version, [obj]))
            else:
                self._send_json(200, obj)
            return
        if verb == "create":
            result = core.create(
                target, self._decode_body(body), dry_run=dry_run, field_validation=validation
            )
        elif verb == "update":
            result = core.update(
                target, self._decode_body(body), dry_run=dry_run, field_validation=validation
            )
        elif verb == "patch":
            ctype = self.headers.get("Content-Type", MERGE_PATCH)
            result = core.patch(target, body, ctype, dry_run=dry_run, field_validation=validation)
        elif verb == "delete":
            options = self._delete_options(body)
            result = core.delete(
                target,
                dry_run=dry_run or options.get("dryRun") == ["All"],
                propagation=self._q("propagationPolicy")
                or options.get("propagationPolicy")
                or "Background",
                preconditions=options.get("preconditions"),
            )
        elif verb == "deletecollection":
            result = core.delete_collection(
                target,
                label_selector=self._q("labelSelector"),
                field_selector=self._q("fieldSelector"),
                dry_run=dry_run,
            )
        else:
            raise errors.method_not_allowed(verb)
        headers = [("Warning", _warning_header(w)) for w in result.warnings]
        self._send_json(result.code, result.obj, headers)

    def _check_escalation(self, target: Target, verb: str, body: bytes, validation: str) -> None:
        """Refuse an RBAC write granting more than the requester holds (dry run first)."""
        core = self.cluster.core
        if verb == "create":
            result = core.create(
                target, self._decode_body(body), dry_run=True, field_validation=validation
            )
        elif verb == "update":
            result = core.update(
                target, self._decode_body(body), dry_run=True, field_validation=validation
            )
        else:
            ctype = self.headers.get("Content-Type", MERGE_PATCH)
            result = core.patch(target, body, ctype, dry_run=True, field_validation=validation)
        rbac.check_escalation(core.store, self._identity, target.rt.key, result.obj)

    def _review(self, route: _Route, body: bytes) -> None:
        """Answer an access review, rules review, whoami or token review (never stored)."""
        review = self._decode_body(body) if body.strip() else {}
        if not isinstance(review, dict):
            raise errors.bad_request(f"a {route.rt.kind} must be an object")
        spec = review.get("spec") or {}
        kind = route.rt.kind
        cluster = self.cluster
        store = cluster.core.store
        status: JsonDict
        if kind == "SelfSubjectReview":
            status = {"userInfo": self._identity.user_info()}
        elif kind == "TokenReview":
            check = cluster._check_token(str(spec.get("token", "")))
            if check.identity is not None:
                status = {
                    "authenticated": True,
                    "user": check.identity.user_info(),
                    "audiences": list(spec.get("audiences") or [auth.ISSUER]),
                }
            else:
                status = {"authenticated": False, "error": check.problem or "invalid token"}
        elif kind == "SelfSubjectRulesReview":
            status = rbac.rules_review(store, self._identity, str(spec.get("namespace", "")))
        else:
            if kind == "SelfSubjectAccessReview":
                subject = self._identity
            else:
                subject = auth.identity_for(
                    str(spec.get("user", "")),
                    tuple(spec.get("groups") or ()),
                    str(spec.get("uid", "")),
                )
            attrs = rbac.Attributes.from_review(spec)
            if kind == "LocalSubjectAccessReview":
                res = dict(spec.get("resourceAttributes") or {})
                if res.get("namespace", route.namespace) != route.namespace:
                    raise errors.bad_request(
                        f"spec.resourceAttributes.namespace must match namespace: {route.namespace}"
                    )
                attrs = rbac.Attributes(
                    verb=attrs.verb,
                    resource=attrs.resource,
                    group=attrs.group,
                    subresource=attrs.subresource,
                    namespace=route.namespace,
                    name=attrs.name,
                )
            status = self._access_status(subject, attrs)
        review.update(
            apiVersion=route.rt.api_version(route.version),
            kind=kind,
            metadata={"creationTimestamp": None},
            status=status,
        )
        self._send_json(201, review)

    def _access_status(self, subject: Identity, attrs: rbac.Attributes) -> JsonDict:
        cluster = self.cluster
        if cluster.faults.denies(attrs.verb, attrs.resource, attrs.namespace, attrs.name):
            return {"allowed": False, "denied": True, "reason": "denied by an injected 403 fault"}
        if not cluster.rbac:
            return {"allowed": True}
        decision = rbac.authorize(cluster.core.store, subject, attrs)
        if decision.allowed:
            return {"allowed": True, "reason": decision.reason}
        return {"allowed": False}

    def _token_request(self, route: _Route, body: bytes) -> None:
        request = self._decode_body(body) if body.strip() else {}
        spec = dict((request or {}).get("spec") or {})
        raw_seconds = spec.get("expirationSeconds")
        seconds = int(raw_seconds) if raw_seconds else 3600
        problem = auth.validate_expiration(seconds)
        if problem:
            raise errors.invalid(
                "TokenRequest",
                "authentication.k8s.io",
                route.name,
                [
                    errors.Cause(
                        "FieldValueInvalid",
                        f"Invalid value: {seconds}: {problem}",
                        "spec.expirationSeconds",
                    )
                ],
            )
        token, record, warnings = self.cluster._issue(
            route.namespace, route.name, seconds, list(spec.get("audiences") or [])
        )
        spec.update(
            audiences=record.audiences, expirationSeconds=int(record.expires - int(record.issued))
        )
        spec.setdefault("boundObjectRef", None)
        self._send_json(
            201,
            {
                "kind": "TokenRequest",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {
                    "name": route.name,
                    "namespace": route.namespace,
                    "creationTimestamp": auth.rfc3339(record.issued),
                },
                "spec": spec,
                "status": {"token": token, "expirationTimestamp": auth.rfc3339(record.expires)},
            },
            [("Warning", _warning_header(w)) for w in warnings],
        )

    def _decode_body(self, body: bytes) -> Any:
        ctype = (
            self.headers.get("Content-Type", "application/json").split(";", 1)[0].strip().lower()
        )
        try:
            if ctype == "application/vnd.kubernetes.protobuf":
                return protobuf.decode_object(body)
            if ctype in ("application/yaml", "application/x-yaml", "text/yaml"):
                return yaml.safe_load(body.decode())
            return json.loads(body or b"null")
        except protobuf.ProtobufError as exc:
            raise errors.ApiError(415, "UnsupportedMediaType", str(exc)) from exc
        except (ValueError, yaml.YAMLError) as exc:
            raise errors.bad_request(f"error decoding request body: {exc}") from exc

    @staticmethod
    def _delete_options(body: bytes) -> JsonDict:
        if not body.strip():
            return {}
        try:
            options = json.loads(body)
        except ValueError as exc:
            raise errors.bad_request(f"error decoding DeleteOptions: {exc}") from exc
        return options if isinstance(options, dict) else {}

    def _wants_table(self) -> bool:
        accept = self.headers.get("Accept", "")
        return "as=Table" in accept

    def _table(
        self, rt: ResourceType, version: str, objs: builtins.list[JsonDict], **kw: Any
    ) -> JsonDict:
        return build_table(
            rt,
            version,
            objs,
            include_object=self._q("includeObject") or "Metadata",
            **kw,
        )

    def _list(self, route: _Route) -> None:
        limit_text = self._q("limit")
        page = self.cluster.core.list(
            Target(route.rt, route.version, route.namespace),
            label_selector=self._q("labelSelector"),
            field_selector=self._q("fieldSelector"),
            limit=int(limit_text) if limit_text.isdigit() else 0,
            continue_token=self._q("continue"),
        )
        if self._wants_table():
            table = self._table(
                route.rt,
                route.version,
                page.items,
                resource_version=page.resource_version,
                continue_token=page.continue_token,
            )
            self._send_json(200, table)
            return
        metadata: JsonDict = {"resourceVersion": page.resource_version}
        if page.continue_token:
            metadata["continue"] = page.continue_token
            metadata["remainingItemCount"] = page.remaining
        self._send_json(
            200,
            {
                "kind": route.rt.list_kind,
                "apiVersion": route.rt.api_version(route.version),
                "metadata": metadata,
                "items": page.items,
            },
        )

    # --- watch ------------------------------------------------------------------------------

    def _watch(
        self,
        route: _Route,
        drops: builtins.list[FaultRule],
        *,
        stored_as: ResourceType | None = None,
        convert: Any = None,
    ) -> None:
        try:
            labels = parse_label_selector(self._q("labelSelector"))
            fields = parse_field_selector(self._q("fieldSelector"), route.rt.group, route.rt.plural)
        except SelectorError as exc:
            raise errors.bad_request(str(exc)) from exc
        rv_text = self._q("resourceVersion")
        since: int | None = None
        if rv_text not in ("", "0"):
            if not rv_text.isdigit():
                raise errors.bad_request(f"invalid resource version: {rv_text}")
            since = int(rv_text)
        timeout_text = self._q("timeoutSeconds")
        timeout = (
            float(timeout_text)
            if timeout_text.replace(".", "", 1).isdigit()
            else _DEFAULT_WATCH_TIMEOUT
        )
        deadline = time.monotonic() + timeout
        max_events = min(
            (r.drop_after_events for r in drops if r.drop_after_events is not None), default=None
        )
        drop_at = min(
            (
                time.monotonic() + r.drop_after_seconds
                for r in drops
                if r.drop_after_seconds is not None
            ),
            default=None,
        )
        abrupt = any(r.abrupt for r in drops)
        table = self._wants_table()
        store = self.cluster.core.store
        self.close_connection = True
        try:
            source = stored_as or route.rt
            with store.watching(
                source.key,
                namespace=route.namespace or None,
                label_selector=labels,
                field_selector=fields,
                since=since,
            ) as (watcher, initial):
                self._status = 200
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Cache-Control", "no-cache, private")
                # The connection ends with the watch; say so, or a client may pool it
                # and send its next request into a socket the server is closing.
                self.send_header("Connection", "close")
                self.end_headers()
                self._log_request()
                sent = 0
                first = True
                pending: deque[WatchEvent] = deque(initial)
                while True:
                    if max_events is not None and sent >= max_events:
                        break
                    now = time.monotonic()
                    end = min(deadline, drop_at) if drop_at is not None else deadline
                    if now >= end:
                        break
                    if pending:
                        event: WatchEvent | None = pending.popleft()
                    else:
                        try:
                            event = watcher.queue.get(timeout=end - now)
                        except queue.Empty:
                            continue
                    if event is None:
                        break
                    if convert is not None and not table:
                        obj = convert(event.obj)
                    else:
                        version = route.version if stored_as is None else source.preferred_version
                        obj = with_version(event.obj, source, version)
                    if table:
                        obj = self._table(source, version, [obj], with_columns=first)
                        first = False
                    self._chunk(
                        json.dumps(
                            {"type": event.type, "object": obj}, separators=(",", ":")
                        ).encode()
                        + b"\n"
                    )
                    sent += 1
                stopped_by_fault = (max_events is not None and sent >= max_events) or (
                    drop_at is not None and time.monotonic() >= drop_at
                )
                if stopped_by_fault and abrupt:
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(b"0\r\n\r\n")
        except ApiError as exc:
            if self._status:
                raise
            self._status = 200
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            self._chunk(json.dumps({"type": "ERROR", "object": exc.to_status()}).encode() + b"\n")
            self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    # --- exec, port-forward, logs, proxy ----------------------------------------------------

    def _pod_or_service(self, route: _Route, body: bytes) -> None:
        core = self.cluster.core
        sub = route.subresource
        if sub == "proxy":
            self._proxy(route, body)
            return
        pod = core.get(Target(route.rt, route.version, route.namespace, route.name))
        if sub == "log":
            self._send(200, self._pod_log(route, pod), "text/plain")
            return
        if self.headers.get("Upgrade", "").lower() != "websocket":
            raise errors.bad_request("Upgrade request required")
        offered = self.headers.get("Sec-WebSocket-Protocol", "")
        supported = EXEC_PROTOCOLS if sub == "exec" else PORTFORWARD_PROTOCOLS
        protocol = choose_protocol(offered, supported)
        if protocol is None:
            raise errors.bad_request(
                f"unable to upgrade connection: no supported subprotocol in {offered!r}"
            )
        if sub == "exec":
            command = self._query.get("command") or []
            if not command:
                raise errors.bad_request("you must specify at least 1 command")
            container = self._q("container") or _default_container(pod)
            if container not in _container_names(pod):
                raise errors.bad_request(f"container {container} is not valid for pod {route.name}")
            conn = self._upgrade(protocol)
            handler = self.cluster.exec_handler
            try:
                result = handler(route.namespace, route.name, container, list(command))
            except Exception:
                result = ExecResult(stderr=traceback.format_exc().encode(), exit_code=1)
            serve_exec(conn, result, list(command))
            return
        ports: builtins.list[int] = []
        for value in self._query.get("ports") or []:
            for item in value.split(","):
                if not item.strip().isdigit():
                    raise errors.bad_request(f"invalid port {item!r}")
                ports.append(int(item))
        if not ports:
            raise errors.bad_request("at least one port must be specified")
        conn = self._upgrade(protocol)
        uid = pod["metadata"].get("uid", "")
        targets = self.cluster.targets
        serve_portforward(
            conn,
            ports,
            lambda port: targets.port_forward(route.namespace, pod, port),
            lambda port: f"error forwarding port {port} to pod {route.name}, uid {uid}",
            self.cluster._stopping,
        )

    def _pod_log(self, route: _Route, pod: JsonDict) -> bytes:
        """The log text, refused the way the kubelet refuses (no container chosen, not
        started, no previous run)."""
        spec = pod.get("spec") or {}
        names = [str(c.get("name")) for c in spec.get("containers") or []]
        inits = [str(c.get("name")) for c in spec.get("initContainers") or []]
        container = self._q("container")
        if not container:
            if len(names) != 1:
                message = (
                    f"a container name must be specified for pod {route.name}, "
                    f"choose one of: [{' '.join(names)}]"
                )
                if inits:
                    message += f" or one of the init containers: [{' '.join(inits)}]"
                raise errors.bad_request(message)
            container = names[0]
        if container not in _container_names(pod):
            raise errors.bad_request(f"container {container} is not valid for pod {route.name}")
        status = pod.get("status") or {}
        state: JsonDict = {}
        last: JsonDict = {}
        restarts = 0
        for cs in (status.get("containerStatuses") or []) + (
            status.get("initContainerStatuses") or []
        ):
            if cs.get("name") == container:
                state, last = cs.get("state") or {}, cs.get("lastState") or {}
                restarts = int(cs.get("restartCount") or 0)
        key = (route.namespace, route.name, container)
        logs = self.cluster.core.logs
        previous = self._flag("previous")
        if previous:
            if not logs.has_previous(key) and "terminated" not in last:
                raise errors.bad_request(
                    f'previous terminated container "{container}" in pod "{route.name}" not found'
                )
        else:
            reason = str((state.get("waiting") or {}).get("reason", ""))
            if reason in _NOT_STARTED and not restarts:
                why = "trying and failing to pull image" if reason in _IMAGE_TROUBLE else reason
                raise errors.bad_request(
                    f'container "{container}" in pod "{route.name}" is waiting to start: {why}'
                )
        since: float | None = None
        if self._q("sinceSeconds"):
            since = time.time() - _number(self._q("sinceSeconds"), "sinceSeconds")
        elif self._q("sinceTime"):
            try:
                when = datetime.fromisoformat(self._q("sinceTime").replace("Z", "+00:00"))
            except ValueError as exc:
                raise errors.bad_request(f"invalid sinceTime: {exc}") from exc
            since = when.timestamp()
        tail = self._q("tailLines")
        limit = self._q("limitBytes")
        return logs.read(
            key,
            previous=previous,
            tail_lines=int(_number(tail, "tailLines")) if tail else None,
            timestamps=self._flag("timestamps"),
            limit_bytes=int(_number(limit, "limitBytes")) if limit else None,
            since=since,
        )

    def _events_v1(
        self, route: _Route, verb: str, body: bytes, drops: builtins.list[FaultRule]
    ) -> None:
        """``events.k8s.io/v1``: the same stored events as core/v1, converted both ways."""
        core = self.cluster.core
        core_rt = core.registry.get(*events.EVENTS)
        assert core_rt is not None
        target = Target(core_rt, "v1", route.namespace, route.name)
        dry_run = self._q("dryRun") == "All"
        if verb == "watch":
            self._watch(route, drops, stored_as=core_rt, convert=events.to_events_v1)
            return
        if verb == "list":
            limit_text = self._q("limit")
            page = core.list(
                Target(core_rt, "v1", route.namespace),
                label_selector=self._q("labelSelector"),
                field_selector=self._q("fieldSelector"),
                limit=int(limit_text) if limit_text.isdigit() else 0,
                continue_token=self._q("continue"),
            )
            if self._wants_table():
                self._send_json(
                    200,
                    self._table(
                        core_rt,
                        "v1",
                        page.items,
                        resource_version=page.resource_version,
                        continue_token=page.continue_token,
                    ),
                )
                return
            metadata: JsonDict = {"resourceVersion": page.resource_version}
            if page.continue_token:
                metadata["continue"] = page.continue_token
            self._send_json(
                200,
                {
                    "kind": "EventList",
                    "apiVersion": route.rt.api_version(route.version),
                    "metadata": metadata,
                    "items": [events.to_events_v1(o) for o in page.items],
                },
            )
            return
        if verb == "get":
            obj = core.get(target)
            if self._wants_table():
                self._send_json(200, self._table(core_rt, "v1", [obj]))
            else:
                self._send_json(200, events.to_events_v1(obj))
            return
        if verb in ("create", "update"):
            decoded = self._decode_body(body)
            if not isinstance(decoded, dict):
                raise errors.bad_request("the body of the request must be a JSON object")
            stored = events.from_events_v1(decoded)
            if verb == "create":
                result = core.create(target, stored, dry_run=dry_run)
            else:
                result = core.update(target, stored, dry_run=dry_run)
            self._send_json(result.code, events.to_events_v1(result.obj))
            return
        if verb == "patch":
            ctype = self.headers.get("Content-Type", MERGE_PATCH).split(";", 1)[0].strip()
            current = events.to_events_v1(core.get(target))
            patch_doc = json.loads(body or b"null")
            try:
                if ctype == "application/json-patch+json":
                    patched = patches.json_patch(current, patch_doc)
                elif ctype == STRATEGIC_PATCH:
                    patched = patches.strategic_merge_patch(current, patch_doc, "Event")
                else:
                    patched = patches.json_merge_patch(current, patch_doc)
            except patches.PatchError as exc:
                raise errors.bad_request(str(exc)) from exc
            result = core.update(target, events.from_events_v1(patched), dry_run=dry_run)
            self._send_json(200, events.to_events_v1(result.obj))
            return
        if verb == "delete":
            result = core.delete(target, dry_run=dry_run)
            self._send_json(200, result.obj)
            return
        if verb == "deletecollection":
            result = core.delete_collection(
                target,
                label_selector=self._q("labelSelector"),
                field_selector=self._q("fieldSelector"),
                dry_run=dry_run,
            )
            self._send_json(200, result.obj)
            return
        raise errors.method_not_allowed(verb)

    def _upgrade(self, protocol: str) -> Connection:
        key = self.headers.get("Sec-WebSocket-Key", "")
        self._status = 101
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept_key(key))
        self.send_header("Sec-WebSocket-Protocol", protocol)
        self.end_headers()
        self._log_request()
        self.wfile.flush()
        self.close_connection = True
        return Connection(self.connection)

    def _proxy(self, route: _Route, body: bytes) -> None:
        parts = route.name.split(":")
        if len(parts) == 3:
            service, port = parts[1], parts[2] or None
        elif len(parts) == 2:
            service, port = parts[0], parts[1] or None
        else:
            service, port = parts[0], None
        core = self.cluster.core
        core.get(Target(route.rt, route.version, route.namespace, service))
        target = self.cluster.targets.proxy(route.namespace, service, port)
        if target is None:
            raise errors.service_unavailable(f'no endpoints available for service "{route.name}"')
        try:
            answer = relay(
                target.base_url,
                self.command,
                route.extra,
                self._raw_query,
                headers=dict(self.headers.items()),
                body=body,
            )
        except OSError as exc:
            raise errors.service_unavailable(f"error trying to reach service: {exc}") from exc
        self._status = answer.status
        self.send_response(answer.status)
        for key, value in answer.headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self._log_request()
        self.wfile.write(answer.body)


def _container_names(pod: Mapping[str, Any]) -> builtins.list[str]:
    spec = pod.get("spec") or {}
    return [
        str(c.get("name"))
        for key in ("containers", "initContainers", "ephemeralContainers")
        for c in spec.get(key) or []
    ]


def _default_container(pod: Mapping[str, Any]) -> str:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    if annotations.get("kubectl.kubernetes.io/default-container"):
        return str(annotations["kubectl.kubernetes.io/default-container"])
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    return str(containers[0].get("name", ""))


def _exact_name(field_selector: str) -> str:
    """The name a field selector pins with ``metadata.name=X`` (the authorizer uses it)."""
    for term in field_selector.split(","):
        key, sep, value = term.partition("==")
        if not sep:
            key, sep, value = term.partition("=")
        if sep and key.strip() == "metadata.name":
            return value.strip()
    return ""


def _number(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise errors.bad_request(f"{name}: invalid value {text!r}") from exc
    if value < 0:
        raise errors.bad_request(f"{name}: must be greater than or equal to 0")
    return value


def _warning_header(message: str) -> str:
    """An RFC 7234 ``Warning`` value as the apiserver sends it (code 299, quoted text)."""
    escaped = message.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{escaped}"'


def _selector_text(selector: str | Mapping[str, str]) -> str:
    if isinstance(selector, str):
        return selector
    return ",".join(f"{k}={v}" for k, v in selector.items())


_CRD_CACHE: dict[tuple[str, int, int], list[JsonDict]] = {}
_CRD_CACHE_LOCK = threading.Lock()


def parse_manifests(path: str | os.PathLike[str]) -> builtins.list[JsonDict]:
    """The YAML documents of a file, parsed once per process (CSafeLoader when available)."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    key = (str(resolved), stat.st_mtime_ns, stat.st_size)
    with _CRD_CACHE_LOCK:
        cached = _CRD_CACHE.get(key)
    if cached is not None:
        return cached
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    docs = [d for d in yaml.load_all(resolved.read_text(), Loader=loader) if isinstance(d, dict)]
    with _CRD_CACHE_LOCK:
        _CRD_CACHE[key] = docs
    return docs


class FakeCluster:
    """A fake Kubernetes API server that the real kubectl and Python client accept.

    Use it as a context manager or call :meth:`start`/:meth:`stop`. State can be seeded and
    inspected with :meth:`create`, :meth:`get`, :meth:`list`, :meth:`patch`, :meth:`delete`;
    they take the same code paths as HTTP requests, so watches and controllers react to them.

    ``token`` is the admin's bearer token (always allowed). ``rbac=True`` makes every other
    identity subject to Roles and bindings. ``cluster_uid`` fixes the ``kube-system`` UID.
    ``tls_names`` adds names to the HTTPS certificate (for a cloud-looking URL reached through
    ``proxy-url``); ``tls_fault`` serves a certificate that is ``untrusted``, ``expired`` or
    for the ``wrong-name`` while kubeconfigs still trust the proper CA. ``max_token_seconds``
    caps TokenRequest lifetimes as ``--service-account-max-token-expiration`` does.
    """

    def __init__(
        self,
        *,
        https: bool = False,
        token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        injection: str = "label",
        native_sidecars: bool = False,
        namespace_purge_delay: float = 0.3,
        seed: bool = True,
        rbac: bool = False,
        cluster_uid: str | None = None,
        record_events: bool = True,
        tls_names: tuple[str, ...] = (),
        tls_fault: str | None = None,
        max_token_seconds: int | None = None,
        client_certs: bool = False,
    ) -> None:
        self.https = https or tls_fault is not None or client_certs
        self.client_certs = client_certs
        self._client_ca: Any = None
        self._token: str | None = None
        self.host = host
        self.rbac = rbac
        self.tls_names = tuple(tls_names)
        self.tls_fault = tls_fault
        self.max_token_seconds = max_token_seconds
        self._requested_port = port
        settings = simulation.SimulationSettings(
            injection=injection, native_sidecars=native_sidecars, record_events=record_events
        )
        self.core = ApiCore(settings=settings, namespace_purge_delay=namespace_purge_delay)
        if seed:
            self.core.seed(cluster_uid)
        self.tokens = auth.Tokens()
        self.token = token
        self._traffic_lock = threading.Condition()
        self._connection_count = 0
        self._stalled_count = 0
        self._tls_failures: builtins.list[str] = []
        self._probe_ports: set[int] = set()
        self._probes_seen: set[int] = set()
        self.faults = Faults(refuse=self._refuse)
        self.targets = Targets()
        self.exec_handler: ExecHandler = unconfigured_exec
        self.errors: builtins.list[str] = []
        self._requests: deque[RequestRecord] = deque(maxlen=10_000)
        self._request_count = 0
        self._traffic_requests = 0
        self._requests_lock = threading.Lock()
        self._tls: TlsMaterial | None = None
        self._ssl_context: ssl.SSLContext | None = None
        self._server: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[Any] = set()
        self._connections_lock = threading.Lock()
        self._stopping = threading.Event()
        self._port = 0

    @property
    def token(self) -> str | None:
        """The admin's bearer token (None: an open server); assigning it rotates it."""
        return self._token

    @token.setter
    def token(self, value: str | None) -> None:
        if self._token is not None:
            self.tokens.remove(self._token)
        self._token = value
        if value is not None:
            self.tokens.add(value, auth.ADMIN)

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> FakeCluster:
        """Bind a free port on 127.0.0.1 and serve in a background thread."""
        if self._server is not None:
            return self
        if self.https and self._ssl_context is None:
            from . import tls

            hosts = ("127.0.0.1", "localhost", *self.tls_names)
            self._tls = tls.generate(hosts, fault=self.tls_fault)
            self._ssl_context = self._make_context(self._tls)
            if self.client_certs:
                self._client_ca = tls.client_ca()
                self._ssl_context.load_verify_locations(cadata=self._client_ca.cert_pem().decode())
                self._ssl_context.verify_mode = ssl.CERT_OPTIONAL
        self._stopping.clear()
        self._listen(self._requested_port)
        return self

    def _listen(self, port: int) -> None:
        server = _HttpServer((self.host, port), _Handler)
        server.cluster = self
        self._server = server
        self._port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"fakecluster:{self._port}",
            daemon=True,
        )
        self._thread.start()

    @staticmethod
    def _make_context(material: TlsMaterial) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory(prefix="fakecluster-tls-") as tmp:
            cert = Path(tmp) / "server.crt"
            key = Path(tmp) / "server.key"
            cert.write_bytes(material.cert_pem)
            key.write_bytes(material.key_pem)
            context.load_cert_chain(str(cert), str(key))
        return context

    def _close_listener(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        with self._connections_lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        """Stop serving, end watches and streams, and cancel pending namespace purges."""
        self._stopping.set()
        self.core.close()
        self.core.store.close_watchers()
        self._close_listener()

    def _refuse(self, refuse: bool) -> None:
        if refuse:
            self.core.store.close_watchers()
            self._close_listener()
        elif self._server is None:
            self._listen(self._port)

    def __enter__(self) -> FakeCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _track(self, conn: Any, *, add: bool) -> None:
        with self._connections_lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    # --- addresses and kubeconfig -----------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (0 before :meth:`start`)."""
        return self._port

    @property
    def url(self) -> str:
        """``http(s)://127.0.0.1:PORT``."""
        scheme = "https" if self.https else "http"
        return f"{scheme}://{self.host}:{self._port}"

    @property
    def ca_pem(self) -> bytes | None:
        """The CA certificate clients must trust (HTTPS only)."""
        return self._tls.ca_pem if self._tls else None

    def issue_client_cert(self, user: str, group: str | None = None) -> tuple[bytes, bytes]:
        """A client certificate and key (PEM) naming ``user`` (CN) and ``group`` (O), which
        this server accepts as that identity (start it with ``client_certs=True``)."""
        if self._client_ca is None:
            raise RuntimeError("start the server with client_certs=True to issue client certs")
        from . import tls

        return tls.client_cert(self._client_ca, user, group)

    def kubeconfig_entry(
        self,
        context: str = "kind-labrunner",
        namespace: str | None = None,
        *,
        token: str | None = _AS_ADMIN,
        server_url: str | None = None,
        client_cert: tuple[bytes, bytes] | None = None,
    ) -> kubeconfig.Entry:
        """One kubeconfig context for this server (see :meth:`kubeconfig_text`);
        ``client_cert`` (PEM certificate and key) is written inline."""
        url = server_url or self.url
        proxy = None
        if urlsplit(url).netloc != f"{self.host}:{self._port}":
            proxy = f"http://{self.host}:{self._port}"
        return kubeconfig.Entry(
            context=context,
            server=url,
            ca_pem=self.ca_pem,
            token=self.token if token == _AS_ADMIN else token,
            namespace=namespace,
            proxy_url=proxy,
            client_cert_pem=client_cert[0] if client_cert else None,
            client_key_pem=client_cert[1] if client_cert else None,
        )

    def kubeconfig_text(
        self,
        context: str = "kind-labrunner",
        namespace: str | None = None,
        *,
        token: str | None = _AS_ADMIN,
        server_url: str | None = None,
    ) -> str:
        """A kubeconfig for this server as YAML.

        ``token`` defaults to the admin token (None: no credentials). ``server_url`` writes
        another URL (e.g. :data:`EKS_URL`); when it is not this server's address the cluster
        gets ``proxy-url`` pointing here, so clients still reach this server without DNS.
        """
        entry = self.kubeconfig_entry(context, namespace, token=token, server_url=server_url)
        return kubeconfig.render_entries([entry])

    def write_kubeconfig(
        self,
        path: str | os.PathLike[str],
        context: str = "kind-labrunner",
        namespace: str | None = None,
        *,
        token: str | None = _AS_ADMIN,
        server_url: str | None = None,
    ) -> Path:
        """Write a kubeconfig whose current context points at this server."""
        return kubeconfig.write(
            path,
            self.kubeconfig_text(context, namespace, token=token, server_url=server_url),
        )

    # --- request log ------------------------------------------------------------------------

    def _record(self, record: RequestRecord) -> None:
        with self._requests_lock:
            self._requests.append(record)
            self._request_count += 1
        with self._traffic_lock:
            self._traffic_requests += 1

    # --- traffic accounting -----------------------------------------------------------------

    def _note_connection(self, client_address: Any) -> bool:
        """Count an accepted connection; False for this server's own settle probes."""
        port = int(client_address[1]) if isinstance(client_address, tuple) else -1
        with self._traffic_lock:
            if port in self._probe_ports:
                self._probes_seen.add(port)
                self._traffic_lock.notify_all()
                return False
            self._connection_count += 1
            return True

    def _note_tls_failure(self, client_address: Any, exc: BaseException) -> None:
        who = (
            f"{client_address[0]}:{client_address[1]}" if isinstance(client_address, tuple) else ""
        )
        with self._traffic_lock:
            self._tls_failures.append(f"{who} {type(exc).__name__}: {exc}".strip())

    def _note_stalled(self) -> None:
        with self._traffic_lock:
            self._stalled_count += 1

    def settle(self, timeout: float = 5.0) -> None:
        """Wait until every connection already made to this server has been accepted and
        counted (a probe connection queues behind them; it is not counted itself)."""
        if self._server is None:
            return
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            probe.bind((self.host, 0))
            port = probe.getsockname()[1]
            with self._traffic_lock:
                self._probe_ports.add(port)
            probe.settimeout(timeout)
            probe.connect((self.host, self._port))
            with self._traffic_lock:
                if not self._traffic_lock.wait_for(lambda: port in self._probes_seen, timeout):
                    raise TimeoutError(f"{self.url} did not accept a connection in {timeout}s")
        finally:
            probe.close()

    def traffic(self, *, settle: bool = True) -> Traffic:
        """Connections (TLS failures included), failed handshakes and requests since start or
        the last :meth:`reset_traffic`."""
        if settle:
            self.settle()
        with self._traffic_lock:
            return Traffic(
                connections=self._connection_count,
                tls_failures=tuple(self._tls_failures),
                requests=self._traffic_requests,
                stalled=self._stalled_count,
            )

    def reset_traffic(self) -> None:
        """Start counting from zero (after a test's own setup traffic)."""
        self.settle()
        with self._traffic_lock:
            self._connection_count = 0
            self._traffic_requests = 0
            self._stalled_count = 0
            self._tls_failures.clear()
        self.clear_requests()

    def assert_untouched(self) -> None:
        """Fail unless nothing reached this server: no TCP connection, no TLS hello, no
        request (what a refused context must guarantee)."""
        seen = self.traffic()
        if seen.untouched:
            return
        shown = [
            f"{r.method} {r.path}" + (f" as {r.user}" if r.user else "") for r in self.requests()
        ]
        detail = "; ".join(shown[:10]) + (" ..." if len(shown) > 10 else "")
        raise AssertionError(
            f"{self.url} was reached: {seen.connections} connection(s), {seen.requests} "
            f"request(s) [{detail}], {len(seen.tls_failures)} failed TLS handshake(s)"
        )

    @property
    def request_count(self) -> int:
        """How many requests were answered so far."""
        with self._requests_lock:
            return self._request_count

    def requests(
        self, *, method: str | None = None, path_prefix: str | None = None, verb: str | None = None
    ) -> builtins.list[RequestRecord]:
        """The recent requests, optionally filtered."""
        with self._requests_lock:
            records = list(self._requests)
        return [
            r
            for r in records
            if (method is None or r.method == method)
            and (path_prefix is None or r.path.startswith(path_prefix))
            and (verb is None or r.verb == verb)
        ]

    def clear_requests(self) -> None:
        """Forget the request log (the counter keeps counting)."""
        with self._requests_lock:
            self._requests.clear()

    # --- state helpers ----------------------------------------------------------------------

    def _target(self, resource: str, name: str = "", namespace: str | None = None) -> Target:
        rt = self.core.registry.resolve(resource)
        ns = (namespace or "default") if rt.namespaced else ""
        return Target(rt, rt.preferred_version, ns, name)

    @property
    def resource_version(self) -> int:
        """The latest resourceVersion handed out."""
        return self.core.store.resource_version

    def create(self, obj: Mapping[str, Any], *, namespace: str | None = None) -> JsonDict:
        """Create an object from a manifest (namespace defaults to ``default``); returns it."""
        api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
        rt = self.core.registry.by_kind(str(api_version), str(kind))
        if rt is None:
            raise KeyError(f"no resource type for {api_version} {kind}")
        version = str(api_version).rpartition("/")[2]
        meta = obj.get("metadata") or {}
        ns = (namespace or meta.get("namespace") or "default") if rt.namespaced else ""
        return self.core.create(Target(rt, version, ns), clone(obj), field_validation="Strict").obj

    def apply(self, obj: Mapping[str, Any], *, namespace: str | None = None) -> JsonDict:
        """Create or update an object like ``kubectl apply --server-side``."""
        api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
        rt = self.core.registry.by_kind(str(api_version), str(kind))
        if rt is None:
            raise KeyError(f"no resource type for {api_version} {kind}")
        version = str(api_version).rpartition("/")[2]
        meta = obj.get("metadata") or {}
        ns = (namespace or meta.get("namespace") or "default") if rt.namespaced else ""
        target = Target(rt, version, ns, str(meta.get("name", "")))
        body = json.dumps(dict(obj)).encode()
        return self.core.patch(
            target, body, "application/apply-patch+yaml", field_validation="Strict"
        ).obj

    def get(self, resource: str, name: str, namespace: str | None = None) -> JsonDict | None:
        """The object or None (``resource``: plural, singular, kind, short name or plural.group)."""
        try:
            return self.core.get(self._target(resource, name, namespace))
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    def list(
        self,
        resource: str,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> builtins.list[JsonDict]:
        """Objects of a type, in one namespace or (``namespace=None``) across all."""
        rt = self.core.registry.resolve(resource)
        target = Target(rt, rt.preferred_version, (namespace or "") if rt.namespaced else "")
        return self.core.list(
            target, label_selector=label_selector, field_selector=field_selector
        ).items

    def patch(
        self,
        resource: str,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: str = "merge",
    ) -> JsonDict:
        """Patch an object; ``patch_type`` is merge, strategic, json or apply."""
        ctype = {
            "merge": MERGE_PATCH,
            "strategic": STRATEGIC_PATCH,
            "json": "application/json-patch+json",
            "apply": "application/apply-patch+yaml",
        }[patch_type]
        return self.core.patch(self._target(resource, name, namespace), clone(patch), ctype).obj

    def patch_status(
        self, resource: str, name: str, status: Mapping[str, Any], namespace: str | None = None
    ) -> JsonDict:
        """Merge ``status`` into the object's status subresource (a MODIFIED event follows)."""
        base = self._target(resource, name, namespace)
        target = Target(
            base.rt, base.version, base.namespace, name, "status" if base.rt.has_status else ""
        )
        return self.core.patch(target, {"status": clone(dict(status))}, MERGE_PATCH).obj

    def delete(self, resource: str, name: str, namespace: str | None = None) -> JsonDict:
        """Delete an object (namespaces terminate asynchronously, as on a real cluster)."""
        return self.core.delete(self._target(resource, name, namespace)).obj

    def load_crds(
        self, source: str | os.PathLike[str] | Iterable[Mapping[str, Any]]
    ) -> builtins.list[str]:
        """Create (or update) every CRD in a multi-document YAML file or list of documents."""
        docs = parse_manifests(source) if isinstance(source, str | os.PathLike) else list(source)
        rt = self.core.registry.get("apiextensions.k8s.io", "customresourcedefinitions")
        assert rt is not None
        names: builtins.list[str] = []
        for doc in docs:
            if doc.get("kind") != "CustomResourceDefinition":
                continue
            name = str((doc.get("metadata") or {}).get("name", ""))
            target = Target(rt, "v1", "", name)
            existing = self.core.store.get(rt.key, "", name)
            if existing is None:
                self.core.create(Target(rt, "v1"), doc)
            else:
                body = clone(doc)
                body.setdefault("metadata", {})["resourceVersion"] = existing["metadata"][
                    "resourceVersion"
                ]
                self.core.update(target, body)
            names.append(name)
        return names

    # --- pod lifecycle ----------------------------------------------------------------------

    def hold_pods(self, namespace: str = "*", selector: str | Mapping[str, str] = "") -> None:
        """Keep new and existing matching pods not Ready until released (``*`` = all namespaces)."""
        text = _selector_text(selector)
        rule = (namespace, parse_label_selector(text))
        self.core.holds.rules.append(rule)
        for pod in self._matching_pods(namespace, text):
            if simulation.is_ready(pod):
                self.set_pod_ready(pod["metadata"]["namespace"], pod["metadata"]["name"], False)

    def release_pods(
        self, namespace: str = "*", selector: str | Mapping[str, str] | None = None
    ) -> None:
        """Drop hold rules (all, or one namespace and/or selector) and make freed pods Ready."""
        text = None if selector is None else _selector_text(selector)
        wanted = None if text is None else parse_label_selector(text)
        self.core.holds.rules = [
            (ns, sel)
            for ns, sel in self.core.holds.rules
            if not (namespace in ("*", ns) and (wanted is None or sel == wanted))
        ]
        for pod in self._matching_pods(namespace, text or ""):
            if not self.core.holds.matches(pod) and not simulation.is_ready(pod):
                self.set_pod_ready(pod["metadata"]["namespace"], pod["metadata"]["name"], True)

    def _matching_pods(self, namespace: str, selector: str) -> builtins.list[JsonDict]:
        return self.list("pods", None if namespace == "*" else namespace, label_selector=selector)

    def set_pod_ready(self, namespace: str, name: str, ready: bool = True) -> JsonDict:
        """Make a pod's containers run and be (not) Ready; watchers get a MODIFIED event.

        A pod made not Ready also gets an ``Unhealthy`` warning (its readiness probe failed).
        """
        with self.core.store.lock:
            pod = self.core.store.get(simulation.PODS, namespace, name)
            if pod is None:
                raise errors.not_found("pods", "", name)
            meta = pod["metadata"]
            if (
                not ready
                or (meta.get("annotations") or {}).get(simulation.NOT_READY_ANNOTATION) != "true"
            ):
                stored = self.core.set_pod_status(
                    namespace, name, self.core.pod_ready_status(pod, ready)
                )
                if not ready:
                    self.core.readiness_failed_events(stored)
                return stored
            changed = clone(pod)
            del changed["metadata"]["annotations"][simulation.NOT_READY_ANNOTATION]
            changed["status"] = self.core.pod_ready_status(changed, ready)
            return self.core.write_internal(simulation.PODS, changed)

    def set_container_waiting(
        self,
        namespace: str,
        name: str,
        reason: str,
        message: str = "",
        *,
        container: str | None = None,
    ) -> JsonDict:
        """Put a pod's container(s) in ``waiting`` (ImagePullBackOff, CrashLoopBackOff, ...).

        The kubelet's events follow (``Failed``/``BackOff`` warnings naming the image or the
        container); CrashLoopBackOff also counts a restart and moves the log to ``previous``.
        """
        with self.core.store.lock:
            pod = self.core.store.get(simulation.PODS, namespace, name)
            if pod is None:
                raise errors.not_found("pods", "", name)
            status = simulation.set_container_waiting(
                pod.get("status") or {}, container, reason, message
            )
            stored = self.core.set_pod_status(namespace, name, status)
            if reason == "CrashLoopBackOff":
                for cs in status.get("containerStatuses") or []:
                    if container is None or cs.get("name") == container:
                        self.core.logs.restart((namespace, name, str(cs.get("name"))))
            self.core.waiting_events(stored, container, reason, message)
            return stored

    def restart_container(
        self,
        namespace: str,
        name: str,
        container: str | None = None,
        *,
        exit_code: int = 1,
        reason: str = "Error",
        log: str = "",
        crash_loop: bool = False,
    ) -> JsonDict:
        """A container exited and the kubelet restarted it: ``restartCount`` + 1, ``lastState``
        terminated with ``exit_code``/``reason``, its log moved to ``previous`` and ``log``
        started. With ``crash_loop`` it stays waiting in CrashLoopBackOff instead of running."""
        with self.core.store.lock:
            pod = self.core.store.get(simulation.PODS, namespace, name)
            if pod is None:
                raise errors.not_found("pods", "", name)
            target = container or _default_container(pod)
            if target not in _container_names(pod):
                raise KeyError(f"pod {namespace}/{name} has no container {target!r}")
            status = simulation.restart_container(
                pod.get("status") or {},
                target,
                exit_code=exit_code,
                reason=reason,
                crash_loop=crash_loop,
                pod_name=f"{name}_{namespace}({pod['metadata'].get('uid', '')})",
            )
            stored = self.core.set_pod_status(namespace, name, status)
            self.core.logs.restart((namespace, name, target), log)
            if crash_loop:
                self.core.waiting_events(stored, target, "CrashLoopBackOff", "")
            else:
                for path, c in simulation.pod_containers(stored):
                    if c.get("name") == target:
                        self.core.container_started_events(stored, c, path)
            return stored

    def set_pod_log(
        self,
        namespace: str,
        pod: str,
        text: str,
        container: str | None = None,
        *,
        previous: bool = False,
    ) -> None:
        """What ``kubectl logs`` (or, with ``previous``, ``logs --previous``) prints for a pod's
        (default) container."""
        self.core.logs.set(
            (namespace, pod, self._log_container(namespace, pod, container)),
            text,
            previous=previous,
        )

    def append_pod_log(
        self, namespace: str, pod: str, text: str, container: str | None = None
    ) -> None:
        """Add output to a container's current log."""
        self.core.logs.append(
            (namespace, pod, self._log_container(namespace, pod, container)), text
        )

    def _log_container(self, namespace: str, pod: str, container: str | None) -> str:
        if container:
            return container
        obj = self.get("pods", pod, namespace)
        return _default_container(obj) if obj else ""

    def record_event(
        self,
        obj: Mapping[str, Any],
        reason: str,
        message: str,
        *,
        type: str = events.NORMAL,
        field_path: str = "",
        component: str = "kubelet",
    ) -> JsonDict | None:
        """Record an Event about a stored object (a repeat raises its ``count``)."""
        return self.core.record_event(
            obj, reason, message, type=type, field_path=field_path, component=component
        )

    # --- identities and tokens --------------------------------------------------------------

    def _check_token(self, token: str) -> auth.TokenCheck:
        def live_uid(namespace: str, name: str) -> str | None:
            account = self.core.store.get(SERVICE_ACCOUNTS_KEY, namespace, name)
            return None if account is None else str(account["metadata"].get("uid", ""))

        return self.tokens.check(token, live_uid)

    def _issue(
        self, namespace: str, name: str, seconds: int, audiences: builtins.list[str]
    ) -> tuple[str, auth.IssuedToken, builtins.list[str]]:
        account = self.core.store.get(SERVICE_ACCOUNTS_KEY, namespace, name)
        if account is None:
            raise errors.not_found("serviceaccounts", "", name)
        warnings: builtins.list[str] = []
        if self.max_token_seconds and seconds > self.max_token_seconds:
            warnings.append(
                f"requested expiration of {seconds} seconds shortened to "
                f"{self.max_token_seconds} seconds"
            )
            seconds = self.max_token_seconds
        token, record = self.tokens.issue(
            namespace,
            name,
            str(account["metadata"].get("uid", "")),
            audiences or [auth.ISSUER],
            seconds,
        )
        return token, record, warnings

    def add_token(self, user: str, groups: Iterable[str] = (), *, token: str | None = None) -> str:
        """Accept a bearer token for ``user`` (with ``groups`` and ``system:authenticated``);
        returns the token (a random one unless given)."""
        chosen = token or secrets.token_urlsafe(24)
        return self.tokens.add(chosen, auth.identity_for(user, tuple(groups)))

    def issue_token(
        self,
        namespace: str,
        name: str,
        *,
        seconds: int = 3600,
        audiences: Iterable[str] = (),
    ) -> str:
        """A token for a ServiceAccount, as the TokenRequest API issues it (capped by
        ``max_token_seconds``); it dies with the account."""
        token, _, _ = self._issue(namespace, name, seconds, list(audiences))
        return token

    def expire_token(self, token: str) -> None:
        """Make an issued token expire now (requests with it then get 401)."""
        self.tokens.expire(token)

    def revoke_token(self, token: str) -> None:
        """Stop accepting a registered or issued token."""
        self.tokens.remove(token)

    def identity(self, token: str) -> Identity | None:
        """Who a token authenticates as (None if it is unknown, expired or revoked)."""
        if token == self.token:
            return auth.ADMIN
        return self._check_token(token).identity

    def can(
        self,
        who: str | Identity,
        verb: str,
        resource: str,
        *,
        namespace: str = "",
        name: str = "",
    ) -> bool:
        """What RBAC answers for ``who`` (a token or an identity); ``resource`` may name a
        subresource (``pods/log``) and a group (``deployments.apps``). True when RBAC is off."""
        identity = who if isinstance(who, Identity) else self.identity(who)
        if identity is None:
            return False
        if not self.rbac:
            return True
        base, _, sub = resource.partition("/")
        rt = self.core.registry.resolve(base)
        attrs = rbac.Attributes(
            verb=verb,
            resource=rt.plural,
            group=rt.group,
            subresource=sub,
            namespace=namespace if rt.namespaced or rt.key == simulation.NAMESPACES else "",
            name=name,
        )
        return rbac.authorize(self.core.store, identity, attrs).allowed

    # --- cluster identity -------------------------------------------------------------------

    @property
    def cluster_uid(self) -> str:
        """The ``kube-system`` namespace's UID, the cluster's identity."""
        return self.core.cluster_uid

    def recreate(self, *, wipe: bool = True, cluster_uid: str | None = None) -> str:
        """Pretend the cluster was deleted and created again behind the same address, CA and
        admin token: ``kube-system`` gets a new UID (returned). With ``wipe`` (the default)
        every object, CRD, log and ServiceAccount token is gone and the cluster is seeded
        afresh; otherwise objects stay and only the identity changes. Open watches end."""
        self.core.store.close_watchers()
        uid = self.core.reset(wipe=wipe, cluster_uid=cluster_uid)
        if wipe:
            self.tokens.clear_issued()
        return uid

    # --- network targets --------------------------------------------------------------------

    def port_forward_target(
        self,
        namespace: str,
        pod: str | Mapping[str, str],
        port: int,
        host: str,
        target_port: int,
    ) -> None:
        """Send port-forwards to ``pod:port`` (name, selector or labels) to ``host:target_port``."""
        self.targets.add_port_forward(namespace, pod, port, host, target_port)

    def service_proxy_target(
        self, namespace: str, service: str, port: int | str | None, base_url: str
    ) -> None:
        """Relay ``services/{service}[:port]/proxy/...`` to ``base_url``."""
        self.targets.add_proxy(namespace, service, port, base_url)

    def set_load_balancer_ip(self, namespace: str, service: str, ip: str) -> JsonDict:
        """Give a LoadBalancer Service an external address (kind leaves it pending)."""
        return self.patch_status(
            "services",
            service,
            {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}},
            namespace,
        )

    # --- waiting ----------------------------------------------------------------------------

    def wait_for_watch(
        self, resource: str, namespace: str | None = None, timeout: float = 5.0
    ) -> bool:
        """Block until some client watches ``resource`` (e.g. ``kubectl wait`` got going)."""
        rt = self.core.registry.resolve(resource)
        return self.core.store.wait_for_watcher(rt.key, namespace, timeout)

    @contextlib.contextmanager
    def events(
        self, resource: str, namespace: str | None = None
    ) -> Iterator[queue.SimpleQueue[WatchEvent | None]]:
        """Watch events of a type from now on (a queue of WatchEvent; None once stopped)."""
        rt = self.core.registry.resolve(resource)
        with self.core.store.watching(
            rt.key,
            namespace=namespace,
            label_selector=(),
            field_selector=(),
            since=self.core.store.resource_version,
        ) as (watcher, _):
            yield watcher.queue


__all__ = ["FakeCluster", "RequestRecord", "parse_manifests"]
