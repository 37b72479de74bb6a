"""One progress journal: an append-only file of JSON records, locked, compacted when opened.

Saving a step must cost the same whether it is the first step of the day or
the thousandth, so a journal never rewrites what it already holds: each
change (a step's result, where the learner is, a stale flag, the cluster the
records belong to) is one line appended under an exclusive ``flock``, in one
``write``. The current state is the replay of those lines.

Durability is a group commit. Once ``write`` returns, the line is in the
kernel's page cache: a process that is killed or crashes the instant after
loses nothing, and any other process reads it. Only a kernel crash or a power
cut can drop page-cache data, so ``fdatasync`` (0.3 ms here, as much as a
trivial step costs) runs at most every ``SYNC_INTERVAL`` seconds while steps
are saved, and always when a journal is closed: at the end of each lab, before
reports are written, and at exit. A power cut can so cost at most the last
fraction of a second of steps, never an earlier record, and never the file: a
half-written last line is ignored (see below) and compaction replaces the file
atomically. When the journal is opened it is compacted (rewritten atomically with
one record per step) if replaying it costs more than it needs to.

Every line is data, never code, and is checked against the record schema as
it is read: ids must be ids, export names shell identifiers and their values
strings. A line that is not valid is moved aside into ``<file>.rejected``
with the reason, and a warning says so; nothing is ever executed or trusted
because it is in the file, and nothing raises a traceback. A last line cut
short by a crash is ignored with a warning and never costs an earlier
record: the next writer cuts it off before it appends. A file
written by a newer labrunner (an unknown version) is refused, and left as it
is, so an older labrunner can never destroy a newer one's progress.

Writers and compaction hold one lock file per directory (not the journal
itself, which compaction replaces); a writer that finds the journal replaced
under it re-reads the new one before it appends.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from labrunner.fsutil import write_atomic

TYPE_CHECKING = False  # as typing's, without importing typing (a start-up cost)
if TYPE_CHECKING:
    from typing import Any

FORMAT_VERSION = 2
MAGIC = "labrunner-progress"
STATUSES = frozenset({"passed", "skipped", "failed", "error"})
COMPLETE = frozenset({"passed", "skipped"})
# a pattern's text: `re` compiles (and caches) it when first used, not at import
SHELL_NAME = r"^[A-Za-z_][A-Za-z0-9_]*\Z"
RECORD_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}\Z"
MESSAGE_LIMIT = 500
SLACK = 32
SYNC_INTERVAL = 0.25
"""Seconds between ``fdatasync`` calls while records are appended (a group commit)."""
"""Records a journal may carry beyond twice what its compacted form needs."""


class StateError(Exception):
    """Progress could not be read or written; the message says why."""


class NewerFormat(StateError):
    """The file was written by a newer labrunner; it is refused and left untouched."""


def _is_id(value: object) -> bool:
    return isinstance(value, str) and re.match(RECORD_ID, value) is not None


def _optional_id(value: object) -> bool:
    return value is None or _is_id(value)


def check_exports(value: object) -> str | None:
    """Why ``value`` is not a valid exports mapping (names → strings), or None."""
    if not isinstance(value, dict):
        return "exports must be a mapping of names to strings"
    for name, text in value.items():
        if not isinstance(name, str) or re.match(SHELL_NAME, name) is None:
            return f"export name {str(name)[:60]!r} is not a shell variable name"
        if not isinstance(text, str):
            return f"export {name} must be a string, not {type(text).__name__}"
    return None


def check_record(record: object) -> str | None:
    """Why ``record`` is not a valid journal record, or None when it is."""
    if not isinstance(record, dict):
        return "a record must be a JSON object"
    stamp = record.get("t", 0)
    if not isinstance(stamp, int | float) or isinstance(stamp, bool):
        return "t must be a number"
    op = record.get("op")
    if op == "step":
        if not (_is_id(record.get("lab")) and _is_id(record.get("step"))):
            return "lab and step must be ids"
        status = record.get("status")
        if not isinstance(status, str) or status not in STATUSES:
            return f"status {str(status)[:40]!r} is not one of {sorted(STATUSES)}"
        for key in ("at", "message", "cwd", "stale"):
            if key in record and not isinstance(record[key], str):
                return f"{key} must be a string"
        if "exports" in record:
            return check_exports(record["exports"])
        return None
    if op == "stale":
        if not (_is_id(record.get("lab")) and _is_id(record.get("step"))):
            return "lab and step must be ids"
        message = record.get("message")
        return None if message is None or isinstance(message, str) else "message must be a string"
    if op == "position":
        if not (_is_id(record.get("lab")) and _optional_id(record.get("step"))):
            return "position needs a lab id (and a step id or null)"
        return None
    if op == "forget":
        lab, step = record.get("lab"), record.get("step")
        if not _optional_id(lab) or not _optional_id(step) or (step is not None and lab is None):
            return "forget names a lab (and maybe a step) by id, or nothing"
        return None
    if op == "cluster":
        uid = record.get("uid")
        return None if _is_id(uid) else "cluster uid must be an id"
    return f"unknown record kind {str(op)[:40]!r}"


@dataclass
class JournalState:
    """The replayed content of a journal."""

    steps: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    position: tuple[str, str | None] | None = None
    position_t: float = 0.0
    uid: str | None = None

    def apply(self, record: Mapping[str, Any]) -> None:
        """Replay one valid record."""
        op = record["op"]
        if op == "step":
            entry = {k: v for k, v in record.items() if k not in ("op", "lab", "step")}
            self.steps.setdefault(record["lab"], {})[record["step"]] = entry
            self._move(record["lab"], record["step"], record.get("t"))
        elif op == "stale":
            known = self.steps.get(record["lab"], {}).get(record["step"])
            if known is not None:
                if record.get("message"):
                    known["stale"] = record["message"]
                else:
                    known.pop("stale", None)
        elif op == "position":
            self._move(record["lab"], record.get("step"), record.get("t"))
        elif op == "forget":
            lab, step = record.get("lab"), record.get("step")
            if lab is None:
                self.steps.clear()
                self.position, self.position_t = None, float(record.get("t") or 0.0)
            elif step is None:
                self.steps.pop(lab, None)
            else:
                self.steps.get(lab, {}).pop(step, None)
        elif op == "cluster":
            self.uid = record["uid"]

    def _move(self, lab: str, step: str | None, stamp: object) -> None:
        when = float(stamp) if isinstance(stamp, int | float) else time.time()
        if when >= self.position_t:
            self.position, self.position_t = (lab, step), when

    def compacted(self) -> list[dict[str, Any]]:
        """The fewest records that replay to this state."""
        out: list[dict[str, Any]] = []
        if self.uid is not None:
            out.append({"op": "cluster", "uid": self.uid})
        for lab, steps in self.steps.items():
            for step, entry in steps.items():
                out.append({"op": "step", "lab": lab, "step": step, **entry, "t": 0})
        if self.position is not None:
            where, which = self.position
            out.append({"op": "position", "lab": where, "step": which, "t": self.position_t})
        return out


def encode(record: Mapping[str, Any]) -> bytes:
    """One record as one journal line."""
    return json.dumps(record, separators=(",", ":"), sort_keys=True).encode("ascii") + b"\n"


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%S")


@contextlib.contextmanager
def locked(lock_path: Path, kind: int = fcntl.LOCK_EX) -> Iterator[None]:
    """Hold ``flock`` on ``lock_path`` (created 0600 if needed); raises StateError."""
    fd = _open_lock(lock_path)
    try:
        fcntl.flock(fd, kind)
        yield
    finally:
        os.close(fd)


def _open_lock(lock_path: Path) -> int:
    """A descriptor of ``lock_path``, made 0600 (with its folder) if needed; raises StateError."""
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StateError(
            f"cannot save progress in {lock_path.parent}: {exc.strerror or exc}"
        ) from exc


def move_aside(path: Path, suffix: str) -> Path:
    """Rename ``path`` to ``<path>.<suffix>-<time>`` without replacing an earlier copy."""
    base = f"{path.name}.{suffix}-{_stamp()}"
    aside = path.with_name(base)
    number = 1
    while aside.exists():
        number += 1
        aside = path.with_name(f"{base}-{number}")
    os.replace(path, aside)
    return aside


class _Parsed:
    """What reading a stretch of journal bytes found."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.rejected: list[tuple[int, str, bytes]] = []
        self.torn: bytes = b""
        self.consumed = 0
        self.lines = 0


def _parse(data: bytes, *, first_line: int) -> _Parsed:
    parsed = _Parsed()
    pos = 0
    number = first_line
    while True:
        end = data.find(b"\n", pos)
        if end < 0:
            parsed.torn = data[pos:]
            break
        raw = data[pos:end]
        pos = end + 1
        parsed.consumed = pos
        if not raw.strip():
            number += 1
            continue
        parsed.lines += 1
        try:
            record = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            parsed.rejected.append((number, "not a JSON record", raw))
        else:
            why = check_record(record)
            if why is None:
                parsed.records.append(record)
            else:
                parsed.rejected.append((number, why, raw))
        number += 1
    return parsed


class Journal:
    """One journal file (or memory, when ``path`` is None) and its replayed state."""

    def __init__(
        self,
        path: Path | None,
        *,
        header: Mapping[str, Any],
        warnings: list[str],
        lock_path: Path | None = None,
    ) -> None:
        self.path = path
        self.header = dict(header)
        self.warnings = warnings
        self.state = JournalState()
        self.lock_path = lock_path or (path.parent / ".lock" if path is not None else None)
        self._mutex = threading.RLock()
        self._opened = False
        self._fd: int | None = None
        self._ino: int | None = None
        self._offset = 0
        self._seen = 0
        self._line = 1
        self._torn = False
        self._refused: str | None = None
        self._box: list[int | None] = [None, 0]
        """The open descriptor and whether it has unsynced appends (1), for the finalizer."""
        self._finalizer = weakref.finalize(self, _close_fd, self._box)
        self._lock_box: list[int | None] = [None, None]
        """The lock file's open descriptor and its inode."""
        weakref.finalize(self, _close_lock, self._lock_box)
        self._synced_at = -math.inf  # the first record syncs at once (even soon after boot)

    # ------------------------------------------------------------------ locking

    @contextlib.contextmanager
    def _locked(self, kind: int) -> Iterator[None]:
        """Hold the directory's lock, on a descriptor kept open between appends.

        Opening the lock file (and making its folder) for every step cost as much
        as the append itself; the descriptor is reopened when the lock file was
        removed or replaced, so a writer never locks a file nobody else sees."""
        fd = self._lock_fd_now()
        try:
            fcntl.flock(fd, kind)
        except OSError as exc:
            raise StateError(f"cannot lock progress in {self.lock_path}: {exc.strerror}") from exc
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _lock_fd_now(self) -> int:
        assert self.lock_path is not None
        box = self._lock_box
        if box[0] is not None:
            try:
                if os.stat(self.lock_path).st_ino == box[1]:
                    return box[0]
            except OSError:
                pass
            _close_lock(box)
        fd = _open_lock(self.lock_path)
        box[0], box[1] = fd, os.fstat(fd).st_ino
        return fd

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the journal's lock (to move files around it); re-read it afterwards."""
        with self._mutex:
            if self.path is None:
                yield
                return
            with self._locked(fcntl.LOCK_EX):
                yield
                self._drop_fd()
                self._load_locked()

    # ------------------------------------------------------------------ reading

    def _check_open(self) -> None:
        if self._refused is not None:
            raise NewerFormat(self._refused)

    def open(self) -> None:
        """Read the whole journal once (compacting it when worthwhile); later reads are cheap."""
        with self._mutex:
            if self._opened:
                self._check_open()
                return
            if self.path is not None and self._exists():
                with self._locked(fcntl.LOCK_EX):
                    self._load_locked(compact=True)
            self._opened = True
            self._check_open()

    def _exists(self) -> bool:
        """True when the file is there; raises StateError when it cannot be there at all."""
        assert self.path is not None
        try:
            os.stat(self.path)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StateError(f"cannot read progress file {self.path}: {exc.strerror}") from exc
        return True

    def refresh(self) -> None:
        """Take in what other processes appended since the last read."""
        with self._mutex:
            if not self._opened:
                self.open()
                return
            self._check_open()
            if self.path is None:
                return
            try:
                info = self.path.stat()
            except FileNotFoundError:
                if self._ino is not None:
                    with self._locked(fcntl.LOCK_SH):
                        self._load_locked()
                return
            except OSError as exc:
                raise StateError(f"cannot read progress file {self.path}: {exc.strerror}") from exc
            if info.st_ino == self._ino and info.st_size == self._seen and not self._torn:
                return
            with self._locked(fcntl.LOCK_SH):
                self._sync_locked()

    def _drop_fd(self) -> None:
        if self._fd is not None:
            self._sync_data()
            os.close(self._fd)
            self._fd = None
            self._finalizer.detach()
        self._ino = None

    def _open_fd(self) -> int | None:
        assert self.path is not None
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
        except FileNotFoundError:
            return None
        except PermissionError as exc:
            raise StateError(f"cannot read progress file {self.path}: permission denied") from exc
        except OSError as exc:
            raise StateError(f"cannot read progress file {self.path}: {exc.strerror}") from exc
        self._fd = fd
        self._ino = os.fstat(fd).st_ino
        self._finalizer.detach()
        self._box = [fd, 0]
        self._finalizer = weakref.finalize(self, _close_fd, self._box)
        return fd

    def _read_from(self, fd: int, offset: int) -> bytes:
        chunks: list[bytes] = []
        while True:
            chunk = os.pread(fd, 1 << 20, offset)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            offset += len(chunk)

    def _sync_locked(self) -> None:
        """With the lock held: follow a replaced file, or read what was appended."""
        assert self.path is not None
        try:
            current = self.path.stat().st_ino
        except FileNotFoundError:
            current = None
        if self._fd is None or current != self._ino:
            self._drop_fd()
            self._load_locked()
            return
        size = os.fstat(self._fd).st_size
        if size < self._seen:
            self._drop_fd()
            self._load_locked()
            return
        if size == self._seen and not self._torn:
            return  # (a torn tail may have been cut and replaced by as many bytes)
        data = self._read_from(self._fd, self._offset)
        parsed = _parse(data, first_line=self._line)
        self._take(parsed, moved=False)
        self._offset += parsed.consumed
        self._seen = self._offset + len(parsed.torn)
        self._line += parsed.lines
        self._torn = bool(parsed.torn)

    def _load_locked(self, *, compact: bool = False) -> None:
        """With the lock held: read the whole file afresh."""
        assert self.path is not None
        self.state = JournalState()
        self._offset, self._seen, self._line, self._torn = 0, 0, 1, False
        fd = self._open_fd()
        if fd is None:
            return
        data = self._read_from(fd, 0)
        newline = data.find(b"\n")
        header_raw = data[:newline] if newline >= 0 else data
        problem = self._check_header(header_raw)
        if problem is not None:
            if isinstance(problem, NewerFormat):
                self._refused = str(problem)
                self._drop_fd()
                raise problem
            self._drop_fd()
            self._quarantine(str(problem))
            return
        self._offset = newline + 1
        parsed = _parse(data[self._offset :], first_line=2)
        self._line = 2 + parsed.lines
        self._offset += parsed.consumed
        self._seen = len(data)
        self._torn = bool(parsed.torn)
        if parsed.torn:
            self.warnings.append(
                f"progress file {self.path}: its last record was cut short (labrunner stopped "
                "while saving?) and is ignored; every earlier record is kept"
            )
        self._take(parsed, moved=compact)
        if compact and (
            parsed.rejected
            or parsed.torn
            or len(parsed.records) > 2 * len(self.state.compacted()) + SLACK
        ):
            self._rewrite_locked()

    def _check_header(self, raw: bytes) -> StateError | str | None:
        try:
            header = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return "it is not a progress journal"
        if not isinstance(header, dict) or header.get("labrunner") != MAGIC:
            return "it is not a progress journal"
        version = header.get("version")
        if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
            return NewerFormat(
                f"progress file {self.path} has format version {version}, newer than this "
                f"labrunner understands ({FORMAT_VERSION}); it was left as it is: upgrade "
                "labrunner, or move the file away to start fresh"
            )
        if version != FORMAT_VERSION:
            return f"its format version {str(version)[:20]!r} is not one labrunner knows"
        return None

    def _quarantine(self, why: str) -> None:
        """Move an unreadable journal aside, with a warning, and start fresh."""
        assert self.path is not None
        try:
            aside = move_aside(self.path, "corrupt")
        except OSError as exc:
            raise StateError(
                f"progress file {self.path} is unreadable ({why}) and could not be moved "
                f"aside ({exc.strerror}); fix or remove it"
            ) from exc
        self.warnings.append(
            f"progress file {self.path} was unreadable ({why}); moved it to {aside} and "
            "started fresh"
        )

    def _take(self, parsed: _Parsed, *, moved: bool) -> None:
        for record in parsed.records:
            self.state.apply(record)
        if not parsed.rejected:
            return
        assert self.path is not None
        first = parsed.rejected[0]
        count = len(parsed.rejected)
        where = f"{count} record{'s' if count != 1 else ''} (line {first[0]}: {first[1]})"
        if moved:
            rejected = self.path.with_name(self.path.name + ".rejected")
            lines = b"".join(
                encode({"line": n, "reason": why, "text": raw.decode("utf-8", "replace")})
                for n, why, raw in parsed.rejected
            )
            try:
                fd = os.open(rejected, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, lines)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise StateError(
                    f"progress file {self.path} holds invalid records and they could not be "
                    f"moved aside ({exc.strerror}); fix or remove it"
                ) from exc
            self.warnings.append(
                f"progress file {self.path}: ignored {where} that were not valid progress; "
                f"moved them to {rejected}"
            )
        else:
            self.warnings.append(
                f"progress file {self.path}: ignored {where} that were not valid progress"
            )

    # ------------------------------------------------------------------ writing

    def _header_line(self) -> bytes:
        return encode({**self.header, "labrunner": MAGIC, "version": FORMAT_VERSION})

    def _rewrite_locked(self) -> None:
        assert self.path is not None
        payload = self._header_line() + b"".join(encode(r) for r in self.state.compacted())
        self._remove_temp_files()
        try:
            write_atomic(self.path, payload, mode=0o600)
        except OSError as exc:
            raise StateError(f"cannot save progress to {self.path}: {exc.strerror or exc}") from exc
        self._drop_fd()
        fd = self._open_fd()
        if fd is None:
            raise StateError(f"cannot save progress to {self.path}: it vanished while written")
        self._offset = self._seen = os.fstat(fd).st_size
        self._line = 2 + payload.count(b"\n") - 1
        self._torn = False

    def _remove_temp_files(self) -> None:
        """Temp files of a writer that died mid-rewrite (we hold the lock: none is in use)."""
        assert self.path is not None
        for leftover in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            with contextlib.suppress(OSError):
                leftover.unlink()

    def append(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Add records (each must be valid) durably, in one write; raises StateError."""
        items = [dict(r) for r in records]
        for item in items:
            why = check_record(item)
            if why is not None:
                raise ValueError(f"invalid progress record ({why}): {item!r}")
        with self._mutex:
            if not self._opened:
                self.open()
            self._check_open()
            if self.path is None:
                for item in items:
                    self.state.apply(item)
                return
            with self._locked(fcntl.LOCK_EX):
                self._sync_locked()
                self._check_open()
                if self._fd is None:
                    self._create_locked()
                assert self._fd is not None
                if self._torn:
                    self._drop_torn_tail()
                self._write_all(b"".join(encode(item) for item in items))
                self._offset = self._seen = os.fstat(self._fd).st_size
                self._line += len(items)
                for item in items:
                    self.state.apply(item)

    def _drop_torn_tail(self) -> None:
        """With the lock held: cut off a last line that a writer never finished.

        Every writer appends under the lock, so an unfinished line seen under it
        belongs to a writer that died mid-``write`` (a SIGKILL can cut a write at
        a page boundary) or failed (a full disk): its record was never confirmed
        to anyone. Ending it with a newline instead would leave an invalid line
        in the middle of the journal, for the next start to reject with a
        warning; cutting it leaves a journal of whole records only."""
        assert self._fd is not None and self.path is not None
        try:
            os.ftruncate(self._fd, self._offset)
        except OSError as exc:
            raise StateError(f"cannot save progress to {self.path}: {exc.strerror or exc}") from exc
        self._seen = self._offset
        self._torn = False

    def _create_locked(self) -> None:
        assert self.path is not None
        try:
            write_atomic(self.path, self._header_line(), mode=0o600)
        except OSError as exc:
            raise StateError(f"cannot save progress to {self.path}: {exc.strerror or exc}") from exc
        fd = self._open_fd()
        if fd is None:
            raise StateError(f"cannot save progress to {self.path}: it vanished while created")
        self._offset = self._seen = os.fstat(fd).st_size
        self._line = 2

    def _write_all(self, data: bytes) -> None:
        assert self._fd is not None and self.path is not None
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            self._torn = True
            raise StateError(f"cannot save progress to {self.path}: {exc.strerror or exc}") from exc
        self._box[1] = 1
        if time.monotonic() - self._synced_at >= SYNC_INTERVAL:
            self._sync_data()

    def _sync_data(self) -> None:
        """``fdatasync`` what was appended since the last one (a failure is only lost
        durability against a power cut: the data is written, so it is not raised)."""
        if not self._box[1] or self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.fdatasync(self._fd)
        self._box[1] = 0
        self._synced_at = time.monotonic()

    def sync(self) -> None:
        """Make every record appended so far durable against a power cut, now."""
        with self._mutex:
            self._sync_data()

    def close(self) -> None:
        """Close the journal's file descriptor (reopened on the next use)."""
        with self._mutex:
            self._drop_fd()
            _close_lock(self._lock_box)
            self._opened = False


def _close_fd(box: list[int | None]) -> None:
    """Close a journal's descriptor when it is collected or at exit, synced first."""
    fd, unsynced = box
    if fd is not None:
        if unsynced:
            with contextlib.suppress(OSError):
                os.fdatasync(fd)
        with contextlib.suppress(OSError):
            os.close(fd)


def _close_lock(box: list[int | None]) -> None:
    """Close a journal's lock descriptor (which also lets go of any lock it holds)."""
    fd = box[0]
    box[0] = box[1] = None
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)
