"""The certificate toolbox: minting, loading, describing, chain checks, safe key files."""

from __future__ import annotations

import base64
import datetime as dt
import os
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
from cryptography import x509

from labrunner.pki import core as pki

from .conftest import Certs


def test_workload_certificate_looks_like_istios(certs: Certs) -> None:
    info = pki.describe(certs.issued["web-api"].cert)
    assert info.subject == ""
    assert info.issuer == "O=cluster.local"
    assert info.san_uris == ("spiffe://cluster.local/ns/istioinaction/sa/web-api",)
    assert info.san_dns == () and info.san_critical
    assert info.key_type == "rsa" and info.key_bits == 2048
    # 24 h plus the two minutes istiod back-dates NotBefore by.
    assert info.lifetime == dt.timedelta(hours=24, minutes=2)
    assert info.not_before < dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    assert not info.is_ca
    assert "clientAuth" in info.extended_key_usage and "serverAuth" in info.extended_key_usage


@pytest.mark.parametrize(
    ("kind", "key_type", "bits"),
    [("rsa2048", "rsa", 2048), ("rsa3072", "rsa", 3072), ("ec256", "ec", 256)],
)
def test_key_kinds(kind: pki.KeyKind, key_type: str, bits: int) -> None:
    ca = pki.make_ca(common_name="kinds", key_kind="ec256")
    leaf = pki.make_server_cert(ca, dns_names=["a.example"], key_kind=kind)
    info = pki.describe(leaf.cert)
    assert (info.key_type, info.key_bits) == (key_type, bits)
    assert pki.public_key_matches(leaf.cert, leaf.key)


def test_unknown_key_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown key type"):
        pki.generate_key("dsa1024")  # type: ignore[arg-type]


def test_server_and_client_certificates(certs: Certs) -> None:
    server = pki.describe(certs.issued["server"].cert)
    assert server.subject == "CN=istioinaction.io"
    assert server.san_dns == ("istioinaction.io", "localhost")
    assert server.san_ips == ("127.0.0.1",)
    assert server.extended_key_usage == ("serverAuth",)
    client = pki.make_client_cert(
        certs.issued["mesh-ca"], common_name="alice", uris=["spiffe://x/y"], key_kind="ec256"
    )
    info = pki.describe(client.cert)
    assert info.subject == "CN=alice" and info.extended_key_usage == ("clientAuth",)
    with pytest.raises(ValueError):
        pki.make_server_cert(certs.issued["mesh-ca"])
    with pytest.raises(ValueError):
        pki.make_client_cert(certs.issued["mesh-ca"])


def test_describe_lines_read_like_openssl(certs: Certs) -> None:
    text = "\n".join(pki.describe(certs.issued["frontend"].cert).lines())
    assert "subject:     (empty)" in text
    assert "URI:spiffe://cluster.local/ns/shop/sa/frontend (critical)" in text
    assert "lifetime 24h02m" in text
    fingerprint = pki.describe(certs.issued["frontend"].cert).fingerprint_sha256
    openssl = subprocess.run(
        ["openssl", "x509", "-in", str(certs.crt("frontend")), "-noout", "-fingerprint", "-sha256"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert fingerprint in openssl.stdout


def test_serial_matches_openssl(certs: Certs) -> None:
    openssl = subprocess.run(
        ["openssl", "x509", "-in", str(certs.crt("server")), "-noout", "-serial"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert (
        openssl.stdout.strip().lower()
        == "serial=" + pki.describe(certs.issued["server"].cert).serial
    )


def test_openssl_accepts_what_we_mint(certs: Certs) -> None:
    result = subprocess.run(
        ["openssl", "verify", "-CAfile", str(certs.crt("mesh-ca")), str(certs.crt("frontend"))],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    text = subprocess.run(
        ["openssl", "x509", "-in", str(certs.crt("frontend")), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "X509v3 Subject Alternative Name: critical" in text
    assert "URI:spiffe://cluster.local/ns/shop/sa/frontend" in text


# --------------------------------------------------------------------------- loading


def test_load_bundle_with_noise_crlf_and_keys(certs: Certs) -> None:
    leaf = certs.issued["frontend"]
    ca = certs.issued["mesh-ca"]
    text = (
        b"depth=0 some s_client chatter\n"
        + leaf.cert_pem().replace(b"\n", b"\r\n")
        + leaf.key_pem()
        + b"Certificate chain ends\n"
        + ca.cert_pem()
    )
    loaded = pki.load_certificates(text, source="bundle")
    assert [c.fingerprint(pki.hashes.SHA256()) for c in loaded] == [
        leaf.cert.fingerprint(pki.hashes.SHA256()),
        ca.cert.fingerprint(pki.hashes.SHA256()),
    ]


def test_load_secret_style_base64_and_der(certs: Certs) -> None:
    pem = certs.issued["server"].cert_pem()
    assert len(pki.load_certificates(base64.b64encode(pem))) == 1
    der = certs.issued["server"].cert.public_bytes(pki.serialization.Encoding.DER)
    assert len(pki.load_certificates(der)) == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "is empty"),
        (b"hello world, no certificate here", "holds no PEM certificate"),
        (
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "not a valid certificate",
        ),
        (b"-----BEGIN CERTIFICATE-----\n!!!notbase64!!!\n-----END CERTIFICATE-----\n", "base64"),
        (b"-----BEGIN CERTIFICATE-----\nMIIB\n", "no complete PEM"),
        (b"\x30\x82\x01\x00garbage", "neither PEM nor a DER"),
    ],
)
def test_garbage_pem_gives_clear_errors(data: bytes, message: str) -> None:
    with pytest.raises(pki.PemError, match=message) as caught:
        pki.load_certificates(data, source="x.pem")
    assert "x.pem" in str(caught.value)


def test_a_key_file_is_not_a_certificate(certs: Certs) -> None:
    with pytest.raises(pki.PemError, match="PRIVATE KEY data but no CERTIFICATE"):
        pki.load_certificates(certs.key("frontend").read_bytes(), source="frontend.key")


def test_private_keys_load_and_refuse_encrypted(certs: Certs) -> None:
    key = pki.load_private_key(certs.key("web-api").read_bytes())
    assert pki.public_key_matches(certs.issued["web-api"].cert, key)
    encrypted = certs.issued["frontend"].key.private_bytes(
        pki.serialization.Encoding.PEM,
        pki.serialization.PrivateFormat.PKCS8,
        pki.serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(pki.PemError, match="encrypted"):
        pki.load_private_key(encrypted, source="enc.key")
    with pytest.raises(pki.PemError, match="no PEM private key"):
        pki.load_private_key(certs.crt("frontend").read_bytes())
    assert not pki.public_key_matches(certs.issued["frontend"].cert, key)


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("O=cluster.local", True),
        ("/O=cluster.local", True),
        ("O = cluster.local", True),
        ("organizationName=cluster.local", True),
        ("O=other", False),
        ("CN=x, O=cluster.local", False),
        ("", False),
    ],
)
def test_issuer_name_matching(certs: Certs, spec: str, expected: bool) -> None:
    assert pki.name_matches(spec, certs.issued["web-api"].cert.issuer) is expected


def test_empty_spec_matches_only_an_empty_subject(certs: Certs) -> None:
    assert pki.name_matches("", certs.issued["web-api"].cert.subject)
    assert not pki.name_matches("", certs.issued["server"].cert.subject)
    with pytest.raises(ValueError, match="not ATTRIBUTE=value"):
        pki.name_matches("cluster.local", certs.issued["server"].cert.subject)


def test_format_timedelta() -> None:
    assert pki.format_timedelta(dt.timedelta(hours=24, minutes=2)) == "24h02m"
    assert pki.format_timedelta(dt.timedelta(days=3650)) == "3650d"
    assert pki.format_timedelta(dt.timedelta(minutes=-5)) == "-5m"
    assert pki.format_timedelta(dt.timedelta(seconds=7)) == "7s"
    assert pki.format_timedelta(dt.timedelta(hours=24)) == "24h"
    assert pki.format_timedelta(dt.timedelta(hours=48, minutes=2)) == "48h02m"
    assert pki.format_timedelta(dt.timedelta(days=30, hours=5)) == "30d5h"


# --------------------------------------------------------------------------- chains


@pytest.mark.parametrize("use_library", [True, False])
def test_chain_through_an_intermediate(use_library: bool) -> None:
    root = pki.make_ca(common_name="root", key_kind="ec256")
    inter = pki.make_ca(common_name="inter", issuer=root, path_length=0, key_kind="ec256")
    leaf = pki.make_workload_cert(inter, namespace="a", service_account="b", key_kind="ec256")
    path = pki.verify_chain(
        leaf.cert, anchors=[root.cert], intermediates=[inter.cert], use_library=use_library
    )
    assert [pki.format_name(c.subject) for c in path] == ["", "CN=inter", "CN=root"]
    with pytest.raises(pki.ChainError, match="issued by 'CN=inter', not by the CA 'CN=root'"):
        pki.verify_chain(leaf.cert, anchors=[root.cert], use_library=use_library)


@pytest.mark.parametrize("use_library", [True, False])
def test_chain_failures_name_the_reason(certs: Certs, use_library: bool) -> None:
    rogue = certs.issued["rogue"].cert
    with pytest.raises(pki.ChainError, match="same CA name, different key"):
        pki.verify_chain(rogue, anchors=[certs.issued["mesh-ca"].cert], use_library=use_library)
    with pytest.raises(pki.ChainError, match="expired on"):
        pki.verify_chain(
            certs.issued["expired"].cert,
            anchors=[certs.issued["workshop-ca"].cert],
            use_library=use_library,
        )
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    with pytest.raises(pki.ChainError, match="expired on"):
        pki.verify_chain(
            certs.issued["frontend"].cert,
            anchors=[certs.issued["mesh-ca"].cert],
            at=later,
            use_library=use_library,
        )
    with pytest.raises(pki.ChainError, match="self-signed and is not the CA"):
        pki.verify_chain(
            certs.issued["other-ca"].cert,
            anchors=[certs.issued["workshop-ca"].cert],
            use_library=use_library,
        )
    with pytest.raises(pki.ChainError, match="no CA certificate"):
        pki.verify_chain(rogue, anchors=[])


def test_expired_leaf_can_still_be_traced_to_its_issuer(certs: Certs) -> None:
    path = pki.verify_chain(
        certs.issued["expired"].cert,
        anchors=[certs.issued["workshop-ca"].cert],
        leaf_window=False,
    )
    assert len(path) == 2


def test_a_leaf_cannot_sign(certs: Certs) -> None:
    fake = pki.issue_certificate(
        subject=pki.build_name(common_name="child"),
        key=pki.generate_key("ec256"),
        issuer=certs.issued["server"],
    )
    with pytest.raises(pki.ChainError, match="is not a CA"):
        pki.verify_chain(
            fake.cert,
            anchors=[certs.issued["workshop-ca"].cert],
            intermediates=[certs.issued["server"].cert],
            use_library=False,
        )


def test_library_path_validation_runs_after_the_manual_pass() -> None:
    # A path-length violation passes the link-by-link checks; cryptography's
    # path validation (where this version has it) rejects it.
    from cryptography.x509 import verification

    root = pki.make_ca(common_name="root", key_kind="ec256", path_length=0)
    inter = pki.make_ca(common_name="inter", issuer=root, key_kind="ec256", path_length=None)
    leaf = pki.make_server_cert(inter, dns_names=["a.example"], key_kind="ec256")
    args = {"anchors": [root.cert], "intermediates": [inter.cert]}
    assert len(pki.verify_chain(leaf.cert, use_library=False, **args)) == 3  # type: ignore[arg-type]
    if hasattr(verification, "ExtensionPolicy"):
        with pytest.raises(pki.ChainError, match="path validation rejected"):
            pki.verify_chain(leaf.cert, **args)  # type: ignore[arg-type]


def test_the_anchor_itself_verifies(certs: Certs) -> None:
    ca = certs.issued["mesh-ca"].cert
    assert pki.verify_chain(ca, anchors=[ca]) == [ca]


# --------------------------------------------------------------------------- files


def test_keys_are_written_0600_from_the_first_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, certs: Certs
) -> None:
    modes: list[int] = []
    real_mkstemp = tempfile.mkstemp
    real_replace = os.replace

    def spy_mkstemp(*args: object, **kwargs: object) -> tuple[int, str]:
        fd, name = real_mkstemp(*args, **kwargs)  # type: ignore[call-overload]
        modes.append(stat.S_IMODE(os.fstat(fd).st_mode))
        return fd, name

    def spy_replace(src: str, dst: str) -> None:
        modes.append(stat.S_IMODE(os.stat(src).st_mode))
        assert Path(src).stat().st_size > 0  # the content is complete before the rename
        real_replace(src, dst)

    monkeypatch.setattr(tempfile, "mkstemp", spy_mkstemp)
    monkeypatch.setattr(os, "replace", spy_replace)
    old_umask = os.umask(0)  # even with a permissive umask
    try:
        pki.write_private_key(tmp_path / "deep" / "a.key", certs.issued["frontend"].key)
        pki.write_certificates(tmp_path / "deep" / "a.crt", [certs.issued["frontend"].cert])
    finally:
        os.umask(old_umask)
    assert modes == [0o600, 0o600, 0o600, 0o644]
    assert stat.S_IMODE((tmp_path / "deep" / "a.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "deep" / "a.crt").stat().st_mode) == 0o644
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["a.crt", "a.key"]


def test_failed_write_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        pki.write_atomic(tmp_path / "x.pem", b"data")
    assert list(tmp_path.iterdir()) == []


def test_certificate_objects_round_trip(certs: Certs) -> None:
    loaded = pki.load_certificates(certs.crt("payments").read_bytes())
    assert isinstance(loaded[0], x509.Certificate)
    assert pki.describe(loaded[0]) == pki.describe(certs.issued["payments"].cert)
