"""Turn Kubernetes API and transport failures into messages a learner can act on.

A check that talks to a cluster can fail in ways that have nothing to do with
the lab: the cluster is down, the kubeconfig is stale, RBAC says no, the API
server is throttling. The learner needs to know which, and what to do, not a
urllib3 traceback. Every failure the cluster layer sees becomes one
``ClusterError`` that says what happened in one line, and whether waiting can
help:

* transient (``pending``): 429 Too Many Requests, 503, 504, a timed-out
  request, a connection reset. The API server will probably answer on the next
  poll, so the step keeps waiting and the reason shows while it does.
* broken (``error``): no kubeconfig, an unknown context, connection refused,
  an unknown host, a certificate the kubeconfig does not trust, 401, 403, and a
  500 that persists after a quick retry. No amount of waiting fixes these; the
  message says what to fix.

``ErrorKind`` is the one vocabulary for what went wrong; every other error
of the cluster layer (an object or type that does not exist, a Service with no
ready pod) is a ``ClusterError`` with its own kind. The cluster layer never
decides what a check makes of them: ``labrunner.verify.kube`` maps kinds to
outcomes, the doctor maps them to fixes.

This module does not import ``kubernetes``, ``urllib3`` or ``ssl``; it recognises
their exceptions by walking the exception chain for the standard-library
causes (TLS errors only when ``ssl`` was loaded: without it there are none).
"""

from __future__ import annotations

import enum
import json
import re
import socket
import sys
from dataclasses import dataclass

_FORBIDDEN = (  # compiled by ``re`` when a refusal is first explained, not at start-up
    r'User "(?P<user>[^"]*)" cannot (?P<verb>\S+) resource "(?P<resource>[^"]*)"'
    r'(?: in API group "(?P<group>[^"]*)")?'
    r'(?: in the namespace "(?P<namespace>[^"]*)"| at the cluster scope)?'
)

_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
TRANSIENT_STATUS = frozenset({429, 503, 504})
RETRYABLE_STATUS = frozenset({500, 502})


class ErrorKind(enum.StrEnum):
    """What went wrong, for code that reacts to it."""

    KUBECONFIG = "kubeconfig"
    UNREACHABLE = "unreachable"
    TLS = "tls"
    CREDENTIALS = "credentials"
    FORBIDDEN = "forbidden"
    THROTTLED = "throttled"
    TIMEOUT = "timeout"
    RESET = "reset"
    SERVER = "server"
    NOT_FOUND = "not_found"
    """An object (or a Service's port) does not exist."""
    UNKNOWN_TYPE = "unknown_type"
    """The cluster does not serve a resource type (no such CRD, or not yet)."""
    NO_PODS = "no_pods"
    """A Service has no ready pod to forward to yet."""
    OTHER = "other"


@dataclass(eq=False)
class ClusterError(Exception):
    """A cluster problem worded for the learner; ``transient`` means waiting may fix it."""

    message: str
    transient: bool = False
    kind: ErrorKind = ErrorKind.OTHER
    status: int | None = None
    retry_after: float | None = None
    """Seconds the server asked us to wait before asking again (429, 503)."""
    details: str | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class NotFound(ClusterError):
    """The API answered 404 for an object (or a whole resource type)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, kind=ErrorKind.NOT_FOUND, status=404)


class UnknownType(ClusterError):
    """The cluster does not serve the requested type (no such CRD, or not yet)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=True, kind=ErrorKind.UNKNOWN_TYPE)


def status_message(body: bytes | str | None) -> str:
    """The ``message`` of a Kubernetes ``Status`` body, or the body's first line."""
    if not body:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip().splitlines()[0][:200] if text.strip() else ""
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])
    return ""


def _retry_after(value: str | None, body: bytes | str | None) -> float | None:
    if value:
        try:
            return max(float(value), 0.0)
        except ValueError:
            pass
    if body:
        try:
            data = json.loads(body)
            seconds = data["details"]["retryAfterSeconds"]
            return float(seconds)
        except (ValueError, KeyError, TypeError):
            return None
    return None


def forbidden_message(message: str, *, user: str | None = None) -> str:
    """``forbidden: user X cannot list pods in istio-system`` from the API's wording."""
    match = re.search(_FORBIDDEN, message)
    if match is None:
        return f"forbidden: {message}" if message else "forbidden by the cluster's RBAC rules"
    resource = match["resource"]
    if match["group"]:
        resource = f"{resource}.{match['group']}"
    where = f"in {match['namespace']}" if match["namespace"] else "at cluster scope"
    who = match["user"] or user or "you"
    return f"forbidden: user {who} cannot {match['verb']} {resource} {where}"


def http_error(
    status: int,
    body: bytes | str | None,
    *,
    method: str,
    path: str,
    retry_after: str | None = None,
) -> ClusterError:
    """The ClusterError for an HTTP error status from the API server."""
    message = status_message(body)
    reason = _REASONS.get(status, "error")
    after = _retry_after(retry_after, body)
    if status == 401:
        return ClusterError(
            "unauthorized: the API server rejected the kubeconfig's credentials "
            "(expired token or client certificate?); refresh the kubeconfig, "
            "e.g. `kind export kubeconfig --name <cluster>`",
            kind=ErrorKind.CREDENTIALS,
            status=status,
        )
    if status == 403:
        return ClusterError(
            forbidden_message(message)
            + "; use a context with cluster-admin rights (a workshop cluster you created has them)",
            kind=ErrorKind.FORBIDDEN,
            status=status,
        )
    if status in TRANSIENT_STATUS:
        wait = f" (retry after {after:g}s)" if after else ""
        said = f": {message}" if message and status != 429 else ""
        return ClusterError(
            f"{status} {reason.lower()}{wait}{said}",
            transient=True,
            kind=ErrorKind.THROTTLED if status == 429 else ErrorKind.SERVER,
            status=status,
            retry_after=after,
        )
    said = f": {message}" if message else ""
    return ClusterError(
        f"the server returned {status} {reason} for {method} {path}{said}",
        kind=ErrorKind.SERVER,
        status=status,
    )


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop(0)
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        # urllib3 keeps the underlying error in ``reason``; ssl.SSLError's ``reason`` is a
        # string ("CERTIFICATE_VERIFY_FAILED"), which is not a link of the chain.
        reason = getattr(item, "reason", None)
        todo.extend(
            e for e in (item.__cause__, item.__context__, reason) if isinstance(e, BaseException)
        )
    return seen


def transport_error(
    exc: BaseException,
    *,
    server: str,
    timeout: float | None = None,
    connect_timeout: float | None = None,
) -> ClusterError:
    """The ClusterError for a failure below HTTP: refused, unknown host, TLS, timeout."""
    chain = _chain(exc)
    names = {type(e).__name__ for e in chain}
    text = " ".join(str(e) for e in chain)
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "Connection refused" in text:
        return ClusterError(
            f"cluster unreachable at {server}: connection refused; is the cluster running? "
            "(kind: `docker ps`, `kind get clusters`)",
            kind=ErrorKind.UNREACHABLE,
        )
    if any(isinstance(e, socket.gaierror) for e in chain) or "Name or service not known" in text:
        return ClusterError(
            f"cluster unreachable at {server}: the host name does not resolve; "
            "check the server address in the kubeconfig",
            kind=ErrorKind.UNREACHABLE,
        )
    ssl = sys.modules.get("ssl")  # not loaded: no TLS, so no TLS error (start-up speed)
    verify = (
        next((e for e in chain if isinstance(e, ssl.SSLCertVerificationError)), None)
        if ssl is not None
        else None
    )
    if verify is not None or "CERTIFICATE_VERIFY_FAILED" in text:
        return ClusterError(
            f"cannot trust the API server at {server}: {certificate_problem(verify, text)}",
            kind=ErrorKind.TLS,
        )
    handshake_timeout = "handshake operation timed out" in text or (
        "SSLError" in names and "timed out" in text
    )
    tls_error = ssl is not None and any(isinstance(e, ssl.SSLError) for e in chain)
    if (tls_error or "SSLError" in names) and not (handshake_timeout):
        return ClusterError(
            f"TLS handshake with {server} failed: {_last_line(text)}", kind=ErrorKind.TLS
        )
    if handshake_timeout:
        return timed_out(
            f"the API server at {server} did not complete the TLS handshake",
            connect_timeout or timeout,
        )
    if "ConnectTimeoutError" in names:
        return timed_out(
            f"cluster at {server} did not accept a connection", connect_timeout or timeout
        )
    if (
        "ReadTimeoutError" in names
        or any(isinstance(e, TimeoutError | socket.timeout) for e in chain)
        or "timed out" in text
    ):
        return timed_out(f"the API server at {server} did not answer", timeout)
    if "BodyTooLarge" in names:  # cluster.connection refuses to fill memory with one answer
        return ClusterError(
            f"the API server at {server} sent too much: {_last_line(text)}; is the kubeconfig "
            "pointing at a Kubernetes API server? (a list this large needs a label selector "
            "or a namespace)",
            kind=ErrorKind.SERVER,
        )
    # cluster.connection (as http.client): a body cut short (IncompleteRead) or an answer
    # that is not HTTP (BadStatusLine);
    # urllib3 wraps both in a ProtocolError
    if any(isinstance(e, ConnectionError) for e in chain) or names & {
        "ProtocolError",
        "IncompleteRead",
        "BadStatusLine",
    }:
        return ClusterError(
            f"the connection to the API server at {server} broke: {_last_line(text)}",
            transient=True,
            kind=ErrorKind.RESET,
        )
    return ClusterError(f"cannot talk to the API server at {server}: {_last_line(text)}")


_EXPIRED = (9, 10)  # X509_V_ERR_CERT_NOT_YET_VALID, X509_V_ERR_CERT_HAS_EXPIRED
_WRONG_NAME = (62, 64)  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
_UNTRUSTED = (2, 18, 19, 20, 21, 24, 27, 28)


def certificate_problem(exc: BaseException | None, text: str = "") -> str:
    """What is wrong with a server certificate, named as a cause a user can act on."""
    code = getattr(exc, "verify_code", None)
    said = str(getattr(exc, "verify_message", "") or "")
    lower = f"{said} {text}".lower()
    if code in _EXPIRED or "expired" in lower or "not yet valid" in lower:
        return (
            f"its certificate has expired or is not valid yet ({said or 'expired'}); renew the "
            "API server's certificate or check this machine's clock"
        )
    if code in _WRONG_NAME or "mismatch" in lower or "doesn't match" in lower:
        return (
            f"its certificate is for another name ({said or 'wrong name'}); check the server "
            "address (or tls-server-name) in the kubeconfig"
        )
    if code in _UNTRUSTED or "issuer" in lower or "self-signed" in lower or "self signed" in lower:
        return (
            f"its certificate is signed by a certificate authority the kubeconfig does not "
            f"trust ({said or 'untrusted CA'}); was the cluster recreated? re-export the "
            "kubeconfig (e.g. `kind export kubeconfig --name <cluster>`)"
        )
    return f"certificate verification failed ({said or 'unknown reason'})"


def timed_out(what: str, seconds: float | None, why: str = "") -> ClusterError:
    """A transient ``timeout`` error: ``what`` did not happen within ``seconds``."""
    limit = f" within {round(seconds, 1):g}s" if seconds else ""
    return ClusterError(
        f"{what}{limit} (timeout{': ' + why if why else ''})",
        transient=True,
        kind=ErrorKind.TIMEOUT,
    )


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "unknown error"
