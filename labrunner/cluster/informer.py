"""Follow a collection as it changes: one list, then a watch that streams every change.

``watch.py`` waits for *a* change so a check can look again; a dashboard
needs *every* change, as it happens, for as long as it runs. An
``Informer`` lists the collection once (handing the whole set to
``on_sync``), then keeps a watch open from the list's resourceVersion and
hands each ADDED, MODIFIED or DELETED object to ``on_change``. Nothing is
polled: a quiet collection costs one idle connection.

Watches end in ordinary ways (the server's ``timeoutSeconds``, a proxy that
cuts long requests, a resourceVersion too old: 410 Gone). The informer
resumes from the last resourceVersion it saw, or lists again after a 410,
so no change is lost. When the server cannot be reached, ``on_error`` hears
why and the informer tries again with a growing pause (up to
``MAX_BACKOFF``); ``on_sync`` is called again once it is back, since
changes may have been missed meanwhile.

``stop()`` ends it at once, even in the middle of a blocking read.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from labrunner.cluster.client import Kube
from labrunner.cluster.errors import ClusterError, http_error
from labrunner.cluster.watch import interrupt

Obj = dict[str, Any]

WATCH_SECONDS = 300
"""How long one watch request runs before the server ends it (then it resumes)."""
REQUEST_TIMEOUT = 10.0
MIN_BACKOFF = 0.5
MAX_BACKOFF = 15.0


class _Expired(Exception):
    """The resourceVersion we watch from is too old (410): list again."""


class Informer:
    """List a collection, then stream its changes to callbacks until stopped."""

    def __init__(
        self,
        kube: Kube,
        path: str,
        *,
        on_sync: Callable[[list[Obj]], None],
        on_change: Callable[[str, Obj], None],
        on_error: Callable[[ClusterError], None] | None = None,
        label_selector: str = "",
    ) -> None:
        self.kube = kube
        self.path = path
        self.label_selector = label_selector
        self.on_sync = on_sync
        self.on_change = on_change
        self.on_error = on_error
        self._stop = threading.Event()
        self._response: Any = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> Informer:
        """Run in a daemon thread."""
        self._thread = threading.Thread(target=self.run, name="informer", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """End the informer (and its open watch) now."""
        self._stop.set()
        with self._lock:
            response = self._response
        if response is not None:
            interrupt(response)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def stopped(self) -> bool:
        """True once ``stop`` was called."""
        return self._stop.is_set()

    def run(self) -> None:
        """List and watch until stopped (blocks; ``start`` runs it in a thread)."""
        backoff = MIN_BACKOFF
        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    version = self._list()
                version = self._watch(version)
                backoff = MIN_BACKOFF
            except _Expired:
                version = None
            except ClusterError as exc:
                if self._stop.is_set():
                    return
                if self.on_error is not None:
                    self.on_error(exc)
                version = None
                self._stop.wait(exc.retry_after or backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _query(self) -> list[tuple[str, str]]:
        return [("labelSelector", self.label_selector)]

    def _list(self) -> str:
        doc = self.kube.get(self.path, query=self._query(), timeout=REQUEST_TIMEOUT)
        items = [i for i in doc.get("items") or [] if isinstance(i, dict)]
        if not self._stop.is_set():
            self.on_sync(items)
        return str((doc.get("metadata") or {}).get("resourceVersion") or "")

    def _watch(self, version: str) -> str:
        """One watch request; returns the resourceVersion to resume from."""
        query = [
            *self._query(),
            ("watch", "1"),
            ("resourceVersion", version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(WATCH_SECONDS)),
        ]
        response = self.kube.open(
            self.path,
            query=query,
            timeout=REQUEST_TIMEOUT,
            read_timeout=WATCH_SECONDS + REQUEST_TIMEOUT,
            stream=True,
        )
        status = int(response.status)
        if status != 200:
            body = response.read()
            response.release_conn()
            if status == 410:
                raise _Expired
            raise http_error(status, body, method="GET", path=self.path)
        with self._lock:
            self._response = response
        try:
            return self._stream(response, version)
        finally:
            with self._lock:
                self._response = None
            response.close()
            response.release_conn()

    def _stream(self, response: Any, version: str) -> str:
        buffer = b""
        read1 = getattr(response, "read1", None)
        chunks = iter(lambda: read1(65536), b"") if read1 else response.stream(None)
        while not self._stop.is_set():
            try:
                chunk = next(chunks, b"")
            except Exception:  # a cut connection, a read timeout, a stop: resume from here
                return version
            if not chunk:
                return version  # the server ended the watch (timeoutSeconds): resume
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    version = self._event(line, version)
        return version

    def _event(self, line: bytes, version: str) -> str:
        try:
            event = json.loads(line)
        except ValueError:
            return version
        if not isinstance(event, dict):
            return version
        kind = event.get("type")
        obj = event.get("object")
        if not isinstance(obj, dict):
            return version
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _Expired
            return version
        seen = str((obj.get("metadata") or {}).get("resourceVersion") or "") or version
        if kind in ("ADDED", "MODIFIED", "DELETED") and not self._stop.is_set():
            self.on_change(str(kind), obj)
        return seen
