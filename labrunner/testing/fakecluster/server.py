"""The HTTP front end and :class:`FakeCluster`, the object tests hold.

A stdlib ``ThreadingHTTPServer`` speaking HTTP/1.1 on 127.0.0.1, optionally over TLS with a
bearer token. Nagle's algorithm is off: without that every response waits ~40 ms for a delayed
ACK and the fake would be slower than the code it tests. Responses always carry
``Content-Length`` except watches, which stream chunked JSON lines; watch, exec and
port-forward connections are closed afterwards.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import queue
import socket
import ssl
import tempfile
import threading
import time
import traceback
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from . import discovery, errors, kubeconfig, protobuf, simulation
from .api import MERGE_PATCH, STRATEGIC_PATCH, ApiCore, Target, clone, with_version
from .errors import ApiError
from .faults import FaultRule, Faults
from .proxy import Targets, relay
from .resources import ResourceType
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
_ACCESS_REVIEWS = ("authorization.k8s.io", "selfsubjectaccessreviews")
_DEFAULT_WATCH_TIMEOUT = 1800.0


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


@dataclass(frozen=True)
class _Route:
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

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Handshake TLS in the connection's own thread, so a bad client never blocks accept()."""
        conn = request
        context = self.cluster._ssl_context
        if context is not None:
            try:
                request.settimeout(10)
                conn = context.wrap_socket(request, server_side=True)
                conn.settimeout(None)
            except (OSError, ssl.SSLError):
                with contextlib.suppress(OSError):
                    request.close()
                return
        self.cluster._track(conn, add=True)
        try:
            super().finish_request(conn, client_address)
        finally:
            self.cluster._track(conn, add=False)
            if conn is not request:
                with contextlib.suppress(OSError):
                    conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Connection resets are normal for a test server; stay quiet."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _HttpServer

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
        parts = urlsplit(self.path)
        self._query = parse_qs(parts.query, keep_blank_values=True)
        self._raw_query = parts.query
        path = self._path = unquote(parts.path)
        try:
            body = self._read_body()
            self._authenticate()
            self._handle(path, body)
        except ApiError as exc:
            self._safe_error(exc)
        except (BrokenPipeError, ConnectionResetError):
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
        token = self.cluster.token
        if token is None:
            return
        header = self.headers.get("Authorization", "")
        if header != f"Bearer {token}":
            raise errors.unauthorized()

    # --- routing ----------------------------------------------------------------------------

    def _handle(self, path: str, body: bytes) -> None:
        registry = self.cluster.core.registry
        segs = [s for s in path.split("/") if s]
        method = self.command
        if path in ("/healthz", "/livez", "/readyz"):
            self._send(200, b"ok", "text/plain; charset=utf-8")
            return
        if path == "/version":
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
        if method == "GET":
            if route.name:
                return "get"
            return "watch" if self._flag("watch") else "list"
        if method == "DELETE":
            return "delete" if route.name else "deletecollection"
        return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())

    def _resource(self, route: _Route, body: bytes) -> None:
        verb = self._verb(route)
        self._info = (verb, route.rt.plural, route.namespace, route.name)
        fired = self.cluster.faults.take(
            verb, route.rt.plural, route.namespace, route.name, route.subresource
        )
        drops: builtins.list[FaultRule] = []
        for rule in fired:
            if rule.delay:
                time.sleep(rule.delay)
            failure = rule.error(route.rt.plural, route.rt.group, route.namespace, verb)
            if failure is not None:
                raise failure
            if rule.drop_after_events is not None or rule.drop_after_seconds is not None:
                drops.append(rule)
        if route.rt.key == _ACCESS_REVIEWS or route.subresource == "token":
            if verb != "create":
                raise errors.method_not_allowed(verb)
            if route.subresource == "token":
                self._token_request(route, body)
            else:
                self._access_review(body)
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

    def _access_review(self, body: bytes) -> None:
        review = self._decode_body(body)
        if not isinstance(review, dict):
            raise errors.bad_request("a SelfSubjectAccessReview must be an object")
        attrs = (review.get("spec") or {}).get("resourceAttributes") or {}
        denied = self.cluster.faults.denies(
            str(attrs.get("verb", "")),
            str(attrs.get("resource", "")),
            str(attrs.get("namespace", "")),
            str(attrs.get("name", "")),
        )
        status: JsonDict = {"allowed": not denied}
        if denied:
            status.update(denied=True, reason="denied by an injected 403 fault")
        review.update(
            apiVersion="authorization.k8s.io/v1",
            kind="SelfSubjectAccessReview",
            metadata={"creationTimestamp": None},
            status=status,
        )
        self._send_json(201, review)

    def _token_request(self, route: _Route, body: bytes) -> None:
        account = self.cluster.core.get(
            Target(route.rt, route.version, route.namespace, route.name)
        )
        request = self._decode_body(body) if body.strip() else {}
        spec = dict((request or {}).get("spec") or {})
        seconds = int(spec.get("expirationSeconds") or 3600)
        audiences = list(spec.get("audiences") or ["https://kubernetes.default.svc.cluster.local"])
        token, expiry = simulation.service_account_token(
            route.namespace, route.name, account["metadata"].get("uid", ""), audiences, seconds
        )
        spec.update(audiences=audiences, expirationSeconds=seconds)
        spec.setdefault("boundObjectRef", None)
        self._send_json(
            201,
            {
                "kind": "TokenRequest",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {
                    "name": route.name,
                    "namespace": route.namespace,
                    "creationTimestamp": simulation.now(),
                },
                "spec": spec,
                "status": {"token": token, "expirationTimestamp": expiry},
            },
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

    def _watch(self, route: _Route, drops: builtins.list[FaultRule]) -> None:
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
            with store.watching(
                route.rt.key,
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
                    obj = with_version(event.obj, route.rt, route.version)
                    if table:
                        obj = self._table(route.rt, route.version, [obj], with_columns=first)
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
            container = self._q("container") or _default_container(pod)
            text = self.cluster._logs.get((route.namespace, route.name, container), "")
            self._send(200, text.encode(), "text/plain")
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
    ) -> None:
        self.https = https
        self.token = token
        self.host = host
        self._requested_port = port
        settings = simulation.SimulationSettings(
            injection=injection, native_sidecars=native_sidecars
        )
        self.core = ApiCore(settings=settings, namespace_purge_delay=namespace_purge_delay)
        if seed:
            self.core.seed()
        self.faults = Faults(refuse=self._refuse)
        self.targets = Targets()
        self.exec_handler: ExecHandler = unconfigured_exec
        self.errors: builtins.list[str] = []
        self._requests: deque[RequestRecord] = deque(maxlen=10_000)
        self._request_count = 0
        self._requests_lock = threading.Lock()
        self._logs: dict[tuple[str, str, str], str] = {}
        self._tls: TlsMaterial | None = None
        self._ssl_context: ssl.SSLContext | None = None
        self._server: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[Any] = set()
        self._connections_lock = threading.Lock()
        self._stopping = threading.Event()
        self._port = 0

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> FakeCluster:
        """Bind a free port on 127.0.0.1 and serve in a background thread."""
        if self._server is not None:
            return self
        if self.https and self._ssl_context is None:
            from . import tls

            self._tls = tls.generate()
            self._ssl_context = self._make_context(self._tls)
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

    def kubeconfig_text(self, context: str = "kind-labrunner", namespace: str | None = None) -> str:
        """A kubeconfig for this server as YAML."""
        return kubeconfig.render(
            server=self.url,
            context=context,
            namespace=namespace,
            ca_pem=self.ca_pem,
            token=self.token,
        )

    def write_kubeconfig(
        self,
        path: str | os.PathLike[str],
        context: str = "kind-labrunner",
        namespace: str | None = None,
    ) -> Path:
        """Write a kubeconfig whose current context points at this server."""
        return kubeconfig.write(path, self.kubeconfig_text(context, namespace))

    # --- request log ------------------------------------------------------------------------

    def _record(self, record: RequestRecord) -> None:
        with self._requests_lock:
            self._requests.append(record)
            self._request_count += 1

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
        """Make a pod's containers run and be (not) Ready; watchers get a MODIFIED event."""
        with self.core.store.lock:
            pod = self.core.store.get(simulation.PODS, namespace, name)
            if pod is None:
                raise errors.not_found("pods", "", name)
            meta = pod["metadata"]
            if (
                not ready
                or (meta.get("annotations") or {}).get(simulation.NOT_READY_ANNOTATION) != "true"
            ):
                return self.core.set_pod_status(
                    namespace, name, self.core.pod_ready_status(pod, ready)
                )
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
        """Put a pod's container(s) in ``waiting`` (ImagePullBackOff, CrashLoopBackOff, ...)."""
        with self.core.store.lock:
            pod = self.core.store.get(simulation.PODS, namespace, name)
            if pod is None:
                raise errors.not_found("pods", "", name)
            status = simulation.set_container_waiting(
                pod.get("status") or {}, container, reason, message
            )
            return self.core.set_pod_status(namespace, name, status)

    def set_pod_log(
        self, namespace: str, pod: str, text: str, container: str | None = None
    ) -> None:
        """What ``kubectl logs`` prints for a pod's (default) container."""
        obj = self.get("pods", pod, namespace)
        name = container or (_default_container(obj) if obj else "")
        self._logs[(namespace, pod, name)] = text

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
