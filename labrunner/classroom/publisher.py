"""The learner's side of a class: step events to the instructor, never in the learner's way.

After ``labrunner class join FILE`` the state directory holds the join file
(``class/join.yaml``) and an outbox (``class/outbox.json``: the learner's
progress document, how many events it has folded in, ``seq``, and how many
of those the class API has, ``acked``). Each labrunner process that runs
steps (the TUI, ``verify``) gets one ``Publisher`` for that directory:

- ``publish(event)`` only puts the event on a queue: it costs a step a few
  microseconds and cannot fail or block it, whatever the network does;
- a background thread takes what has queued within ``BATCH_WINDOW``, folds
  it into the document (``document.fold``) and saves the outbox atomically,
  under an ``flock`` so a TUI and a ``verify`` of the same learner fold into
  one document; then it sends the whole document to the learner's progress
  object with one merge patch, through the join file's kubeconfig and
  nothing else;
- a failed send is retried with a doubling, jittered pause (up to
  ``MAX_BACKOFF``); events keep being folded and saved meanwhile, so while
  the class API is unreachable nothing is lost, and the next send carries
  all of it, in this process or the next labrunner the learner starts.

``status()`` says how it goes, in the words of a status line ("class demo:
offline, 3 events waiting"); listeners registered with ``on_change`` hear
when that changes. At exit the thread saves what is queued and, when the
class API was answering, makes one last send of at most ``EXIT_GRACE``
seconds.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labrunner.classroom import JOIN_FILE, document, joinfile
from labrunner.classroom.names import PROGRESS_KEY
from labrunner.cluster import writes
from labrunner.cluster.client import Kube
from labrunner.cluster.errors import ClusterError, ErrorKind
from labrunner.fsutil import write_atomic

OUTBOX_FILE = "outbox.json"
LOCK_FILE = "outbox.lock"

BATCH_WINDOW = 0.1
"""Events that arrive this close together go out in one request."""
SEND_TIMEOUT = 5.0
MIN_BACKOFF = 0.5
MAX_BACKOFF = 30.0
EXIT_GRACE = 2.0


@dataclass(frozen=True)
class Status:
    """How publishing goes, for a status line."""

    class_name: str
    learner: str
    state: str = "idle"
    """``idle`` (nothing sent yet), ``online`` (the last send worked) or ``offline``."""
    waiting: int = 0
    """Events folded in but not yet acknowledged by the class API."""
    problem: str = ""

    def waiting_note(self) -> str:
        """For the end of a headless run: why events still wait and when they go out
        ("" when none wait)."""
        if not self.waiting:
            return ""
        what = f"{self.waiting} class event{'s' if self.waiting != 1 else ''}"
        why = f" ({self.problem})" if self.problem else ""
        return (
            f"class {self.class_name}: {what} not sent yet{why}; they are kept and go out the "
            "next time labrunner runs a step, or with `labrunner class info`"
        )

    def note(self) -> str:
        """One line: ``class demo as alice`` or ``class demo: offline, 3 events waiting``."""
        if self.state == "offline":
            what = f"{self.waiting} event{'s' if self.waiting != 1 else ''} waiting"
            return f"class {self.class_name}: offline, {what}"
        return f"class {self.class_name} as {self.learner}"


# --------------------------------------------------------------------------- the outbox


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_FILE, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def read_outbox(directory: Path) -> dict[str, Any] | None:
    """The saved outbox (``doc``, ``seq``, ``acked``), or None when there is none."""
    try:
        data = json.loads((directory / OUTBOX_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("doc"), dict):
        return None
    return data


def _write_outbox(directory: Path, data: Mapping[str, Any]) -> None:
    write_atomic(
        directory / OUTBOX_FILE,
        json.dumps(data, separators=(",", ":")).encode(),
        mode=0o600,
    )


def start_outbox(directory: Path, join: joinfile.Join, *, remote: Mapping[str, Any] | None) -> str:
    """Make the outbox for ``join``: keep it for the same learner, else start afresh.

    ``remote`` is the document the class API holds, when it could be read: a
    learner joining from a second machine takes up their progress from there.
    Returns what happened, in a few words.
    """
    with _locked(directory):
        current = read_outbox(directory)
        doc = (current or {}).get("doc") or {}
        same = doc.get("class") == join.class_name and doc.get("learner") == join.learner
        if current is not None and same and int(current.get("seq") or 0) > 0:
            return "kept the events saved here"
        if remote is not None and remote.get("learner") == join.learner:
            seq = int(remote.get("seq") or 0)
            _write_outbox(directory, {"doc": dict(remote), "seq": seq, "acked": seq})
            return "took up the progress the class already has" if seq else "started afresh"
        fresh = document.new_document(join.class_name, join.learner, join.name)
        _write_outbox(directory, {"doc": fresh, "seq": 0, "acked": 0})
        return "started afresh"


def connect(directory: Path, join: joinfile.Join) -> Kube:
    """A connection through the saved join file only (never the lab's kubeconfig)."""
    return Kube.connect({"KUBECONFIG": str(directory / JOIN_FILE)}, join.context)


def object_path(join: joinfile.Join) -> str:
    """The API path of the learner's progress object."""
    return writes.item(join.namespace, "configmaps", join.object)


def describe_failure(exc: ClusterError) -> str:
    """A class API failure in the learner's words: what it means for them."""
    if exc.kind is ErrorKind.CREDENTIALS:
        return (
            "the class token is not accepted (expired or revoked); ask your instructor for a "
            "new join file (`labrunner class renew`) and run `labrunner class join FILE` again"
        )
    if exc.kind is ErrorKind.FORBIDDEN:
        return "the class API refuses this learner's token (revoked?); ask your instructor"
    if exc.kind is ErrorKind.NOT_FOUND:
        return "your progress object is gone from the class (has the class ended?)"
    return str(exc)


# --------------------------------------------------------------------------- the publisher


class Publisher:
    """Queues a learner's class events and sends them from a background thread."""

    def __init__(self, directory: Path, join: joinfile.Join) -> None:
        self.directory = directory
        self.join = join
        self._queue: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        self._pending = 0
        """Events queued but not yet folded into the outbox."""
        self._seq = 0
        self._acked = 0
        self._backoff = MIN_BACKOFF
        self._next_try = 0.0
        self._kube: Kube | None = None
        self._join_stamp = self._stamp()
        self._close_grace = EXIT_GRACE
        self._listeners: list[Callable[[Status], None]] = []
        self._status = Status(join.class_name, join.learner)
        saved = read_outbox(directory)
        if saved is not None:
            self._seq = int(saved.get("seq") or 0)
            self._acked = int(saved.get("acked") or 0)
            self._status = Status(
                join.class_name, join.learner, waiting=max(self._seq - self._acked, 0)
            )

    # ------------------------------------------------------------------ the caller's side

    def publish(self, item: Mapping[str, Any]) -> None:
        """Queue one event (never blocks, never raises)."""
        try:
            with self._idle:
                self._pending += 1
            self._queue.put(dict(item))
            self._ensure_thread()
        except Exception:  # noqa: S110 - publishing must never cost the learner a step
            pass

    def status(self) -> Status:
        """How publishing goes now."""
        return self._status

    def on_change(self, listener: Callable[[Status], None]) -> None:
        """Call ``listener`` (from the publishing thread) whenever the status changes."""
        self._listeners.append(listener)

    def flush(self, timeout: float) -> bool:
        """Wait until every queued event is folded in and acknowledged; False on timeout."""
        self._ensure_thread()
        deadline = time.monotonic() + timeout
        with self._idle:
            self._next_try = 0.0
            self._idle.notify_all()
            self._queue.put(None)  # wake the thread: try now, not after the backoff
            while self._pending or self._seq > self._acked:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, grace: float = EXIT_GRACE) -> None:
        """Save what is queued; send it if the class API answers, within ``grace`` seconds."""
        thread = self._thread
        if thread is None:
            return
        self._close_grace = grace
        self._stopping.set()
        self._queue.put(None)
        thread.join(grace + 0.5)
        if thread.is_alive():  # stuck in a send to a hanging API: save the rest from here
            items = [item for item in self._drain() if item is not None]
            if items:
                self._fold(items)

    # ------------------------------------------------------------------ the thread

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(
                    target=self._run, name="labrunner-class-publisher", daemon=True
                )
                thread.start()
                self._thread = thread

    def _take(self, timeout: float | None) -> list[dict[str, Any]]:
        """Events that arrive within ``timeout`` (None: wait for one), plus a batch window."""
        items: list[dict[str, Any]] = []
        try:
            first = self._queue.get(timeout=timeout) if timeout != 0 else self._queue.get_nowait()
        except queue.Empty:
            return items
        if first is not None:
            items.append(first)
            window = time.monotonic() + BATCH_WINDOW
            while not self._stopping.is_set():
                left = window - time.monotonic()
                if left <= 0:
                    break
                try:
                    more = self._queue.get(timeout=left)
                except queue.Empty:
                    break
                if more is None:
                    break
                items.append(more)
        items.extend(item for item in self._drain() if item is not None)
        return items

    def _drain(self) -> list[dict[str, Any] | None]:
        """Whatever is queued already, without waiting."""
        found: list[dict[str, Any] | None] = []
        while True:
            try:
                found.append(self._queue.get_nowait())
            except queue.Empty:
                return found

    def _run(self) -> None:
        while True:
            try:
                stopping = self._stopping.is_set()
                if stopping:
                    timeout: float | None = 0
                elif self._seq > self._acked:
                    timeout = max(self._next_try - time.monotonic(), 0.0)
                else:
                    timeout = None
                items = self._take(timeout)
                if items:
                    self._fold(items)
                if stopping:
                    self._last_send()
                    return
                if self._seq > self._acked and time.monotonic() >= self._next_try:
                    self._send()
            except Exception as exc:  # a bug here must not end publishing for the session
                self._set_status(problem=f"{type(exc).__name__}: {exc}", state="offline")
                self._stopping.wait(MAX_BACKOFF)

    def _fold(self, items: list[dict[str, Any]]) -> None:
        with _locked(self.directory):
            saved = read_outbox(self.directory) or {
                "doc": document.new_document(
                    self.join.class_name, self.join.learner, self.join.name
                ),
                "seq": 0,
                "acked": 0,
            }
            doc = saved["doc"]
            for item in items:
                document.fold(doc, item)
            seq = int(saved.get("seq") or 0) + len(items)
            doc["seq"] = seq
            acked = int(saved.get("acked") or 0)
            _write_outbox(self.directory, {"doc": doc, "seq": seq, "acked": acked})
        with self._idle:
            self._pending -= len(items)
            self._seq, self._acked = seq, max(self._acked, acked)
            self._idle.notify_all()
        self._set_status()

    def _stamp(self) -> float:
        try:
            return (self.directory / JOIN_FILE).stat().st_mtime
        except OSError:
            return 0.0

    def _connection(self) -> Kube:
        stamp = self._stamp()
        if self._kube is None or stamp != self._join_stamp:
            if self._kube is not None:
                self._kube.close()
                self._kube = None
            if stamp != self._join_stamp:  # `class join` again: a renewed token
                self.join = joinfile.read(self.directory / JOIN_FILE)
                self._join_stamp = stamp
            self._kube = connect(self.directory, self.join)
        return self._kube

    def _send(self, timeout: float = SEND_TIMEOUT) -> bool:
        with _locked(self.directory):
            saved = read_outbox(self.directory)
        if saved is None:  # the learner left the class: nothing to send any more
            with self._idle:
                self._acked = self._seq
                self._idle.notify_all()
            return False
        doc = dict(saved["doc"])
        seq = int(saved.get("seq") or 0)
        doc["seq"] = seq
        doc["updated"] = time.time()
        try:
            kube = self._connection()
            writes.merge_patch(
                kube,
                object_path(self.join),
                {"data": {PROGRESS_KEY: document.encode(doc)}},
                timeout=timeout,
            )
        except (ClusterError, joinfile.BadJoinFile) as exc:
            problem = describe_failure(exc) if isinstance(exc, ClusterError) else str(exc)
            delay = self._backoff * random.uniform(0.8, 1.2)  # jitter, not a secret
            if isinstance(exc, ClusterError) and exc.retry_after:
                delay = max(delay, exc.retry_after)
            self._backoff = min(self._backoff * 2, MAX_BACKOFF)
            self._next_try = time.monotonic() + delay
            self._set_status(state="offline", problem=problem)
            return False
        with _locked(self.directory):
            current = read_outbox(self.directory) or saved
            acked = max(int(current.get("acked") or 0), seq)
            _write_outbox(self.directory, {**current, "acked": acked})
        with self._idle:
            self._acked = max(self._acked, acked)
            self._seq = max(self._seq, int(current.get("seq") or 0))
            self._idle.notify_all()
        self._backoff = MIN_BACKOFF
        self._next_try = 0.0
        self._set_status(state="online", problem="")
        return True

    def _last_send(self) -> None:
        if self._seq > self._acked and self._status.state != "offline":
            self._send(timeout=self._close_grace)
        if self._kube is not None:
            self._kube.close()
            self._kube = None

    def _set_status(self, *, state: str | None = None, problem: str | None = None) -> None:
        old = self._status
        new = Status(
            old.class_name,
            old.learner,
            state=state if state is not None else old.state,
            waiting=max(self._seq - self._acked, 0),
            problem=problem if problem is not None else old.problem,
        )
        if new == old:
            return
        self._status = new
        for listener in list(self._listeners):
            try:
                listener(new)
            except Exception:  # noqa: S112 - a listener's bug is not the publisher's
                continue


# --------------------------------------------------------------------------- one per directory

_active: dict[Path, Publisher] = {}
_active_lock = threading.Lock()


def active(directory: Path) -> Publisher | None:
    """The publisher of the class joined in ``directory`` (started once per process), or
    None when no class is joined there."""
    path = directory / JOIN_FILE
    if not path.is_file():
        with _active_lock:
            gone = _active.pop(directory, None)
        if gone is not None:
            gone.close(0.0)
        return None
    with _active_lock:
        publisher = _active.get(directory)
        if publisher is not None:
            return publisher
        try:
            join = joinfile.read(path)
        except joinfile.BadJoinFile:
            return None
        publisher = Publisher(directory, join)
        _active[directory] = publisher
        return publisher


def close_active(directory: Path, grace: float = EXIT_GRACE) -> Status | None:
    """Close the publisher this process started for ``directory`` (its last send within
    ``grace`` seconds) and return how it ended; None when this process published nothing."""
    with _active_lock:
        publisher = _active.pop(directory, None)
    if publisher is None or publisher._thread is None:
        return None
    publisher.close(grace)
    return publisher.status()


def forget(directory: Path) -> None:
    """Stop and drop the publisher of ``directory`` (after ``class leave`` or in tests)."""
    with _active_lock:
        publisher = _active.pop(directory, None)
    if publisher is not None:
        publisher.close(0.0)


@atexit.register
def _close_all() -> None:
    with _active_lock:
        publishers = list(_active.values())
        _active.clear()
    for publisher in publishers:
        publisher.close()
