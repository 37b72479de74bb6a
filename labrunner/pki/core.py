"""A small certificate toolbox: mint, load, describe and check X.509 certificates.

The workshop needs certificates in three places: ``labrunner certs`` writes the
CA and the ``istioinaction.io`` server certificate the HTTPS-ingress lab uploads
as a secret; the verifiers read certificates back (from files, secrets, command
output or an Envoy's SDS dump) and compare them with what a lab expects; and
the tests mint realistic ones, including Istio-style workload certificates
(empty subject, a critical SAN holding only a SPIFFE URI, issuer
``O=<trust domain>``, 24 h validity back-dated two minutes), so the verifiers
are exercised on the same shapes they meet in a real mesh.

Everything here works on ``cryptography`` objects and plain data, never on
learner-facing strings; the callers turn results into outcomes. Private keys
are written atomically and are created with mode 0600 from the first byte, so
they are never readable by others, not even for an instant.

This module imports ``cryptography`` at the top, so import it lazily (inside
functions) from anything on the CLI's start-up path.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from labrunner.fsutil import write_atomic
from labrunner.pki.names import parse_name_spec

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
KeyKind = Literal["rsa2048", "rsa3072", "ec256"]
KEY_KINDS: tuple[KeyKind, ...] = ("rsa2048", "rsa3072", "ec256")

ISTIO_BACKDATE = dt.timedelta(minutes=2)
"""How far istiod back-dates a workload certificate's NotBefore (clock skew grace)."""
SKEW = dt.timedelta(minutes=5)
"""How far other certificates are back-dated, so a slightly slow clock still accepts them."""

_MAX_CHAIN_DEPTH = 8


class PemError(ValueError):
    """Data that should hold PEM certificates or a key does not."""


class ChainError(ValueError):
    """A certificate does not chain to the given CA; the message says why."""


# --------------------------------------------------------------------------- minting


@dataclass(frozen=True)
class Issued:
    """A certificate together with its private key."""

    cert: x509.Certificate
    key: PrivateKey

    def cert_pem(self) -> bytes:
        """The certificate as PEM."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM."""
        return private_key_pem(self.key)


def private_key_pem(key: PrivateKey) -> bytes:
    """``key`` as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def generate_key(kind: KeyKind = "rsa2048") -> PrivateKey:
    """A fresh private key: RSA 2048/3072 or ECDSA P-256."""
    if kind == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "rsa3072":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    if kind == "ec256":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unknown key type {kind!r}; use one of {', '.join(KEY_KINDS)}")


def spiffe_id(*, trust_domain: str, namespace: str, service_account: str) -> str:
    """The SPIFFE ID Istio gives a workload: spiffe://<td>/ns/<ns>/sa/<sa>."""
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def build_name(*, common_name: str | None = None, organization: str | None = None) -> x509.Name:
    """An X.509 name from the usual two attributes (either may be absent)."""
    attrs = []
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    if common_name:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _san_names(
    *, dns_names: Iterable[str], uris: Iterable[str], ip_addresses: Iterable[str]
) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    names += [x509.UniformResourceIdentifier(u) for u in uris]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ip_addresses]
    return names


def issue_certificate(
    *,
    subject: x509.Name,
    key: PrivateKey,
    issuer: Issued | None = None,
    not_before: dt.datetime | None = None,
    valid_for: dt.timedelta = dt.timedelta(days=365),
    is_ca: bool = False,
    path_length: int | None = None,
    dns_names: Sequence[str] = (),
    uris: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    san_critical: bool | None = None,
    server_auth: bool = False,
    client_auth: bool = False,
) -> Issued:
    """Sign a certificate for ``key``; self-signed when ``issuer`` is None.

    The general builder behind the named helpers; tests use it directly for
    unusual shapes (no SANs, already expired). NotBefore defaults to
    ``SKEW`` ago.
    """
    start = not_before if not_before is not None else _now() - SKEW
    issuer_name = issuer.cert.subject if issuer is not None else subject
    signing_key = issuer.key if issuer is not None else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + valid_for)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=path_length), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    if is_ca:
        usage = x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        )
    else:
        usage = x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=isinstance(key, rsa.RSAPrivateKey),
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=False,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        )
    builder = builder.add_extension(usage, critical=True)
    purposes = []
    if server_auth:
        purposes.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client_auth:
        purposes.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    if purposes:
        builder = builder.add_extension(x509.ExtendedKeyUsage(purposes), critical=False)
    names = _san_names(dns_names=dns_names, uris=uris, ip_addresses=ip_addresses)
    if names:
        # RFC 5280: the SAN must be critical when the subject is empty.
        critical = san_critical if san_critical is not None else len(subject) == 0
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=critical)
    cert = builder.sign(signing_key, hashes.SHA256())
    return Issued(cert=cert, key=key)


def make_ca(
    *,
    common_name: str | None = None,
    organization: str | None = None,
    issuer: Issued | None = None,
    key_kind: KeyKind = "rsa2048",
    valid_for: dt.timedelta = dt.timedelta(days=3650),
    path_length: int | None = 1,
    not_before: dt.datetime | None = None,
) -> Issued:
    """A root CA (self-signed), or an intermediate CA when ``issuer`` is given."""
    if not common_name and not organization:
        raise ValueError("a CA needs a common name or an organization")
    return issue_certificate(
        subject=build_name(common_name=common_name, organization=organization),
        key=generate_key(key_kind),
        issuer=issuer,
        not_before=not_before,
        valid_for=valid_for,
        is_ca=True,
        path_length=path_length,
    )


def make_mesh_ca(*, trust_domain: str = "cluster.local", key_kind: KeyKind = "rsa2048") -> Issued:
    """A CA shaped like istiod's self-signed root: subject ``O=<trust domain>``, 10 years."""
    return make_ca(organization=trust_domain, key_kind=key_kind, path_length=None)


def make_server_cert(
    issuer: Issued,
    *,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    common_name: str | None = None,
    key_kind: KeyKind = "rsa2048",
    valid_for: dt.timedelta = dt.timedelta(days=365),
    not_before: dt.datetime | None = None,
) -> Issued:
    """A TLS server certificate (serverAuth) for the given names and addresses."""
    if not dns_names and not ip_addresses:
        raise ValueError("a server certificate needs at least one DNS name or IP address")
    cn = common_name if common_name is not None else (dns_names[0] if dns_names else None)
    return issue_certificate(
        subject=build_name(common_name=cn),
        key=generate_key(key_kind),
        issuer=issuer,
        not_before=not_before,
        valid_for=valid_for,
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        server_auth=True,
    )


def make_workload_cert(
    issuer: Issued,
    *,
    namespace: str,
    service_account: str,
    trust_domain: str = "cluster.local",
    key_kind: KeyKind = "rsa2048",
    valid_for: dt.timedelta = dt.timedelta(hours=24),
    backdate: dt.timedelta = ISTIO_BACKDATE,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    now: dt.datetime | None = None,
) -> Issued:
    """A mesh workload certificate as istiod issues it: SPIFFE URI SAN, empty subject.

    NotBefore is back-dated by ``backdate`` and the lifetime counts from the
    real issue time, so the certificate spans ``valid_for + backdate``, as
    Istio's do (about 24h02m).
    """
    issued_at = now if now is not None else _now()
    return issue_certificate(
        subject=x509.Name([]),
        key=generate_key(key_kind),
        issuer=issuer,
        not_before=issued_at - backdate,
        valid_for=valid_for + backdate,
        uris=[
            spiffe_id(
                trust_domain=trust_domain, namespace=namespace, service_account=service_account
            )
        ],
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        server_auth=True,
        client_auth=True,
    )


def make_client_cert(
    issuer: Issued,
    *,
    common_name: str | None = None,
    uris: Sequence[str] = (),
    dns_names: Sequence[str] = (),
    key_kind: KeyKind = "rsa2048",
    valid_for: dt.timedelta = dt.timedelta(days=30),
    not_before: dt.datetime | None = None,
) -> Issued:
    """A TLS client certificate (clientAuth), named by CN and/or SAN URIs."""
    if not common_name and not uris and not dns_names:
        raise ValueError("a client certificate needs a common name or a SAN")
    return issue_certificate(
        subject=build_name(common_name=common_name),
        key=generate_key(key_kind),
        issuer=issuer,
        not_before=not_before,
        valid_for=valid_for,
        uris=uris,
        dns_names=dns_names,
        client_auth=True,
    )


# --------------------------------------------------------------------------- loading

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)
_CERT_LABELS = {b"CERTIFICATE", b"X509 CERTIFICATE"}
_B64_ONLY = re.compile(rb"^[A-Za-z0-9+/=\s]+$")


def _as_bytes(data: bytes | str) -> bytes:
    return data.encode("utf-8", "replace") if isinstance(data, str) else data


def pem_blocks(data: bytes | str, *, source: str = "the input") -> list[tuple[str, bytes]]:
    """Every PEM block in ``data`` as (label, DER), tolerant of CRLF and stray text."""
    raw = _as_bytes(data).replace(b"\r", b"")
    blocks: list[tuple[str, bytes]] = []
    for match in _PEM_BLOCK.finditer(raw):
        label = match.group(1).decode("ascii")
        body_lines = [
            line.strip()
            for line in match.group(2).split(b"\n")
            if line.strip() and b":" not in line  # skip RFC 1421 headers
        ]
        try:
            der = base64.b64decode(b"".join(body_lines), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise PemError(f"a {label} block in {source} is not valid base64 ({exc})") from exc
        blocks.append((label, der))
    return blocks


def _maybe_base64_pem(raw: bytes) -> bytes | None:
    """PEM that was base64-encoded once more (Kubernetes secret data), if that is what this is."""
    compact = raw.strip()
    if not compact or not _B64_ONLY.match(compact):
        return None
    try:
        decoded = base64.b64decode(b"".join(compact.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    return decoded if b"-----BEGIN " in decoded else None


def load_certificates(data: bytes | str, *, source: str = "the input") -> list[x509.Certificate]:
    """All certificates in a PEM bundle (or one DER certificate), in order.

    Accepts CRLF line ends, text around the blocks (``openssl x509 -text``
    output, ``s_client`` chatter), interleaved key blocks, and PEM that was
    base64-encoded again as Kubernetes secret data is. Raises PemError with a
    message that names ``source`` and never echoes the data.
    """
    raw = _as_bytes(data)
    if not raw.strip():
        raise PemError(f"{source} is empty")
    if b"-----BEGIN " not in raw:
        nested = _maybe_base64_pem(raw)
        if nested is not None:
            return load_certificates(nested, source=source)
        if raw[:1] == b"\x30":
            try:
                return [x509.load_der_x509_certificate(raw)]
            except ValueError as exc:
                raise PemError(f"{source} is neither PEM nor a DER certificate ({exc})") from exc
        raise PemError(f"{source} holds no PEM certificate (no -----BEGIN CERTIFICATE----- line)")
    blocks = pem_blocks(raw, source=source)
    certs: list[x509.Certificate] = []
    other: list[str] = []
    for index, (label, der) in enumerate(blocks, start=1):
        if label.encode() not in _CERT_LABELS:
            other.append(label)
            continue
        try:
            certs.append(x509.load_der_x509_certificate(der))
        except ValueError as exc:
            raise PemError(
                f"PEM block {index} in {source} is not a valid certificate ({exc})"
            ) from exc
    if not certs:
        if other:
            raise PemError(
                f"{source} holds {', '.join(sorted(set(other)))} data but no CERTIFICATE block"
            )
        raise PemError(f"{source} holds no complete PEM certificate block")
    return certs


def load_private_key(data: bytes | str, *, source: str = "the input") -> PrivateKey:
    """The first private key in PEM ``data`` (PKCS#8, PKCS#1 or SEC1, unencrypted)."""
    raw = _as_bytes(data)
    if b"-----BEGIN " not in raw:
        nested = _maybe_base64_pem(raw)
        if nested is not None:
            raw = nested
    for label, _der in pem_blocks(raw, source=source):
        if not label.endswith("PRIVATE KEY"):
            continue
        if "ENCRYPTED" in label:
            raise PemError(
                f"the private key in {source} is encrypted; labrunner needs it unencrypted"
            )
        block = re.search(
            rb"-----BEGIN " + label.encode() + rb"-----.*?-----END " + label.encode() + rb"-----",
            raw.replace(b"\r", b""),
            re.DOTALL,
        )
        assert block is not None
        try:
            key = serialization.load_pem_private_key(block.group(0), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise PemError(f"the private key in {source} cannot be read ({exc})") from exc
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise PemError(f"the private key in {source} is {type(key).__name__}; use RSA or ECDSA")
        return key
    raise PemError(f"{source} holds no PEM private key")


# --------------------------------------------------------------------------- describing

_SHORT_NAMES: dict[x509.ObjectIdentifier, str] = {
    NameOID.COMMON_NAME: "CN",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STREET_ADDRESS: "STREET",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.USER_ID: "UID",
    NameOID.EMAIL_ADDRESS: "EMAILADDRESS",
    NameOID.SERIAL_NUMBER: "SERIALNUMBER",
}


def name_attributes(name: x509.Name) -> list[tuple[str, str]]:
    """(short attribute name, value) pairs of ``name``, most general first."""
    pairs = []
    for attr in name:
        key = _SHORT_NAMES.get(attr.oid, attr.oid.dotted_string)
        value = attr.value if isinstance(attr.value, str) else attr.value.hex()
        pairs.append((key, value))
    return pairs


def format_name(name: x509.Name) -> str:
    """A readable one-line form like ``CN=web, O=cluster.local``; "" when empty."""
    return ", ".join(f"{k}={v}" for k, v in reversed(name_attributes(name)))


def name_matches(spec: str, name: x509.Name) -> bool:
    """True when every attribute in ``spec`` is in ``name`` (order-insensitive).

    An empty ``spec`` matches only an empty name, which is what Istio puts in
    a workload certificate's subject.
    """
    wanted = parse_name_spec(spec)
    actual = name_attributes(name)
    if not wanted:
        return not actual
    return all(pair in actual for pair in wanted)


@dataclass(frozen=True)
class CertInfo:
    """What a learner (or a check) wants to know about one certificate."""

    subject: str
    issuer: str
    san_dns: tuple[str, ...]
    san_uris: tuple[str, ...]
    san_ips: tuple[str, ...]
    san_critical: bool
    key_type: str
    key_bits: int
    curve: str | None
    not_before: dt.datetime
    not_after: dt.datetime
    serial: str
    fingerprint_sha256: str
    is_ca: bool
    self_signed: bool
    extended_key_usage: tuple[str, ...]

    @property
    def lifetime(self) -> dt.timedelta:
        """NotAfter minus NotBefore."""
        return self.not_after - self.not_before

    @property
    def key_label(self) -> str:
        """``RSA 2048`` or ``EC P-256 (secp256r1)``."""
        if self.key_type == "ec":
            return f"EC {self.key_bits} ({self.curve})"
        return f"{self.key_type.upper()} {self.key_bits}"

    def lines(self) -> list[str]:
        """A multi-line, openssl-like summary for check details."""
        sans = [f"DNS:{d}" for d in self.san_dns]
        sans += [f"URI:{u}" for u in self.san_uris]
        sans += [f"IP:{i}" for i in self.san_ips]
        return [
            f"subject:     {self.subject or '(empty)'}",
            f"issuer:      {self.issuer or '(empty)'}",
            f"SAN:         {', '.join(sans) or '(none)'}"
            + (" (critical)" if sans and self.san_critical else ""),
            f"key:         {self.key_label}",
            f"not before:  {self.not_before:%Y-%m-%d %H:%M:%S} UTC",
            f"not after:   {self.not_after:%Y-%m-%d %H:%M:%S} UTC"
            f" (lifetime {format_timedelta(self.lifetime)})",
            f"CA:          {'yes' if self.is_ca else 'no'}"
            + (", self-signed" if self.self_signed else ""),
            f"serial:      {self.serial}",
            f"SHA-256:     {self.fingerprint_sha256}",
        ]


def format_timedelta(delta: dt.timedelta) -> str:
    """``24h``, ``24h02m``, ``3650d``, ``-5m``: compact, and exact to the minute."""
    total = int(delta.total_seconds())
    sign = "-" if total < 0 else ""
    total = abs(total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days >= 3:
        text = f"{days}d"
        if hours or minutes:
            text += f"{hours}h" + (f"{minutes:02d}m" if minutes else "")
        return sign + text
    hours += days * 24
    if hours:
        return f"{sign}{hours}h" + (f"{minutes:02d}m" if minutes else "")
    if minutes:
        return f"{sign}{minutes}m" + (f"{seconds:02d}s" if seconds else "")
    return f"{sign}{seconds}s"


def describe_key(public_key: object) -> tuple[str, int, str | None]:
    """(type, bits, curve) of a public key, e.g. ``("ec", 256, "secp256r1")``."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return "rsa", public_key.key_size, None
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return "ec", public_key.curve.key_size, public_key.curve.name
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "ed25519", 256, None
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "ed448", 456, None
    if isinstance(public_key, dsa.DSAPublicKey):
        return "dsa", public_key.key_size, None
    return type(public_key).__name__.lower(), 0, None


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint as colon-separated upper-case hex, like openssl prints it."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def describe(cert: x509.Certificate) -> CertInfo:
    """The facts of ``cert`` as plain data."""
    try:
        san_ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        san = san_ext.value
        san_dns = tuple(san.get_values_for_type(x509.DNSName))
        san_uris = tuple(san.get_values_for_type(x509.UniformResourceIdentifier))
        san_ips = tuple(str(i) for i in san.get_values_for_type(x509.IPAddress))
        san_critical = san_ext.critical
    except x509.ExtensionNotFound:
        san_dns = san_uris = san_ips = ()
        san_critical = False
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    try:
        eku = tuple(
            getattr(oid, "_name", oid.dotted_string)
            for oid in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        )
    except x509.ExtensionNotFound:
        eku = ()
    key_type, bits, curve = describe_key(cert.public_key())
    serial = f"{cert.serial_number:x}"
    return CertInfo(
        subject=format_name(cert.subject),
        issuer=format_name(cert.issuer),
        san_dns=san_dns,
        san_uris=san_uris,
        san_ips=san_ips,
        san_critical=san_critical,
        key_type=key_type,
        key_bits=bits,
        curve=curve,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        serial=(len(serial) % 2) * "0" + serial,
        fingerprint_sha256=fingerprint(cert),
        is_ca=is_ca,
        self_signed=cert.issuer == cert.subject,
        extended_key_usage=eku,
    )


def public_key_matches(cert: x509.Certificate, key: PrivateKey) -> bool:
    """True when ``key`` is the private half of ``cert``'s public key."""
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return cert.public_key().public_bytes(der, spki) == key.public_key().public_bytes(der, spki)


# --------------------------------------------------------------------------- chains


def _label(cert: x509.Certificate, leaf: x509.Certificate) -> str:
    name = format_name(cert.subject)
    who = f"'{name}'" if name else "with an empty subject"
    return f"the certificate {who}" if cert is leaf else f"the CA '{name or '(empty)'}'"


def _check_window(cert: x509.Certificate, *, leaf: x509.Certificate, at: dt.datetime) -> None:
    if at < cert.not_valid_before_utc:
        raise ChainError(
            f"{_label(cert, leaf)} is not valid before"
            f" {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        )
    if at >= cert.not_valid_after_utc:
        raise ChainError(
            f"{_label(cert, leaf)} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        )


def _check_can_sign(ca: x509.Certificate, leaf: x509.Certificate) -> None:
    try:
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        if ca.issuer == ca.subject:
            return  # an old v1 self-signed root: accept it as a trust anchor
        raise ChainError(
            f"{_label(ca, leaf)} has no basicConstraints, so it may not sign"
        ) from None
    if not constraints.ca:
        raise ChainError(f"{_label(ca, leaf)} is not a CA (basicConstraints CA:FALSE)")


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _manual_path(
    leaf: x509.Certificate,
    *,
    anchors: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate],
    at: dt.datetime,
    leaf_window: bool = True,
) -> list[x509.Certificate]:
    anchor_prints = {a.fingerprint(hashes.SHA256()) for a in anchors}
    path = [leaf]
    current = leaf
    for _depth in range(_MAX_CHAIN_DEPTH):
        if current is not leaf or leaf_window:
            _check_window(current, leaf=leaf, at=at)
        if current.fingerprint(hashes.SHA256()) in anchor_prints:
            return path
        same_name = [a for a in anchors if a.subject == current.issuer]
        for anchor in same_name:
            if _signed_by(current, anchor):
                _check_can_sign(anchor, leaf)
                _check_window(anchor, leaf=leaf, at=at)
                return [*path, anchor]
        candidates = [i for i in intermediates if i.subject == current.issuer and i not in path]
        for inter in candidates:
            if _signed_by(current, inter):
                _check_can_sign(inter, leaf)
                path.append(inter)
                current = inter
                break
        else:
            issuer = format_name(current.issuer) or "(empty)"
            if same_name or candidates:
                raise ChainError(
                    f"the signature on {_label(current, leaf)} does not verify with the key of"
                    f" '{issuer}': same CA name, different key (was the CA re-created after"
                    " the certificate was issued?)"
                )
            expected = ", ".join(f"'{format_name(a.subject) or '(empty)'}'" for a in anchors)
            if current.issuer == current.subject:
                raise ChainError(
                    f"{_label(current, leaf)} is self-signed and is not the CA {expected}"
                )
            raise ChainError(
                f"{_label(current, leaf)} was issued by '{issuer}', not by the CA {expected}"
                + (" (an intermediate may be missing)" if current is leaf else "")
            )
    raise ChainError(f"the chain is longer than {_MAX_CHAIN_DEPTH} certificates")


def _library_check(
    leaf: x509.Certificate,
    *,
    anchors: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate],
    at: dt.datetime,
) -> None:
    """Path validation by cryptography's verifier, when this version has the policy API."""
    try:
        # lazy: the verification module loads only for a library-level chain check
        from cryptography.x509 import verification as v
    except ImportError:
        return
    if not hasattr(v, "ExtensionPolicy"):
        return

    def must_be_ca(_policy: object, _cert: x509.Certificate, ext: object) -> None:
        if not isinstance(ext, x509.BasicConstraints) or not ext.ca:
            raise ValueError("basicConstraints does not say CA:TRUE")

    ca_policy = v.ExtensionPolicy.permit_all().require_present(
        x509.BasicConstraints, v.Criticality.AGNOSTIC, must_be_ca
    )
    verifier = (
        v.PolicyBuilder()
        .store(v.Store(list(anchors)))
        .time(at)
        .max_chain_depth(_MAX_CHAIN_DEPTH)
        .extension_policies(ca_policy=ca_policy, ee_policy=v.ExtensionPolicy.permit_all())
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, list(intermediates))
    except v.VerificationError as exc:
        raise ChainError(f"path validation rejected the chain: {exc}") from exc


def verify_chain(
    leaf: x509.Certificate,
    *,
    anchors: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate] = (),
    at: dt.datetime | None = None,
    use_library: bool = True,
    leaf_window: bool = True,
) -> list[x509.Certificate]:
    """The path from ``leaf`` to one of ``anchors``; raises ChainError saying why not.

    Checks names, signatures, CA flags and validity windows link by link
    (``verify_directly_issued_by``), which gives learner-readable reasons;
    then, when the installed ``cryptography`` has the verification policy API,
    runs its full path validation too (signature algorithms, key sizes, path
    length). ``use_library=False`` keeps to the first part. With
    ``leaf_window=False`` the leaf's own dates are not checked (to ask "who
    signed this expired certificate?"); the library pass is then skipped.
    """
    if not anchors:
        raise ChainError("no CA certificate to verify against")
    when = at if at is not None else _now()
    path = _manual_path(
        leaf, anchors=anchors, intermediates=intermediates, at=when, leaf_window=leaf_window
    )
    if use_library and leaf_window and len(path) > 1:
        _library_check(leaf, anchors=anchors, intermediates=intermediates, at=when)
    return path


# --------------------------------------------------------------------------- files


def write_private_key(path: Path, key: PrivateKey) -> None:
    """Write ``key`` as PKCS#8 PEM with mode 0600, atomically."""
    write_atomic(path, private_key_pem(key), mode=0o600)


def write_certificates(path: Path, certs: Sequence[x509.Certificate]) -> None:
    """Write ``certs`` as a PEM bundle (mode 0644), atomically."""
    write_atomic(
        path, b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs), mode=0o644
    )
