"""Fixtures for the TLS/HTTP tests: real certificates, real servers on 127.0.0.1.

Certificates are minted once per session with ``labrunner.pki`` and
written to files, so the verifiers, curl and openssl all read the same PEM.
Servers run in threads; their sockets listen before the fixture returns, so
tests never wait for them to come up.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import json
import os
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from labrunner.certs.mtls_server import linger_close
from labrunner.pki import core as pki
from labrunner.verify.context import CheckContext
from labrunner.verify.outcome import Outcome
from labrunner.verify.registry import builtin_registry

Responder = Callable[[http.server.BaseHTTPRequestHandler], tuple[int, Mapping[str, str], bytes]]


# --------------------------------------------------------------------------- certificates


@dataclass
class Certs:
    """Certificates and keys on disk, by name (``path('frontend.crt')``)."""

    directory: Path
    issued: dict[str, pki.Issued] = field(default_factory=dict)

    def add(self, name: str, issued: pki.Issued) -> None:
        self.issued[name] = issued
        pki.write_certificates(self.directory / f"{name}.crt", [issued.cert])
        pki.write_private_key(self.directory / f"{name}.key", issued.key)

    def crt(self, name: str) -> Path:
        return self.directory / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.directory / f"{name}.key"


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A mesh CA, a workshop CA, and leaf certificates of every shape the tests need."""
    store = Certs(tmp_path_factory.mktemp("certs"))
    now = dt.datetime.now(dt.UTC)
    mesh = pki.make_mesh_ca(key_kind="ec256")
    store.add("mesh-ca", mesh)
    other = pki.make_mesh_ca(key_kind="ec256")  # same name O=cluster.local, different key
    store.add("other-ca", other)
    workshop = pki.make_ca(common_name="istio-workshop-ca", key_kind="ec256")
    store.add("workshop-ca", workshop)
    store.add(
        "server",
        pki.make_server_cert(
            workshop,
            dns_names=["istioinaction.io", "localhost"],
            ip_addresses=["127.0.0.1"],
            key_kind="ec256",
        ),
    )
    store.add(
        "web-api",
        pki.make_workload_cert(mesh, namespace="istioinaction", service_account="web-api"),
    )
    store.add(
        "frontend",
        pki.make_workload_cert(
            mesh, namespace="shop", service_account="frontend", key_kind="ec256"
        ),
    )
    store.add(
        "payments",
        pki.make_workload_cert(
            mesh,
            namespace="shop",
            service_account="payments",
            dns_names=["localhost"],
            ip_addresses=["127.0.0.1"],
            key_kind="ec256",
        ),
    )
    store.add(
        "rogue",
        pki.make_workload_cert(
            other, namespace="shop", service_account="frontend", key_kind="ec256"
        ),
    )
    store.add(
        "expired",
        pki.issue_certificate(
            subject=pki.build_name(common_name="old.example"),
            key=pki.generate_key("ec256"),
            issuer=workshop,
            not_before=now - dt.timedelta(days=10),
            valid_for=dt.timedelta(days=2),
            dns_names=["old.example"],
            server_auth=True,
        ),
    )
    store.add(
        "nosan",
        pki.issue_certificate(
            subject=pki.build_name(common_name="nosan.example"),
            key=pki.generate_key("ec256"),
            issuer=workshop,
        ),
    )
    return store


# --------------------------------------------------------------------------- contexts, checks


def make_ctx(
    cwd: Path, *, env: Mapping[str, str] | None = None, budget: float = 10.0, **extra: Any
) -> CheckContext:
    """A CheckContext like the engine builds, rooted at ``cwd``."""
    return CheckContext(
        env=dict(os.environ if env is None else env),
        cwd=cwd,
        workdir=cwd,
        deadline=time.monotonic() + budget,
        **extra,
    )


def run_check(name: str, params: dict[str, Any], ctx: CheckContext) -> Outcome:
    """Validate ``params`` against the verifier's schema and lint, then run it once."""
    spec = builtin_registry().get(name)
    assert spec is not None, f"verifier {name} is not registered"
    jsonschema.validate(params, spec.params)
    if spec.lint is not None:
        problems = spec.lint(params)
        assert not problems, problems
    return spec.func(ctx, params)


def one_line(outcome: Outcome) -> Outcome:
    """Assert the outcome's message is one line, and return it."""
    assert "\n" not in outcome.message, outcome.message
    assert outcome.message
    return outcome


# --------------------------------------------------------------------------- servers


@dataclass
class Served:
    """A running test server: where it listens and what it saw."""

    host: str
    port: int
    requests: list[dict[str, Any]]
    stop: Callable[[], None]

    def url(self, path: str = "/", *, scheme: str = "http", host: str | None = None) -> str:
        return f"{scheme}://{host or self.host}:{self.port}{path}"


def _json_echo(handler: http.server.BaseHTTPRequestHandler) -> tuple[int, Mapping[str, str], bytes]:
    body = json.dumps({"name": "web-api", "path": handler.path, "host": handler.headers["Host"]})
    return 200, {"Content-Type": "application/json", "X-Served-By": "test"}, body.encode()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        server: Any = self.server
        length = int(self.headers.get("Content-Length") or 0)
        payload = self.rfile.read(length) if length else b""
        peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
        server.seen.append(
            {
                "method": self.command,
                "path": self.path,
                "headers": dict(self.headers),
                "body": payload,
                "peer": peer,
                "sni": getattr(self.connection, "sni", None),
            }
        )
        status, headers, body = server.responder(self)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_HEAD = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _TestServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, responder: Responder, context: ssl.SSLContext | None) -> None:
        self.responder = responder
        self.context = context
        self.seen: list[dict[str, Any]] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.context is not None:
            request.settimeout(5)
            request = self.context.wrap_socket(
                request, server_side=True, do_handshake_on_connect=False
            )
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError):
                linger_close(request)  # let the client read the alert
                return
        _Handler(request, client_address, self)


def _server_context(
    certs: Certs, cert: str, *, client_ca: str | None = None, only_sni: str | None = None
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.crt(cert), certs.key(cert))
    if client_ca:
        context.load_verify_locations(certs.crt(client_ca))
        context.verify_mode = ssl.CERT_REQUIRED

    def check_sni(sock: Any, name: str | None, _ctx: ssl.SSLContext) -> int | None:
        sock.sni = name  # remembered for the handler
        if only_sni is not None and name != only_sni:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        return None

    context.sni_callback = check_sni
    return context


@pytest.fixture
def serve(certs: Certs) -> Iterator[Callable[..., Served]]:
    """Start HTTP(S) servers in threads: ``serve(tls="server", client_ca=..., only_sni=...)``."""
    started: list[_TestServer] = []

    def start(
        responder: Responder = _json_echo,
        *,
        tls: str | None = None,
        client_ca: str | None = None,
        only_sni: str | None = None,
    ) -> Served:
        context = (
            _server_context(certs, tls, client_ca=client_ca, only_sni=only_sni) if tls else None
        )
        server = _TestServer(responder, context)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.daemon = True
        thread.start()
        started.append(server)

        def stop() -> None:
            server.shutdown()
            server.server_close()

        host, port = server.server_address[:2]
        return Served(str(host), int(port), server.seen, stop)

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (kernel backlog) but never says a word."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (connection refused)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


@contextlib.contextmanager
def _raw_server(answer: Callable[[socket.socket], None]) -> Iterator[int]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    done = threading.Event()

    def loop() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with contextlib.suppress(OSError):
                answer(conn)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        done.set()
        listener.close()


@pytest.fixture
def garbage_port() -> Iterator[int]:
    """A TCP server that answers anything with non-HTTP, non-TLS bytes and hangs up."""

    def answer(conn: socket.socket) -> None:
        conn.settimeout(2)
        with contextlib.suppress(OSError):
            conn.recv(4096)
        conn.sendall(b"SSH-2.0-NotAWebServer\r\n\x00\x01\x02 garbage garbage\r\n")
        conn.close()

    with _raw_server(answer) as port:
        yield port


@pytest.fixture
def reset_port() -> Iterator[int]:
    """A TCP server that reads the request, then resets the connection (RST, no reply)."""

    def answer(conn: socket.socket) -> None:
        conn.settimeout(2)
        with contextlib.suppress(OSError):
            conn.recv(4096)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    with _raw_server(answer) as port:
        yield port


@dataclass
class Tools:
    """Fake command-line tools on a private PATH; each answers by matching its arguments."""

    folder: Path
    env: dict[str, str]

    def add(self, name: str, answers: list[tuple[str, int, str, str]]) -> Path:
        """``answers``: (argument substring, exit code, stdout, stderr); the first match wins."""
        (self.folder / f"{name}.json").write_text(json.dumps(answers))
        script = self.folder / name
        script.write_text(
            f"#!{sys.executable}\n"
            "import json, sys, os\n"
            "here = os.path.dirname(os.path.abspath(__file__))\n"
            "name = os.path.basename(__file__)\n"
            "args = ' '.join(sys.argv[1:])\n"
            "with open(os.path.join(here, name + '.log'), 'a') as log:\n"
            "    log.write(args + '\\n')\n"
            "for needle, rc, out, err in json.load(open(os.path.join(here, name + '.json'))):\n"
            "    if needle in args:\n"
            "        sys.stdout.write(out); sys.stderr.write(err); sys.exit(rc)\n"
            "sys.stderr.write('unexpected call: ' + args + '\\n'); sys.exit(99)\n"
        )
        script.chmod(0o755)
        return script

    def calls(self, name: str) -> list[str]:
        log = self.folder / f"{name}.log"
        return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def tools(tmp_path: Path) -> Tools:
    """Fake tools first on PATH (the real curl/openssl stay reachable after them)."""
    folder = tmp_path / "tools"
    folder.mkdir()
    env = dict(os.environ)
    env["PATH"] = f"{folder}{os.pathsep}{env.get('PATH', '')}"
    return Tools(folder, env)
