"""The ``certificate`` verifier: PEM from files, commands and secrets, held to expectations."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any

import pytest

from labrunner.testing.fixtures import FakeClusterHandle
from labrunner.verify.outcome import Status
from labrunner.verify.registry import builtin_registry

from .conftest import Certs, Served, make_ctx, one_line, run_check


@pytest.fixture
def work(tmp_path: Path, certs: Certs) -> Path:
    """A workshop folder with the session's certificates under certs/."""
    shutil.copytree(certs.directory, tmp_path / "certs")
    return tmp_path


def check(work: Path, **params: Any) -> Any:
    return one_line(run_check("certificate", params, make_ctx(work)))


def test_server_certificate_passes_all_expectations(work: Path) -> None:
    outcome = check(
        work,
        file="certs/server.crt",
        subject="CN=istioinaction.io",
        issuer="CN=istio-workshop-ca",
        san_dns={"contains": "istioinaction.io"},
        san_ips="127.0.0.1",
        key_type="ec",
        chain_to="certs/workshop-ca.crt",
        key_matches="certs/server.key",
        expires_after="300d",
        valid_for={"about": "365d", "tolerance": "1h"},
        is_ca=False,
    )
    assert outcome.status is Status.PASSED, outcome
    assert outcome.message.startswith(
        "certs/server.crt: CN=istioinaction.io; SAN DNS:istioinaction.io"
    )
    assert "SHA-256:" in outcome.details and "chains to certs/workshop-ca.crt" in outcome.details


def test_wrong_spiffe_id_shows_expected_and_actual(work: Path) -> None:
    outcome = check(
        work,
        file="certs/web-api.crt",
        san_uris="spiffe://cluster.local/ns/istioinaction/sa/default",
    )
    assert outcome.status is Status.FAILED
    assert outcome.message == (
        "certs/web-api.crt: SAN URI spiffe://cluster.local/ns/istioinaction/sa/default expected,"
        " certificate has spiffe://cluster.local/ns/istioinaction/sa/web-api"
    )


def test_istio_style_expectations(work: Path) -> None:
    outcome = check(
        work,
        file="certs/web-api.crt",
        subject="",
        issuer="/O=cluster.local",
        san_uris=["spiffe://cluster.local/ns/istioinaction/sa/web-api"],
        san_dns={"exactly": []},
        valid_for={"about": "24h", "tolerance": "10m"},
        key_type={"type": "rsa", "min_bits": 2048},
        chain_to="certs/mesh-ca.crt",
    )
    assert outcome.status is Status.PASSED, outcome


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"issuer": "O=example.org"},
            "issuer O=example.org expected, certificate was issued by O=cluster.local",
        ),
        ({"subject": "CN=web-api"}, "subject CN=web-api expected, certificate has (empty)"),
        (
            {"key_type": {"type": "rsa", "min_bits": 3072}},
            "RSA key of at least 3072 bits expected, certificate has RSA 2048",
        ),
        ({"key_type": "ec"}, "EC key expected, certificate has RSA 2048"),
        (
            {"valid_for": "1h"},
            "lifetime of about 1h (±10m) expected, certificate is valid for 24h02m",
        ),
        ({"expires_after": "30d"}, "it should stay valid longer"),
        ({"expires_within": "1h"}, "certificate expiring within 1h expected"),
        ({"is_ca": True}, "a CA certificate expected, this one has CA:FALSE"),
        (
            {"san_dns": "web-api.istioinaction"},
            "SAN DNS web-api.istioinaction expected, certificate has no SAN DNS entries",
        ),
        (
            {"san_uris": {"not_contains": "spiffe://cluster.local/ns/istioinaction/sa/web-api"}},
            "must not be present",
        ),
        (
            {"chain_to": "certs/workshop-ca.crt"},
            "was issued by 'O=cluster.local', not by the CA 'CN=istio-workshop-ca'",
        ),
        ({"chain_to": "certs/other-ca.crt"}, "same CA name, different key"),
        ({"key_matches": "certs/frontend.key"}, "the private key does not match the certificate"),
    ],
)
def test_mismatches_fail_with_one_clear_line(
    work: Path, params: dict[str, Any], message: str
) -> None:
    outcome = check(work, file="certs/web-api.crt", **params)
    assert outcome.status is Status.FAILED
    assert message in outcome.message


def test_several_problems_are_counted_and_detailed(work: Path) -> None:
    outcome = check(work, file="certs/web-api.crt", issuer="O=x", subject="CN=y", is_ca=True)
    assert outcome.status is Status.FAILED
    assert outcome.message.endswith("(+2 more)")
    assert outcome.details.count("problem:") == 2


def test_expired_certificate(work: Path) -> None:
    outcome = check(work, file="certs/expired.crt")
    assert outcome.status is Status.FAILED
    assert "certificate expired on" in outcome.message and "ago" in outcome.message
    traced = check(
        work,
        file="certs/expired.crt",
        not_expired=False,
        expires_within="0s",
        chain_to="certs/workshop-ca.crt",
    )
    assert traced.status is Status.PASSED, traced
    assert "expired on" in traced.message


def test_certificate_without_sans(work: Path) -> None:
    outcome = check(work, file="certs/nosan.crt", san_dns="nosan.example")
    assert outcome.status is Status.FAILED
    assert "SAN DNS nosan.example expected, certificate has no SAN DNS entries" in outcome.message
    plain = check(work, file="certs/nosan.crt", subject="CN=nosan.example")
    assert plain.status is Status.PASSED


@pytest.mark.parametrize(
    ("content", "status", "message"),
    [
        (None, Status.FAILED, "certificate file certs/missing.crt does not exist"),
        (b"not a certificate at all", Status.FAILED, "holds no PEM certificate"),
        (
            b"-----BEGIN CERTIFICATE-----\nMIIBIjAN\n-----END CERTIFICATE-----\n",
            Status.FAILED,
            "not a valid certificate",
        ),
    ],
)
def test_missing_and_garbage_files(
    work: Path, content: bytes | None, status: Status, message: str
) -> None:
    if content is not None:
        (work / "certs" / "missing.crt").write_bytes(content)
    outcome = check(work, file="certs/missing.crt")
    assert outcome.status is status
    assert message in outcome.message


def test_directory_and_unreadable_ca(work: Path) -> None:
    assert check(work, file="certs").status is Status.FAILED
    (work / "bad-ca.crt").write_text("garbage")
    outcome = check(work, file="certs/server.crt", chain_to="bad-ca.crt")
    assert outcome.status is Status.ERROR
    assert "CA file bad-ca.crt" in outcome.message
    missing = check(work, file="certs/server.crt", chain_to="nope.crt")
    assert missing.status is Status.FAILED and "CA file nope.crt does not exist" in missing.message


def test_index_picks_a_certificate_of_the_chain(work: Path, certs: Certs) -> None:
    bundle = certs.issued["web-api"].cert_pem() + certs.issued["mesh-ca"].cert_pem()
    (work / "chain.pem").write_bytes(bundle)
    assert check(work, file="chain.pem", index=1, is_ca=True, subject="O=cluster.local").ok
    too_far = check(work, file="chain.pem", index=2)
    assert too_far.status is Status.FAILED and "holds 2 certificate(s)" in too_far.message


# --------------------------------------------------------------------------- command source


def test_command_output_from_real_openssl(work: Path) -> None:
    outcome = check(
        work,
        command="openssl x509 -in certs/web-api.crt -text",
        san_uris="spiffe://cluster.local/ns/istioinaction/sa/web-api",
    )
    assert outcome.status is Status.PASSED, outcome
    assert outcome.message.startswith("the output of `openssl x509 -in certs/web-api.crt -text`")


def test_command_s_client_against_a_live_server(work: Path, serve: Any) -> None:
    server: Served = serve(tls="server")
    outcome = check(
        work,
        command=(
            f"openssl s_client -connect 127.0.0.1:{server.port} -servername istioinaction.io"
            " -showcerts </dev/null 2>/dev/null"
        ),
        subject="CN=istioinaction.io",
        chain_to="certs/workshop-ca.crt",
    )
    assert outcome.status is Status.PASSED, outcome


def test_command_failures(work: Path, closed_port: int) -> None:
    refused = check(
        work,
        command=f"openssl s_client -connect 127.0.0.1:{closed_port} </dev/null",
        timeout="5s",
    )
    assert refused.status is Status.PENDING
    assert "without a certificate" in refused.message
    missing_tool = check(work, command="no-such-tool-xyz --print-cert")
    assert missing_tool.status is Status.ERROR
    assert "not found" in missing_tool.message
    silent = check(work, command="echo hello")
    assert silent.status is Status.FAILED and "holds no PEM certificate" in silent.message


def test_command_that_hangs_is_bounded(work: Path) -> None:
    ctx = make_ctx(work, budget=30)
    outcome = one_line(
        run_check("certificate", {"command": "tail -f /dev/null", "timeout": "1s"}, ctx)
    )
    assert outcome.status is Status.PENDING
    assert "did not finish in 1s" in outcome.message


# --------------------------------------------------------------------------- secret source


def _secret(certs: Certs, *, with_key: bool = True) -> dict[str, Any]:
    data = {"tls.crt": base64.b64encode(certs.crt("server").read_bytes()).decode()}
    if with_key:
        data["tls.key"] = base64.b64encode(certs.key("server").read_bytes()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": "istioinaction-cert", "namespace": "istio-system"},
        "data": data,
    }


SECRET = {"namespace": "istio-system", "name": "istioinaction-cert"}


@pytest.fixture
def cluster(fake_cluster: FakeClusterHandle) -> FakeClusterHandle:
    """The fake API server with the istio-system namespace (Secrets are read through it)."""
    fake_cluster.server.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}
    )
    return fake_cluster


def test_secret_source_with_key_match(work: Path, certs: Certs, cluster: FakeClusterHandle) -> None:
    cluster.server.apply(_secret(certs))
    ctx = make_ctx(work, env=cluster.env)
    outcome = one_line(
        run_check(
            "certificate",
            {
                "secret": SECRET,
                "san_dns": {"contains": "istioinaction.io"},
                "chain_to": "certs/workshop-ca.crt",
                "key_matches": True,
                "expires_after": "30d",
            },
            ctx,
        )
    )
    assert outcome.status is Status.PASSED, outcome
    assert outcome.message.startswith("secret istio-system/istioinaction-cert (tls.crt): ")
    reads = [r for r in cluster.server.requests() if "/secrets" in r.path]
    assert len(reads) == 2, "the certificate and the key are read through the API server"


def test_secret_source_uses_the_named_context(
    work: Path, certs: Certs, cluster: FakeClusterHandle
) -> None:
    cluster.server.apply(_secret(certs))
    assert run_check(
        "certificate",
        {"secret": SECRET},
        make_ctx(work, env=cluster.env, kube_context=cluster.context),
    ).ok
    other = run_check(
        "certificate", {"secret": SECRET}, make_ctx(work, env=cluster.env, kube_context="elsewhere")
    )
    assert other.status is Status.ERROR
    assert "kube context 'elsewhere' is not in the kubeconfig" in other.message


def test_a_missing_secret_is_pending_and_watched_in_both_verifiers(
    work: Path, certs: Certs, cluster: FakeClusterHandle
) -> None:
    """The same situation, the same outcome and words, whichever verifier meets it."""
    ctx = make_ctx(work, env=cluster.env)
    from_certificate = run_check("certificate", {"secret": SECRET}, ctx)
    from_secret = run_check("secret", dict(SECRET), ctx)
    for outcome in (from_certificate, from_secret):
        assert outcome.status is Status.PENDING, outcome
        assert outcome.message == "secret istioinaction-cert not found in istio-system"
        assert outcome.wait is not None, "a missing Secret is waited on with a watch"
    assert from_secret.wait is not None and from_certificate.wait is not None
    assert from_secret.wait(0.2) is False, "nothing changed yet"
    cluster.server.apply(_secret(certs))
    assert from_certificate.wait(10.0) is True, "the watch sees the Secret arrive"
    assert run_check("certificate", {"secret": SECRET}, ctx).ok
    assert run_check("secret", dict(SECRET), ctx).ok


def test_a_secret_without_the_key_fails_in_the_secret_verifiers_words(
    work: Path, certs: Certs, cluster: FakeClusterHandle
) -> None:
    cluster.server.apply(_secret(certs, with_key=False))
    ctx = make_ctx(work, env=cluster.env)
    outcome = one_line(run_check("certificate", {"secret": {**SECRET, "key": "ca.crt"}}, ctx))
    assert outcome.status is Status.FAILED
    expected = "secret istioinaction-cert in istio-system has no key ca.crt (keys: tls.crt)"
    assert outcome.message == expected
    same = run_check("secret", {**SECRET, "keys": ["ca.crt"]}, ctx)
    assert (same.status, same.message) == (outcome.status, outcome.message)
    no_key = one_line(run_check("certificate", {"secret": SECRET, "key_matches": True}, ctx))
    assert no_key.status is Status.FAILED and "has no key tls.key" in no_key.message


def test_secret_source_cluster_problems_are_errors(work: Path, cluster: FakeClusterHandle) -> None:
    ctx = make_ctx(work, env=cluster.env)
    cluster.server.faults.fail("list", status=403)
    forbidden = one_line(run_check("certificate", {"secret": SECRET}, ctx))
    assert forbidden.status is Status.ERROR
    assert forbidden.message.startswith("forbidden: user labrunner-learner cannot list secrets")
    cluster.server.stop()
    stopped = one_line(
        run_check("certificate", {"secret": SECRET}, make_ctx(work, env=cluster.env))
    )
    assert stopped.status is Status.ERROR
    assert stopped.message.startswith(f"cluster unreachable at {cluster.server.url}")


# --------------------------------------------------------------------------- parameters


def test_lint_catches_source_mistakes() -> None:
    spec = builtin_registry().get("certificate")
    assert spec is not None and spec.lint is not None
    assert spec.lint({"san_dns": "x"})[0].message == "give exactly one of file, secret or command"
    both = spec.lint({"file": "a", "command": "b"})
    assert "(got file, command)" in both[0].message
    assert spec.lint({"file": "a", "key_matches": True})[0].path == ("key_matches",)
    assert "ATTRIBUTE=value" in spec.lint({"file": "a", "issuer": "cluster.local"})[0].message
    assert spec.label({"secret": SECRET}) == "certificate in secret istio-system/istioinaction-cert"


def test_schema_rejects_misspelt_parameters() -> None:
    import jsonschema

    spec = builtin_registry().get("certificate")
    assert spec is not None
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"file": "a", "san_dsn": "x"}, spec.params)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"file": "a", "expires_after": "soon"}, spec.params)
    jsonschema.validate({"file": "a", "expires_after": "30d", "valid_for": "24h"}, spec.params)
