"""Kept-alive HTTP/1.1 connections to one API server, on the standard library alone.

A ``labrunner check`` process makes one or two GETs and exits, so what it
imports to make them is most of its cost: urllib3 (and the modules it pulls
in: ``logging``, ``importlib.metadata`` for its HTTP/2 probe) takes longer to
load than the check takes to run. Everything a kubeconfig without a
``proxy-url`` needs is here, on ``http.client`` and ``ssl``: TLS with the
kubeconfig's own certificate authority and client certificate (the
``ssl.SSLContext`` built by ``labrunner.cluster.client``), ``tls-server-name``
for the name the certificate is checked against, separate connect and read
timeouts, a whole-request deadline (``labrunner.deadlines`` shuts the socket
down when it passes, so a server trickling its answer cannot hold a check),
streamed bodies for watches, and a few idle connections kept for the next
request. A connection the server closed while it sat idle is dropped before
use. Proxies (``proxy-url``: http, https, SOCKS) keep going through urllib3,
imported only for them.

``ssl`` itself is imported only for ``https`` servers.
"""

from __future__ import annotations

import http.client
import threading
from typing import TYPE_CHECKING, Any

from labrunner import deadlines

if TYPE_CHECKING:
    import ssl

MAX_IDLE = 8
"""Idle connections kept for later requests (as urllib3's pool ``maxsize``)."""


class _Connection(http.client.HTTPConnection):
    """One connection: TCP within the connect timeout, then TLS when ``tls`` is set, then
    reads bounded by the read timeout."""

    def __init__(
        self,
        host: str,
        port: int | None,
        *,
        tls: ssl.SSLContext | None,
        server_hostname: str | None,
    ) -> None:
        super().__init__(host, port or (443 if tls is not None else 80))
        self.tls = tls
        self.server_hostname = server_hostname
        self.read_timeout: float | None = None

    def connect(self) -> None:
        """Connect (and shake hands) within ``timeout``; later reads get ``read_timeout``."""
        super().connect()
        if self.tls is not None:
            self.sock = self.tls.wrap_socket(
                self.sock, server_hostname=self.server_hostname or self.host
            )
        self.sock.settimeout(self.read_timeout)


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
        self, raw: http.client.HTTPResponse, conn: _Connection, sock: Any, pool: Connections
    ) -> None:
        self._raw = raw
        self.connection: _Connection | None = conn
        self._sock = sock  # the connection lets go of it when the server will close
        self._pool = pool
        self.status = raw.status
        self.reason = raw.reason
        self.headers = raw.headers
        self._data: bytes | None = None

    @property
    def data(self) -> bytes:
        """The whole body (read now when it was not yet)."""
        if self._data is None:
            self._data = self._raw.read()
        return self._data

    def read(self, amt: int | None = None) -> bytes:
        """Read the body (all of it, or up to ``amt`` bytes)."""
        if self._data is not None:
            data, self._data = self._data, b""
            return data
        return self._raw.read(amt)

    def read1(self, amt: int = -1) -> bytes:
        """Whatever part of the body has arrived (at least one byte unless it ended)."""
        return self._raw.read1(amt)

    def shutdown(self) -> None:
        """Interrupt a read blocked in another thread (the socket is shut down)."""
        if self._sock is not None:
            _shutdown_socket(self._sock)

    def close(self) -> None:
        """Drop the response and its connection (a half-read body must not be reused)."""
        self._raw.close()
        conn, self.connection = self.connection, None
        if conn is not None:
            conn.close()

    def release_conn(self) -> None:
        """Give the connection back for the next request when the body was read to its end."""
        conn, self.connection = self.connection, None
        if conn is None:
            return
        if self._raw.isclosed() and not self._raw.will_close and conn.sock is not None:
            self._pool.put(conn)
        else:
            self._raw.close()
            conn.close()


def _shutdown_socket(sock: Any) -> None:
    # lazy: only a deadline or a cancel that fires needs it (start-up speed)
    import socket

    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


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
        self.port = port
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
        conn.timeout = connect_timeout
        conn.read_timeout = read_timeout
        if conn.sock is not None:
            conn.sock.settimeout(read_timeout)

        sockets = [conn.sock]

        def cut() -> None:
            sock = sockets[-1]
            if sock is not None:
                _shutdown_socket(sock)

        alarm = deadlines.arm(deadline, cut)
        try:
            if conn.sock is None:
                conn.connect()
                sockets.append(conn.sock)
            conn.request(method, target, body=body, headers=headers)
            response = Response(conn.getresponse(), conn, sockets[-1], self)
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


class DeadlinePassed(Exception):
    """The request's deadline passed before its answer was in."""
