"""The workshop's own certificates: a root CA and the ``istioinaction.io`` server certificate.

The HTTPS-ingress lab uploads a server certificate as a Kubernetes TLS
secret and calls the gateway with ``--cacert`` pointing at the CA that signed
it. The original workshop committed those files, private keys included; we
generate them on each machine instead (``labrunner certs``) and never commit
them. Generation is idempotent: files that are still good (they parse, the
key matches, the server certificate chains to the CA, and neither expires
within 30 days) are kept, so re-running the command never invalidates a
secret a learner already created. ``force`` regenerates everything.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from labrunner.pki import core as pki

CA_COMMON_NAME = "istio-workshop-ca"
DEFAULT_HOST = "istioinaction.io"
CA_LIFETIME = dt.timedelta(days=3650)
SERVER_LIFETIME = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=30)


class CertsDirError(Exception):
    """The certificates directory cannot be created or written."""


@dataclass(frozen=True)
class FileAction:
    """One file ``ensure_workshop_certs`` wrote or kept, and why."""

    path: Path
    action: str  # "wrote" or "kept"
    note: str


@dataclass(frozen=True)
class WorkshopFiles:
    """Where the workshop's certificate files live inside the certs directory."""

    directory: Path
    host: str = DEFAULT_HOST

    @property
    def ca_cert(self) -> Path:
        """The root CA certificate (``ca/root-ca.crt``)."""
        return self.directory / "ca" / "root-ca.crt"

    @property
    def ca_key(self) -> Path:
        """The root CA private key (``ca/root-ca.key``, mode 0600)."""
        return self.directory / "ca" / "root-ca.key"

    @property
    def server_cert(self) -> Path:
        """The server certificate (``<host>.crt``)."""
        return self.directory / f"{self.host}.crt"

    @property
    def server_key(self) -> Path:
        """The server private key (``<host>.key``, mode 0600)."""
        return self.directory / f"{self.host}.key"


def _load_pair(cert_path: Path, key_path: Path) -> tuple[pki.Issued | None, str]:
    """The cert+key in two files, or None and the reason they are unusable."""
    if not cert_path.is_file() or not key_path.is_file():
        return None, "missing"
    try:
        certs = pki.load_certificates(cert_path.read_bytes(), source=str(cert_path))
        key = pki.load_private_key(key_path.read_bytes(), source=str(key_path))
    except (OSError, pki.PemError) as exc:
        return None, f"unreadable ({exc})"
    if not pki.public_key_matches(certs[0], key):
        return None, "its key does not match"
    return pki.Issued(cert=certs[0], key=key), ""


def _fresh(cert: pki.Issued, now: dt.datetime) -> str:
    if cert.cert.not_valid_after_utc < now + RENEW_BEFORE:
        return f"it expires on {cert.cert.not_valid_after_utc:%Y-%m-%d}"
    if cert.cert.not_valid_before_utc > now:
        return "it is not valid yet"
    return ""


def _ca_problem(ca: pki.Issued | None, *, reason: str, now: dt.datetime) -> str:
    if ca is None:
        return reason
    if not pki.describe(ca.cert).is_ca:
        return "it is not a CA"
    return _fresh(ca, now)


def _server_problem(
    server: pki.Issued | None, *, reason: str, ca: pki.Issued, host: str, now: dt.datetime
) -> str:
    if server is None:
        return reason
    if host not in pki.describe(server.cert).san_dns:
        return f"it has no SAN DNS:{host}"
    try:
        pki.verify_chain(server.cert, anchors=[ca.cert], at=now)
    except pki.ChainError:
        return "it is not signed by the current CA"
    return _fresh(server, now)


def _check_writable(directory: Path) -> None:
    try:
        (directory / "ca").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CertsDirError(f"cannot create {directory}: {exc.strerror or exc}") from None
    for folder in (directory, directory / "ca"):
        if not os.access(folder, os.W_OK):
            raise CertsDirError(f"{folder} is not writable")


def ensure_workshop_certs(
    directory: Path,
    *,
    force: bool = False,
    host: str = DEFAULT_HOST,
    key_kind: pki.KeyKind = "rsa2048",
    now: dt.datetime | None = None,
) -> list[FileAction]:
    """Create (or keep) the CA and the server certificate under ``directory``.

    Raises CertsDirError when the directory cannot be written.
    """
    files = WorkshopFiles(directory, host)
    when = now if now is not None else dt.datetime.now(dt.UTC)
    _check_writable(directory)
    actions: list[FileAction] = []
    ca, reason = _load_pair(files.ca_cert, files.ca_key)
    ca_problem = "--force" if force else _ca_problem(ca, reason=reason, now=when)
    try:
        if ca is None or ca_problem:
            ca = pki.make_ca(common_name=CA_COMMON_NAME, key_kind=key_kind, valid_for=CA_LIFETIME)
            actions += _write_pair(
                ca, files.ca_cert, files.ca_key, label=f"CN={CA_COMMON_NAME}", problem=ca_problem
            )
            server, server_problem = None, "the CA was replaced"
        else:
            actions += _kept_pair(ca, files.ca_cert, files.ca_key)
            server, reason = _load_pair(files.server_cert, files.server_key)
            server_problem = (
                "--force"
                if force
                else _server_problem(server, reason=reason, ca=ca, host=host, now=when)
            )
        if server is None or server_problem:
            server = pki.make_server_cert(
                ca, dns_names=[host], key_kind=key_kind, valid_for=SERVER_LIFETIME
            )
            actions += _write_pair(
                server,
                files.server_cert,
                files.server_key,
                label=f"SAN DNS:{host}",
                problem=server_problem,
            )
        else:
            actions += _kept_pair(server, files.server_cert, files.server_key)
    except OSError as exc:
        raise CertsDirError(f"cannot write to {directory}: {exc.strerror or exc}") from None
    return actions


def _write_pair(
    issued: pki.Issued, cert_path: Path, key_path: Path, *, label: str, problem: str
) -> list[FileAction]:
    pki.write_private_key(key_path, issued.key)
    pki.write_certificates(cert_path, [issued.cert])
    why = _why(problem)
    return [
        FileAction(cert_path, "wrote", f"{label}, {_until(issued)}{why}"),
        FileAction(key_path, "wrote", f"private key, mode 0600{why}"),
    ]


def _kept_pair(issued: pki.Issued, cert_path: Path, key_path: Path) -> list[FileAction]:
    return [
        FileAction(cert_path, "kept", _until(issued)),
        FileAction(key_path, "kept", "private key"),
    ]


def _until(issued: pki.Issued) -> str:
    return f"valid until {issued.cert.not_valid_after_utc:%Y-%m-%d}"


def _why(problem: str) -> str:
    if not problem or problem == "missing":
        return ""
    return " (forced)" if problem == "--force" else f" (previous one: {problem})"


def format_actions(actions: Iterable[FileAction], *, relative_to: Path | None = None) -> list[str]:
    """One line per file: ``wrote certs/ca/root-ca.crt  CN=..., valid until ...``."""
    lines = []
    for item in actions:
        shown = item.path
        if relative_to is not None:
            try:
                shown = item.path.resolve().relative_to(relative_to.resolve())
            except ValueError:
                shown = item.path
        lines.append(f"{item.action:<5} {shown}  {item.note}")
    return lines
