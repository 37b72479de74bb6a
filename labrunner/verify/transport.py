"""Make HTTP(S) requests the way the labs' curl commands do, and name how they fail.

A check that says "the call must fail" is only useful if it knows *how* it
failed: a refused connection (nothing listening, the gateway lost its HTTP
listener), a reset (a STRICT mTLS sidecar dropping a plaintext caller), a TLS
handshake failure (no client certificate, wrong SNI, an untrusted CA) or a
timeout. So every request ends in an ``Exchange`` that holds either a response
or a failure kind, whether it ran here with the standard library or inside a
pod with curl (whose exit codes are mapped to the same kinds).

Two curl behaviours are mirrored on purpose: ``resolve`` pins a host name to
an address (like ``--resolve host:port:addr``), so SNI and certificate checks
use the name while the connection goes elsewhere; and a ``Host`` header
changes only the header, never the SNI.
"""

from __future__ import annotations

import http.client
import re
import shlex
import socket
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from labrunner import deadlines

FailureKind = Literal["dns", "refused", "reset", "tls", "timeout", "protocol", "other"]
FAILURE_KINDS: tuple[str, ...] = ("dns", "refused", "reset", "tls", "timeout", "protocol", "other")
BODY_CAP = 4 * 1024 * 1024

_KIND_WORDS = {
    "dns": "the host name did not resolve",
    "refused": "the connection was refused",
    "reset": "the connection was reset or closed without a reply",
    "tls": "the TLS handshake failed",
    "timeout": "the request timed out",
    "protocol": "the server did not speak HTTP",
    "other": "the request failed",
}

# curl exit code -> failure kind (see `man curl`, EXIT CODES).
_CURL_KINDS: dict[int, FailureKind] = {
    5: "dns",
    6: "dns",
    7: "refused",
    28: "timeout",
    35: "tls",
    51: "tls",
    53: "tls",
    54: "tls",
    58: "tls",
    59: "tls",
    60: "tls",
    64: "tls",
    66: "tls",
    80: "tls",
    83: "tls",
    90: "tls",
    91: "tls",
    52: "reset",
    55: "reset",
    56: "reset",
    1: "protocol",
    8: "protocol",
    16: "protocol",
    92: "protocol",
}
_CURL_TLS_HINTS = ("ssl", "tls", "alert", "certificate", "handshake")


class RequestError(ValueError):
    """The request cannot be made as specified (unreadable CA file, bad URL)."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


@dataclass(frozen=True)
class HttpRequest:
    """One request as a lab's ``http`` check describes it."""

    url: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    host: str | None = None
    resolve: tuple[str, ...] = ()
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    insecure: bool = False
    timeout: float = 5.0
    body: bytes | None = None


@dataclass(frozen=True)
class Exchange:
    """What one request produced: a response, or a failure of a named kind."""

    status: int | None = None
    reason: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    failure: FailureKind | None = None
    error: str = ""
    curl_exit: int | None = None
    elapsed: float = 0.0
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def answered(self) -> bool:
        """True when an HTTP response arrived (whatever its status)."""
        return self.failure is None and self.status is not None

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), if present."""
        lower = name.lower()
        return next((v for k, v in self.headers if k.lower() == lower), None)

    def text(self) -> str:
        """The body decoded as UTF-8 (invalid bytes replaced)."""
        return self.body.decode("utf-8", "replace")

    def describe_failure(self) -> str:
        """``the TLS handshake failed (curl exit 35: ...)``: one line, for messages."""
        words = _KIND_WORDS.get(self.failure or "other", "the request failed")
        detail = " ".join(self.error.split())
        if self.curl_exit is not None:
            detail = f"curl exit {self.curl_exit}" + (f": {detail}" if detail else "")
        return f"{words} ({detail})" if detail else words


# --------------------------------------------------------------------------- parameters


def parse_resolve(entry: str) -> tuple[str, int, str]:
    """Split a curl-style ``host:port:address`` pin; IPv6 addresses may be bracketed."""
    host, sep, rest = entry.partition(":")
    port_text, sep2, addr = rest.partition(":")
    if not sep or not sep2 or not host or not addr:
        raise RequestError(f"resolve {entry!r} is not host:port:address")
    try:
        port = int(port_text)
    except ValueError:
        raise RequestError(f"resolve {entry!r}: {port_text!r} is not a port number") from None
    return host, port, addr.strip("[]")


def _target(url: str) -> tuple[str, str, int, str, str]:
    """(scheme, host, port, request target, Host header) of ``url``."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise RequestError(f"{url!r} is not an http:// or https:// URL")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise RequestError(f"{url!r} has an invalid port") from None
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    netloc = parts.netloc.rpartition("@")[2]
    return scheme, parts.hostname, port, target, netloc


def ssl_context(req: HttpRequest) -> ssl.SSLContext:
    """The client TLS context for ``req``: its CA (or the system store) and client certificate."""
    for label, path in (("CA file", req.ca), ("client certificate", req.cert), ("key", req.key)):
        if path is not None and not path.is_file():
            raise RequestError(f"{label} {path} does not exist", missing=True)
    try:
        context = ssl.create_default_context(cafile=str(req.ca) if req.ca else None)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise RequestError(f"cannot load CA file {req.ca}: {exc}") from None
    if req.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if req.cert is not None:
        try:
            context.load_cert_chain(str(req.cert), str(req.key) if req.key else None)
        except (ssl.SSLError, OSError) as exc:
            raise RequestError(
                f"cannot load client certificate {req.cert}"
                + (f" with key {req.key}" if req.key else "")
                + f": {exc}"
            ) from None
    return context


# --------------------------------------------------------------------------- local client


def _tls_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or exc.strerror or str(exc)
        return str(reason).replace("_", " ").lower()
    return str(exc) or type(exc).__name__


def send(
    req: HttpRequest,
    *,
    connect_to: tuple[str, int] | None = None,
    context: ssl.SSLContext | None = None,
) -> Exchange:
    """Make ``req`` from this machine; never raises for network trouble.

    ``connect_to`` sends the connection to another address (a port-forward)
    while the URL still decides the Host header, SNI and certificate name.
    Raises RequestError only for unusable parameters.
    """
    scheme, host, port, target, netloc = _target(req.url)
    address: tuple[str, int] = connect_to or (host, port)
    for entry in req.resolve if connect_to is None else ():
        pin_host, pin_port, pin_addr = parse_resolve(entry)
        if pin_host.lower() == host.lower() and pin_port == port:
            address = (pin_addr, port)
    if scheme == "https" and context is None:
        context = ssl_context(req)
    start = time.monotonic()

    def failed(kind: FailureKind, error: str) -> Exchange:
        return Exchange(failure=kind, error=error, elapsed=time.monotonic() - start)

    try:
        sock = socket.create_connection(address, timeout=req.timeout)
    except socket.gaierror as exc:
        return failed("dns", f"could not resolve {address[0]}: {exc.strerror or exc}")
    except ConnectionRefusedError:
        return failed("refused", f"connection to {address[0]}:{address[1]} refused")
    except TimeoutError:
        return failed(
            "timeout", f"no connection to {address[0]}:{address[1]} within {req.timeout:g}s"
        )
    except OSError as exc:
        return failed(
            "refused", f"cannot connect to {address[0]}:{address[1]}: {exc.strerror or exc}"
        )
    # The whole request ends by its timeout, however slowly the server trickles bytes:
    # socket timeouts only bound each read.
    raw = sock
    alarm = deadlines.arm(start + req.timeout, lambda: _shutdown(raw))
    try:
        exchange = _exchange(req, sock, (scheme, host, port, target, netloc), context, start)
    finally:
        alarm.disarm()
        raw.close()
    if alarm.fired:  # whatever was read is cut short
        return failed("timeout", f"no response within {req.timeout:g}s")
    return exchange


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _exchange(
    req: HttpRequest,
    sock: socket.socket,
    where: tuple[str, str, int, str, str],
    context: ssl.SSLContext | None,
    start: float,
) -> Exchange:
    """Send ``req`` over the connected ``sock`` and read the answer (TLS first for https)."""
    scheme, host, port, target, netloc = where

    def failed(kind: FailureKind, error: str) -> Exchange:
        return Exchange(failure=kind, error=error, elapsed=time.monotonic() - start)

    try:
        if scheme == "https":
            assert context is not None
            try:
                sock = context.wrap_socket(sock, server_hostname=host)
            except TimeoutError:
                return failed("timeout", f"TLS handshake did not finish within {req.timeout:g}s")
            except (ssl.SSLError, OSError) as exc:
                return failed("tls", _tls_reason(exc))
        conn = http.client.HTTPConnection(host, port, timeout=req.timeout)
        conn.sock = sock
        headers = {"Host": req.host or netloc, "User-Agent": "labrunner", "Accept": "*/*"}
        headers.update(dict(req.headers))
        try:
            conn.request(req.method, target, body=req.body, headers=headers)
            response = conn.getresponse()
            body = response.read(BODY_CAP)
        except TimeoutError:
            return failed("timeout", f"no response within {req.timeout:g}s")
        except ssl.SSLError as exc:
            return failed("tls", _tls_reason(exc))
        except http.client.RemoteDisconnected:
            return failed("reset", "the server closed the connection without a reply")
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as exc:
            return failed("reset", exc.strerror or type(exc).__name__)
        except (http.client.HTTPException, ValueError) as exc:
            return failed("protocol", f"not an HTTP response ({type(exc).__name__}: {exc})"[:200])
        except OSError as exc:
            return failed("other", exc.strerror or str(exc))
        return Exchange(
            status=response.status,
            reason=response.reason,
            headers=tuple(response.getheaders()),
            body=body,
            elapsed=time.monotonic() - start,
        )
    finally:
        sock.close()


# --------------------------------------------------------------------------- curl


def classify_curl(code: int, message: str) -> FailureKind:
    """The failure kind for a curl exit code, refined by curl's message."""
    kind = _CURL_KINDS.get(code, "other")
    lower = message.lower()
    if kind == "reset" and any(h in lower for h in _CURL_TLS_HINTS):
        return "tls"  # TLS 1.3 reports a rejected client certificate on the first read
    return kind


def curl_argv(req: HttpRequest) -> list[str]:
    """The curl command line equivalent to ``req`` (headers go to stdout with the body)."""
    argv = ["curl", "-sS", "-D", "-", "-X", req.method]
    argv += ["--max-time", f"{req.timeout:g}", "--connect-timeout", f"{req.timeout:g}"]
    if req.host:
        argv += ["-H", f"Host: {req.host}"]
    for name, value in req.headers:
        argv += ["-H", f"{name}: {value}"]
    for entry in req.resolve:
        argv += ["--resolve", entry]
    if req.ca:
        argv += ["--cacert", str(req.ca)]
    if req.cert:
        argv += ["--cert", str(req.cert)]
    if req.key:
        argv += ["--key", str(req.key)]
    if req.insecure:
        argv.append("-k")
    if req.body is not None:
        argv += ["--data-binary", req.body.decode("utf-8", "replace")]
    argv.append(req.url)
    return argv


def curl_script(req: HttpRequest, *, count: int, marker: str) -> str:
    """A POSIX sh loop that runs curl ``count`` times, ending each answer with a marker line."""
    command = " ".join(shlex.quote(a) for a in curl_argv(req))
    return (
        f'n=0; while [ "$n" -lt {int(count)} ]; do n=$((n+1)); {command} 2>&1;'
        f" printf '\\n{marker}%s\\n' \"$?\"; done"
    )


_STATUS_LINE = re.compile(r"^HTTP/[\d.]+ (\d{3})(?: ([^\r\n]*))?\r?$", re.MULTILINE)
_CURL_ERROR = re.compile(r"^curl: \((\d+)\) (.*)$", re.MULTILINE)


def _parse_curl_output(chunk: str, code: int) -> Exchange:
    if code != 0:
        errors = _CURL_ERROR.findall(chunk)
        if errors:
            message = errors[-1][1].strip()
        else:
            lines = chunk.strip().splitlines()
            message = lines[-1].strip() if lines else ""
        if code in (126, 127) and not errors:
            return Exchange(failure="other", error=f"curl could not run: {message}", curl_exit=code)
        return Exchange(failure=classify_curl(code, message), error=message, curl_exit=code)
    rest = chunk
    while True:
        match = _STATUS_LINE.match(rest)
        if match is None:
            return Exchange(failure="protocol", error="no HTTP status line in curl's output")
        head, sep, after = rest.partition("\r\n\r\n")
        if not sep:
            head, sep, after = rest.partition("\n\n")
        status = int(match.group(1))
        lines = head.splitlines()[1:]
        headers = tuple(
            (k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines) if k
        )
        if 100 <= status < 200 and _STATUS_LINE.match(after):
            rest = after
            continue
        return Exchange(
            status=status,
            reason=(match.group(2) or "").strip(),
            headers=headers,
            body=after.encode("utf-8"),
            curl_exit=0,
        )


def parse_curl_batch(output: str, *, marker: str) -> list[Exchange]:
    """Split the output of ``curl_script`` into one Exchange per request."""
    exchanges: list[Exchange] = []
    pattern = re.compile(r"\n" + re.escape(marker) + r"(\d+)\n")
    position = 0
    for match in pattern.finditer(output):
        chunk = output[position : match.start()]
        exchanges.append(_parse_curl_output(chunk, int(match.group(1))))
        position = match.end()
    return exchanges
