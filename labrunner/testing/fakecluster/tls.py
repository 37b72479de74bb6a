"""A throwaway CA and server certificate, generated when an HTTPS fake server starts.

kubectl sends a bearer token only over TLS and Go ignores the certificate's CN, so the server
certificate names ``IP:127.0.0.1`` and ``DNS:localhost`` as SANs and is signed by a CA that the
kubeconfig embeds. Nothing is written to the repository; ECDSA P-256 keeps generation to a few
milliseconds so every test can have its own CA. The certificates come from labrunner's own PKI
helpers, so the fake exercises the same code the workshop's ``labrunner certs`` uses.
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


def generate(hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> TlsMaterial:
    """A new CA and a server certificate for ``hosts`` (IP addresses or DNS names)."""
    lifetime = datetime.timedelta(days=2)
    ca = pki.make_ca(
        common_name="labrunner-fakecluster-ca", key_kind="ec256", valid_for=lifetime, path_length=0
    )
    server = pki.make_server_cert(
        ca,
        dns_names=[h for h in hosts if not _is_ip(h)],
        ip_addresses=[h for h in hosts if _is_ip(h)],
        common_name="kube-apiserver",
        key_kind="ec256",
        valid_for=lifetime,
    )
    return TlsMaterial(ca_pem=ca.cert_pem(), cert_pem=server.cert_pem(), key_pem=server.key_pem())
