"""The HTTP request machinery the ``http``, ``traffic_split`` and ``traces`` verifiers share.

A lab's request parameters (``url``, ``host``, ``resolve``, ``ca``, client
certificate, ``from`` a pod or ``via`` a Service) become an ``HttpRequest``
and then ``count`` exchanges, made the way the lab's curl command would:

- from the runner itself (``labrunner.verify.transport``: stdlib
  ``http.client`` + ``ssl``; ``resolve`` pins a host name to an address like
  curl's ``--resolve``, so SNI and certificate checks use the name);
- inside a pod (``from:``): ``kubectl exec`` runs curl there, and curl's exit
  code says how a failed call failed (6 DNS, 7 refused, 28 timeout, 35 TLS,
  52/56 reset ...); ``ca``/``cert``/``key`` are then paths inside the pod;
- through a port-forward to a Service (``via:``) that ``labrunner.verify.kube``
  opens, caches for the run and closes at its end. This is what makes gateway
  checks work on kind or minikube, where the gateway never gets an external
  address.

Each exchange is then judged against an ``expect`` block (``judge``) or put in
a bucket (``bucket``: a JSON path, a regex on the body or a header), and the
helpers here word the results the same way for every verifier.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from labrunner.cluster.errors import ClusterError
from labrunner.lab.catalog import ParamProblem
from labrunner.verify.context import CheckContext
from labrunner.verify.kube import (
    CheckAbort,
    abort_for,
    last_line,
    run_tool,
    service_endpoint,
    tool_argv,
    tool_problem,
)
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
from labrunner.verify.transport import (
    Exchange,
    HttpRequest,
    RequestError,
    curl_script,
    parse_curl_batch,
    send,
    ssl_context,
)

DEFAULT_TIMEOUT = 5.0


FAIL_KINDS = ("refused", "reset", "tls", "timeout", "dns", "protocol")


_RESOLVE = r"^[^:\s]+:\d+:\S+$"


PORT = {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 65535}, STRING]}


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
        obj({"namespace": STRING, "service": STRING, "port": PORT}, required=("service", "port")),
        "connect through a port-forward to this Service port",
    ),
}


GROUP_BY = described(
    obj({"json": STRING, "regex": STRING, "header": STRING}),
    "bucket responses by a JSON path (a.b.0.c, * for any), a regex (group 1) or a header",
)


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


def describe_request(params: Mapping[str, Any]) -> str:
    return f"{params.get('method', 'GET')} {params.get('url', '?')}{_where(params)}"


def lint_request(params: Mapping[str, Any]) -> list[ParamProblem]:
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
            problems += regex_problems(group["regex"], ("group_by", "regex"))
    return problems


def regex_problems(pattern: str, path: tuple[str, ...]) -> list[ParamProblem]:
    try:
        re.compile(pattern)
    except re.error as exc:
        return [ParamProblem(path, f"invalid regex: {exc}")]
    return []


def build_request(ctx: CheckContext, params: Mapping[str, Any]) -> HttpRequest:
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
    text = result.stderr.lower()
    detail = last_line(result.stderr) or f"exit code {result.returncode}"
    if result.timed_out:
        return Outcome.pending(f"kubectl exec into {where} did not finish in time")
    if "executable file not found" in text or "no such file or directory" in text:
        return Outcome.error(f"cannot run sh in {where}: {detail}")
    if "container not found" in text or "is not valid for pod" in text:
        return Outcome.failed(f"{where}: {detail}")
    outcome = tool_problem(result, what=where)
    if outcome is not None:
        return outcome
    return Outcome.pending(f"kubectl exec into {where} failed: {detail}", result.stderr or None)


def _from_pod(
    ctx: CheckContext, source: Mapping[str, Any], *, req: HttpRequest, count: int
) -> list[Exchange]:
    namespace = source["namespace"]
    ref = f"deploy/{source['deployment']}" if "deployment" in source else f"pod/{source['pod']}"
    where = f"{namespace}/{ref}"
    marker = f"@@labrunner-{uuid.uuid4().hex}@@"
    argv = tool_argv(ctx, "kubectl", "exec", "-n", namespace, ref)
    if source.get("container"):
        argv += ["-c", source["container"]]
    argv += ["--", "sh", "-c", curl_script(req, count=count, marker=marker)]
    budget = count * (req.timeout + 1.0) + 15.0
    result = run_tool(ctx, argv, timeout=budget)
    exchanges = parse_curl_batch(result.stdout, marker=marker)
    if not exchanges:
        raise CheckAbort(_exec_problem(result, where=where))
    broken = next((e for e in exchanges if e.curl_exit in (126, 127)), None)
    if broken is not None:
        raise CheckAbort(Outcome.error(f"curl is not available in {where}: {broken.error}"))
    return exchanges


def exchanges(
    ctx: CheckContext, params: Mapping[str, Any], *, req: HttpRequest, count: int
) -> list[Exchange]:
    """Make ``count`` requests as the parameters say; ends early at the deadline."""
    if "from" in params:
        return _from_pod(ctx, params["from"], req=req, count=count)
    connect_to = None
    if "via" in params:
        via = params["via"]
        try:
            connect_to = service_endpoint(
                ctx,
                namespace=via.get("namespace", "default"),
                service=via["service"],
                port=via["port"],
            )
        except ClusterError as exc:
            raise abort_for(exc, ctx) from None
    context = ssl_context(req) if req.url.lower().startswith("https:") else None
    results: list[Exchange] = []
    for _ in range(count):
        if ctx.cancel.is_set():
            raise CheckAbort(Outcome.error("the check was cancelled"))
        left = ctx.deadline - time.monotonic()
        if results and left < 0.05:
            break
        one = req if left >= req.timeout else _with_timeout(req, max(left, 0.5))
        results.append(send(one, connect_to=connect_to, context=context))
    return results


def _with_timeout(req: HttpRequest, timeout: float) -> HttpRequest:
    return replace(req, timeout=timeout)


def lookup(doc: Any, path: str) -> Iterator[Any]:
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


def snippet(text: str, limit: int = 80) -> str:
    return repr(_clip(text, limit))


def parse_json(ex: Exchange) -> tuple[bool, Any]:
    try:
        return True, json.loads(ex.body)
    except (ValueError, UnicodeDecodeError):
        return False, None


def default_ok(status: int) -> bool:
    return 200 <= status < 400


def judge(ex: Exchange, expect: Mapping[str, Any]) -> str | None:
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
            f"; body {snippet(ex.text())}" if ex.body else ""
        )
    if not statuses and not default_ok(ex.status):
        return f"a successful response expected, got HTTP {ex.status}" + (
            f"; body {snippet(ex.text())}" if ex.body else ""
        )
    text = ex.text()
    for needle in as_list(expect.get("body_contains")):
        if str(needle) not in text:
            return f"body should contain {str(needle)!r}; it is {snippet(text)}"
    for needle in as_list(expect.get("body_not_contains")):
        if str(needle) in text:
            return f"body should not contain {str(needle)!r}, but it does"
    if expect.get("body_regex") and not re.search(expect["body_regex"], text):
        return f"body should match /{expect['body_regex']}/; it is {snippet(text)}"
    if expect.get("json"):
        parsed, doc = parse_json(ex)
        if not parsed:
            return f"body is not JSON; it is {snippet(text)}"
        for path, wanted in expect["json"].items():
            found = list(lookup(doc, str(path)))
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


def bucket(ex: Exchange, *, group: Mapping[str, Any] | None, ok: Sequence[int]) -> str:
    if not ex.answered:
        return f"({ex.failure} failure)"
    assert ex.status is not None
    if (ok and ex.status not in ok) or (not ok and not default_ok(ex.status)):
        return f"(HTTP {ex.status})"
    if not group:
        return f"HTTP {ex.status}"
    if "json" in group:
        parsed, doc = parse_json(ex)
        if not parsed:
            return "(not JSON)"
        found = next(lookup(doc, str(group["json"])), None)
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


def status_label(ex: Exchange) -> str:
    if ex.answered:
        return str(ex.status)
    suffix = f" (curl {ex.curl_exit})" if ex.curl_exit is not None else ""
    return f"{ex.failure}{suffix}"


def histogram(labels: Sequence[str], total: int) -> str:
    counts = Counter(labels)
    return ", ".join(f"{name} ×{n} ({100.0 * n / total:.0f}%)" for name, n in counts.most_common())


def run_requests(
    ctx: CheckContext, params: Mapping[str, Any], *, count: int
) -> tuple[HttpRequest, list[Exchange]]:
    try:
        req = build_request(ctx, params)
        return req, exchanges(ctx, params, req=req, count=count)
    except RequestError as exc:
        message = str(exc).replace(f"{ctx.cwd}{os.sep}", "")  # paths as the lab wrote them
        raise CheckAbort((Outcome.failed if exc.missing else Outcome.error)(message)) from None
