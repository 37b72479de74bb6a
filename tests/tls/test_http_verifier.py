"""The ``http`` verifier from the runner: real servers, real TLS, every way a call can fail."""

from __future__ import annotations

import http.server
import itertools
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from labrunner.verify.outcome import Outcome, Status
from labrunner.verify.registry import builtin_registry

from .conftest import Certs, Served, make_ctx, one_line, run_check

Serve = Callable[..., Served]


def http_check(tmp_path: Path, budget: float = 10.0, **params: Any) -> Outcome:
    return one_line(run_check("http", params, make_ctx(tmp_path, budget=budget)))


def test_plain_http_with_host_header_and_expectations(tmp_path: Path, serve: Serve) -> None:
    server = serve()
    outcome = http_check(
        tmp_path,
        url=server.url("/api?x=1"),
        host="istioinaction.io",
        headers={"X-Canary": "true"},
        expect={
            "status": 200,
            "json": {"name": "web-api", "path": "/api?x=1"},
            "body_contains": "web-api",
            "body_not_contains": "error",
            "header": {"content-type": "application/json", "x-served-by": {"contains": "tes"}},
        },
    )
    assert outcome.status is Status.PASSED, outcome
    assert (
        outcome.message == f"GET {server.url('/api?x=1')} → HTTP 200"
        " (name = web-api; path = /api?x=1; body has 'web-api')"
    )
    seen = server.requests[0]["headers"]
    assert seen["Host"] == "istioinaction.io" and seen["X-Canary"] == "true"


def test_default_expectation_is_a_successful_status(tmp_path: Path, serve: Serve) -> None:
    server = serve(lambda h: (404, {}, b"no route"))
    outcome = http_check(tmp_path, url=server.url())
    assert outcome.status is Status.PENDING
    assert outcome.message.endswith("a successful response expected, got HTTP 404; body 'no route'")
    assert http_check(tmp_path, url=server.url(), expect={"status": [403, 404]}).ok


@pytest.mark.parametrize(
    ("expect", "reason"),
    [
        ({"status": 200}, 'HTTP 200 expected, got 503; body \'{"name": "web-api"'),
        ({"status": 503, "body_contains": "Hello"}, "body should contain 'Hello'; it is"),
        (
            {"status": 503, "body_not_contains": "web-api"},
            "body should not contain 'web-api', but it does",
        ),
        ({"status": 503, "body_regex": "^v[0-9]$"}, "body should match /^v[0-9]$/"),
        (
            {"status": 503, "json": {"name": "recommendation"}},
            'JSON name = recommendation expected, got "web-api"',
        ),
        (
            {"status": 503, "json": {"upstream_calls.0.name": "x"}},
            "the response has no upstream_calls.0.name",
        ),
        (
            {"status": 503, "header": {"x-served-by": "other"}},
            "header x-served-by: 'other' expected, got 'test'",
        ),
        (
            {"status": 503, "header": {"x-missing": {"contains": "a"}}},
            "header x-missing expected, the response has none",
        ),
        (
            {"status": 503, "header": {"x-served-by": {"absent": True}}},
            "header x-served-by should be absent",
        ),
    ],
)
def test_mismatches_are_pending_with_expected_and_actual(
    tmp_path: Path, serve: Serve, expect: dict[str, Any], reason: str
) -> None:
    def unavailable(h: http.server.BaseHTTPRequestHandler) -> tuple[int, Mapping[str, str], bytes]:
        return 503, {"X-Served-By": "test"}, b'{"name": "web-api", "code": 503}'

    server = serve(unavailable)
    outcome = http_check(tmp_path, url=server.url(), expect=expect)
    assert outcome.status is Status.PENDING
    assert reason in outcome.message, outcome.message
    assert "HTTP 503" in (outcome.details or "")


def test_json_paths_with_lists_and_wildcards(tmp_path: Path, serve: Serve) -> None:
    body = (
        b'{"name": "web-api", "upstream_calls": [{"name": "recommendation", "code": 200,'
        b' "upstream_calls": {"http://purchase-history:8080":'
        b' {"body": "Hello From Purchase History (v1)!"}}}]}'
    )
    server = serve(lambda h: (200, {"Content-Type": "application/json"}, body))
    outcome = http_check(
        tmp_path,
        url=server.url(),
        expect={
            "json": {
                "upstream_calls.0.name": "recommendation",
                "upstream_calls[0].code": 200,
                "upstream_calls.0.upstream_calls.*.body": "Hello From Purchase History (v1)!",
            }
        },
    )
    assert outcome.ok, outcome
    not_json = serve(lambda h: (200, {}, b"<html>hi</html>"))
    bad = http_check(tmp_path, url=not_json.url(), expect={"json": {"a": 1}})
    assert (
        bad.status is Status.PENDING and "body is not JSON; it is '<html>hi</html>'" in bad.message
    )


def test_post_with_body(tmp_path: Path, serve: Serve) -> None:
    server = serve()
    assert http_check(tmp_path, url=server.url(), method="post", body='{"a": 1}').ok
    assert server.requests[0]["method"] == "POST" and server.requests[0]["body"] == b'{"a": 1}'


# --------------------------------------------------------------------------- TLS


def test_https_with_ca_and_resolve_pins_sni(tmp_path: Path, serve: Serve, certs: Certs) -> None:
    server = serve(tls="server")
    url = f"https://istioinaction.io:{server.port}/"
    outcome = http_check(
        tmp_path,
        url=url,
        resolve=f"istioinaction.io:{server.port}:127.0.0.1",
        ca=str(certs.crt("workshop-ca")),
        expect={"status": 200},
    )
    assert outcome.ok, outcome
    assert server.requests[0]["sni"] == "istioinaction.io"
    assert server.requests[0]["headers"]["Host"] == f"istioinaction.io:{server.port}"


def test_https_untrusted_certificate(tmp_path: Path, serve: Serve, certs: Certs) -> None:
    server = serve(tls="server")
    url = server.url(scheme="https", host="localhost")
    pending = http_check(tmp_path, url=url, ca=str(certs.crt("mesh-ca")))
    assert pending.status is Status.PENDING
    assert (
        "the TLS handshake failed (certificate verify failed: unable to get local issuer"
        in pending.message
    )
    assert http_check(tmp_path, url=url, ca=str(certs.crt("mesh-ca")), expect={"fails": "tls"}).ok
    assert http_check(tmp_path, url=url, insecure=True).ok


def test_sni_only_server_rejects_a_call_without_the_name(
    tmp_path: Path, serve: Serve, certs: Certs
) -> None:
    server = serve(tls="server", only_sni="istioinaction.io")
    ca = str(certs.crt("workshop-ca"))
    no_sni = http_check(
        tmp_path,
        url=server.url(scheme="https"),
        host="istioinaction.io",
        ca=ca,
        expect={"fails": "tls"},
    )
    assert no_sni.ok, no_sni
    assert "unrecognized name" in no_sni.message
    wrong = http_check(tmp_path, url=server.url(scheme="https", host="localhost"), ca=ca)
    assert wrong.status is Status.PENDING and "TLS handshake failed" in wrong.message
    right = http_check(
        tmp_path,
        url=f"https://istioinaction.io:{server.port}/",
        resolve=[f"istioinaction.io:{server.port}:127.0.0.1"],
        ca=ca,
    )
    assert right.ok, right


def test_mutual_tls(tmp_path: Path, serve: Serve, certs: Certs) -> None:
    server = serve(tls="payments", client_ca="mesh-ca")
    url = server.url(scheme="https", host="localhost")
    ca = str(certs.crt("mesh-ca"))
    without = http_check(tmp_path, url=url, ca=ca, expect={"fails": "tls"})
    assert without.ok and "certificate required" in without.message
    forged = http_check(
        tmp_path,
        url=url,
        ca=ca,
        cert=str(certs.crt("rogue")),
        key=str(certs.key("rogue")),
        expect={"fails": ["tls"]},
    )
    assert forged.ok and "unknown ca" in forged.message
    good = http_check(
        tmp_path, url=url, ca=ca, cert=str(certs.crt("frontend")), key=str(certs.key("frontend"))
    )
    assert good.ok, good
    peer = server.requests[-1]["peer"]
    assert ("URI", "spiffe://cluster.local/ns/shop/sa/frontend") in peer["subjectAltName"]


def test_client_files_missing_or_broken(tmp_path: Path, serve: Serve, certs: Certs) -> None:
    server = serve(tls="server")
    url = server.url(scheme="https", host="localhost")
    missing = http_check(tmp_path, url=url, ca="nope/ca.crt")
    assert missing.status is Status.FAILED
    assert missing.message == "CA file nope/ca.crt does not exist"
    (tmp_path / "garbage.crt").write_text("garbage")
    broken = http_check(tmp_path, url=url, ca="garbage.crt")
    assert broken.status is Status.ERROR and broken.message.startswith("cannot load CA file")
    mismatched = http_check(
        tmp_path,
        url=url,
        ca=str(certs.crt("workshop-ca")),
        cert=str(certs.crt("frontend")),
        key=str(certs.key("payments")),
    )
    assert (
        mismatched.status is Status.ERROR and "cannot load client certificate" in mismatched.message
    )


# --------------------------------------------------------------------------- failure kinds


def test_connection_refused(tmp_path: Path, closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/"
    assert http_check(tmp_path, url=url, expect={"fails": "refused"}).ok
    assert http_check(tmp_path, url=url, expect={"fails": True}).ok
    waiting = http_check(tmp_path, url=url)
    assert waiting.status is Status.PENDING
    assert (
        waiting.message
        == f"GET {url}: the connection was refused (connection to 127.0.0.1:{closed_port} refused)"
    )
    wrong_kind = http_check(tmp_path, url=url, expect={"fails": "tls"})
    assert wrong_kind.status is Status.PENDING
    assert "expected a tls failure, but the connection was refused" in wrong_kind.message


def test_server_that_never_answers_is_bounded_by_the_timeout(
    tmp_path: Path, silent_port: int
) -> None:
    for scheme in ("http", "https"):
        start = time.monotonic()
        outcome = http_check(
            tmp_path,
            url=f"{scheme}://127.0.0.1:{silent_port}/",
            timeout="700ms",
            insecure=True,
            expect={"fails": "timeout"},
        )
        assert outcome.ok, outcome
        assert time.monotonic() - start < 3
    slow = http_check(tmp_path, url=f"http://127.0.0.1:{silent_port}/", timeout=0.5)
    assert (
        slow.status is Status.PENDING
        and "the request timed out (no response within 0.5s)" in slow.message
    )


def test_the_deadline_caps_the_timeout(tmp_path: Path, silent_port: int) -> None:
    start = time.monotonic()
    outcome = http_check(
        tmp_path, budget=1.0, url=f"http://127.0.0.1:{silent_port}/", timeout="30s"
    )
    assert outcome.status is Status.PENDING
    assert time.monotonic() - start < 5


def test_wrong_protocol(tmp_path: Path, garbage_port: int) -> None:
    plain = http_check(
        tmp_path, url=f"http://127.0.0.1:{garbage_port}/", expect={"fails": "protocol"}
    )
    assert plain.ok, plain
    tls = http_check(tmp_path, url=f"https://127.0.0.1:{garbage_port}/", insecure=True)
    assert tls.status is Status.PENDING
    assert "the TLS handshake failed" in tls.message


def test_connection_reset(tmp_path: Path, reset_port: int) -> None:
    outcome = http_check(tmp_path, url=f"http://127.0.0.1:{reset_port}/", expect={"fails": "reset"})
    assert outcome.ok, outcome


def test_dns_failure(tmp_path: Path) -> None:
    outcome = http_check(tmp_path, url="http://nonexistent.invalid/", expect={"fails": "dns"})
    assert outcome.ok, outcome


def test_unexpected_success_is_pending(tmp_path: Path, serve: Serve) -> None:
    server = serve()
    outcome = http_check(tmp_path, url=server.url(), expect={"fails": True})
    assert outcome.status is Status.PENDING
    assert outcome.message.endswith("expected the request to fail (any), but it got HTTP 200")


# --------------------------------------------------------------------------- many requests


def test_count_with_distribution(tmp_path: Path, serve: Serve) -> None:
    codes = itertools.cycle([200, 200, 200, 503])
    versions = itertools.cycle(["v1", "v1", "v2", "v1"])

    def flaky(h: http.server.BaseHTTPRequestHandler) -> tuple[int, Mapping[str, str], bytes]:
        return next(codes), {}, f'{{"version": "{next(versions)}"}}'.encode()

    server = serve(flaky)
    params: dict[str, Any] = {
        "url": server.url(),
        "count": 8,
        "group_by": {"json": "version"},
        "expect": {"status": 200},
    }
    strict = one_line(run_check("http", params, make_ctx(tmp_path)))
    assert strict.status is Status.PENDING
    assert "6 of 8 requests matched (need 100%); e.g. HTTP 200 expected, got 503" in strict.message
    assert "statuses: 200 ×6 (75%), 503 ×2 (25%)" in (strict.details or "")
    assert "groups (json version): v1 ×4 (50%), v2 ×2 (25%), (HTTP 503) ×2 (25%)" in (
        strict.details or ""
    )
    relaxed = run_check("http", {**params, "min_success_ratio": 0.75}, make_ctx(tmp_path))
    assert relaxed.ok and relaxed.message.endswith("6 of 8 requests matched")


# --------------------------------------------------------------------------- parameters


def test_lint_and_labels() -> None:
    spec = builtin_registry().get("http")
    assert spec is not None and spec.lint is not None
    lint = spec.lint
    assert lint({"url": "ftp://x"})[0].message == "'ftp://x' is not an http:// or https:// URL"
    both = lint(
        {
            "url": "http://a",
            "from": {"namespace": "a", "pod": "p"},
            "via": {"service": "s", "port": 80},
        }
    )
    assert both[0].message == "use either from or via, not both"
    assert (
        lint({"url": "http://a", "from": {"namespace": "a"}})[0].message
        == "give exactly one of deployment or pod"
    )
    assert lint({"url": "http://a", "key": "k"})[0].message == "key needs cert"
    clash = lint({"url": "http://a", "expect": {"fails": True, "status": 200}})
    assert clash[0].message == "fails cannot be combined with status"
    assert "invalid regex" in lint({"url": "http://a", "expect": {"body_regex": "("}})[0].message
    assert lint({"url": "http://a", "group_by": {"json": "a", "regex": "b"}})[0].path == (
        "group_by",
    )
    assert spec.label(
        {"url": "http://a/", "from": {"namespace": "default", "deployment": "sleep"}}
    ) == ("GET http://a/ from default/sleep")
    assert spec.label(
        {
            "url": "https://istioinaction.io/",
            "via": {"namespace": "istio-system", "service": "istio-ingressgateway", "port": 443},
        }
    ) == ("GET https://istioinaction.io/ via istio-system/istio-ingressgateway:443")


def test_schema_rejects_bad_parameters() -> None:
    import jsonschema

    spec = builtin_registry().get("http")
    assert spec is not None
    for bad in (
        {"url": "http://a", "expect": {"fails": "maybe"}},
        {"url": "http://a", "resolve": "istioinaction.io:443"},
        {"url": "http://a", "expect": {"statuss": 200}},
        {"url": "http://a", "from": {"deployment": "sleep"}},
        {"method": "GET"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, spec.params)
