"""The ``certificate`` verifier, and the expectation parameters every certificate check shares.

The security labs teach by inspection: the learner creates a TLS secret for
the ingress gateway, looks at the certificate a server presents, and sees who
signed what. ``certificate`` makes the same inspection automatically and
answers in the learner's terms ("SAN DNS istioinaction.io expected,
certificate has example.com"). It reads PEM from a file, a Kubernetes Secret
(through ``labrunner.verify.kube``, exactly as the ``secret`` verifier reads
one: a Secret that does not exist yet is pending, waited on with a watch) or
a command's output. The Istio family's ``workload_certificate`` is judged by
the same rules (``CERT_EXPECTATIONS``).

Outcomes: a missing file, a Secret without the key, or a certificate that
differs from the expectation, is ``failed``; a Secret not created yet, or a
command that could not reach its server yet, is ``pending``; a missing tool
or an unreachable cluster is ``error``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labrunner.lab.catalog import ParamProblem
from labrunner.pki.names import parse_name_spec
from labrunner.verify.context import CheckContext
from labrunner.verify.kube import cluster_check
from labrunner.verify.outcome import Outcome
from labrunner.verify.params import (
    BOOLEAN,
    DURATION,
    INTEGER,
    STRING,
    described,
    obj,
    one_or_many,
    seconds,
)
from labrunner.verify.registry import verifier

LONG_DURATION: dict[str, Any] = described(
    DURATION, "a duration: 90s, 2m, 24h, 30d, or a number of seconds"
)
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
    problems += lint_expectations(params)
    return problems


def lint_expectations(params: Mapping[str, Any]) -> list[ParamProblem]:
    """Load-time problems in the subject and issuer expectations (malformed names)."""
    problems: list[ParamProblem] = []
    for name in ("subject", "issuer"):
        value = params.get(name)
        if isinstance(value, str):
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
@cluster_check
def certificate(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
    """A certificate (file, secret or command output) has the expected names, issuer and dates."""
    # Lazy for start-up speed: the comparison loads ``cryptography`` (~70 ms),
    # which loading a lab that merely names this verifier must not pay.
    from labrunner.verify import certificates as checks

    timeout = seconds(params.get("timeout"), checks.DEFAULT_TIMEOUT)
    if "file" in params:
        chain = checks.chain_from_file(ctx, params["file"])
    elif "secret" in params:
        chain = checks.chain_from_secret(ctx, params["secret"])
    elif "command" in params:
        chain = checks.chain_from_command(ctx, params["command"], timeout=timeout)
    else:
        return Outcome.error("certificate needs one of file, secret or command")
    load_key = None
    if params.get("key_matches") not in (None, False):
        load_key = checks.key_loader(ctx, params["key_matches"], source_secret=params.get("secret"))
    return checks.judge(chain, params, ctx=ctx, index=params.get("index", 0), load_key=load_key)
