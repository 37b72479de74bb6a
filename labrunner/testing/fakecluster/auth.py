"""Who is asking: bearer tokens mapped to users and ServiceAccounts, as an apiserver authenticates.

A class of learners, each with a join file holding a token for their own ServiceAccount, only
proves something if the fake tells those tokens apart. So a token resolves to an
:class:`Identity` (user name, groups, uid): the server's admin token to ``kubernetes-admin`` (in
kind's ``kubeadm:cluster-admins`` group, always allowed); tokens a test registers to any user and
groups; and tokens the TokenRequest API issues, which name ``system:serviceaccount:NS:NAME`` and
stop working when they expire or when their ServiceAccount is deleted (the token is bound to the
account's uid, so a recreated account with the same name does not revive it).

Anything else in an ``Authorization`` header is rejected with 401 whenever the server checks
credentials (it has an admin token, or RBAC is on); an open server keeps treating unknown tokens
as the admin, which is what the fake did before identities existed.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

JsonDict = dict[str, Any]

ADMIN_USER = "kubernetes-admin"
ADMIN_GROUPS = ("kubeadm:cluster-admins", "system:authenticated")
ANONYMOUS = "system:anonymous"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
MASTERS = "system:masters"
SA_PREFIX = "system:serviceaccount:"
ISSUER = "https://kubernetes.default.svc.cluster.local"
MIN_TOKEN_SECONDS = 600
MAX_TOKEN_SECONDS = 1 << 32


@dataclass(frozen=True)
class Identity:
    """An authenticated (or anonymous) requester, as RBAC sees it."""

    user: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    admin: bool = False

    @property
    def service_account(self) -> tuple[str, str] | None:
        """``(namespace, name)`` when this is a ServiceAccount, else None."""
        if not self.user.startswith(SA_PREFIX):
            return None
        namespace, _, name = self.user[len(SA_PREFIX) :].partition(":")
        return (namespace, name) if namespace and name else None

    def user_info(self) -> JsonDict:
        """The ``userInfo`` block of a SelfSubjectReview or TokenReview."""
        info: JsonDict = {"username": self.user, "groups": list(self.groups)}
        if self.uid:
            info["uid"] = self.uid
        return info


ADMIN = Identity(ADMIN_USER, ADMIN_GROUPS, admin=True)
ANONYMOUS_IDENTITY = Identity(ANONYMOUS, (UNAUTHENTICATED,))


def service_account_identity(namespace: str, name: str, uid: str = "") -> Identity:
    """The identity a ServiceAccount's token carries."""
    return Identity(
        f"{SA_PREFIX}{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED),
        uid,
    )


def identity_for(user: str, groups: tuple[str, ...] = (), uid: str = "") -> Identity:
    """An identity for ``user``: ServiceAccount groups for SA names, ``system:authenticated``."""
    if user.startswith(SA_PREFIX):
        namespace, _, name = user[len(SA_PREFIX) :].partition(":")
        base = service_account_identity(namespace, name, uid)
        extra = tuple(g for g in groups if g not in base.groups)
        return Identity(base.user, base.groups + extra, uid)
    full = tuple(groups) + (() if AUTHENTICATED in groups else (AUTHENTICATED,))
    return Identity(user, full, uid, admin=MASTERS in full)


@dataclass
class IssuedToken:
    """A token the TokenRequest API handed out."""

    namespace: str
    name: str
    uid: str
    audiences: list[str]
    issued: float
    expires: float
    revoked: bool = False


@dataclass
class TokenCheck:
    """The verdict on one bearer token: an identity, or why it is refused."""

    identity: Identity | None = None
    known: bool = False
    problem: str = ""


def _b64(data: JsonDict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def rfc3339(epoch: float) -> str:
    """An epoch time as the API writes timestamps."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Tokens:
    """The tokens one server accepts (thread-safe)."""

    _static: dict[str, Identity] = field(default_factory=dict)
    _issued: dict[str, IssuedToken] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, token: str, identity: Identity) -> str:
        """Accept ``token`` as ``identity`` from now on."""
        with self._lock:
            self._static[token] = identity
        return token

    def remove(self, token: str) -> None:
        """Stop accepting a registered or issued token."""
        with self._lock:
            self._static.pop(token, None)
            issued = self._issued.get(token)
            if issued is not None:
                issued.revoked = True

    def issue(
        self, namespace: str, name: str, uid: str, audiences: list[str], seconds: int
    ) -> tuple[str, IssuedToken]:
        """A JWT-shaped token for a ServiceAccount (unsigned, but decodable like a real one)."""
        issued_at = time.time()
        whole = int(issued_at)
        header = {"alg": "RS256", "kid": "fakecluster"}
        claims = {
            "aud": audiences,
            "exp": whole + seconds,
            "iat": whole,
            "iss": ISSUER,
            "jti": secrets.token_hex(16),
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}},
            "nbf": whole,
            "sub": f"{SA_PREFIX}{namespace}:{name}",
        }
        signature = base64.urlsafe_b64encode(secrets.token_bytes(64)).decode().rstrip("=")
        token = f"{_b64(header)}.{_b64(claims)}.{signature}"
        record = IssuedToken(namespace, name, uid, audiences, issued_at, float(whole + seconds))
        with self._lock:
            self._issued[token] = record
        return token, record

    def expire(self, token: str) -> None:
        """Make an issued token expire now (tokens live at least 10 minutes otherwise)."""
        with self._lock:
            record = self._issued.get(token)
            if record is None:
                raise KeyError("not a token this server issued")
            record.expires = time.time() - 1

    def revoke_account(self, namespace: str, name: str) -> int:
        """Revoke every token issued for one ServiceAccount; how many there were."""
        with self._lock:
            hits = [t for t in self._issued.values() if (t.namespace, t.name) == (namespace, name)]
            for record in hits:
                record.revoked = True
            return len(hits)

    def issued_for(self, namespace: str, name: str) -> list[IssuedToken]:
        """The tokens issued for one ServiceAccount (expired and revoked ones included)."""
        with self._lock:
            return [t for t in self._issued.values() if (t.namespace, t.name) == (namespace, name)]

    def clear_issued(self) -> None:
        """Forget every issued token (a recreated cluster has a new signing key)."""
        with self._lock:
            self._issued.clear()

    def check(self, token: str, account_uid: Any) -> TokenCheck:
        """Resolve a token; ``account_uid(ns, name)`` gives the live ServiceAccount's uid."""
        with self._lock:
            static = self._static.get(token)
            issued = self._issued.get(token)
        if static is not None:
            return TokenCheck(static, known=True)
        if issued is None:
            return TokenCheck(problem="unknown token")
        if issued.revoked:
            return TokenCheck(known=True, problem="token revoked")
        if time.time() >= issued.expires:
            return TokenCheck(known=True, problem="token expired")
        if account_uid(issued.namespace, issued.name) != issued.uid:
            return TokenCheck(known=True, problem="service account deleted")
        return TokenCheck(
            service_account_identity(issued.namespace, issued.name, issued.uid), known=True
        )


def validate_expiration(seconds: int) -> str:
    """The apiserver's complaint about a TokenRequest's ``expirationSeconds`` ("" if fine)."""
    if seconds < MIN_TOKEN_SECONDS:
        return "may not specify a duration less than 10 minutes"
    if seconds > MAX_TOKEN_SECONDS:
        return "may not specify a duration larger than 2^32 seconds"
    return ""


__all__ = [
    "ADMIN",
    "ANONYMOUS_IDENTITY",
    "Identity",
    "IssuedToken",
    "TokenCheck",
    "Tokens",
    "identity_for",
    "rfc3339",
    "service_account_identity",
    "validate_expiration",
]
