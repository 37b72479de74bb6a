"""The ``http`` verifier: one request (or N) and what the answer must be.

Most Istio lessons end with a request: through the ingress gateway with the
right Host and SNI, from a pod inside or outside the mesh, with or without a
client certificate. ``http`` makes that request the way the lab's curl
command does (the machinery, shared with ``traffic_split`` and ``traces``,
is ``labrunner.verify.requests``) and compares the answer with ``expect``:
status, body, JSON fields, headers, or the kind of failure.

How outcomes are chosen. Anything that changes while configuration
propagates is ``pending``, so the engine keeps asking until the step's
``within`` budget is spent and then reports the last message as the failure:
a refused or reset connection when an answer was expected, a wrong HTTP
status or body (a VirtualService not applied yet answers 404, a rollout 503),
a call that still succeeds when it should fail (a STRICT policy on its way).
Things the learner must fix by hand are ``failed``: a CA or client
certificate file that does not exist yet, a client pod or Service that does
not exist. A broken environment is ``error``: a missing tool (kubectl, or
curl in the pod), an unreadable CA file or key pair, an unreachable cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labrunner.lab.catalog import ParamProblem
from labrunner.verify import requests
from labrunner.verify.context import CheckContext
from labrunner.verify.kube import CheckAbort
from labrunner.verify.outcome import Outcome
from labrunner.verify.params import BOOLEAN, STRING, as_list, described, obj, one_or_many
from labrunner.verify.registry import verifier
from labrunner.verify.transport import Exchange

_HEADER_EXPECT = {
    "anyOf": [
        STRING,
        obj({"equals": STRING, "contains": STRING, "regex": STRING, "absent": BOOLEAN}),
    ]
}


EXPECT = obj(
    {
        "status": one_or_many({"type": "integer", "minimum": 100, "maximum": 599}),
        "body_contains": one_or_many(STRING),
        "body_not_contains": one_or_many(STRING),
        "body_regex": STRING,
        "json": described(
            {"type": "object"}, "path -> expected value, e.g. {name: web-api, 'a.0.b': 1}"
        ),
        "header": described(
            {"type": "object", "additionalProperties": _HEADER_EXPECT},
            "header name -> exact value or {contains|regex|equals|absent}",
        ),
        "fails": described(
            {
                "anyOf": [
                    BOOLEAN,
                    {"type": "string", "enum": ["any", *requests.FAIL_KINDS]},
                    {
                        "type": "array",
                        "items": {"type": "string", "enum": list(requests.FAIL_KINDS)},
                    },
                ]
            },
            "the request must fail: true/any, or refused, reset, tls, timeout, dns, protocol",
        ),
    }
)


HTTP_PARAMS = obj(
    {
        **requests.REQUEST_PROPS,
        "expect": EXPECT,
        "count": {"type": "integer", "minimum": 1, "maximum": 1000},
        "min_success_ratio": {"type": "number", "minimum": 0, "maximum": 1},
        "group_by": requests.GROUP_BY,
    },
    required=("url",),
    description="make an HTTP(S) request and check the answer (or how it fails)",
)


def _lint_http(params: Mapping[str, Any]) -> list[ParamProblem]:
    problems = requests.lint_request(params)
    expect = params.get("expect") or {}
    if expect.get("fails") not in (None, False):
        clash = [
            k for k in ("status", "body_contains", "body_regex", "json", "header") if k in expect
        ]
        if clash:
            problems.append(
                ParamProblem(
                    ("expect", "fails"), f"fails cannot be combined with {', '.join(clash)}"
                )
            )
    if "body_regex" in expect:
        problems += requests.regex_problems(expect["body_regex"], ("expect", "body_regex"))
    return problems


@verifier("http", params=HTTP_PARAMS, describe=requests.describe_request, lint=_lint_http)
def http(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
    """An HTTP(S) request from the runner, a pod or a port-forward gets the expected answer."""
    expect: Mapping[str, Any] = params.get("expect") or {}
    count = int(params.get("count", 1))
    label = requests.describe_request(params)
    try:
        _req, exchanges = requests.run_requests(ctx, params, count=count)
    except CheckAbort as stop:
        return stop.outcome
    reasons = [requests.judge(ex, expect) for ex in exchanges]
    if count == 1:
        ex, reason = exchanges[0], reasons[0]
        details = _exchange_details(ex)
        if reason is not None:
            return Outcome.pending(f"{label}: {reason}", details)
        if expect.get("fails") not in (None, False):
            return Outcome.passed(f"{label} failed as expected: {ex.describe_failure()}", details)
        return Outcome.passed(f"{label} → HTTP {ex.status}{_what_matched(expect)}", details)
    done = len(exchanges)
    matched = sum(1 for r in reasons if r is None)
    need = float(params.get("min_success_ratio", 1.0))
    lines = [f"statuses: {requests.histogram([requests.status_label(e) for e in exchanges], done)}"]
    group = params.get("group_by")
    if group:
        buckets = [requests.bucket(e, group=group, ok=[]) for e in exchanges]
        lines.append(
            f"groups ({', '.join(f'{k} {v}' for k, v in group.items())}):"
            f" {requests.histogram(buckets, done)}"
        )
    lines += [f"mismatch: {r}" for r in dict.fromkeys(r for r in reasons if r)][:5]
    details = "\n".join(lines)
    if done < count:
        return Outcome.pending(
            f"{label}: only {done} of {count} requests finished before the deadline", details
        )
    if matched >= need * count - 1e-9:
        return Outcome.passed(f"{label}: {matched} of {count} requests matched", details)
    first = next(r for r in reasons if r)
    return Outcome.pending(
        f"{label}: {matched} of {count} requests matched (need {need:.0%}); e.g. {first}", details
    )


def _what_matched(expect: Mapping[str, Any]) -> str:
    parts = []
    if expect.get("json"):
        parts += [f"{k} = {v}" for k, v in expect["json"].items()]
    parts += [f"body has {v!r}" for v in as_list(expect.get("body_contains"))]
    return f" ({'; '.join(parts)})" if parts else ""


def _exchange_details(ex: Exchange) -> str:
    if not ex.answered:
        return ex.describe_failure()
    lines = [f"HTTP {ex.status} {ex.reason}".rstrip() + f" in {ex.elapsed * 1000:.0f}ms"]
    lines += [f"{k}: {v}" for k, v in ex.headers if k.lower() not in ("set-cookie",)][:20]
    text = ex.text()
    if text:
        lines += ["", text[:2000] + ("…" if len(text) > 2000 else "")]
    return "\n".join(lines)
