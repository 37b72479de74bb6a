"""Fault injection: make the fake fail the way real clusters fail, on purpose.

Verifiers must turn a 500, a 403, a throttling 429, a slow apiserver, a watch that drops
mid-stream or a refused connection into a clear ``error``/``pending`` outcome. Tests arrange
those failures through :class:`Faults` (``server.faults``); each rule matches a verb and
optionally a resource, namespace, name or URL path prefix, and fires N times or for ever.

API faults (an error status, a delay, a dropped watch) hit resource requests only, so
discovery keeps working unless a rule names a ``path``. Transport faults hit every request,
``/version`` and discovery included, because a hostile server is hostile from the first byte:
``trickle`` sends the response one byte at a time, ``hang`` reads the request and never
answers, ``cut`` closes the connection after the headers or halfway through the body, and
``stall_connections`` accepts TCP connections without ever reading them (not even a TLS hello).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import ApiError


@dataclass
class FaultRule:
    """One armed fault; ``remaining`` None means it fires on every matching request."""

    verb: str | None = None
    resource: str | None = None
    namespace: str | None = None
    name: str | None = None
    status: int | None = None
    message: str = ""
    retry_after: int | None = None
    delay: float = 0.0
    drop_after_events: int | None = None
    drop_after_seconds: float | None = None
    abrupt: bool = False
    path: str | None = None
    hang: bool = False
    hang_seconds: float | None = None
    trickle: float | None = None
    cut: str | None = None
    remaining: int | None = None
    hits: int = field(default=0)

    @property
    def transport(self) -> bool:
        """Whether this rule breaks the connection itself (and so also hits non-resource URLs)."""
        return self.hang or self.trickle is not None or self.cut is not None

    def matches(
        self,
        verb: str,
        resource: str,
        namespace: str,
        name: str,
        subresource: str = "",
        *,
        path: str = "",
        resource_request: bool = True,
    ) -> bool:
        """Whether the rule applies to a request (its verb may also name a subresource)."""
        if self.path is not None and not path.startswith(self.path):
            return False
        if not resource_request and self.path is None and not self.transport:
            return False
        if self.verb is not None and self.verb not in (verb, subresource):
            return False
        if self.resource is not None and self.resource != resource:
            return False
        if self.namespace is not None and self.namespace != namespace:
            return False
        return self.name is None or self.name == name

    def error(self, resource: str, group: str, namespace: str, verb: str) -> ApiError | None:
        """The error this rule answers with, if it is an error rule."""
        if self.status is None:
            return None
        code = self.status
        if code == 403:
            where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
            message = self.message or (
                f'{resource or "resource"} is forbidden: User "labrunner-learner" cannot {verb} '
                f'resource "{resource}" in API group "{group}"{where}'
            )
            return ApiError(403, "Forbidden", message, group=group, kind=resource)
        if code == 429:
            return ApiError(
                429,
                "TooManyRequests",
                self.message or "Too many requests, please try again later.",
                retry_after=self.retry_after if self.retry_after is not None else 1,
            )
        if code == 401:
            return ApiError(401, "Unauthorized", self.message or "Unauthorized")
        if code == 404:
            return ApiError(
                404, "NotFound", self.message or "the server could not find the requested resource"
            )
        if code == 503:
            return ApiError(
                503,
                "ServiceUnavailable",
                self.message or "the server is currently unable to handle the request",
                retry_after=self.retry_after,
            )
        if code == 504:
            return ApiError(
                504,
                "Timeout",
                self.message or "the server was unable to return a response in the time allotted",
            )
        return ApiError(
            code,
            "InternalError",
            self.message or "Internal error occurred: injected fault",
            retry_after=self.retry_after,
        )


class Faults:
    """The set of armed faults of one server (thread-safe)."""

    def __init__(self, refuse: Callable[[bool], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._refuse = refuse
        self._stall = threading.Event()

    def _add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def fail(
        self,
        verb: str | None = None,
        *,
        status: int = 500,
        resource: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        times: int | None = None,
        retry_after: int | None = None,
        message: str = "",
    ) -> FaultRule:
        """Answer matching requests with ``status`` (500, 403, 429 with Retry-After, ...)."""
        return self._add(
            FaultRule(
                verb=verb,
                resource=resource,
                namespace=namespace,
                name=name,
                status=status,
                retry_after=retry_after,
                message=message,
                remaining=times,
            )
        )

    def delay(
        self,
        seconds: float,
        *,
        verb: str | None = None,
        resource: str | None = None,
        namespace: str | None = None,
        times: int | None = None,
    ) -> FaultRule:
        """Respond to matching requests only after ``seconds``."""
        return self._add(
            FaultRule(
                verb=verb, resource=resource, namespace=namespace, delay=seconds, remaining=times
            )
        )

    def drop_watch(
        self,
        *,
        resource: str | None = None,
        namespace: str | None = None,
        after_events: int | None = None,
        after_seconds: float | None = None,
        abrupt: bool = False,
        times: int | None = None,
    ) -> FaultRule:
        """End matching watch streams after N events and/or T seconds.

        By default the stream ends cleanly (as when the apiserver closes a watch); with
        ``abrupt`` the connection is cut mid-stream without the final chunk.
        """
        return self._add(
            FaultRule(
                verb="watch",
                resource=resource,
                namespace=namespace,
                drop_after_events=after_events,
                drop_after_seconds=after_seconds,
                abrupt=abrupt,
                remaining=times,
            )
        )

    def trickle(
        self,
        seconds_per_byte: float = 1.0,
        *,
        verb: str | None = None,
        resource: str | None = None,
        path: str | None = None,
        times: int | None = None,
    ) -> FaultRule:
        """Send matching responses one byte at a time, ``seconds_per_byte`` apart (status line
        and headers included), as a server that is alive but hopelessly slow."""
        return self._add(
            FaultRule(
                verb=verb, resource=resource, path=path, trickle=seconds_per_byte, remaining=times
            )
        )

    def hang(
        self,
        *,
        verb: str | None = None,
        resource: str | None = None,
        path: str | None = None,
        seconds: float | None = None,
        times: int | None = None,
    ) -> FaultRule:
        """Read matching requests and never answer (until the client gives up, ``seconds``
        pass, or the server stops); the connection then closes without a response."""
        return self._add(
            FaultRule(
                verb=verb,
                resource=resource,
                path=path,
                hang=True,
                hang_seconds=seconds,
                remaining=times,
            )
        )

    def cut(
        self,
        after: str = "body",
        *,
        verb: str | None = None,
        resource: str | None = None,
        path: str | None = None,
        times: int | None = None,
    ) -> FaultRule:
        """Close the connection mid-response: ``after="headers"`` (headers sent, no body) or
        ``after="body"`` (half of the body sent, Content-Length promising more)."""
        if after not in ("headers", "body"):
            raise ValueError('cut(after=...) takes "headers" or "body"')
        return self._add(
            FaultRule(verb=verb, resource=resource, path=path, cut=after, remaining=times)
        )

    def stall_connections(self, stall: bool = True) -> None:
        """Accept new TCP connections but never read from or answer them (until cleared)."""
        if stall:
            self._stall.set()
        else:
            self._stall.clear()

    @property
    def stalling(self) -> bool:
        """Whether new connections are being stalled."""
        return self._stall.is_set()

    def refuse_connections(self, refuse: bool = True) -> None:
        """Close (or reopen) the listening port, so new connections are refused."""
        if self._refuse is None:
            raise RuntimeError("this Faults object is not attached to a server")
        self._refuse(refuse)

    def remove(self, rule: FaultRule) -> None:
        """Disarm one rule."""
        with self._lock:
            if rule in self._rules:
                self._rules.remove(rule)

    def clear(self) -> None:
        """Disarm every rule and stop stalling connections."""
        with self._lock:
            self._rules.clear()
        self._stall.clear()

    @property
    def rules(self) -> list[FaultRule]:
        """The armed rules (a copy)."""
        with self._lock:
            return list(self._rules)

    def denies(self, verb: str, resource: str, namespace: str, name: str) -> bool:
        """Whether an armed 403 rule covers this access (answers ``kubectl auth can-i``)."""
        with self._lock:
            return any(
                r.status == 403 and r.matches(verb, resource, namespace, name) for r in self._rules
            )

    def take(
        self,
        verb: str,
        resource: str,
        namespace: str,
        name: str,
        subresource: str = "",
        *,
        path: str = "",
        resource_request: bool = True,
    ) -> list[FaultRule]:
        """The rules that fire for this request, consuming one use of each."""
        fired: list[FaultRule] = []
        with self._lock:
            for rule in list(self._rules):
                if not rule.matches(
                    verb,
                    resource,
                    namespace,
                    name,
                    subresource,
                    path=path,
                    resource_request=resource_request,
                ):
                    continue
                rule.hits += 1
                fired.append(rule)
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
        return fired
