"""Istio verifiers: the control plane, sidecars, mTLS, workload certificates, traffic, traces.

``istio_installed``, ``sidecar_injected`` and ``peer_authentication`` read
Kubernetes objects only (no ``istioctl``), through ``labrunner.verify.kube``
and with the same pending/failed rule as ``labrunner.verify.kubernetes``:

* pending while Istio converges or the learner has not acted yet: istiod or
  a gateway still rolling out, CRDs or the injector webhook not there yet,
  pods without a sidecar (pods created before the namespace was labelled get
  one only when restarted, and a ``rollout restart`` replaces them
  gradually), no PeerAuthentication yet;
* failed when a settled object says otherwise: istiod runs another Istio
  version than the workshop pins, a PeerAuthentication has the wrong mode or
  a selector where a mesh-wide policy was asked for.

Facts from the Istio releases these follow (notes/istio-labs.md): since 1.27
``istio-proxy`` may be a native sidecar (an init container with
``restartPolicy: Always``) rather than a container; CRD counts change from
release to release, so installation is checked by name; the sidecar injector
is a MutatingWebhookConfiguration named ``istio-sidecar-injector*`` or
``istio-revision-tag-*``; PeerAuthentication is read through
``security.istio.io/v1``; a policy in the mesh root namespace (istio-system)
without a selector is mesh-wide, one elsewhere without a selector covers its
namespace, and when several qualify Istio uses the oldest.

``workload_certificate`` reads the ``default`` SDS secret out of ``istioctl
proxy-config secret -o json`` (selected by name, never by position) and by
default expects what istiod issues: the SPIFFE ID of the pod's service
account (the Pod is read through the cluster client), issuer ``O=<trust
domain>`` and a lifetime of about 24 hours (istiod back-dates NotBefore by
two minutes, hence the tolerance). The certificate comparison is
``labrunner.verify.certificates``, shared with the ``certificate`` verifier.

``traffic_split`` sends N requests and compares how the answers spread over
buckets (a JSON path or a regex on the body) with the expected weights;
``traces`` asks the Jaeger query API, directly or through the API server's
service proxy, whether a trace crosses the expected services. Both use the
request machinery of ``labrunner.verify.requests``; a split off its weights
or a trace not collected yet is pending, since both change while
configuration propagates.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from labrunner.cluster.errors import ClusterError, UnknownType
from labrunner.cluster.portforward import proxy_get
from labrunner.cluster.resources import (
    CRDS,
    DEPLOYMENTS,
    METADATA_ONLY,
    MUTATING_WEBHOOKS,
    NAMESPACES,
    labels_of,
    name_of,
    terminating,
)
from labrunner.cluster.versions import find_istiod, istio_version_of, version_matches
from labrunner.lab.catalog import ParamProblem
from labrunner.verify import requests
from labrunner.verify.context import CheckContext
from labrunner.verify.kube import (
    CheckAbort,
    abort_for,
    cluster_check,
    connect,
    connection,
    missing_tool,
)
from labrunner.verify.kubernetes import (
    NAMESPACE,
    SELECTOR,
    deployment_problems,
    lint_selector,
    select_pods,
    selector_param,
)
from labrunner.verify.outcome import Outcome
from labrunner.verify.params import (
    BOOLEAN,
    DURATION,
    STRING,
    STRING_LIST,
    STRING_MAP,
    as_list,
    described,
    obj,
    one_or_many,
    seconds,
)
from labrunner.verify.registry import verifier
from labrunner.verify.tls import CERT_EXPECTATIONS, lint_expectations
from labrunner.verify.transport import HttpRequest, RequestError, send

PROXY = "istio-proxy"
STATUS_ANNOTATION = "sidecar.istio.io/status"
ROOT_NAMESPACE = "istio-system"
DEFAULT_GATEWAYS = ("istio-ingressgateway",)
DEFAULT_CRDS = (
    "virtualservices.networking.istio.io",
    "gateways.networking.istio.io",
    "destinationrules.networking.istio.io",
    "peerauthentications.security.istio.io",
    "authorizationpolicies.security.istio.io",
    "telemetries.telemetry.istio.io",
)
INJECTOR_PREFIXES = ("istio-sidecar-injector", "istio-revision-tag-")
MTLS_MODES = ("STRICT", "PERMISSIVE", "DISABLE", "UNSET")


# --------------------------------------------------------------------------- sidecar_injected


def proxy_kind(pod: Mapping[str, Any]) -> str | None:
    """``container`` or ``native`` when the pod has an istio-proxy sidecar, else None."""
    spec = pod.get("spec") or {}
    if any(c.get("name") == PROXY for c in spec.get("containers") or []):
        return "container"
    for c in spec.get("initContainers") or []:
        if c.get("name") == PROXY and c.get("restartPolicy") == "Always":
            return "native"
    return None


def _proxy_ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    for key in ("containerStatuses", "initContainerStatuses"):
        for cs in status.get(key) or []:
            if cs.get("name") == PROXY:
                return bool(cs.get("ready"))
    return False


def _injection_hint(cluster: Any, namespace: str) -> str:
    """Why pods of ``namespace`` may lack the sidecar (its labels), for the message."""
    found = cluster.read(NAMESPACES, namespace)
    labels = labels_of(found) if found else {}
    flag = labels.get("istio-injection")
    if flag == "enabled" or (flag is None and labels.get("istio.io/rev")):
        return "pods created before injection was enabled need `kubectl rollout restart`"
    if flag is not None:
        return f"namespace {namespace} has istio-injection={flag}; it needs istio-injection=enabled"
    return f"namespace {namespace} is not labelled istio-injection=enabled"


@verifier(
    "sidecar_injected",
    params=obj(
        {
            "namespace": NAMESPACE,
            "selector": SELECTOR,
            "injected": described(
                BOOLEAN, "false: pass when no matching pod has a sidecar (default true)"
            ),
            "ready": described(BOOLEAN, "also require the istio-proxy container to be ready"),
        }
    ),
    needs=("cluster",),
    describe=lambda p: (
        ("no sidecar: " if p.get("injected") is False else "sidecar injected: ")
        + (selector_param(p) or "all pods")
        + f" in {p.get('namespace', 'default')}"
    ),
    lint=lint_selector,
)
@cluster_check
def sidecar_injected(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
    """Every matching pod has Istio's sidecar (container or native sidecar) and its annotation."""
    pods = select_pods(ctx, params)
    if not pods.live:
        return pods.none_yet()
    ns, live, pods_word, wait = pods.namespace, pods.live, pods.pods_word, pods.wait()
    missing = [p for p in live if proxy_kind(p) is None or STATUS_ANNOTATION not in _annotations(p)]
    if params.get("injected") is False:
        with_proxy = [name_of(p) for p in live if proxy_kind(p) is not None]
        if with_proxy:
            shown = ", ".join(with_proxy[:3]) + (
                f" and {len(with_proxy) - 3} more" if len(with_proxy) > 3 else ""
            )
            one = len(with_proxy) == 1
            return Outcome.pending(
                f"{shown} in {ns} {'has' if one else 'have'} the Istio sidecar, which "
                f"{'it' if one else 'they'} should not (is namespace {ns} labelled for injection?)",
                wait=wait,
            )
        return Outcome.passed(f"none of the {len(live)} {pods_word} in {ns} has a sidecar")
    if missing:
        names = [name_of(p) for p in missing]
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        injected = len(live) - len(missing)
        message = (
            f"{injected} of {len(live)} {pods_word} in {ns} have the Istio sidecar; "
            f"missing in {shown} ({_injection_hint(pods.cluster, ns)})"
        )
        return Outcome.pending(message, wait=wait)
    if params.get("ready"):
        unready = [name_of(p) for p in live if not _proxy_ready(p)]
        if unready:
            return Outcome.pending(
                f"istio-proxy not ready yet in {', '.join(unready[:3])}", wait=wait
            )
    native = sum(1 for p in live if proxy_kind(p) == "native")
    how = " (native sidecars)" if native == len(live) else ""
    return Outcome.passed(f"{len(live)} of {len(live)} {pods_word} in {ns} have the sidecar{how}")


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return (obj.get("metadata") or {}).get("annotations") or {}


# --------------------------------------------------------------------------- istio_installed


@verifier(
    "istio_installed",
    params=obj(
        {
            "version": described(
                STRING, "the pinned Istio release (default: $ISTIO_VERSION when it is set)"
            ),
            "namespace": described(STRING, "the control plane's namespace (istio-system)"),
            "gateways": described(STRING_LIST, "gateway Deployments that must be available"),
            "crds": described(STRING_LIST, "CRDs that must exist (default: core Istio CRDs)"),
        }
    ),
    needs=("cluster",),
    describe=lambda p: f"Istio {p['version']} installed" if p.get("version") else "Istio installed",
)
@cluster_check
def istio_installed(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
    """istiod and the gateways are available, the CRDs and injector exist, the version is pinned."""
    cluster = connect(ctx)
    ns = params.get("namespace", ROOT_NAMESPACE)
    deployments = cluster.list(DEPLOYMENTS, namespace=ns)
    istiod = find_istiod(deployments.items)
    if istiod is None:
        return Outcome.pending(
            f"Istio is not installed: no istiod Deployment in {ns}",
            wait=cluster.waiter(deployments),
        )
    found_version = istio_version_of(istiod)
    wanted = params.get("version") or ctx.env.get("ISTIO_VERSION")
    if wanted and found_version and not version_matches(found_version, wanted):
        return Outcome.failed(
            f"{name_of(istiod)} runs Istio {found_version}, but this workshop pins {wanted}; "
            f"install Istio {wanted} (its istioctl: istioctl install)"
        )
    crds = cluster.list(CRDS, accept=METADATA_ONLY)
    have = {name_of(c) for c in crds.items}
    missing = [n for n in params.get("crds", DEFAULT_CRDS) if n not in have]
    if missing:
        return Outcome.pending(
            f"Istio CRDs missing: {', '.join(missing)}", wait=cluster.waiter(crds)
        )
    hooks = cluster.list(MUTATING_WEBHOOKS, accept=METADATA_ONLY)
    if not any(name_of(h).startswith(INJECTOR_PREFIXES) for h in hooks.items):
        return Outcome.pending(
            "no sidecar injector webhook yet (MutatingWebhookConfiguration "
            "istio-sidecar-injector or istio-revision-tag-*)",
            wait=cluster.waiter(hooks),
        )
    by_name = {name_of(d): d for d in deployments.items}
    wanted_deployments: dict[str, Mapping[str, Any] | None] = {name_of(istiod): istiod}
    for gateway in params.get("gateways", DEFAULT_GATEWAYS):
        wanted_deployments[gateway] = by_name.get(gateway)
    problems, final = deployment_problems(cluster, wanted_deployments, ns)
    if problems:
        text = "; ".join(problems)
        return (
            Outcome.failed(text)
            if final
            else Outcome.pending(text, wait=cluster.waiter(deployments))
        )
    version_text = found_version or "unknown version (istiod's image has no version tag)"
    parts = ", ".join(wanted_deployments)
    return Outcome.passed(f"Istio {version_text} installed in {ns}: {parts} available")


# --------------------------------------------------------------------------- peer_authentication


def _describe_pa(params: Mapping[str, Any]) -> str:
    root = params.get("root_namespace", ROOT_NAMESPACE)
    ns = params.get("namespace", root)
    if params.get("selector"):
        where = f"for {selector_param(params)} in {ns}"
    elif ns == root:
        where = "mesh-wide"
    else:
        where = f"in {ns}"
    return f"mTLS {params['mode']} {where}"


def _oldest(items: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:

    return sorted(
        items,
        key=lambda i: (str((i.get("metadata") or {}).get("creationTimestamp") or ""), name_of(i)),
    )[0]


@verifier(
    "peer_authentication",
    params=obj(
        {
            "mode": {"enum": list(MTLS_MODES), "description": "the expected spec.mtls.mode"},
            "namespace": described(
                STRING, "where the policy lives (default: the root namespace, i.e. mesh-wide)"
            ),
            "name": described(STRING, "a specific policy (default: whichever applies)"),
            "selector": described(STRING_MAP, "workload labels (spec.selector.matchLabels)"),
            "root_namespace": described(STRING, "the mesh root namespace (istio-system)"),
        },
        required=("mode",),
    ),
    needs=("cluster",),
    describe=_describe_pa,
)
@cluster_check
def peer_authentication(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
    """The PeerAuthentication that applies (mesh, namespace or workload) has the given mode."""
    cluster = connect(ctx)
    root = params.get("root_namespace", ROOT_NAMESPACE)
    ns = params.get("namespace", root)
    want_selector = dict(params.get("selector") or {})
    try:
        rt = cluster.resource_type(api_version="security.istio.io/v1", kind="PeerAuthentication")
    except UnknownType:
        return Outcome.pending(
            "the cluster does not serve security.istio.io/v1 PeerAuthentication "
            "(is Istio 1.22 or newer installed?)"
        )
    listed = cluster.list(rt, namespace=ns)
    wait = cluster.waiter(listed)
    live = [i for i in listed.items if not terminating(i)]
    if want_selector:
        scope = f"for workloads {selector_param(params)} in {ns}"
    elif ns == root:
        scope = f"mesh-wide (in the root namespace {root}, without a selector)"
    else:
        scope = f"namespace-wide in {ns} (without a selector)"

    def selector_of(item: Mapping[str, Any]) -> dict[str, Any]:
        return dict((((item.get("spec") or {}).get("selector") or {}).get("matchLabels")) or {})

    if params.get("name"):
        named = [i for i in live if name_of(i) == params["name"]]
        if not named:
            return Outcome.pending(f"no PeerAuthentication {params['name']} in {ns} yet", wait=wait)
        chosen: Mapping[str, Any] = named[0]
        if selector_of(chosen) != want_selector:
            has = selector_of(chosen)
            why = f"selects {has}" if has else "has no selector"
            return Outcome.failed(
                f"PeerAuthentication {ns}/{name_of(chosen)} {why}, so it does not apply {scope}"
            )
    else:
        candidates = [i for i in live if selector_of(i) == want_selector]
        if not candidates:
            return Outcome.pending(f"no PeerAuthentication {scope} yet", wait=wait)
        chosen = _oldest(candidates)
    mode = str(((chosen.get("spec") or {}).get("mtls") or {}).get("mode") or "UNSET")
    label = f"PeerAuthentication {ns}/{name_of(chosen)}"
    if mode != params["mode"]:
        return Outcome.failed(f"{label}: spec.mtls.mode is {mode}, expected {params['mode']}")
    return Outcome.passed(f"mTLS {mode} {scope.split(' (')[0]} ({label})")


# --------------------------------------------------------------------------- workload_certificate


WORKLOAD_PARAMS = obj(
    {
        "target": described(STRING, "deploy/<name> or a pod name"),
        "namespace": STRING,
        "trust_domain": described(STRING, "mesh trust domain (default cluster.local)"),
        "spiffe_id": described(
            {"anyOf": [STRING, {"const": False}]},
            "expected SPIFFE ID; default derived from the pod's service account; false: skip",
        ),
        "root_ca": described(STRING, "a CA file the proxy's ROOTCA must be"),
        "timeout": DURATION,
        **CERT_EXPECTATIONS,
    },
    required=("target",),
    description="inspect the mesh certificate a sidecar got over SDS",
)


def _workload_label(params: Mapping[str, Any]) -> str:
    ns = params.get("namespace")
    return f"workload certificate of {ns + '/' if ns else ''}{params.get('target', '?')}"


@verifier(
    "workload_certificate",
    params=WORKLOAD_PARAMS,
    needs=("cluster",),
    describe=_workload_label,
    lint=lint_expectations,
)
@cluster_check
def workload_certificate(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
    """A sidecar's SDS certificate carries its SPIFFE identity, istiod's issuer and a ~24h life."""
    # Lazy for start-up speed: certificates load ``cryptography`` (~70 ms).
    from labrunner.pki import core as pki
    from labrunner.verify import certificates as checks

    if ctx.which("istioctl") is None:
        return missing_tool("istioctl")
    timeout = seconds(params.get("timeout"), 20.0)
    target: str = params["target"]
    namespace: str | None = params.get("namespace")
    trust_domain: str = params.get("trust_domain", "cluster.local")
    where = f"{namespace}/{target}" if namespace else target
    expected = dict(params)
    expected.setdefault("issuer", f"O={trust_domain}")
    expected.setdefault("valid_for", {"about": "24h", "tolerance": "10m"})
    secrets = checks.proxy_secrets(ctx, target=target, namespace=namespace, timeout=timeout)
    if "san_uris" not in params:
        wanted = params.get("spiffe_id")
        if wanted is None:
            wanted = checks.workload_identity(
                ctx,
                target=target,
                namespace=namespace,
                trust_domain=trust_domain,
            )
        if wanted is not False:
            expected["san_uris"] = [wanted]
    outcome = checks.judge(secrets.chain, expected, ctx=ctx)
    if not outcome.ok:
        return outcome
    problem = None
    if params.get("root_ca"):
        problem = checks.compare_root(ctx, secrets, root_ca=params["root_ca"], where=where)
    elif secrets.root and not params.get("chain_to"):
        try:
            pki.verify_chain(
                secrets.chain.certs[0],
                anchors=secrets.root,
                intermediates=secrets.chain.certs[1:],
            )
        except pki.ChainError as exc:
            problem = f"the workload certificate does not chain to the proxy's ROOTCA: {exc}"
    if problem:
        return Outcome.failed(f"{secrets.chain.label}: {problem}", outcome.details)
    return outcome


# --------------------------------------------------------------------------- traffic_split, traces


SPLIT_PARAMS = obj(
    {
        **requests.REQUEST_PROPS,
        "count": {"type": "integer", "minimum": 1, "maximum": 2000},
        "group_by": requests.GROUP_BY,
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


def _lint_split(params: Mapping[str, Any]) -> list[ParamProblem]:
    problems = requests.lint_request(params)
    shares = params.get("expect") or {}
    total = sum(float(v) for v in shares.values())
    if shares and abs(total - 100.0) > 0.5:
        problems.append(ParamProblem(("expect",), f"shares add up to {total:g}, not 100"))
    return problems


@verifier(
    "traffic_split", params=SPLIT_PARAMS, describe=requests.describe_request, lint=_lint_split
)
def traffic_split(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
    """N requests spread over versions within a tolerance of the expected weights."""
    count = int(params.get("count", 100))
    tolerance = float(params.get("tolerance", 10))
    shares = {str(k): float(v) for k, v in params["expect"].items()}
    ok_status = [int(s) for s in as_list(params.get("status"))]
    try:
        _req, exchanges = requests.run_requests(ctx, params, count=count)
    except CheckAbort as stop:
        return stop.outcome
    done = len(exchanges)
    buckets = [requests.bucket(e, group=params["group_by"], ok=ok_status) for e in exchanges]
    counts = Counter(buckets)
    observed = {name: 100.0 * n / done for name, n in counts.items()}
    seen = ", ".join(f"{name} {pct:.0f}%" for name, pct in sorted(observed.items()))
    wanted = ", ".join(f"{name} {pct:g}%" for name, pct in shares.items())
    summary = f"observed {seen} over {done} requests (expected {wanted}, ±{tolerance:g})"
    details = "\n".join(
        [
            f"buckets: {requests.histogram(buckets, done)}",
            f"statuses: {requests.histogram([requests.status_label(e) for e in exchanges], done)}",
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


TRACES_PARAMS = obj(
    {
        "url": described(STRING, "Jaeger query base URL, e.g. http://127.0.0.1:16686"),
        "service": described(
            obj({"namespace": STRING, "name": STRING, "port": requests.PORT}, required=("name",)),
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


def _jaeger_get(
    ctx: CheckContext, params: Mapping[str, Any], *, path: str, query: Sequence[tuple[str, str]]
) -> Any:
    base = "/" + str(params.get("base_path", "/jaeger")).strip("/")
    base = "" if base == "/" else base
    timeout = seconds(params.get("timeout"), 10.0)
    if "service" in params:
        svc = params["service"]
        where = f"service {svc.get('namespace', 'istio-system')}/{svc['name']}"
        try:
            status, body = proxy_get(
                connection(ctx),
                namespace=svc.get("namespace", "istio-system"),
                service=svc["name"],
                port=svc.get("port", 80),
                path=f"{base}{path}",
                query=query,
                timeout=min(timeout, ctx.remaining()),
            )
        except ClusterError as exc:
            raise abort_for(exc, ctx) from None
        if status != 200:
            text = body.decode("utf-8", "replace")
            raise CheckAbort(
                Outcome.pending(
                    f"Jaeger via {where} answered HTTP {status}: {requests.snippet(text)}"
                )
            )
    else:
        url = str(params.get("url", "")).rstrip("/") + base + path
        if query:
            url += "?" + urlencode(list(query))
        where = str(params.get("url"))
        try:
            ex = send(HttpRequest(url=url, timeout=min(timeout, ctx.remaining())))
        except RequestError as exc:
            raise CheckAbort(Outcome.error(str(exc))) from None
        if not ex.answered:
            message = f"Jaeger at {where} is not reachable: {ex.describe_failure()}"
            if ex.failure == "tls":  # a certificate Jaeger's URL cannot pass: waiting won't help
                raise CheckAbort(Outcome.error(message))
            # a Jaeger that stalls, trickles or cuts the connection is the environment's
            # problem (exit 3 when the budget runs out on it); one still starting is not
            broken = ex.failure in ("timeout", "reset", "protocol")
            raise CheckAbort(Outcome.pending(message, environment=broken))
        if ex.status != 200:
            raise CheckAbort(
                Outcome.pending(
                    f"Jaeger at {where} answered HTTP {ex.status}: {requests.snippet(ex.text())}"
                )
            )
        body = ex.body
    try:
        return json.loads(body)
    except ValueError:
        raise CheckAbort(
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
    except CheckAbort as stop:
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
