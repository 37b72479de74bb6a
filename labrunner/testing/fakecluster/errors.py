"""API errors as the real apiserver reports them.

kubectl prints a ``Status`` message verbatim ("Error from server (NotFound): ...") and picks the
words in parentheses from its ``reason``; the Python client raises ``ApiException`` with the HTTP
code. So every failure inside the fake is an :class:`ApiError` that renders into a genuine
``Status`` object, and the helpers below reproduce the apiserver's wording.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class Cause:
    """One entry of ``Status.details.causes`` (a field-level problem)."""

    reason: str
    message: str
    field: str = ""

    def to_json(self) -> JsonDict:
        """The cause as the apiserver serialises it."""
        out: JsonDict = {"reason": self.reason, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out


@dataclass
class ApiError(Exception):
    """A failed request; ``to_status()`` is the body the client sees."""

    code: int
    reason: str
    message: str
    name: str = ""
    group: str = ""
    kind: str = ""
    causes: list[Cause] = field(default_factory=list)
    retry_after: int | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def to_status(self) -> JsonDict:
        """A ``Status`` object with reason, code and details."""
        status: JsonDict = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        details: JsonDict = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = [c.to_json() for c in self.causes]
        if self.retry_after is not None:
            details["retryAfterSeconds"] = self.retry_after
        if details:
            status["details"] = details
        return status


def qualified(plural: str, group: str) -> str:
    """``deployments.apps`` or plain ``pods``: how messages name a resource."""
    return f"{plural}.{group}" if group else plural


def not_found(plural: str, group: str, name: str) -> ApiError:
    """404 for a missing object."""
    return ApiError(
        404,
        "NotFound",
        f'{qualified(plural, group)} "{name}" not found',
        name=name,
        group=group,
        kind=plural,
    )


def resource_not_found() -> ApiError:
    """404 for a path that names no known resource."""
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def already_exists(plural: str, group: str, name: str) -> ApiError:
    """409 for a create that collides with an existing name."""
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified(plural, group)} "{name}" already exists',
        name=name,
        group=group,
        kind=plural,
    )


def conflict(plural: str, group: str, name: str) -> ApiError:
    """409 for a write based on a stale resourceVersion."""
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified(plural, group)} "{name}": the object has '
        "been modified; please apply your changes to the latest version and try again",
        name=name,
        group=group,
        kind=plural,
    )


def invalid(kind: str, group: str, name: str, causes: list[Cause]) -> ApiError:
    """422 with one cause per field problem, worded like the apiserver."""
    parts = [f"{c.field}: {c.message}" if c.field else c.message for c in causes]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    what = f"{kind}.{group}" if group else kind
    return ApiError(
        422,
        "Invalid",
        f'{what} "{name}" is invalid: {summary}',
        name=name,
        group=group,
        kind=kind,
        causes=causes,
    )


def bad_request(message: str) -> ApiError:
    """400 for a malformed request."""
    return ApiError(400, "BadRequest", message)


def forbidden(message: str, *, plural: str = "", group: str = "", name: str = "") -> ApiError:
    """403 (RBAC denial or a terminating namespace)."""
    return ApiError(403, "Forbidden", message, name=name, group=group, kind=plural)


def unsupported_media_type(accepted: list[str]) -> ApiError:
    """415 for a body or patch type the resource does not accept."""
    return ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(accepted),
    )


def method_not_allowed(verb: str) -> ApiError:
    """405 for a verb a resource does not support."""
    return ApiError(
        405,
        "MethodNotAllowed",
        f"the server does not allow this method on the requested resource ({verb})",
    )


def gone(message: str) -> ApiError:
    """410 for a watch whose resourceVersion is older than the kept history."""
    return ApiError(410, "Expired", message)


def unauthorized() -> ApiError:
    """401 for a missing or wrong bearer token."""
    return ApiError(401, "Unauthorized", "Unauthorized")


def service_unavailable(message: str) -> ApiError:
    """503, e.g. a proxied service with no endpoints."""
    return ApiError(503, "ServiceUnavailable", message)


def internal_error(message: str) -> ApiError:
    """500 with the apiserver's wording."""
    return ApiError(500, "InternalError", f"Internal error occurred: {message}")
