"""Certificate sources and comparison shared by ``certificate`` and ``workload_certificate``.

Both verifiers end the same way: a chain of certificates (leaf first) is held
against a lab's expectations (subject, issuer, SANs, key type, lifetime,
expiry, issuing CA, matching private key). Keeping that comparison in one
place means a SPIFFE ID read from an Envoy's SDS dump and one read from a file
are judged by the same rules and reported in the same words: one line that
puts what the lab expected next to what the certificate has.

Where the certificate comes from differs (a file, a Kubernetes Secret read
through ``labrunner.verify.kube``, a command's output, ``istioctl
proxy-config secret``); each source turns its own failure modes into
outcomes by raising ``CheckAbort``.

This module imports ``cryptography``; the verifiers import it inside their
functions so that loading a lab stays fast.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from labrunner.cluster.errors import ClusterError
from labrunner.pki import core as pki
from labrunner.verify.context import CheckContext
from labrunner.verify.kube import (
    CheckAbort,
    abort_for,
    connect,
    last_line,
    run_tool,
    secret_value,
    tool_argv,
    tool_problem,
)
from labrunner.verify.outcome import Outcome
from labrunner.verify.params import as_list, seconds

DEFAULT_TOLERANCE = 600.0
DEFAULT_TIMEOUT = 15.0
KeyLoader = Callable[[], pki.PrivateKey]


def span_seconds(value: Any, default: float) -> float:
    """A certificate duration (``30d``, ``24h``, ``10m`` or seconds) in seconds.

    The loader has validated it against the duration schema already.
    """
    return seconds(value, default)


def _span(value: float) -> str:
    return pki.format_timedelta(dt.timedelta(seconds=value))


@dataclass(frozen=True)
class Chain:
    """Certificates read from one source, leaf first, and how to name that source."""

    certs: list[x509.Certificate]
    label: str


# --------------------------------------------------------------------------- sources


def _read_file(ctx: CheckContext, value: str, *, what: str) -> tuple[bytes, str]:
    path = ctx.path(value)
    shown = _shown_path(ctx, path)
    if not path.exists():
        raise CheckAbort(Outcome.failed(f"{what} {shown} does not exist"))
    if path.is_dir():
        raise CheckAbort(Outcome.failed(f"{what} {shown} is a directory, not a file"))
    try:
        return path.read_bytes(), shown
    except OSError as exc:
        raise CheckAbort(
            Outcome.error(f"cannot read {what} {shown}: {exc.strerror or exc}")
        ) from None


def _shown_path(ctx: CheckContext, path: Path) -> str:
    for base in (ctx.cwd, ctx.workdir):
        try:
            return str(path.relative_to(base))
        except ValueError:
            continue
    return str(path)


def chain_from_file(ctx: CheckContext, value: str) -> Chain:
    """The certificates in a PEM file; a missing or garbled file fails the check."""
    data, shown = _read_file(ctx, value, what="certificate file")
    try:
        return Chain(pki.load_certificates(data, source=shown), shown)
    except pki.PemError as exc:
        raise CheckAbort(Outcome.failed(str(exc))) from None


def load_reference_certs(ctx: CheckContext, value: str, *, what: str) -> list[x509.Certificate]:
    """Certificates a check compares against (a CA file); unreadable ones are an error."""
    data, shown = _read_file(ctx, value, what=what)
    try:
        return pki.load_certificates(data, source=f"{what} {shown}")
    except pki.PemError as exc:
        raise CheckAbort(Outcome.error(str(exc))) from None


def chain_from_secret(ctx: CheckContext, ref: Mapping[str, Any]) -> Chain:
    """The certificates stored under ``ref.key`` (default ``tls.crt``) of a Secret."""
    key = ref.get("key", "tls.crt")
    label = f"secret {ref['namespace']}/{ref['name']} ({key})"
    raw = secret_value(ctx, namespace=ref["namespace"], name=ref["name"], key=key)
    try:
        return Chain(pki.load_certificates(raw, source=label), label)
    except pki.PemError as exc:
        raise CheckAbort(Outcome.failed(str(exc))) from None


def chain_from_command(ctx: CheckContext, command: str, *, timeout: float) -> Chain:
    """The certificates a shell command prints (``openssl s_client``, ``kubectl get ...``)."""
    label = f"the output of `{_short(command)}`"
    result = run_tool(ctx, ["bash", "-c", command], timeout=timeout)
    if result.timed_out:
        raise CheckAbort(Outcome.pending(f"`{_short(command)}` did not finish in {timeout:.0f}s"))
    if result.returncode == 127:
        raise CheckAbort(
            Outcome.error(f"`{_short(command)}`: {last_line(result.stderr) or 'command not found'}")
        )
    if "-----BEGIN " in result.stdout or result.ok:
        try:
            return Chain(pki.load_certificates(result.stdout, source=label), label)
        except pki.PemError as exc:
            if result.ok:
                raise CheckAbort(Outcome.failed(str(exc))) from None
    reason = last_line(result.stderr) or "no message"
    raise CheckAbort(
        Outcome.pending(
            f"`{_short(command)}` exited {result.returncode} without a certificate: {reason}",
            result.stderr or None,
        )
    )


def _short(command: str, limit: int = 60) -> str:
    one = " ".join(command.split())
    return one if len(one) <= limit else one[: limit - 1] + "…"


def key_loader(
    ctx: CheckContext,
    spec: Any,
    *,
    source_secret: Mapping[str, Any] | None,
) -> KeyLoader:
    """A function that fetches the private key a ``key_matches`` parameter names."""

    def from_file(value: str) -> KeyLoader:
        def load() -> pki.PrivateKey:
            data, shown = _read_file(ctx, value, what="private key file")
            try:
                return pki.load_private_key(data, source=shown)
            except pki.PemError as exc:
                raise CheckAbort(Outcome.failed(str(exc))) from None

        return load

    def from_secret(ref: Mapping[str, Any]) -> KeyLoader:
        def load() -> pki.PrivateKey:
            key = ref.get("key", "tls.key")
            label = f"secret {ref['namespace']}/{ref['name']} ({key})"
            raw = secret_value(ctx, namespace=ref["namespace"], name=ref["name"], key=key)
            try:
                return pki.load_private_key(raw, source=label)
            except pki.PemError as exc:
                raise CheckAbort(Outcome.failed(str(exc))) from None

        return load

    if isinstance(spec, str):
        return from_file(spec)
    if spec is True:
        if source_secret is None:
            raise CheckAbort(
                Outcome.error("key_matches: true needs a secret source; name a key file")
            )
        return from_secret({**source_secret, "key": "tls.key"})
    if isinstance(spec, Mapping) and "file" in spec:
        return from_file(spec["file"])
    if isinstance(spec, Mapping) and "secret" in spec:
        return from_secret(spec["secret"])
    raise CheckAbort(Outcome.error("key_matches needs a file path, {file: ...} or {secret: ...}"))


# --------------------------------------------------------------------------- expectations


def _fmt_time(when: dt.datetime) -> str:
    return f"{when:%Y-%m-%d %H:%M} UTC"


def _san_problem(kind: str, *, spec: Any, actual: Sequence[str]) -> str | None:
    have = ", ".join(actual) if actual else f"no SAN {kind} entries"
    if isinstance(spec, Mapping):
        exactly = [str(v) for v in as_list(spec.get("exactly"))] if "exactly" in spec else None
        contains = [str(v) for v in as_list(spec.get("contains"))]
        absent = [str(v) for v in as_list(spec.get("not_contains"))]
    else:
        exactly, contains, absent = [str(v) for v in as_list(spec)], [], []
    if exactly is not None and sorted(set(exactly)) != sorted(set(actual)):
        want = ", ".join(exactly) if exactly else "no entries"
        return f"SAN {kind} {want} expected, certificate has {have}"
    missing = [v for v in contains if v not in actual]
    if missing:
        return f"SAN {kind} {', '.join(missing)} expected, certificate has {have}"
    unwanted = [v for v in absent if v in actual]
    if unwanted:
        return f"SAN {kind} {', '.join(unwanted)} must not be present, certificate has {have}"
    return None


def _key_problem(spec: Any, info: pki.CertInfo) -> str | None:
    if isinstance(spec, Mapping):
        kind = str(spec.get("type", "")).lower()
        min_bits = int(spec.get("min_bits", 0))
    else:
        kind, min_bits = str(spec).lower(), 0
    kind = {"ecdsa": "ec"}.get(kind, kind)
    want = f"{kind.upper()} key" + (f" of at least {min_bits} bits" if min_bits else "")
    if (kind and info.key_type != kind) or info.key_bits < min_bits:
        return f"{want} expected, certificate has {info.key_label}"
    return None


def _lifetime_problem(spec: Any, info: pki.CertInfo) -> str | None:
    if isinstance(spec, Mapping):
        about = span_seconds(spec.get("about"), 0.0)
        tolerance = span_seconds(spec.get("tolerance"), DEFAULT_TOLERANCE)
    else:
        about, tolerance = span_seconds(spec, 0.0), DEFAULT_TOLERANCE
    lifetime = info.lifetime.total_seconds()
    if abs(lifetime - about) > tolerance:
        return (
            f"lifetime of about {_span(about)}"
            f" (±{_span(tolerance)}) expected, certificate is valid for"
            f" {pki.format_timedelta(info.lifetime)}"
            f" ({_fmt_time(info.not_before)} to {_fmt_time(info.not_after)})"
        )
    return None


def judge(
    chain: Chain,
    params: Mapping[str, Any],
    *,
    ctx: CheckContext,
    index: int = 0,
    load_key: KeyLoader | None = None,
    now: dt.datetime | None = None,
) -> Outcome:
    """Hold certificate ``index`` of ``chain`` against the expectation parameters."""
    if index >= len(chain.certs):
        return Outcome.failed(
            f"{chain.label} holds {len(chain.certs)} certificate(s); index {index} was asked for"
        )
    cert = chain.certs[index]
    rest = chain.certs[index + 1 :]
    info = pki.describe(cert)
    when = now if now is not None else dt.datetime.now(dt.UTC)
    problems: list[str] = []
    checked: list[str] = []

    if params.get("not_expired", True):
        checked.append("currently valid")
        if when >= info.not_after:
            ago = pki.format_timedelta(when - info.not_after)
            problems.append(f"certificate expired on {_fmt_time(info.not_after)} ({ago} ago)")
        elif when < info.not_before:
            problems.append(f"certificate is not valid until {_fmt_time(info.not_before)}")
    if "subject" in params:
        checked.append(f"subject {params['subject'] or '(empty)'}")
        if not pki.name_matches(params["subject"], cert.subject):
            problems.append(
                f"subject {params['subject'] or '(empty)'} expected,"
                f" certificate has {info.subject or '(empty)'}"
            )
    if params.get("issuer") not in (None, False):
        checked.append(f"issuer {params['issuer']}")
        if not pki.name_matches(params["issuer"], cert.issuer):
            problems.append(
                f"issuer {params['issuer'] or '(empty)'} expected,"
                f" certificate was issued by {info.issuer or '(empty)'}"
            )
    for param, kind, actual in (
        ("san_dns", "DNS", info.san_dns),
        ("san_uris", "URI", info.san_uris),
        ("san_ips", "IP", info.san_ips),
    ):
        if params.get(param) is not None:
            checked.append(f"SAN {kind}")
            problem = _san_problem(kind, spec=params[param], actual=actual)
            if problem:
                problems.append(problem)
    if "key_type" in params:
        checked.append("key type")
        problem = _key_problem(params["key_type"], info)
        if problem:
            problems.append(problem)
    if "is_ca" in params:
        checked.append("CA flag")
        if params["is_ca"] and not info.is_ca:
            problems.append("a CA certificate expected, this one has CA:FALSE")
        elif not params["is_ca"] and info.is_ca:
            problems.append("a leaf certificate expected, this one is a CA")
    if params.get("valid_for") not in (None, False):
        checked.append("lifetime")
        problem = _lifetime_problem(params["valid_for"], info)
        if problem:
            problems.append(problem)
    if "expires_after" in params:
        span = span_seconds(params["expires_after"], 0.0)
        checked.append(f"valid for {_span(span)} more")
        if info.not_after < when + dt.timedelta(seconds=span):
            problems.append(
                f"certificate expires on {_fmt_time(info.not_after)}, within"
                f" {_span(span)}; it should stay valid longer"
            )
    if "expires_within" in params:
        span = span_seconds(params["expires_within"], 0.0)
        checked.append(f"expires within {_span(span)}")
        if info.not_after > when + dt.timedelta(seconds=span):
            problems.append(
                f"certificate expiring within {_span(span)} expected, it stays valid"
                f" until {_fmt_time(info.not_after)}"
            )
    if params.get("chain_to"):
        checked.append(f"chains to {params['chain_to']}")
        anchors = load_reference_certs(ctx, params["chain_to"], what="CA file")
        try:
            pki.verify_chain(
                cert,
                anchors=anchors,
                intermediates=rest,
                at=when,
                leaf_window=bool(params.get("not_expired", True)),
            )
        except pki.ChainError as exc:
            problems.append(f"does not chain to {params['chain_to']}: {exc}")
    if load_key is not None:
        checked.append("private key matches")
        if not pki.public_key_matches(cert, load_key()):
            problems.append("the private key does not match the certificate (different public key)")

    details = "\n".join(
        [*info.lines(), f"chain:       {len(chain.certs)} certificate(s) in {chain.label}"]
        + ([f"checked:     {', '.join(checked)}"] if checked else [])
        + ([f"problem:     {p}" for p in problems[1:]] if len(problems) > 1 else [])
    )
    if problems:
        extra = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        return Outcome.failed(f"{chain.label}: {problems[0]}{extra}", details)
    return Outcome.passed(f"{chain.label}: {_summary(info, when)}", details)


def _summary(info: pki.CertInfo, when: dt.datetime) -> str:
    parts = []
    if info.subject:
        parts.append(info.subject)
    sans = [f"DNS:{d}" for d in info.san_dns] + [f"URI:{u}" for u in info.san_uris]
    sans += [f"IP:{i}" for i in info.san_ips]
    if sans:
        parts.append("SAN " + ", ".join(sans[:3]) + (" …" if len(sans) > 3 else ""))
    parts.append(f"issued by {info.issuer or '(empty)'}")
    if when >= info.not_after:
        parts.append(f"expired on {_fmt_time(info.not_after)}")
    else:
        parts.append(f"valid until {_fmt_time(info.not_after)}")
    return "; ".join(parts)


# --------------------------------------------------------------------------- istio


@dataclass(frozen=True)
class ProxySecrets:
    """The workload certificate chain and the root CA an Envoy got over SDS."""

    chain: Chain
    root: list[x509.Certificate]


def _inline_pem(entry: Mapping[str, Any], *path: str) -> bytes | None:
    node: Any = entry
    for step in path:
        if not isinstance(node, Mapping) or step not in node:
            return None
        node = node[step]
    if not isinstance(node, str):
        return None
    try:
        return base64.b64decode(node, validate=True)
    except (binascii.Error, ValueError):
        return None


def proxy_secrets(
    ctx: CheckContext, *, target: str, namespace: str | None, timeout: float
) -> ProxySecrets:
    """Run ``istioctl proxy-config secret <target> -o json`` and pick out ``default`` and ROOTCA."""
    args = ["proxy-config", "secret", target, "-o", "json"]
    if namespace:
        args += ["-n", namespace]
    where = f"{namespace}/{target}" if namespace else target
    result = run_tool(ctx, tool_argv(ctx, "istioctl", *args), timeout=timeout)
    if not result.ok:
        outcome = tool_problem(result, what=where)
        if outcome is None:
            text = result.stderr.lower()
            reason = last_line(result.stderr) or f"exit code {result.returncode}"
            if "istio-proxy" in text and ("not valid" in text or "not found" in text):
                outcome = Outcome.failed(f"{where} has no istio-proxy sidecar: {reason}")
            else:
                outcome = Outcome.pending(
                    f"istioctl proxy-config secret {where} failed: {reason}", result.stderr or None
                )
        raise CheckAbort(outcome)
    try:
        doc = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise CheckAbort(
            Outcome.error(f"istioctl proxy-config secret {where} did not print JSON")
        ) from None
    active = doc.get("dynamicActiveSecrets") if isinstance(doc, dict) else None
    entries = [e for e in active or [] if isinstance(e, dict)]
    names = [str(e.get("name")) for e in entries]
    default = next((e for e in entries if e.get("name") == "default"), None)
    if default is None:
        warming = doc.get("dynamicWarmingSecrets") if isinstance(doc, dict) else None
        state = (
            "is still warming"
            if any(isinstance(e, dict) and e.get("name") == "default" for e in warming or [])
            else "has not arrived yet"
        )
        have = ", ".join(names) if names else "none"
        raise CheckAbort(
            Outcome.pending(
                f"the proxy of {where} has no 'default' workload certificate: it {state}"
                f" (secrets: {have}); a freshly started proxy gets it within seconds"
            )
        )
    label = f"workload certificate of {where}"
    chain_pem = _inline_pem(default, "secret", "tlsCertificate", "certificateChain", "inlineBytes")
    if chain_pem is None:
        raise CheckAbort(
            Outcome.failed(f"the 'default' secret of {where} carries no certificate chain")
        )
    try:
        certs = pki.load_certificates(chain_pem, source=label)
    except pki.PemError as exc:
        raise CheckAbort(Outcome.failed(str(exc))) from None
    root: list[x509.Certificate] = []
    rootca = next((e for e in entries if e.get("name") == "ROOTCA"), None)
    if rootca is not None:
        root_pem = _inline_pem(rootca, "secret", "validationContext", "trustedCa", "inlineBytes")
        if root_pem:
            try:
                root = pki.load_certificates(root_pem, source=f"ROOTCA of {where}")
            except pki.PemError:
                root = []
    return ProxySecrets(Chain(certs, label), root)


def workload_identity(
    ctx: CheckContext,
    *,
    target: str,
    namespace: str | None,
    trust_domain: str,
) -> str:
    """The SPIFFE ID Istio should give ``target``, from its namespace and service account.

    ``target`` is what istioctl takes: a pod name, or ``kind/name`` such as
    ``deploy/web-api``. The object is read through the cluster client; one
    that does not exist (yet) leaves the check pending, watched.
    """
    reader = connect(ctx)
    kind, _, name = target.rpartition("/")
    ns = namespace or reader.namespace
    try:
        rt = reader.resource_type(resource=kind or "pods")
        listed = reader.named(rt, name, namespace=ns if rt.namespaced else None)
    except ClusterError as exc:
        raise abort_for(exc, ctx) from None
    if not listed.items:
        raise CheckAbort(
            Outcome.pending(
                f"{rt.kind.lower()} {name} not found in {ns}", wait=reader.waiter(listed)
            )
        )
    doc = listed.items[0]
    spec = doc.get("spec") or {}
    if rt.kind != "Pod":
        spec = ((spec.get("template") or {}).get("spec")) or {}
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    found_ns = (doc.get("metadata") or {}).get("namespace") or ns
    return pki.spiffe_id(trust_domain=trust_domain, namespace=found_ns, service_account=account)


def compare_root(
    ctx: CheckContext, secrets: ProxySecrets, *, root_ca: str, where: str
) -> str | None:
    """A problem line when the proxy's ROOTCA is not the CA in ``root_ca``."""
    expected = load_reference_certs(ctx, root_ca, what="root CA file")
    if not secrets.root:
        return f"the proxy of {where} has no ROOTCA to compare with {root_ca}"
    wanted = {pki.fingerprint(c) for c in expected}
    if not any(pki.fingerprint(c) in wanted for c in secrets.root):
        have = pki.format_name(secrets.root[0].subject) or "(empty)"
        return (
            f"ROOTCA {root_ca} expected, the proxy trusts {have}"
            f" ({pki.fingerprint(secrets.root[0])[:23]}…)"
        )
    return None
