"""The curl side of the transport: the script run inside pods, its parsing, its exit codes.

Inside a pod the ``http`` verifier runs ``sh -c <script>`` through kubectl
exec. Here the same script runs in a local sh with the real curl, against
the same kinds of servers, so the framing and the exit-code mapping are
tested without a cluster.
"""

from __future__ import annotations

import http.server
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from labrunner.verify import transport
from labrunner.verify.transport import Exchange, HttpRequest

from .conftest import Certs, Served

MARKER = "@@test-marker@@"


def run_script(req: HttpRequest, count: int = 1) -> list[Exchange]:
    script = transport.curl_script(req, count=count, marker=MARKER)
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    exchanges = transport.parse_curl_batch(result.stdout, marker=MARKER)
    assert len(exchanges) == count
    return exchanges


def test_responses_with_headers_and_bodies(serve: Callable[..., Served]) -> None:
    bodies = iter([b'{"n": 1}', b"no trailing newline", b"two\nlines\n"])

    def answer(h: http.server.BaseHTTPRequestHandler) -> tuple[int, Mapping[str, str], bytes]:
        return 201, {"X-Test": "yes"}, next(bodies)

    server = serve(answer)
    exchanges = run_script(
        HttpRequest(
            url=server.url("/p"),
            method="POST",
            host="istioinaction.io",
            headers=(("X-A", "1"),),
            body=b"hi",
        ),
        count=3,
    )
    assert [e.status for e in exchanges] == [201, 201, 201]
    assert [e.body for e in exchanges] == [b'{"n": 1}', b"no trailing newline", b"two\nlines\n"]
    assert exchanges[0].header("x-test") == "yes" and exchanges[0].curl_exit == 0
    seen = server.requests[0]
    assert seen["method"] == "POST" and seen["body"] == b"hi"
    assert seen["headers"]["Host"] == "istioinaction.io" and seen["headers"]["X-A"] == "1"


def test_tls_options_map_to_curl_flags(serve: Callable[..., Served], certs: Certs) -> None:
    server = serve(tls="payments", client_ca="mesh-ca")
    req = HttpRequest(
        url=f"https://localhost:{server.port}/",
        resolve=(f"localhost:{server.port}:127.0.0.1",),
        ca=certs.crt("mesh-ca"),
        cert=certs.crt("frontend"),
        key=certs.key("frontend"),
    )
    (ok,) = run_script(req)
    assert ok.status == 200
    (no_cert,) = run_script(HttpRequest(url=req.url, ca=req.ca))
    assert (no_cert.failure, no_cert.curl_exit) == ("tls", 56)  # TLS 1.3: the alert comes on read
    assert "certificate required" in no_cert.error


@pytest.mark.parametrize(
    ("make_url", "kind", "codes"),
    [
        (lambda p: f"http://127.0.0.1:{p['closed']}/", "refused", {7}),
        (lambda p: f"http://127.0.0.1:{p['silent']}/", "timeout", {28}),
        (lambda p: f"https://127.0.0.1:{p['garbage']}/", "tls", {35}),
        (lambda p: f"http://127.0.0.1:{p['garbage']}/", "protocol", {1, 8}),
        (lambda p: f"http://127.0.0.1:{p['reset']}/", "reset", {52, 56}),
        (lambda p: "http://nonexistent.invalid/", "dns", {6}),
    ],
)
def test_curl_exit_codes_become_failure_kinds(
    make_url: Callable[[dict[str, int]], str],
    kind: str,
    codes: set[int],
    closed_port: int,
    silent_port: int,
    garbage_port: int,
    reset_port: int,
) -> None:
    ports = {
        "closed": closed_port,
        "silent": silent_port,
        "garbage": garbage_port,
        "reset": reset_port,
    }
    (ex,) = run_script(HttpRequest(url=make_url(ports), timeout=1.0, insecure=True))
    assert ex.failure == kind, ex
    assert ex.curl_exit in codes
    assert f"curl exit {ex.curl_exit}" in ex.describe_failure()


def test_certificate_verification_failure(serve: Callable[..., Served], certs: Certs) -> None:
    server = serve(tls="server")
    (ex,) = run_script(
        HttpRequest(url=f"https://localhost:{server.port}/", ca=certs.crt("mesh-ca"))
    )
    assert (ex.failure, ex.curl_exit) == ("tls", 60)


def test_parser_handles_interim_responses_and_missing_curl() -> None:
    output = (
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nA: b\r\n\r\nbody"
        f"\n{MARKER}0\n"
        "sh: 1: curl: not found"
        f"\n{MARKER}127\n"
        "curl: (56) Recv failure: Connection reset by peer"
        f"\n{MARKER}56\n"
    )
    first, second, third = transport.parse_curl_batch(output, marker=MARKER)
    assert (first.status, first.body, first.header("a")) == (200, b"body", "b")
    assert second.curl_exit == 127 and "could not run" in second.error
    assert (third.failure, third.error) == ("reset", "Recv failure: Connection reset by peer")
    assert transport.parse_curl_batch("no markers at all", marker=MARKER) == []


def test_classify_curl() -> None:
    assert transport.classify_curl(56, "Recv failure: Connection reset by peer") == "reset"
    assert (
        transport.classify_curl(56, "OpenSSL SSL_read: tlsv13 alert certificate required") == "tls"
    )
    assert transport.classify_curl(35, "") == "tls"
    assert transport.classify_curl(99, "") == "other"


def test_resolve_parsing_and_bad_urls(tmp_path: Path) -> None:
    assert transport.parse_resolve("istioinaction.io:443:10.0.0.1") == (
        "istioinaction.io",
        443,
        "10.0.0.1",
    )
    assert transport.parse_resolve("h:443:[::1]") == ("h", 443, "::1")
    with pytest.raises(transport.RequestError):
        transport.parse_resolve("h:https:1.2.3.4")
    with pytest.raises(transport.RequestError):
        transport.send(HttpRequest(url="ftp://example.com/"))
