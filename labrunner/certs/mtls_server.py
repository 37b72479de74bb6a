"""A tiny HTTPS server that insists on client certificates, for the mesh-security lab.

Before a learner meets a sidecar, they can watch mutual TLS work between two
processes on their own machine: this server plays a "payments" workload that
answers only callers presenting a certificate from the mesh CA, and its JSON
reply names who called (SPIFFE ID, subject), which is exactly what Envoy puts
in ``X-Forwarded-Client-Cert`` later in the workshop.

``start`` runs ``python -m labrunner.certs.mtls_server`` as a child process in
the caller's own session and process group (no setsid, no double fork), so
the lab shell's teardown can still reap it, and returns only after the child
reports on a pipe that its socket is listening: no race with the next
command. The child's output goes to a log file, never to the caller's pipes,
so a caller that waits for its output to close is not held open. ``stop``
is idempotent. Stdlib only: ssl and http.server.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MODULE = "labrunner.certs.mtls_server"
READY_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0

_SHORT = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
    "emailAddress": "emailAddress",
}


class ServerError(Exception):
    """The server could not be started or stopped; the message says why."""


@dataclass(frozen=True)
class Started:
    """A running server: its process id and the port it listens on."""

    pid: int
    port: int
    host: str


# --------------------------------------------------------------------------- the server


def _name(parts: Any) -> str:
    pairs = []
    for rdn in parts or ():
        for key, value in rdn:
            pairs.append(f"{_SHORT.get(key, key)}={value}")
    return ", ".join(reversed(pairs))


def caller_identity(peer: dict[str, Any] | None) -> dict[str, Any]:
    """What the server tells the caller about its certificate (from ``getpeercert()``)."""
    if not peer:
        return {"spiffe_id": None, "subject": None}
    sans = peer.get("subjectAltName") or ()
    uris = [v for k, v in sans if k == "URI"]
    return {
        "spiffe_id": next((u for u in uris if u.startswith("spiffe://")), None),
        "subject": _name(peer.get("subject")),
        "issuer": _name(peer.get("issuer")),
        "san_uris": uris,
        "san_dns": [v for k, v in sans if k == "DNS"],
        "not_after": peer.get("notAfter"),
    }


class _Handler(BaseHTTPRequestHandler):
    server_version = "labrunner-mtls/1"
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        server: MtlsServer = self.server  # type: ignore[assignment]
        conn = self.connection
        peer = conn.getpeercert() if isinstance(conn, ssl.SSLSocket) else None
        who = caller_identity(peer)
        caller = who.get("spiffe_id") or who.get("subject") or "an unnamed caller"
        payload = {
            "server": server.name,
            "message": f"hello {caller}, this is {server.name}",
            "client": who,
            "method": self.command,
            "path": self.path,
            "tls_version": conn.version() if isinstance(conn, ssl.SSLSocket) else None,
        }
        body = (json.dumps(payload, indent=2) + "\n").encode()
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 1 << 20))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


class MtlsServer(ThreadingHTTPServer):
    """HTTPS that requires a client certificate signed by ``client_ca``."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        *,
        cert: str,
        key: str,
        client_ca: str,
        name: str = "payments",
    ) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert, key)
        context.load_verify_locations(cafile=client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
        self.ssl_context = context
        self.name = name
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Do the TLS handshake in the worker thread, so a slow client blocks no one."""
        request.settimeout(10)
        tls = self.ssl_context.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        try:
            tls.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            sys.stderr.write(f"{client_address[0]} rejected: {reason}\n")
            linger_close(tls)
            return
        try:
            _Handler(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass


def linger_close(sock: socket.socket) -> None:
    """Close after the peer read our TLS alert: half-close, drain, then close.

    Closing at once while the client's request is still arriving makes the
    kernel answer with a reset, which can destroy the alert before the client
    reads it; the learner would see "connection reset" instead of
    "certificate required".
    """
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(1.0)
        while sock.recv(4096):
            pass
    except OSError:
        pass
    finally:
        sock.close()


def serve(
    *,
    host: str,
    port: int,
    cert: str,
    key: str,
    client_ca: str,
    name: str,
    ready_fd: int | None = None,
) -> int:
    """Run the server in the foreground until SIGTERM/SIGINT; reports readiness on ``ready_fd``."""

    def report(line: str) -> None:
        if ready_fd is not None:
            os.write(ready_fd, (line + "\n").encode())
            os.close(ready_fd)

    try:
        server = MtlsServer((host, port), cert=cert, key=key, client_ca=client_ca, name=name)
    except (OSError, ssl.SSLError, ValueError) as exc:
        report(f"error {exc}")
        return 3
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    report(f"ready {server.server_address[1]}")
    sys.stderr.write(f"{name} listening on https://{host}:{server.server_address[1]}\n")
    sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the child process (``python -m labrunner.certs.mtls_server``)."""
    parser = argparse.ArgumentParser(prog=MODULE)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--client-ca", required=True)
    parser.add_argument("--name", default="payments")
    parser.add_argument("--ready-fd", type=int)
    args = parser.parse_args(argv)
    return serve(
        host=args.host,
        port=args.port,
        cert=args.cert,
        key=args.key,
        client_ca=args.client_ca,
        name=args.name,
        ready_fd=args.ready_fd,
    )


# --------------------------------------------------------------------------- start / stop


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _is_our_server(pid: int) -> bool:
    """True if ``pid`` is alive and (where /proc exists) runs this module."""
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own exited child
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    proc = Path(f"/proc/{pid}")
    if not proc.exists():
        return True
    try:
        if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
        return MODULE.encode() in (proc / "cmdline").read_bytes()
    except (OSError, IndexError):
        return False


def running_pid(pidfile: Path) -> int | None:
    """The pid of the server ``pidfile`` names, if it is still running."""
    pid = _read_pid(pidfile)
    return pid if pid is not None and _is_our_server(pid) else None


def start(
    *,
    port: int,
    cert: Path,
    key: Path,
    client_ca: Path,
    pidfile: Path,
    name: str = "payments",
    host: str = "127.0.0.1",
    log: Path | None = None,
) -> Started:
    """Start the server in the background and return once it accepts connections.

    A server already recorded in ``pidfile`` is stopped first, so re-running a
    lab step restarts it with the current certificates.
    """
    for label, path in (("certificate", cert), ("key", key), ("client CA", client_ca)):
        if not path.is_file():
            raise ServerError(f"{label} file {path} does not exist")
    stop(pidfile)
    log_path = log if log is not None else pidfile.with_suffix(".log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    read_end, write_end = os.pipe()
    argv = [
        sys.executable,
        "-m",
        MODULE,
        "--host",
        host,
        "--port",
        str(port),
        "--cert",
        str(cert),
        "--key",
        str(key),
        "--client-ca",
        str(client_ca),
        "--name",
        name,
        "--ready-fd",
        str(write_end),
    ]
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    try:
        with open(log_path, "ab") as log_file:
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                pass_fds=(write_end,),
                env=env,
                close_fds=True,
            )
    finally:
        os.close(write_end)
    try:
        line = _read_line(read_end, READY_TIMEOUT)
    finally:
        os.close(read_end)
    if not line.startswith("ready "):
        if child.poll() is None:
            child.kill()
        child.wait()
        reason = line.removeprefix("error ").strip() or _log_tail(log_path)
        raise ServerError(f"the server did not start: {reason or 'no reason given'}")
    actual_port = int(line.split()[1])
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    tmp = pidfile.with_name(f".{pidfile.name}.tmp")
    tmp.write_text(f"{child.pid}\n")
    tmp.replace(pidfile)
    return Started(pid=child.pid, port=actual_port, host=host)


def _read_line(fd: int, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            return ""
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            return ""
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace").strip()


def _log_tail(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def _wait_gone(pid: int, timeout: float) -> bool:
    """Wait for ``pid`` to exit: a pidfd where Linux offers one, else short polls."""
    if hasattr(os, "pidfd_open"):
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            return not _is_our_server(pid)
        try:
            select.select([fd], [], [], timeout)
        finally:
            os.close(fd)
        return not _is_our_server(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _is_our_server(pid):
            return True
        time.sleep(0.05)
    return not _is_our_server(pid)


def stop(pidfile: Path) -> int | None:
    """Stop the server named in ``pidfile``; returns its pid, or None if none was running."""
    pid = running_pid(pidfile)
    if pid is not None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pid = None
        if pid is not None and not _wait_gone(pid, STOP_TIMEOUT):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _wait_gone(pid, STOP_TIMEOUT)
    try:
        pidfile.unlink()
    except FileNotFoundError:
        pass
    return pid


if __name__ == "__main__":
    sys.exit(main())
