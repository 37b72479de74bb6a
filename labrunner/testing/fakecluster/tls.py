"""A throwaway CA and server certificate, generated when an HTTPS fake server starts.

kubectl sends a bearer token only over TLS and Go ignores the certificate's CN, so the server
certificate names ``IP:127.0.0.1`` and ``DNS:localhost`` as SANs and is signed by a CA that the
kubeconfig embeds. Nothing is written to the repository; ECDSA P-256 keeps generation to a few
milliseconds so every test can have its own CA. The certificates come from labrunner's own PKI
helpers, so the fake exercises the same code the workshop's ``labrunner certs`` uses.

For the fault tests a server can instead present a certificate that is wrong in one named way
(signed by an untrusted CA, expired, or for another name) while kubeconfigs keep trusting the
proper CA, so the client's error names exactly that cause.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass

from labrunner.pki import core as pki


@dataclass(frozen=True)
class TlsMaterial:
    """PEM-encoded CA certificate, server certificate and server key."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


TLS_FAULTS = ("untrusted", "expired", "wrong-name")
"""Ways a server certificate can be wrong: signed by a CA the client does not trust, expired,
or issued for another name."""

WRONG_NAME = "wrong-name.invalid"


def generate(
    hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), fault: str | None = None
) -> TlsMaterial:
    """A new CA and a server certificate for ``hosts`` (IP addresses or DNS names).

    ``ca_pem`` is always the CA a client should trust. With a ``fault`` the server certificate
    is wrong in that one way: ``untrusted`` (signed by another CA), ``expired`` (its validity
    ended a day ago) or ``wrong-name`` (issued for ``wrong-name.invalid`` only).
    """
    if fault is not None and fault not in TLS_FAULTS:
        raise ValueError(f"unknown TLS fault {fault!r}; choose one of {', '.join(TLS_FAULTS)}")
    lifetime = datetime.timedelta(days=2)
    ca = pki.make_ca(
        common_name="labrunner-fakecluster-ca", key_kind="ec256", valid_for=lifetime, path_length=0
    )
    signer = ca
    if fault == "untrusted":
        signer = pki.make_ca(
            common_name="labrunner-fakecluster-other-ca",
            key_kind="ec256",
            valid_for=lifetime,
            path_length=0,
        )
    names = (WRONG_NAME,) if fault == "wrong-name" else hosts
    not_before = None
    valid_for = lifetime
    if fault == "expired":
        not_before = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=3)
        valid_for = datetime.timedelta(days=2)
        signer = pki.make_ca(
            common_name="labrunner-fakecluster-ca",
            key_kind="ec256",
            valid_for=datetime.timedelta(days=10),
            path_length=0,
            not_before=not_before,
        )
        ca = signer
    server = pki.make_server_cert(
        signer,
        dns_names=[h for h in names if not _is_ip(h)],
        ip_addresses=[h for h in names if _is_ip(h)],
        common_name="kube-apiserver",
        key_kind="ec256",
        valid_for=valid_for,
        not_before=not_before,
    )
    return TlsMaterial(ca_pem=ca.cert_pem(), cert_pem=server.cert_pem(), key_pem=server.key_pem())


def client_ca() -> pki.Issued:
    """A CA for the client certificates an HTTPS fake server accepts."""
    return pki.make_ca(
        common_name="labrunner-fakecluster-client-ca",
        key_kind="ec256",
        valid_for=datetime.timedelta(days=2),
        path_length=0,
    )


def client_cert(ca: pki.Issued, user: str, group: str | None = None) -> tuple[bytes, bytes]:
    """A client certificate for ``user`` (CN) in ``group`` (O), signed by ``ca``: (cert, key)."""
    issued = pki.issue_certificate(
        subject=pki.build_name(common_name=user, organization=group),
        key=pki.generate_key("ec256"),
        issuer=ca,
        valid_for=datetime.timedelta(days=1),
        client_auth=True,
    )
    return issued.cert_pem(), issued.key_pem()
