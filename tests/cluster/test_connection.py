"""The cluster layer's own HTTP/1.1 client against servers that answer byte for byte.

The fake API server answers like a real one; these servers answer the rarer
ways HTTP allows (close-delimited bodies, chunk extensions and trailers,
folded headers, ``Connection: close``) and the broken ones (a body cut short,
not HTTP at all), each written out as raw bytes on a real socket.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from labrunner.cluster import connection
from labrunner.cluster.connection import (
    BodyTooLarge,
    Connections,
    DeadlinePassed,
    IncompleteRead,
)
from labrunner.cluster.errors import ErrorKind, transport_error


class RawServer:
    """Accepts connections on 127.0.0.1 and answers each request with the next reply."""

    def __init__(self, replies: list[bytes]) -> None:
        self.replies = list(replies)
        self.requests: list[bytes] = []
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.replies:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                while self.replies:
                    request = b""
                    while b"\r\n\r\n" not in request:
                        data = conn.recv(65536)
                        if not data:
                            break
                        request += data
                    if not request:
                        break
                    self.requests.append(request)
                    reply = self.replies.pop(0)
                    conn.sendall(reply)
                    if b"Connection: close" in reply or b"HTTP/1.0" in reply:
                        break

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[type[RawServer]]:
    made: list[RawServer] = []

    class Made(RawServer):
        def __init__(self, replies: list[bytes]) -> None:
            super().__init__(replies)
            made.append(self)

    yield Made
    for server in made:
        server.close()


def _get(
    pool: Connections,
    *,
    stream: bool = False,
    headers: dict[str, str] | None = None,
    within: float = 5.0,
) -> Any:
    return pool.request(
        "GET",
        "/api",
        body=None,
        headers=headers if headers is not None else {"Accept": "application/json"},
        connect_timeout=5,
        read_timeout=5,
        deadline=time.monotonic() + within,
        stream=stream,
    )


def test_lengths_chunks_and_keep_alive(serve: type[RawServer]) -> None:
    server = serve(
        [
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Folded: a\r\n b\r\n\r\n{}",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3;ext=1\r\n[1,\r\n2\r\n2]\r\n0\r\nX-Trailer: t\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        ]
    )
    pool = Connections("127.0.0.1", server.port)
    first = _get(pool)
    assert (first.status, first.data, first.headers.get("x-folded")) == (200, b"{}", "a b")
    second = _get(pool)
    assert second.data == b"[1,2]"
    third = _get(pool)
    assert (third.status, third.data) == (404, b"")
    assert server.connections == 1  # one kept-alive connection for all three
    assert server.requests[0].startswith(b"GET /api HTTP/1.1\r\nHost: 127.0.0.1:")
    assert pool._idle == []  # the server said close: not kept


def test_a_body_until_the_server_closes(serve: type[RawServer]) -> None:
    server = serve([b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 100_000])
    pool = Connections("127.0.0.1", server.port)
    response = _get(pool, stream=True)
    got = b""
    while chunk := response.read1(65536):
        got += chunk
    assert got == b"x" * 100_000
    response.release_conn()
    assert pool._idle == []


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nab",
        b"HTTP/1.1 200 OK\r\nContent-Len",
    ],
    ids=["length", "chunked", "headers"],
)
def test_a_response_cut_short_is_an_incomplete_read(serve: type[RawServer], reply: bytes) -> None:
    server = serve([reply])
    with pytest.raises(IncompleteRead):
        _get(Connections("127.0.0.1", server.port))


def test_not_http_and_header_smuggling_are_refused(serve: type[RawServer]) -> None:
    server = serve([b"SSH-2.0-OpenSSH_9.6\r\n\r\n"])
    with pytest.raises(ConnectionError, match="not an HTTP status line"):
        _get(Connections("127.0.0.1", server.port))
    with pytest.raises(ValueError, match="line break"):
        _get(
            Connections("127.0.0.1", server.port),
            headers={"Authorization": "Bearer x\r\nX-Evil: 1"},
        )


def test_the_deadline_ends_a_trickled_answer(serve: type[RawServer]) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            while not stop.is_set():
                try:
                    conn.sendall(b"x")
                except OSError:
                    return
                stop.wait(0.05)

    threading.Thread(target=trickle, daemon=True).start()
    pool = Connections("127.0.0.1", listener.getsockname()[1])
    started = time.monotonic()
    try:
        with pytest.raises(DeadlinePassed):
            _get(pool, within=0.5)
        assert time.monotonic() - started < 3
    finally:
        stop.set()
        listener.close()


def test_an_announced_body_too_large_is_refused_before_it_is_read(
    serve: type[RawServer],
) -> None:
    server = serve([b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n{"])
    started = time.monotonic()
    with pytest.raises(BodyTooLarge, match="announced a body of 1000000000000 bytes"):
        _get(Connections("127.0.0.1", server.port), within=30.0)
    assert time.monotonic() - started < 20  # refused at the headers, not at the deadline


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.0 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    ],
    ids=["until-close", "chunked"],
)
def test_a_body_that_grows_past_the_limit_is_refused(
    serve: type[RawServer], head: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection, "MAX_BODY", 100_000)
    body = b"x" * 150_000
    if b"chunked" in head:
        body = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:75_000],) * 2)
        body += b"0\r\n\r\n"
    server = serve([head + body])
    with pytest.raises(BodyTooLarge, match="more than 100000 bytes"):
        _get(Connections("127.0.0.1", server.port))


def test_a_body_too_large_reads_as_a_server_problem() -> None:
    error = transport_error(
        BodyTooLarge("the server sent more than 10 bytes in one answer"),
        server="https://127.0.0.1:6443",
    )
    assert error.kind is ErrorKind.SERVER
    assert str(error).startswith("the API server at https://127.0.0.1:6443 sent too much: ")
    assert "more than 10 bytes" in str(error)
