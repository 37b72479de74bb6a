"""``traffic_split`` against a fixed version rotation; ``traces`` against a fake Jaeger."""

from __future__ import annotations

import http.server
import itertools
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from labrunner.verify.outcome import Status
from labrunner.verify.registry import builtin_registry

from .conftest import Served, make_ctx, one_line, run_check

Serve = Callable[..., Served]


def fake_service(pattern: list[str]) -> Callable[[http.server.BaseHTTPRequestHandler], Any]:
    """Nested fake-service JSON; purchase-history answers the versions in ``pattern`` in turn."""
    versions = itertools.cycle(pattern)

    def answer(h: http.server.BaseHTTPRequestHandler) -> tuple[int, Mapping[str, str], bytes]:
        version = next(versions)
        if version == "503":
            return 503, {}, b"upstream connect error or disconnect/reset before headers"
        body = {
            "name": "web-api",
            "upstream_calls": [
                {
                    "name": "recommendation",
                    "upstream_calls": [
                        {
                            "name": f"purchase-history-{version}",
                            "body": f"Hello From Purchase History ({version})!",
                        }
                    ],
                }
            ],
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    return answer


def test_split_by_regex_within_tolerance(tmp_path: Path, serve: Serve) -> None:
    server = serve(fake_service(["v1"] * 9 + ["v2"]))
    outcome = one_line(
        run_check(
            "traffic_split",
            {
                "url": server.url(),
                "count": 40,
                "group_by": {"regex": r"Purchase History \((v\d)\)"},
                "expect": {"v1": 90, "v2": 10},
                "tolerance": 8,
            },
            make_ctx(tmp_path),
        )
    )
    assert outcome.status is Status.PASSED, outcome
    assert (
        outcome.message == "observed v1 90%, v2 10% over 40 requests (expected v1 90%, v2 10%, ±8)"
    )


def test_split_by_json_path_off_the_weights(tmp_path: Path, serve: Serve) -> None:
    server = serve(fake_service(["v1", "v2"]))
    outcome = one_line(
        run_check(
            "traffic_split",
            {
                "url": server.url(),
                "count": 20,
                "group_by": {"json": "upstream_calls.0.upstream_calls.*.name"},
                "expect": {"purchase-history-v1": 90, "purchase-history-v2": 10},
                "tolerance": 10,
            },
            make_ctx(tmp_path),
        )
    )
    assert outcome.status is Status.PENDING
    assert outcome.message.startswith("purchase-history-v1 at 50% is outside 90±10%: observed")
    assert "buckets: purchase-history-v1 ×10 (50%), purchase-history-v2 ×10 (50%)" in (
        outcome.details or ""
    )


def test_errors_count_against_the_split(tmp_path: Path, serve: Serve) -> None:
    server = serve(fake_service(["v1", "v1", "503", "v1"]))
    outcome = one_line(
        run_check(
            "traffic_split",
            {
                "url": server.url(),
                "count": 8,
                "group_by": {"regex": r"\((v\d)\)"},
                "expect": {"v1": 100},
                "tolerance": 5,
            },
            make_ctx(tmp_path),
        )
    )
    assert outcome.status is Status.PENDING
    assert "(HTTP 503) 25%" in outcome.message and "v1 at 75% is outside 100±5%" in outcome.message


def test_split_when_nothing_answers(tmp_path: Path, closed_port: int) -> None:
    outcome = one_line(
        run_check(
            "traffic_split",
            {
                "url": f"http://127.0.0.1:{closed_port}/",
                "count": 5,
                "group_by": {"regex": "(v1)"},
                "expect": {"v1": 100},
            },
            make_ctx(tmp_path),
        )
    )
    assert outcome.status is Status.PENDING
    assert "(refused failure) 100%" in outcome.message


def test_split_lint() -> None:
    spec = builtin_registry().get("traffic_split")
    assert spec is not None and spec.lint is not None
    problems = spec.lint(
        {"url": "http://a", "group_by": {"json": "x"}, "expect": {"v1": 80, "v2": 10}}
    )
    assert [p.message for p in problems] == ["shares add up to 90, not 100"]


# --------------------------------------------------------------------------- traces

SERVICES = [
    "istio-ingressgateway.istio-system",
    "web-api.istioinaction",
    "recommendation.istioinaction",
    "purchase-history.istioinaction",
]


def _trace(trace_id: str, services: list[str], spans: int, age: float = 5.0) -> dict[str, Any]:
    """A Jaeger trace whose spans started ``age`` seconds ago."""
    processes = {f"p{i}": {"serviceName": s, "tags": []} for i, s in enumerate(services, 1)}
    started = int((time.time() - age) * 1_000_000)
    return {
        "traceID": trace_id,
        "spans": [
            {
                "traceID": trace_id,
                "spanID": f"{n:016x}",
                "processID": f"p{n % len(services) + 1}",
                "startTime": started,
            }
            for n in range(spans)
        ],
        "processes": processes,
        "warnings": None,
    }


def jaeger(services: list[str], traces: list[dict[str, Any]]) -> Callable[..., Any]:
    def answer(h: http.server.BaseHTTPRequestHandler) -> tuple[int, Mapping[str, str], bytes]:
        url = urlsplit(h.path)
        if url.path == "/jaeger/api/services":
            doc: dict[str, Any] = {"data": services, "total": len(services), "errors": None}
        elif url.path == "/jaeger/api/traces":
            # Like Jaeger's query service: the window is start/end in microseconds, and
            # ``lookback`` (a UI parameter) is not read at all.
            query = parse_qs(url.query)
            assert "lookback" not in query and query["limit"] == ["20"]
            start, end = int(query["start"][0]), int(query["end"][0])
            found = [t for t in traces if any(start <= s["startTime"] <= end for s in t["spans"])]
            doc = {"data": found if query["service"] == [SERVICES[0]] else []}
        else:
            return 404, {}, b"404 page not found\n"
        return 200, {"Content-Type": "application/json"}, json.dumps(doc).encode()

    return answer


TRACE_SPEC = {"service": SERVICES[0], "includes": SERVICES[1:], "min_spans": 6}


def test_trace_across_four_services(tmp_path: Path, serve: Serve) -> None:
    server = serve(
        jaeger(SERVICES, [_trace("aaa", SERVICES[:2], 2), _trace("3f2a9c0d11e2f00d", SERVICES, 6)])
    )
    outcome = one_line(
        run_check(
            "traces",
            {"url": server.url(""), "services": SERVICES, "trace": TRACE_SPEC},
            make_ctx(tmp_path),
        )
    )
    assert outcome.status is Status.PASSED, outcome
    assert outcome.message.startswith("trace 3f2a9c0d11e2 spans istio-ingressgateway.istio-system,")
    assert outcome.message.endswith("(6 spans)")


def test_services_not_there_yet(tmp_path: Path, serve: Serve) -> None:
    server = serve(jaeger(["jaeger-all-in-one"], []))
    outcome = one_line(
        run_check("traces", {"url": server.url(), "services": SERVICES[:2]}, make_ctx(tmp_path))
    )
    assert outcome.status is Status.PENDING
    assert outcome.message == (
        "Jaeger has no traces from istio-ingressgateway.istio-system, web-api.istioinaction yet"
        " (it knows: jaeger-all-in-one)"
    )


@pytest.mark.parametrize(
    ("traces", "message"),
    [
        (
            [],
            "Jaeger has no traces of istio-ingressgateway.istio-system in the lookback window yet",
        ),
        (
            [_trace("a", SERVICES[:2], 4)],
            "the closest has 4 spans and lacks purchase-history.istioinaction,"
            " recommendation.istioinaction",
        ),
        ([_trace("b", SERVICES, 4)], "with at least 6 spans; the closest has 4 spans"),
    ],
)
def test_incomplete_traces_are_pending(
    tmp_path: Path, serve: Serve, traces: list[dict[str, Any]], message: str
) -> None:
    server = serve(jaeger(SERVICES, traces))
    outcome = one_line(
        run_check("traces", {"url": server.url(), "trace": TRACE_SPEC}, make_ctx(tmp_path))
    )
    assert outcome.status is Status.PENDING
    assert message in outcome.message


@pytest.mark.parametrize(
    ("lookback", "age", "found"),
    [
        (None, 2 * 3600.0, False),
        ("15m", 20 * 60.0, False),
        ("15m", 60.0, True),
        (None, 1800.0, True),
    ],
    ids=["default-1h-old-trace", "15m-old-trace", "15m-recent", "default-1h-recent"],
)
def test_only_traces_inside_the_lookback_window_count(
    tmp_path: Path, serve: Serve, lookback: str | None, age: float, found: bool
) -> None:
    """A re-run must not pass on traces left by an earlier run: the window reaches Jaeger."""
    server = serve(jaeger(SERVICES, [_trace("c0ffee", SERVICES, 6, age=age)]))
    spec = dict(TRACE_SPEC) | ({"lookback": lookback} if lookback else {})
    outcome = one_line(
        run_check("traces", {"url": server.url(), "trace": spec}, make_ctx(tmp_path))
    )
    assert (outcome.status is Status.PASSED) is found, outcome
    if not found:
        assert "no traces of istio-ingressgateway.istio-system in the lookback window" in (
            outcome.message
        )


def test_jaeger_unreachable_or_wrong_path(tmp_path: Path, serve: Serve, closed_port: int) -> None:
    down = one_line(
        run_check(
            "traces",
            {"url": f"http://127.0.0.1:{closed_port}", "services": ["a"]},
            make_ctx(tmp_path),
        )
    )
    assert down.status is Status.PENDING and "is not reachable" in down.message
    server = serve(jaeger(SERVICES, []))
    wrong = one_line(
        run_check(
            "traces", {"url": server.url(), "base_path": "/", "services": ["a"]}, make_ctx(tmp_path)
        )
    )
    assert wrong.status is Status.PENDING and "answered HTTP 404" in wrong.message
    html = serve(lambda h: (200, {}, b"<html>jaeger ui</html>"))
    not_json = one_line(
        run_check("traces", {"url": html.url(), "services": ["a"]}, make_ctx(tmp_path))
    )
    assert not_json.status is Status.ERROR and "check base_path" in not_json.message


def test_traces_needs_exactly_one_way_in(tmp_path: Path) -> None:
    outcome = run_check("traces", {"services": ["a"]}, make_ctx(tmp_path))
    assert outcome.status is Status.ERROR
