"""Certificate verifiers: ``certificate`` and ``workload_certificate``.

The security labs teach by inspection: the learner creates a TLS secret for
the ingress gateway, looks at the SPIFFE certificate Istio handed a sidecar,
and sees who signed what. These verifiers make the same inspection
automatically and answer in the learner's terms ("SAN URI .../sa/web-api
expected, certificate has .../sa/default").

``certificate`` reads PEM from a file, a Kubernetes secret or a command's
output; ``workload_certificate`` reads the ``default`` SDS secret out of
``istioctl proxy-config secret -o json`` (selected by name, never by
position) and by default expects what istiod issues: the SPIFFE ID of the
pod's service account, issuer ``O=<trust domain>`` and a lifetime of about
24 hours (istiod back-dates NotBefore by two minutes, hence the tolerance).

Outcomes: a missing file or secret, or a certificate that differs from the
expectation, is ``failed``; a proxy that has no certificate yet, or a command
that could not reach its server yet, is ``pending``; a missing tool or an
unreachable cluster is ``error``. The comparison itself lives in
``labrunner.verify.certificates`` and is imported lazily, because it loads
``cryptography``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labrunner.verify.context import CheckContext
from labrunner.verify.outcome import Outcome
from labrunner.verify.params import (
    BOOLEAN,
    DURATION,
    INTEGER,
    STRING,
    described,
    obj,
    one_or_many,
)
from labrunner.verify.registry import ParamProblem, verifier

LONG_DURATION: dict[str, Any] = {
    "description": "a duration: 90s, 2m, 24h, 30d, or a number of seconds",
    "anyOf": [
        {"type": "number", "minimum": 0},
        {
            "type": "string",
            "pattern": r"^\s*(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+\s*$|^\s*\d+(?:\.\d+)?\s*$",
        },
    ],
}
"""Certificate lifetimes are counted in days, which lab durations do not spell; this does."""

_SAN = described(
    {
        "anyOf": [
            one_or_many(STRING),
            obj(
                {
                    "exactly": one_or_many(STRING),
                    "contains": one_or_many(STRING),
                    "not_contains": one_or_many(STRING),
                }
            ),
        ]
    },
    "a value or list (the exact set), or {exactly|contains|not_contains: ...}",
)

SECRET_REF = obj(
    {
        "namespace": STRING,
        "name": STRING,
        "key": described(STRING, "data key; tls.crt for certificates, tls.key for keys"),
    },
    required=("namespace", "name"),
)

CERT_EXPECTATIONS: dict[str, Any] = {
    "subject": described(STRING, "attributes the subject must have, e.g. CN=istioinaction.io"),
    "issuer": described(
        {"anyOf": [STRING, {"const": False}]},
        "attributes the issuer must have, e.g. O=cluster.local (any order)",
    ),
    "san_dns": _SAN,
    "san_uris": _SAN,
    "san_ips": _SAN,
    "key_type": described(
        {
            "anyOf": [
                {"type": "string", "enum": ["rsa", "ec", "ecdsa", "ed25519"]},
                obj(
                    {
                        "type": {"type": "string", "enum": ["rsa", "ec", "ecdsa", "ed25519"]},
                        "min_bits": INTEGER,
                    }
                ),
            ]
        },
        "rsa, ec, or {type: rsa, min_bits: 2048}",
    ),
    "is_ca": described(BOOLEAN, "true for a CA certificate, false for a leaf"),
    "chain_to": described(STRING, "a CA certificate file the certificate must chain to"),
    "valid_for": described(
        {
            "anyOf": [
                LONG_DURATION,
                obj({"about": LONG_DURATION, "tolerance": LONG_DURATION}, required=("about",)),
                {"const": False},
            ]
        },
        "expected lifetime, e.g. {about: 24h, tolerance: 10m}",
    ),
    "not_expired": described(BOOLEAN, "the certificate must be valid now (default true)"),
    "expires_after": described(LONG_DURATION, "must still be valid this long from now, e.g. 30d"),
    "expires_within": described(LONG_DURATION, "must expire within this long from now"),
}

_KEY_MATCHES = described(
    {
        "anyOf": [
            STRING,
            {"const": True},
            obj({"file": STRING}, required=("file",)),
            obj({"secret": SECRET_REF}, required=("secret",)),
        ]
    },
    "the private key that must match: a file, {secret: ...}, or true for the source secret",
)

CERTIFICATE_PARAMS = obj(
    {
        "file": described(STRING, "PEM file, relative to the workshop directory"),
        "secret": SECRET_REF,
        "command": described(STRING, "shell command that prints PEM (run with bash -c)"),
        "index": described(
            {"type": "integer", "minimum": 0}, "which certificate of the chain (0 = leaf)"
        ),
        "key_matches": _KEY_MATCHES,
        "timeout": DURATION,
        **CERT_EXPECTATIONS,
    },
    description="inspect a certificate from a file, a secret or a command's output",
)

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

_SOURCES = ("file", "secret", "command")


def _source_label(params: Mapping[str, Any]) -> str:
    if "file" in params:
        return f"certificate {params['file']}"
    if "secret" in params:
        ref = params["secret"]
        return f"certificate in secret {ref['namespace']}/{ref['name']}"
    if "command" in params:
        return "certificate printed by a command"
    return "certificate"


def _lint_certificate(params: Mapping[str, Any]) -> list[ParamProblem]:
    problems: list[ParamProblem] = []
    given = [s for s in _SOURCES if s in params]
    if len(given) != 1:
        problems.append(
            ParamProblem(
                (),
                "give exactly one of file, secret or command"
                + (f" (got {', '.join(given)})" if given else ""),
            )
        )
    if params.get("key_matches") is True and "secret" not in params:
        problems.append(
            ParamProblem(("key_matches",), "key_matches: true only works with a secret source")
        )
    problems += _lint_expectations(params)
    return problems


def _lint_expectations(params: Mapping[str, Any]) -> list[ParamProblem]:
    problems: list[ParamProblem] = []
    for name in ("subject", "issuer"):
        value = params.get(name)
        if isinstance(value, str):
            from labrunner.pki.names import parse_name_spec

            try:
                parse_name_spec(value)
            except ValueError as exc:
                problems.append(ParamProblem((name,), str(exc)))
    return problems


@verifier(
    "certificate",
    params=CERTIFICATE_PARAMS,
    describe=_source_label,
    lint=_lint_certificate,
)
def certificate(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
    """A certificate (file, secret or command output) has the expected names, issuer and dates."""
    from labrunner.verify import certificates as checks
    from labrunner.verify.kube import Abort
    from labrunner.verify.params import seconds

    timeout = seconds(params.get("timeout"), checks.DEFAULT_TIMEOUT)
    try:
        if "file" in params:
            chain = checks.chain_from_file(ctx, params["file"])
        elif "secret" in params:
            chain = checks.chain_from_secret(ctx, params["secret"], timeout=timeout)
        elif "command" in params:
            chain = checks.chain_from_command(ctx, params["command"], timeout=timeout)
        else:
            return Outcome.error("certificate needs one of file, secret or command")
        load_key = None
        if params.get("key_matches") not in (None, False):
            load_key = checks.key_loader(
                ctx,
                params["key_matches"],
                source_secret=params.get("secret"),
                timeout=timeout,
            )
        return checks.judge(chain, params, ctx=ctx, index=params.get("index", 0), load_key=load_key)
    except Abort as stop:
        return stop.outcome


def _workload_label(params: Mapping[str, Any]) -> str:
    ns = params.get("namespace")
    return f"workload certificate of {ns + '/' if ns else ''}{params.get('target', '?')}"


@verifier(
    "workload_certificate",
    params=WORKLOAD_PARAMS,
    needs=("cluster",),
    describe=_workload_label,
    lint=_lint_expectations,
)
def workload_certificate(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
    """A sidecar's SDS certificate carries its SPIFFE identity, istiod's issuer and a ~24h life."""
    from labrunner.pki import core as pki
    from labrunner.verify import certificates as checks
    from labrunner.verify.kube import Abort, missing_tool
    from labrunner.verify.params import seconds

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
    try:
        secrets = checks.proxy_secrets(ctx, target=target, namespace=namespace, timeout=timeout)
        if "san_uris" not in params:
            wanted = params.get("spiffe_id")
            if wanted is None:
                wanted = checks.workload_identity(
                    ctx,
                    target=target,
                    namespace=namespace,
                    trust_domain=trust_domain,
                    timeout=timeout,
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
    except Abort as stop:
        return stop.outcome
