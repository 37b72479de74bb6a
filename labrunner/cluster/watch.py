"""Wait for a cluster to change with a Kubernetes watch instead of sleeping.

A check that is not satisfied yet (pods still starting) returns ``pending``
with a ``wait`` callable made here. The engine calls it instead of sleeping:
it opens a watch on exactly what the check listed (same collection, same
label and field selectors) starting at the list's resourceVersion, so no
change in between is missed, and returns on the first event. The check is
then evaluated again with a fresh list. That is how a step passes within
milliseconds of the last pod turning Ready, while a quiet cluster costs one
idle connection rather than a poll every second.

Watches fail in ordinary ways: RBAC may allow list but not watch, a proxy may
cut long requests, the resourceVersion may have expired (410 Gone), the
server may end the stream early. None of that is the learner's problem, so
the waiter never raises: a 410 or an early end means "look again"; any other
failure degrades to a short sleep, i.e. plain polling, and the next list call
reports real trouble (cluster gone, forbidden) as the check's outcome.

The engine may be cancelled (the learner pressed Esc) while a waiter blocks
in a socket read; a small watchdog thread shuts the socket down so the wait
returns at once.
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections.abc import Callable, Sequence

from labrunner.cluster.errors import ClusterError

TYPE_CHECKING = False  # as typing's, without importing typing (a start-up cost)
if TYPE_CHECKING:
    from typing import Any

    from labrunner.cluster.client import Kube

Waiter = Callable[[float], bool]
"""Blocks up to the given seconds; returns True if a change was observed."""

FALLBACK_POLL = 1.0
"""How long a waiter sleeps when it cannot watch (then the check lists again)."""

_CHANGES = frozenset({"ADDED", "MODIFIED", "DELETED"})


class _Watchdog:
    """Shut a response's socket down when ``cancel`` is set, until stopped."""

    def __init__(self, cancel: threading.Event, response: Any) -> None:
        self._cancel = cancel
        self._response = response
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watch-cancel", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(0.2):
            if self._cancel.is_set():
                interrupt(self._response)
                return

    def stop(self) -> None:
        """Stop watching for the cancel (the read is over)."""
        self._done.set()


def interrupt(response: Any) -> None:
    """Interrupt a blocking read on ``response`` from another thread."""
    shutdown = getattr(response, "shutdown", None)
    try:
        if callable(shutdown):
            shutdown()
            return
        sock = getattr(getattr(response, "connection", None), "sock", None)
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _read_events(response: Any, deadline: float) -> str:
    """Read a watch stream: "event", "expired" (410 in-stream), "ended" or "timeout"."""
    buffer = b""
    read1 = getattr(response, "read1", None)  # urllib3 2; 1.26 streams chunk by chunk
    chunks = iter(lambda: read1(65536), b"") if read1 else response.stream(None)
    try:
        for chunk in chunks:
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    return "ended"
                kind = event.get("type") if isinstance(event, dict) else None
                if kind in _CHANGES:
                    return "event"
                if kind == "ERROR":
                    return "expired"
            if time.monotonic() >= deadline:
                return "timeout"
    except Exception as exc:  # read timeout, cut connection, cancel shutdown
        if "timed out" in str(exc).lower() or "ReadTimeout" in type(exc).__name__:
            return "timeout"
        return "ended"
    return "ended"


def watch_waiter(
    kube: Kube,
    path: str,
    *,
    resource_version: str,
    label_selector: str = "",
    field_selector: str = "",
    cancel: threading.Event | None = None,
) -> Waiter:
    """A ``wait(timeout) -> bool`` that returns True on the first change after the list.

    ``path`` is the collection the check listed and ``resource_version`` the
    list's resourceVersion. Returns False when ``timeout`` passes quietly.
    """
    stop = cancel if cancel is not None else threading.Event()

    def pause(seconds: float) -> None:
        if seconds > 0:
            stop.wait(seconds)

    def wait(timeout: float) -> bool:
        deadline = time.monotonic() + max(timeout, 0.0)
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            query: Sequence[tuple[str, str]] = (
                ("watch", "1"),
                ("resourceVersion", resource_version),
                ("labelSelector", label_selector),
                ("fieldSelector", field_selector),
                ("allowWatchBookmarks", "false"),
                ("timeoutSeconds", str(max(1, math.ceil(left)))),
            )
            try:
                response = kube.open(
                    path,
                    query=query,
                    timeout=left,
                    read_timeout=left,
                    stream=True,
                )
            except ClusterError:
                pause(min(FALLBACK_POLL, left))
                return False
            status = int(response.status)
            if status != 200:
                body = response.read()
                response.release_conn()
                if status == 410:
                    return True
                retry = response.headers.get("Retry-After")
                delay = FALLBACK_POLL
                if status in (429, 503) and retry and retry.isdigit():
                    delay = float(retry)
                del body
                pause(min(delay, left))
                return False
            watchdog = _Watchdog(stop, response) if cancel is not None else None
            opened = time.monotonic()
            try:
                result = _read_events(response, deadline)
            finally:
                if watchdog is not None:
                    watchdog.stop()
                # A half-read stream must not go back to the pool: close it first.
                response.close()
                response.release_conn()
            if result in ("event", "expired"):
                return True
            if result == "timeout" or stop.is_set():
                return False
            # The server closed the stream early (a proxy timeout, a dropped watch). An
            # event may have been lost with it, so let the check look again (list) rather
            # than trust a new watch from the old resourceVersion; pause briefly first
            # when streams die at once, so a server that drops every watch is not hammered.
            if time.monotonic() - opened < 1.0:
                pause(min(0.1, max(deadline - time.monotonic(), 0.0)))
            return True
        return False

    return wait
