"""HTTP verifiers: ``http``, ``traffic_split`` and ``traces``.

Most Istio lessons end with a request: through the ingress gateway with the
right Host and SNI, from a pod inside or outside the mesh, with or without a
client certificate. ``http`` makes that request the way the lab's curl
command does, from one of three places:

- the runner itself (stdlib ``http.client`` + ``ssl``; ``resolve`` pins a host
  name to an address like curl's ``--resolve``, so SNI and certificate checks
  use the name);
- inside a pod (``from:``): ``kubectl exec`` runs curl there, and curl's exit
  code says how a failed call failed (6 DNS, 7 refused, 28 timeout, 35 TLS,
  52/56 reset ...); ``ca``/``cert``/``key`` are then paths inside the pod;
- through a port-forward to a Service (``via:``) that the verifier opens,
  caches for the run and closes at its end. This is what makes gateway checks
  work on kind or minikube, where the gateway never gets an external address.

``traffic_split`` sends N requests and compares how the answers spread over
buckets (a JSON path or a regex on the body) with the expected weights;
``traces`` asks the Jaeger query API, directly or through the API server's
service proxy, whether a trace crosses the expected services.

How outcomes are chosen. Anything that changes while configuration
propagates is ``pending``, so the engine keeps asking until the step's
``within`` budget is spent and then reports the last message as the failure:
a refused or reset connection when an answer was expected, a wrong HTTP
status or body (a VirtualService not applied yet answers 404, a rollout 503),
a call that still succeeds when it should fail (a STRICT policy on its way),
a traffic split off its weights, a trace not collected yet. Things the
learner must fix by hand are ``failed``: a CA or client certificate file that
does not exist yet, a client pod or Service that does not exist. A broken
environment is ``error``: a missing tool (kubectl, or curl in the pod), an
unreadable CA file or key pair, an unreachable cluster.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from labrunner.tls.tooling import Abort
from labrunner.verify.context import CheckContext
from labrunner.verify.outcome import Outcome
from labrunner.verify.params import (
    BOOLEAN,
    DURATION,
    STRING,
    STRING_MAP,
    as_list,
    described,
    obj,
    one_or_many,
    seconds,
)
from labrunner.verify.registry import ParamProblem, verifier

if TYPE_CHECKING:
    from labrunner.tls.transport import Exchange, HttpRequest

DEFAULT_TIMEOUT = 5.0
FAIL_KINDS = ("refused", "reset", "tls", "timeout", "dns", "protocol")
_RESOLVE = r"^[^:\s]+:\d+:\S+$"

_PORT = {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 65535}, STRING]}

REQUEST_PROPS: dict[str, Any] = {
    "url": described(STRING, "http:// or https:// URL; its host decides SNI and the Host header"),
    "method": described(STRING, "HTTP method (default GET)"),
    "headers": described(STRING_MAP, "extra request headers"),
    "host": described(STRING, "Host header to send instead of the URL's (SNI is unchanged)"),
    "resolve": described(
        one_or_many({"type": "string", "pattern": _RESOLVE}),
        "host:port:address pins, like curl --resolve",
    ),
    "ca": described(STRING, "CA file to trust for https (default: the system store)"),
    "cert": described(STRING, "client certificate file (for mutual TLS)"),
    "key": described(STRING, "client key file"),
    "insecure": described(BOOLEAN, "skip server certificate checks (like curl -k)"),
    "timeout": described(DURATION, "per request (default 5s)"),
    "body": described(STRING, "request body"),
    "from": described(
        obj(
            {"namespace": STRING, "deployment": STRING, "pod": STRING, "container": STRING},
            required=("namespace",),
        ),
        "run the request with curl inside this pod (kubectl exec)",
    ),
    "via": described(
        obj({"namespace": STRING, "service": STRING, "port": _PORT}, required=("service", "port")),
        "connect through a port-forward to this Service port",
    ),
}

_GROUP_BY = described(
    obj({"json": STRING, "regex": STRING, "header": STRING}),
    "bucket responses by a JSON path (a.b.0.c, * for any), a regex (group 1) or a header",
)

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
                    {"type": "string", "enum": ["any", *FAIL_KINDS]},
                    {"type": "array", "items": {"type": "string", "enum": list(FAIL_KINDS)}},
                ]
            },
            "the request must fail: true/any, or refused, reset, tls, timeout, dns, protocol",
        ),
    }
)

HTTP_PARAMS = obj(
    {
        **REQUEST_PROPS,
        "expect": EXPECT,
        "count": {"type": "integer", "minimum": 1, "maximum": 1000},
        "min_success_ratio": {"type": "number", "minimum": 0, "maximum": 1},
        "group_by": _GROUP_BY,
    },
    required=("url",),
    description="make an HTTP(S) request and check the answer (or how it fails)",
)

SPLIT_PARAMS = obj(
    {
        **REQUEST_PROPS,
        "count": {"type": "integer", "minimum": 1, "maximum": 2000},
        "group_by": _GROUP_BY,
        "expect": described(
            {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}},
            "bucket -> expected share in percent, e.g. {v1: 90, v2: 10}",
        ),
        "tolerance": described(
            {"type": "number", "minimum": 0, "maximum": 100}, "percentage points (default 10)"
        ),
        "status": one_or_many({"type": "integer", "minimum": 100, "maximum": 599}),
    },
    required=("url", "group_by", "expect"),
    description="send N requests and compare how the answers spread over versions",
)

TRACES_PARAMS = obj(
    {
        "url": described(STRING, "Jaeger query base URL, e.g. http://127.0.0.1:16686"),
        "service": described(
            obj({"namespace": STRING, "name": STRING, "port": _PORT}, required=("name",)),
            "reach Jaeger through the API server's service proxy instead",
        ),
        "base_path": described(STRING, "query UI base path (default /jaeger)"),
        "services": described(one_or_many(STRING), "service names Jaeger must know"),
        "trace": obj(
            {
                "service": described(STRING, "whose traces to search"),
                "includes": described(one_or_many(STRING), "services one trace must span"),
                "min_spans": {"type": "integer", "minimum": 1},
                "lookback": described(DURATION, "how far back to look for traces (default 1h)"),
                "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
            },
            required=("service",),
        ),
        "timeout": DURATION,
    },
    description="check that Jaeger has traces that cross the expected services",
)


# --------------------------------------------------------------------------- labels, lint


def _where(params: Mapping[str, Any]) -> str:
    if "from" in params:
        src = params["from"]
        name = src.get("deployment") or src.get("pod") or "?"
        return f" from {src.get('namespace', '?')}/{name}"
    if "via" in params:
        via = params["via"]
        ns = via.get("namespace", "default")
        return f" via {ns}/{via.get('service')}:{via.get('port')}"
    return ""


def _describe(params: Mapping[str, Any]) -> str:
    return f"{params.get('method', 'GET')} {params.get('url', '?')}{_where(params)}"


def _lint_request(params: Mapping[str, Any]) -> list[ParamProblem]:
    problems = []
    if "from" in params and "via" in params:
        problems.append(ParamProblem(("via",), "use either from or via, not both"))
    source = params.get("from")
    if isinstance(source, Mapping) and ("deployment" in source) == ("pod" in source):
        problems.append(ParamProblem(("from",), "give exactly one of deployment or pod"))
    url = str(params.get("url", ""))
    if url and not re.match(r"^https?://[^/\s]+", url, re.IGNORECASE):
        problems.append(ParamProblem(("url",), f"{url!r} is not an http:// or https:// URL"))
    if "key" in params and "cert" not in params:
        problems.append(ParamProblem(("key",), "key needs cert"))
    group = params.get("group_by")
    if isinstance(group, Mapping):
        if len(group) != 1:
            problems.append(ParamProblem(("group_by",), "give exactly one of json, regex, header"))
        if "regex" in group:
            problems += _regex_problems(group["regex"], ("group_by", "regex"))
    return problems


def _regex_problems(pattern: str, path: tuple[str, ...]) -> list[ParamProblem]:
    try:
        re.compile(pattern)
    except re.error as exc:
        return [ParamProblem(path, f"invalid regex: {exc}")]
    return []


def _lint_http(params: Mapping[str, Any]) -> list[ParamProblem]:
    problems = _lint_request(params)
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
        problems += _regex_problems(expect["body_regex"], ("expect", "body_regex"))
    return problems


def _lint_split(params: Mapping[str, Any]) -> list[ParamProblem]:
    problems = _lint_request(params)
    shares = params.get("expect") or {}
    total = sum(float(v) for v in shares.values())
    if shares and abs(total - 100.0) > 0.5:
        problems.append(ParamProblem(("expect",), f"shares add up to {total:g}, not 100"))
    return problems


# --------------------------------------------------------------------------- requests


def _build_request(ctx: CheckContext, params: Mapping[str, Any]) -> HttpRequest:
    from labrunner.tls.transport import HttpRequest

    in_pod = "from" in params

    def local(name: str) -> Any:
        value = params.get(name)
        if value is None:
            return None
        return value if in_pod else ctx.path(value)

    body = params.get("body")
    return HttpRequest(
        url=params["url"],
        method=str(params.get("method", "GET")).upper(),
        headers=tuple((str(k), str(v)) for k, v in (params.get("headers") or {}).items()),
        host=params.get("host"),
        resolve=tuple(as_list(params.get("resolve"))),
        ca=local("ca"),
        cert=local("cert"),
        key=local("key"),
        insecure=bool(params.get("insecure", False)),
        timeout=seconds(params.get("timeout"), DEFAULT_TIMEOUT),
        body=body.encode("utf-8") if isinstance(body, str) else None,
    )


def _exec_problem(result: Any, *, where: str) -> Outcome:
    from labrunner.tls.tooling import kube_problem, last_line

    text = result.stderr.lower()
    detail = last_line(result.stderr) or f"exit code {result.returncode}"
    if result.timed_out:
        return Outcome.pending(f"kubectl exec into {where} did not finish in time")
    if "executable file not found" in text or "no such file or directory" in text:
        return Outcome.error(f"cannot run sh in {where}: {detail}")
    if "container not found" in text or "is not valid for pod" in text:
        return Outcome.failed(f"{where}: {detail}")
    outcome = kube_problem(result, what=where)
    if outcome is not None:
        return outcome
    return Outcome.pending(f"kubectl exec into {where} failed: {detail}", result.stderr or None)


def _from_pod(
    ctx: CheckContext, source: Mapping[str, Any], *, req: HttpRequest, count: int
) -> list[Exchange]:
    from labrunner.tls.tooling import kubectl_argv, run_tool
    from labrunner.tls.transport import curl_script, parse_curl_batch

    namespace = source["namespace"]
    ref = f"deploy/{source['deployment']}" if "deployment" in source else f"pod/{source['pod']}"
    where = f"{namespace}/{ref}"
    marker = f"@@labrunner-{uuid.uuid4().hex}@@"
    argv = kubectl_argv(ctx, "exec", "-n", namespace, ref)
    if source.get("container"):
        argv += ["-c", source["container"]]
    argv += ["--", "sh", "-c", curl_script(req, count=count, marker=marker)]
    budget = count * (req.timeout + 1.0) + 15.0
    result = run_tool(ctx, argv, timeout=budget)
    exchanges = parse_curl_batch(result.stdout, marker=marker)
    if not exchanges:
        raise Abort(_exec_problem(result, where=where))
    broken = next((e for e in exchanges if e.curl_exit in (126, 127)), None)
    if broken is not None:
        raise Abort(Outcome.error(f"curl is not available in {where}: {broken.error}"))
    return exchanges


def _exchanges(
    ctx: CheckContext, params: Mapping[str, Any], *, req: HttpRequest, count: int
) -> list[Exchange]:
    """Make ``count`` requests as the parameters say; ends early at the deadline."""
    from labrunner.tls import transport

    if "from" in params:
        return _from_pod(ctx, params["from"], req=req, count=count)
    connect_to = None
    if "via" in params:
        from labrunner.cluster.portforward import ForwardError, service_endpoint

        via = params["via"]
        try:
            connect_to = service_endpoint(
                ctx,
                namespace=via.get("namespace", "default"),
                service=via["service"],
                port=via["port"],
            )
        except ForwardError as exc:
            if exc.kind in ("no_pods", "transient"):
                raise Abort(Outcome.pending(str(exc))) from None
            if exc.kind == "not_found":
                raise Abort(Outcome.failed(str(exc))) from None
            raise Abort(Outcome.error(str(exc))) from None
    context = transport.ssl_context(req) if req.url.lower().startswith("https:") else None
    results: list[Exchange] = []
    for _ in range(count):
        if ctx.cancel.is_set():
            raise Abort(Outcome.error("the check was cancelled"))
        left = ctx.deadline - time.monotonic()
        if results and left < 0.05:
            break
        one = req if left >= req.timeout else _with_timeout(req, max(left, 0.5))
        results.append(transport.send(one, connect_to=connect_to, context=context))
    return results


def _with_timeout(req: HttpRequest, timeout: float) -> HttpRequest:
    from dataclasses import replace

    return replace(req, timeout=timeout)


# --------------------------------------------------------------------------- judging


def _lookup(doc: Any, path: str) -> Iterator[Any]:
    """Values at a dotted path; ``0`` indexes lists, ``*`` matches every element or key."""
    steps = [s for s in re.split(r"\.|\[(\d+|\*)\]", path) if s]
    nodes = [doc]
    for step in steps:
        nxt: list[Any] = []
        for node in nodes:
            if step == "*":
                if isinstance(node, list):
                    nxt.extend(node)
                elif isinstance(node, dict):
                    nxt.extend(node.values())
            elif isinstance(node, list) and step.lstrip("-").isdigit():
                index = int(step)
                if -len(node) <= index < len(node):
                    nxt.append(node[index])
            elif isinstance(node, dict) and step in node:
                nxt.append(node[step])
        nodes = nxt
    return iter(nodes)


def _same(actual: Any, expected: Any) -> bool:
    if actual == expected and type(actual) is not bool and type(expected) is not bool:
        return True
    if isinstance(actual, bool) or isinstance(expected, bool):
        return actual is expected
    return (
        isinstance(expected, str)
        and not isinstance(actual, dict | list)
        and (str(actual) == expected)
    )


def _clip(text: str, limit: int = 80) -> str:
    one = " ".join(text.split())
    return one if len(one) <= limit else one[: limit - 1] + "…"


def _snippet(text: str, limit: int = 80) -> str:
    return repr(_clip(text, limit))


def _parse_json(ex: Exchange) -> tuple[bool, Any]:
    try:
        return True, json.loads(ex.body)
    except (ValueError, UnicodeDecodeError):
        return False, None


def _default_ok(status: int) -> bool:
    return 200 <= status < 400


def _judge(ex: Exchange, expect: Mapping[str, Any]) -> str | None:
    """None when ``ex`` meets ``expect``; otherwise a one-line reason."""
    fails = expect.get("fails")
    if fails not in (None, False):
        kinds = [] if fails in (True, "any") else [str(k) for k in as_list(fails)]
        if ex.answered:
            wanted = "/".join(kinds) if kinds else "any"
            return f"expected the request to fail ({wanted}), but it got HTTP {ex.status}"
        if kinds and ex.failure not in kinds:
            return f"expected a {'/'.join(kinds)} failure, but {ex.describe_failure()}"
        return None
    if not ex.answered:
        return ex.describe_failure()
    assert ex.status is not None
    statuses = [int(s) for s in as_list(expect.get("status"))]
    if statuses and ex.status not in statuses:
        want = " or ".join(str(s) for s in statuses)
        return f"HTTP {want} expected, got {ex.status}" + (
            f"; body {_snippet(ex.text())}" if ex.body else ""
        )
    if not statuses and not _default_ok(ex.status):
        return f"a successful response expected, got HTTP {ex.status}" + (
            f"; body {_snippet(ex.text())}" if ex.body else ""
        )
    text = ex.text()
    for needle in as_list(expect.get("body_contains")):
        if str(needle) not in text:
            return f"body should contain {str(needle)!r}; it is {_snippet(text)}"
    for needle in as_list(expect.get("body_not_contains")):
        if str(needle) in text:
            return f"body should not contain {str(needle)!r}, but it does"
    if expect.get("body_regex") and not re.search(expect["body_regex"], text):
        return f"body should match /{expect['body_regex']}/; it is {_snippet(text)}"
    if expect.get("json"):
        parsed, doc = _parse_json(ex)
        if not parsed:
            return f"body is not JSON; it is {_snippet(text)}"
        for path, wanted in expect["json"].items():
            found = list(_lookup(doc, str(path)))
            if not found:
                return f"JSON {path} = {wanted} expected, the response has no {path}"
            if not any(_same(v, wanted) for v in found):
                return f"JSON {path} = {wanted} expected, got {_clip(json.dumps(found[0]), 60)}"
    for name, spec in (expect.get("header") or {}).items():
        value = ex.header(str(name))
        if isinstance(spec, Mapping):
            if spec.get("absent"):
                if value is not None:
                    return f"header {name} should be absent, it is {value!r}"
                continue
            if value is None:
                return f"header {name} expected, the response has none"
            if "equals" in spec and value != spec["equals"]:
                return f"header {name}: {spec['equals']!r} expected, got {value!r}"
            if "contains" in spec and str(spec["contains"]) not in value:
                return f"header {name} should contain {spec['contains']!r}, it is {value!r}"
            if "regex" in spec and not re.search(str(spec["regex"]), value):
                return f"header {name} should match /{spec['regex']}/, it is {value!r}"
        elif value != str(spec):
            shown = "none" if value is None else repr(value)
            return f"header {name}: {str(spec)!r} expected, got {shown}"
    return None


def _bucket(ex: Exchange, *, group: Mapping[str, Any] | None, ok: Sequence[int]) -> str:
    if not ex.answered:
        return f"({ex.failure} failure)"
    assert ex.status is not None
    if (ok and ex.status not in ok) or (not ok and not _default_ok(ex.status)):
        return f"(HTTP {ex.status})"
    if not group:
        return f"HTTP {ex.status}"
    if "json" in group:
        parsed, doc = _parse_json(ex)
        if not parsed:
            return "(not JSON)"
        found = next(_lookup(doc, str(group["json"])), None)
        if found is None:
            return "(no match)"
        return found if isinstance(found, str) else json.dumps(found)
    if "regex" in group:
        match = re.search(str(group["regex"]), ex.text())
        if match is None:
            return "(no match)"
        return match.group(1) if match.groups() and match.group(1) is not None else match.group(0)
    value = ex.header(str(group.get("header", "")))
    return value if value is not None else "(no header)"


def _status_label(ex: Exchange) -> str:
    if ex.answered:
        return str(ex.status)
    suffix = f" (curl {ex.curl_exit})" if ex.curl_exit is not None else ""
    return f"{ex.failure}{suffix}"


def _histogram(labels: Sequence[str], total: int) -> str:
    counts = Counter(labels)
    return ", ".join(f"{name} ×{n} ({100.0 * n / total:.0f}%)" for name, n in counts.most_common())


def _run(
    ctx: CheckContext, params: Mapping[str, Any], *, count: int
) -> tuple[HttpRequest, list[Exchange]]:
    from labrunner.tls.transport import RequestError

    try:
        req = _build_request(ctx, params)
        return req, _exchanges(ctx, params, req=req, count=count)
    except RequestError as exc:
        message = str(exc).replace(f"{ctx.cwd}{os.sep}", "")  # paths as the lab wrote them
        raise Abort((Outcome.failed if exc.missing else Outcome.error)(message)) from None


# --------------------------------------------------------------------------- verifiers


@verifier("http", params=HTTP_PARAMS, describe=_describe, lint=_lint_http)
def http(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
    """An HTTP(S) request from the runner, a pod or a port-forward gets the expected answer."""
    expect: Mapping[str, Any] = params.get("expect") or {}
    count = int(params.get("count", 1))
    label = _describe(params)
    try:
        _req, exchanges = _run(ctx, params, count=count)
    except Abort as stop:
        return stop.outcome
    reasons = [_judge(ex, expect) for ex in exchanges]
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
    lines = [f"statuses: {_histogram([_status_label(e) for e in exchanges], done)}"]
    group = params.get("group_by")
    if group:
        buckets = [_bucket(e, group=group, ok=[]) for e in exchanges]
        lines.append(
            f"groups ({', '.join(f'{k} {v}' for k, v in group.items())}):"
            f" {_histogram(buckets, done)}"
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


@verifier("traffic_split", params=SPLIT_PARAMS, describe=_describe, lint=_lint_split)
def traffic_split(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
    """N requests spread over versions within a tolerance of the expected weights."""
    count = int(params.get("count", 100))
    tolerance = float(params.get("tolerance", 10))
    shares = {str(k): float(v) for k, v in params["expect"].items()}
    ok_status = [int(s) for s in as_list(params.get("status"))]
    try:
        _req, exchanges = _run(ctx, params, count=count)
    except Abort as stop:
        return stop.outcome
    done = len(exchanges)
    buckets = [_bucket(e, group=params["group_by"], ok=ok_status) for e in exchanges]
    counts = Counter(buckets)
    observed = {name: 100.0 * n / done for name, n in counts.items()}
    seen = ", ".join(f"{name} {pct:.0f}%" for name, pct in sorted(observed.items()))
    wanted = ", ".join(f"{name} {pct:g}%" for name, pct in shares.items())
    summary = f"observed {seen} over {done} requests (expected {wanted}, ±{tolerance:g})"
    details = "\n".join(
        [
            f"buckets: {_histogram(buckets, done)}",
            f"statuses: {_histogram([_status_label(e) for e in exchanges], done)}",
        ]
    )
    if done < count:
        return Outcome.pending(
            f"only {done} of {count} requests finished before the deadline; {summary}", details
        )
    off = []
    for name in [*shares, *(n for n in observed if n not in shares)]:
        have, want = observed.get(name, 0.0), shares.get(name, 0.0)
        if abs(have - want) > tolerance:
            off.append(f"{name} at {have:.0f}% is outside {want:g}±{tolerance:g}%")
    if off:
        return Outcome.pending(f"{off[0]}: {summary}", details)
    return Outcome.passed(summary, details)


# --------------------------------------------------------------------------- traces


def _jaeger_get(
    ctx: CheckContext, params: Mapping[str, Any], *, path: str, query: Sequence[tuple[str, str]]
) -> Any:
    base = "/" + str(params.get("base_path", "/jaeger")).strip("/")
    base = "" if base == "/" else base
    timeout = seconds(params.get("timeout"), 10.0)
    if "service" in params:
        from labrunner.cluster.portforward import ForwardError, service_proxy_get

        svc = params["service"]
        where = f"service {svc.get('namespace', 'istio-system')}/{svc['name']}"
        try:
            status, body = service_proxy_get(
                ctx,
                namespace=svc.get("namespace", "istio-system"),
                service=svc["name"],
                port=svc.get("port", 80),
                path=f"{base}{path}",
                query=query,
                timeout=min(timeout, ctx.remaining()),
            )
        except ForwardError as exc:
            outcome = Outcome.pending if exc.kind == "transient" else Outcome.error
            raise Abort(outcome(str(exc))) from None
        if status != 200:
            text = body.decode("utf-8", "replace")
            raise Abort(
                Outcome.pending(f"Jaeger via {where} answered HTTP {status}: {_snippet(text)}")
            )
    else:
        from labrunner.tls.transport import HttpRequest, RequestError, send

        url = str(params.get("url", "")).rstrip("/") + base + path
        if query:
            url += "?" + urlencode(list(query))
        where = str(params.get("url"))
        try:
            ex = send(HttpRequest(url=url, timeout=min(timeout, ctx.remaining())))
        except RequestError as exc:
            raise Abort(Outcome.error(str(exc))) from None
        if not ex.answered:
            raise Abort(
                Outcome.pending(f"Jaeger at {where} is not reachable: {ex.describe_failure()}")
            )
        if ex.status != 200:
            raise Abort(
                Outcome.pending(
                    f"Jaeger at {where} answered HTTP {ex.status}: {_snippet(ex.text())}"
                )
            )
        body = ex.body
    try:
        return json.loads(body)
    except ValueError:
        raise Abort(
            Outcome.error(f"Jaeger at {where} did not answer JSON on {base}{path}; check base_path")
        ) from None


def _trace_services(trace: Mapping[str, Any]) -> set[str]:
    processes = trace.get("processes") or {}
    return {
        str(p.get("serviceName"))
        for p in (processes.values() if isinstance(processes, dict) else processes)
        if isinstance(p, dict)
    }


@verifier("traces", params=TRACES_PARAMS, describe=lambda p: "Jaeger traces", lint=None)
def traces(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
    """Jaeger knows the expected services and holds a trace that crosses them."""
    if ("url" in params) == ("service" in params):
        return Outcome.error("traces needs exactly one of url or service")
    wanted = [str(s) for s in as_list(params.get("services"))]
    try:
        known: list[str] = []
        if wanted or "trace" not in params:
            doc = _jaeger_get(ctx, params, path="/api/services", query=[])
            known = [str(s) for s in (doc.get("data") or [])] if isinstance(doc, dict) else []
            missing = [s for s in wanted if s not in known]
            if missing:
                return Outcome.pending(
                    f"Jaeger has no traces from {', '.join(missing)} yet"
                    f" (it knows: {', '.join(sorted(known)) or 'no services'})"
                )
        spec = params.get("trace")
        if not spec:
            return Outcome.passed(f"Jaeger knows {', '.join(wanted) or f'{len(known)} services'}")
        service = str(spec["service"])
        include = {str(s) for s in as_list(spec.get("includes"))} | {service}
        min_spans = int(spec.get("min_spans", 1))
        limit = int(spec.get("limit", 20))
        # Jaeger's /api/traces ignores ``lookback`` (only its UI reads it) and reads the
        # window from ``start`` and ``end``, in microseconds since the epoch.
        window = seconds(spec.get("lookback"), 3600.0)
        end = int(time.time() * 1_000_000)
        query = [
            ("service", service),
            ("start", str(end - int(window * 1_000_000))),
            ("end", str(end)),
            ("limit", str(limit)),
        ]
        doc = _jaeger_get(ctx, params, path="/api/traces", query=query)
    except Abort as stop:
        return stop.outcome
    found = (
        [t for t in (doc.get("data") or []) if isinstance(t, dict)] if isinstance(doc, dict) else []
    )
    if not found:
        return Outcome.pending(f"Jaeger has no traces of {service} in the lookback window yet")
    best = max(found, key=lambda t: (len(_trace_services(t) & include), len(t.get("spans") or [])))
    for trace in found:
        names = _trace_services(trace)
        spans = len(trace.get("spans") or [])
        if include <= names and spans >= min_spans:
            return Outcome.passed(
                f"trace {str(trace.get('traceID', '?'))[:12]} spans {', '.join(sorted(names))}"
                f" ({spans} spans)"
            )
    names = _trace_services(best)
    lacking = sorted(include - names)
    return Outcome.pending(
        f"none of {len(found)} recent traces of {service} spans all of"
        f" {', '.join(sorted(include))} with at least {min_spans} spans; the closest has"
        f" {len(best.get('spans') or [])} spans"
        + (f" and lacks {', '.join(lacking)}" if lacking else "")
    )
