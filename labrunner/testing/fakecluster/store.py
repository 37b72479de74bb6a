"""Object storage, the global resourceVersion counter and the watch fan-out.

One ``RLock`` guards everything, so a write, its resourceVersion and its watch event happen
atomically and watchers see events in resourceVersion order. Stored objects are never mutated:
every write stores a fresh dict, which lets events, lists and gets share snapshots without
copying. A bounded history of events lets a watch resume from the resourceVersion of a
preceding list, which is what kubectl's informers (``wait``, ``rollout status``) rely on.
"""

from __future__ import annotations

import builtins
import queue
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .errors import gone
from .selectors import FieldSelector, LabelSelector, fields_match, labels_match

JsonDict = dict[str, Any]
TypeKey = tuple[str, str]  # (group, plural)
ObjKey = tuple[str, str]  # (namespace or "", name)


@dataclass(frozen=True)
class WatchEvent:
    """A change to one object; ``obj`` is an immutable snapshot."""

    type: str
    key: TypeKey
    obj: JsonDict
    rv: int


def obj_namespace(obj: JsonDict) -> str:
    """The object's namespace ("" for cluster-scoped)."""
    return str((obj.get("metadata") or {}).get("namespace") or "")


def obj_name(obj: JsonDict) -> str:
    """The object's name."""
    return str((obj.get("metadata") or {}).get("name") or "")


class Watcher:
    """One watch connection: a queue of matching events (``None`` means: stop)."""

    def __init__(
        self,
        key: TypeKey,
        namespace: str | None,
        label_selector: LabelSelector,
        field_selector: FieldSelector,
    ) -> None:
        self.key = key
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.queue: queue.SimpleQueue[WatchEvent | None] = queue.SimpleQueue()

    def wants(self, event: WatchEvent) -> bool:
        """Whether an event belongs on this connection."""
        if event.key != self.key:
            return False
        if self.namespace is not None and obj_namespace(event.obj) != self.namespace:
            return False
        labels = (event.obj.get("metadata") or {}).get("labels")
        return labels_match(self.label_selector, labels) and fields_match(
            self.field_selector, event.obj
        )

    def close(self) -> None:
        """Ask the streaming thread to finish."""
        self.queue.put(None)


class Store:
    """In-memory objects keyed by type and ``(namespace, name)``."""

    def __init__(self, history: int = 4096) -> None:
        self.lock = threading.RLock()
        self._rv = 0
        self._data: dict[TypeKey, dict[ObjKey, JsonDict]] = {}
        self._history: deque[WatchEvent] = deque(maxlen=history)
        self._compacted_rv = 0
        self._watchers: set[Watcher] = set()
        self._watchers_changed = threading.Condition(self.lock)

    @property
    def resource_version(self) -> int:
        """The latest resourceVersion handed out."""
        with self.lock:
            return self._rv

    def next_rv(self) -> int:
        """Reserve the next resourceVersion."""
        with self.lock:
            self._rv += 1
            return self._rv

    def get(self, key: TypeKey, namespace: str, name: str) -> JsonDict | None:
        """The stored snapshot, or None. Do not mutate it."""
        with self.lock:
            return self._data.get(key, {}).get((namespace, name))

    def list(self, key: TypeKey, namespace: str | None = None) -> builtins.list[JsonDict]:
        """Snapshots of one type, optionally in one namespace, sorted by namespace and name."""
        with self.lock:
            items = self._data.get(key, {})
            keys = sorted(k for k in items if namespace is None or k[0] == namespace)
            return [items[k] for k in keys]

    def type_keys(self) -> builtins.list[TypeKey]:
        """Every type that has (or had) objects."""
        with self.lock:
            return list(self._data)

    def put(self, key: TypeKey, obj: JsonDict, event_type: str) -> JsonDict:
        """Store ``obj`` (a fresh dict the caller no longer touches) with a new resourceVersion."""
        with self.lock:
            rv = self.next_rv()
            obj["metadata"]["resourceVersion"] = str(rv)
            self._data.setdefault(key, {})[(obj_namespace(obj), obj_name(obj))] = obj
            self._emit(WatchEvent(event_type, key, obj, rv))
            return obj

    def remove(self, key: TypeKey, namespace: str, name: str) -> JsonDict | None:
        """Delete an object; the DELETED event carries its final state at a new resourceVersion."""
        with self.lock:
            old = self._data.get(key, {}).pop((namespace, name), None)
            if old is None:
                return None
            rv = self.next_rv()
            final = {**old, "metadata": {**old["metadata"], "resourceVersion": str(rv)}}
            self._emit(WatchEvent("DELETED", key, final, rv))
            return final

    def drop_type(self, key: TypeKey) -> builtins.list[JsonDict]:
        """Remove every object of a type (its CRD went away), emitting DELETED for each."""
        with self.lock:
            removed: builtins.list[JsonDict] = []
            for ns, name in list(self._data.get(key, {})):
                final = self.remove(key, ns, name)
                if final is not None:
                    removed.append(final)
            self._data.pop(key, None)
            return removed

    def _emit(self, event: WatchEvent) -> None:
        if len(self._history) == self._history.maxlen:
            self._compacted_rv = self._history[0].rv
        self._history.append(event)
        for w in list(self._watchers):
            if w.wants(event):
                w.queue.put(event)

    @contextmanager
    def watching(
        self,
        key: TypeKey,
        *,
        namespace: str | None,
        label_selector: LabelSelector,
        field_selector: FieldSelector,
        since: int | None,
    ) -> Iterator[tuple[Watcher, builtins.list[WatchEvent]]]:
        """Register a watcher and return the events it must send first.

        With ``since`` the events after that resourceVersion are replayed (none when the client
        passes the RV of the list it just made); without it the current state is sent as ADDED.
        """
        watcher = Watcher(key, namespace, label_selector, field_selector)
        with self.lock:
            if since is None:
                initial = [
                    WatchEvent("ADDED", key, obj, int(obj["metadata"]["resourceVersion"]))
                    for obj in self.list(key, namespace)
                ]
                initial = [e for e in initial if watcher.wants(e)]
            else:
                if since < self._compacted_rv:
                    raise gone(f"too old resource version: {since} ({self._compacted_rv + 1})")
                initial = [e for e in self._history if e.rv > since and watcher.wants(e)]
            self._watchers.add(watcher)
            self._watchers_changed.notify_all()
        try:
            yield watcher, initial
        finally:
            with self.lock:
                self._watchers.discard(watcher)

    def wait_for_watcher(
        self, key: TypeKey, namespace: str | None = None, timeout: float = 5.0
    ) -> bool:
        """Block until a watch on ``key`` (in ``namespace``, if given) is open; False on timeout."""

        def present() -> bool:
            return any(
                w.key == key and (namespace is None or w.namespace in (namespace, None))
                for w in self._watchers
            )

        with self._watchers_changed:
            return self._watchers_changed.wait_for(present, timeout)

    def forget_history(self) -> None:
        """Drop the event history: a watch resuming from an earlier resourceVersion gets 410
        Gone (what a client resuming against a recreated cluster must handle)."""
        with self.lock:
            self._history.clear()
            self._compacted_rv = self._rv

    def close_watchers(self) -> None:
        """End every open watch (server shutdown)."""
        with self.lock:
            for w in self._watchers:
                w.close()
