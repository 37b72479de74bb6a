"""Kept-alive HTTP/1.1 connections to one API server, on sockets and ``ssl`` alone.

A ``labrunner check`` process makes one or two GETs and exits, so what it
imports to make them is most of its cost: urllib3 (and what it pulls in:
``logging``, ``importlib.metadata`` for its HTTP/2 probe) takes longer to
load than the check takes to run, and even ``http.client`` brings the email
package (for header parsing) and the ``HTTPStatus`` enum. An API server's
answers are plain HTTP/1.1 — a status line, headers, and a body framed by
``Content-Length`` or chunked — so this module speaks it itself, which is all
a kubeconfig without a ``proxy-url`` needs:

* TLS with the kubeconfig's own certificate authority and client certificate
  (the ``ssl.SSLContext`` built by ``labrunner.cluster.client``), checked
  against the server's name or ``tls-server-name``; ``ssl`` is imported only
  for ``https`` servers;
* separate connect and read timeouts, and a whole-request deadline
  (``labrunner.deadlines`` shuts the socket down when it passes, so a server
  trickling its answer cannot hold a check);
* bodies read at once, or streamed (``read1``) for watches;
* a few idle connections kept for the next request; one the server closed
  while it sat idle is dropped before use, and a response the server cut
  short raises ``IncompleteRead`` (a broken connection, as urllib3 says).

Proxies (``proxy-url``: http, https, SOCKS) keep going through urllib3,
imported only for them.
"""

from __future__ import annotations

import socket
import threading

from labrunner import deadlines

TYPE_CHECKING = False  # as typing's, without importing typing (a start-up cost)
if TYPE_CHECKING:
    import ssl
    from typing import Any

MAX_IDLE = 8
"""Idle connections kept for later requests (as urllib3's pool ``maxsize``)."""
MAX_LINE = 65536
"""The longest status, header or chunk-size line accepted."""
MAX_HEADERS = 200
MAX_BODY = 512 * 1024 * 1024
"""The largest whole body read into memory (a list of ~100,000 pods is about a quarter of it);
a server that sends more, or announces more, is refused rather than allowed to fill memory."""


class RemoteDisconnected(ConnectionResetError):
    """The server closed the connection without answering."""


class IncompleteRead(ConnectionError):
    """The server closed the connection in the middle of a response."""


class BadStatusLine(ConnectionError):
    """The server answered something that is not HTTP."""


class BodyTooLarge(Exception):
    """The server sent (or announced) a body larger than labrunner reads into memory."""


class DeadlinePassed(Exception):
    """The request's deadline passed before its answer was in."""


class Headers:
    """A response's headers: ``get`` by name, whatever its case (repeats joined by ``, ``)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._index: dict[str, str] = {}
        for name, value in pairs:
            key = name.lower()
            self._index[key] = f"{self._index[key]}, {value}" if key in self._index else value

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of header ``name`` (``default`` when absent)."""
        return self._index.get(name.lower(), default)


def _address_host(host: str) -> str | bytes:
    """``host`` as ``getaddrinfo`` would get it from the ``idna`` codec, without loading it.

    A ``str`` host is encoded with ``idna`` (which imports ``stringprep``: a millisecond
    of a ``check``'s start-up). For an ASCII host that codec only checks each label's
    length; a host that passes gets the same bytes here, any other stays ``str`` and
    meets the codec (and its error) as before.
    """
    if not host.isascii():
        return host
    raw = host.encode("ascii")
    labels = raw.split(b".")
    if all(0 < len(label) < 64 for label in labels[:-1]) and len(labels[-1]) < 64:
        return raw
    return host


def _shutdown_socket(sock: Any) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Connection:
    """One connection: TCP within the connect timeout, then TLS when ``tls`` is set, then
    reads bounded by the read timeout."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: ssl.SSLContext | None,
        server_hostname: str | None,
    ) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.server_hostname = server_hostname
        self.sock: Any = None
        self.reader: Any = None
        self.authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def connect(self, connect_timeout: float, read_timeout: float) -> Any:
        """Open the connection (and shake hands) within ``connect_timeout``; returns the
        socket, whose later reads wait at most ``read_timeout``."""
        # bytes are a host too (typeshed says str only): getaddrinfo takes them as they are
        address: tuple[Any, int] = (_address_host(self.host), self.port)
        sock = socket.create_connection(address, connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_hostname=self.server_hostname or self.host)
            sock.settimeout(read_timeout)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.reader = sock.makefile("rb")
        return sock

    def close(self) -> None:
        """Close the socket (idempotent)."""
        reader, sock = self.reader, self.sock
        self.reader = self.sock = None
        if reader is not None:
            reader.close()
        if sock is not None:
            sock.close()

    def send(self, method: str, target: str, headers: dict[str, str], body: bytes | None) -> None:
        """Write one request."""
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.authority}"]
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        if any(c in line for line in lines for c in "\r\n\0"):
            # a credential or path with a line break would smuggle headers (http.client
            # refuses it the same way)
            raise ValueError("a request header or path contains a line break")
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.sock.sendall(head + body if body else head)

    def _line(self, what: str) -> bytes:
        line = self.reader.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise BadStatusLine(f"the server sent a {what} line longer than {MAX_LINE} bytes")
        return bytes(line)

    def receive(self, method: str) -> Response:
        """Read one response's status line and headers (the body is left to ``Response``)."""
        while True:
            line = self._line("status")
            if not line:
                raise RemoteDisconnected("the server closed the connection without an answer")
            parts = line.decode("latin-1").rstrip("\r\n").split(None, 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
                raise BadStatusLine(f"not an HTTP status line: {line[:80]!r}")
            status = int(parts[1])
            pairs = self._headers()
            if status != 100:
                break
        headers = Headers(pairs)
        version_10 = parts[0] == "HTTP/1.0"
        connection = (headers.get("Connection") or "").lower()
        chunked = "chunked" in (headers.get("Transfer-Encoding") or "").lower()
        length: int | None = None
        if not chunked and headers.get("Content-Length") is not None:
            try:
                length = int(str(headers.get("Content-Length")).split(",")[0])
            except ValueError:
                raise BadStatusLine("the server sent an invalid Content-Length") from None
            if length < 0:
                raise BadStatusLine("the server sent a negative Content-Length")
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            length, chunked = 0, False
        will_close = (
            "close" in connection
            or (version_10 and "keep-alive" not in connection)
            or (length is None and not chunked)
        )
        reason = parts[2] if len(parts) > 2 else ""
        return Response(self, status, reason, headers, length, chunked, will_close)

    def _headers(self) -> list[tuple[str, str]]:
        pairs: list[tuple[str, str]] = []
        while True:
            line = self._line("header")
            if not line.endswith(b"\n"):
                raise IncompleteRead("the server closed the connection in the headers")
            if line in (b"\r\n", b"\n"):
                return pairs
            if line[:1] in (b" ", b"\t") and pairs:  # an obsolete folded continuation
                name, value = pairs[-1]
                pairs[-1] = (name, f"{value} {line.decode('latin-1').strip()}")
                continue
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon:
                raise BadStatusLine(f"not an HTTP header line: {line[:80]!r}")
            pairs.append((name.strip(), value.strip()))
            if len(pairs) > MAX_HEADERS:
                raise BadStatusLine(f"the server sent more than {MAX_HEADERS} headers")


def _dropped(conn: _Connection) -> bool:
    """True when an idle connection's socket is closed or has unread data (so unusable)."""
    sock = conn.sock
    if sock is None:
        return True
    # lazy: only a reused connection is looked at (start-up speed)
    import select

    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class Response:
    """An API server's answer: ``status``, ``headers``, and the body (``data`` when it was
    read at once, else ``read``/``read1`` as it streams). ``release_conn`` gives the
    connection back for the next request once the body is read; ``close`` drops it."""

    def __init__(
        self,
        conn: _Connection,
        status: int,
        reason: str,
        headers: Headers,
        length: int | None,
        chunked: bool,
        will_close: bool,
    ) -> None:
        self.connection: _Connection | None = conn
        self._sock = conn.sock  # for shutdown() from another thread
        self._reader = conn.reader
        self.status = status
        self.reason = reason
        self.headers = headers
        self.will_close = will_close
        self._left = length  # bytes of the body (or of the current chunk) still to read
        self._chunked = chunked
        self._done = length == 0 and not chunked
        self._data: bytes | None = None
        self._pool: Connections | None = None

    # ------------------------------------------------------------------ the body

    def _exact(self, size: int) -> bytes:
        data = self._reader.read(size)
        if len(data) < size:
            raise IncompleteRead(
                f"IncompleteRead({len(data)} bytes read, {size - len(data)} more expected)"
            )
        return bytes(data)

    def _next_chunk(self) -> bool:
        """Start the next chunk; False after the last one (its trailers read)."""
        line = self._reader.readline(MAX_LINE + 1)
        if not line:
            raise IncompleteRead("IncompleteRead(the connection closed between chunks)")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise IncompleteRead(f"IncompleteRead(not a chunk size: {line[:40]!r})") from None
        if size == 0:
            while True:  # trailers, up to the blank line
                trailer = self._reader.readline(MAX_LINE + 1)
                if not trailer:
                    raise IncompleteRead("IncompleteRead(the connection closed in the trailers)")
                if trailer in (b"\r\n", b"\n"):
                    break
            self._done = True
            return False
        self._left = size
        return True

    def _end_chunk(self) -> None:
        if self._exact(2) != b"\r\n":
            raise IncompleteRead("IncompleteRead(a chunk did not end with CRLF)")
        self._left = None

    def read1(self, amt: int = -1) -> bytes:
        """Whatever part of the body has arrived, up to ``amt`` bytes (b"" at its end)."""
        if self._data is not None:
            data, self._data = self._data, b""
            return data
        if self._done or self._reader is None:
            return b""
        limit = amt if amt and amt > 0 else MAX_LINE
        if self._chunked:
            if self._left is None and not self._next_chunk():
                return b""
            assert self._left is not None
            data = self._reader.read1(min(limit, self._left))
            if not data:
                raise IncompleteRead(f"IncompleteRead(0 bytes read, {self._left} more expected)")
            self._left -= len(data)
            if self._left == 0:
                self._end_chunk()
            return bytes(data)
        if self._left is None:  # until the server closes
            data = self._reader.read1(limit)
            if not data:
                self._done = True
            return bytes(data)
        data = self._reader.read1(min(limit, self._left))
        if not data:
            raise IncompleteRead(f"IncompleteRead(0 bytes read, {self._left} more expected)")
        self._left -= len(data)
        self._done = self._left == 0
        return bytes(data)

    def read(self, amt: int | None = None) -> bytes:
        """Read the body: all of it, or up to ``amt`` bytes."""
        if self._data is not None and amt is None:
            data, self._data = self._data, b""
            return data
        parts: list[bytes] = []
        wanted = amt if amt is not None else -1
        total = 0
        while wanted != 0:
            if not self._chunked and self._left is not None and amt is None:
                if not self._done:  # a known length: one read
                    if self._left > MAX_BODY:
                        raise BodyTooLarge(
                            f"the server announced a body of {self._left} bytes; labrunner "
                            f"reads at most {MAX_BODY} bytes of one answer"
                        )
                    parts.append(self._exact(self._left))
                    self._left, self._done = 0, True
                break
            data = self.read1(wanted if wanted > 0 else 65536)
            if not data:
                break
            total += len(data)
            if amt is None and total > MAX_BODY:
                raise BodyTooLarge(
                    f"the server sent more than {MAX_BODY} bytes in one answer; labrunner "
                    "reads at most that much"
                )
            parts.append(data)
            if wanted > 0:
                wanted -= len(data)
        return b"".join(parts)

    @property
    def data(self) -> bytes:
        """The whole body (read now when it was not yet)."""
        if self._data is None:
            self._data = self.read()
        return self._data

    # ------------------------------------------------------------------ the connection

    def shutdown(self) -> None:
        """Interrupt a read blocked in another thread (the socket is shut down)."""
        if self._sock is not None:
            _shutdown_socket(self._sock)

    def close(self) -> None:
        """Drop the response and its connection (a half-read body must not be reused)."""
        conn, self.connection = self.connection, None
        self._reader = None
        if conn is not None:
            conn.close()

    def release_conn(self) -> None:
        """Give the connection back for the next request when the body was read to its end."""
        conn, self.connection = self.connection, None
        if conn is None:
            return
        if self._done and not self.will_close and self._pool is not None:
            self._pool.put(conn)
        else:
            conn.close()


class Connections:
    """The kept-alive connections to one server (thread-safe)."""

    def __init__(
        self,
        host: str,
        port: int | None,
        *,
        tls: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> None:
        self.host = host
        self.port = port or (443 if tls is not None else 80)
        self.tls = tls
        self.server_hostname = server_hostname
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    def _take(self) -> _Connection:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if not _dropped(conn):
                    return conn
                conn.close()
        return _Connection(self.host, self.port, tls=self.tls, server_hostname=self.server_hostname)

    def put(self, conn: _Connection) -> None:
        """Keep ``conn`` for a later request (closed instead when enough are kept)."""
        with self._lock:
            if not self._closed and len(self._idle) < MAX_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    def clear(self) -> None:
        """Close every idle connection; later requests open new ones."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

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
    ) -> Response:
        """Send one request; returns the response, its body read unless ``stream``.

        Connect and TLS take at most ``connect_timeout``, each read at most
        ``read_timeout``, and everything up to the response's headers (and its
        body, unless ``stream``) ends by ``deadline`` (``time.monotonic()``), or
        ``DeadlinePassed`` is raised. Otherwise raises what the socket, TLS or
        HTTP parsing raised.
        """
        conn = self._take()
        sockets = [conn.sock]

        def cut() -> None:
            sock = sockets[-1]
            if sock is not None:
                _shutdown_socket(sock)

        alarm = deadlines.arm(deadline, cut)
        try:
            if conn.sock is None:
                sockets.append(conn.connect(connect_timeout, read_timeout))
            else:
                conn.sock.settimeout(read_timeout)
            conn.send(method, target, headers, body)
            response = conn.receive(method)
            response._pool = self
            if not stream:
                response.data  # noqa: B018 - read the body while the deadline is armed
                response.release_conn()
        except BaseException:
            alarm.disarm()
            conn.close()
            if alarm.fired:
                raise DeadlinePassed from None
            raise
        alarm.disarm()
        return response
