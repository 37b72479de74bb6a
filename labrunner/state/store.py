"""Where a learner's progress lives, and why it is written the way it is.

Progress is the one thing a learner must never lose: hours of work in a
workshop end up as a few ticks in a small JSON file. So the file is written
atomically (a temp file in the same directory, fsync, rename, fsync of the
directory): a crash or a SIGKILL at any moment leaves either the old file or
the new one, never half of each. Writers take an advisory lock so the TUI and
a ``labrunner verify`` in another terminal do not overwrite each other's
updates. A file that still fails to parse (edited by hand, a full disk on an
old version) is moved aside with a warning, never silently replaced.

Progress is kept per kube context: the same workshop against a fresh kind
cluster starts from the beginning, and switching back finds the old ticks
(which the TUI re-checks, since clusters change behind our back).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labrunner.fsutil import write_atomic

FORMAT_VERSION = 1
COMPLETE = frozenset({"passed", "skipped"})


class StateError(Exception):
    """Progress could not be read or written; the message says why."""


def state_dir() -> Path:
    """The state directory: ``LABRUNNER_STATE_DIR`` or the platform's user state dir."""
    override = os.environ.get("LABRUNNER_STATE_DIR")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_state_dir  # lazy: start-up speed (only without the override)

    return Path(user_state_dir("labrunner", appauthor=False))


def context_slug(context: str | None) -> str:
    """A file-name-safe, collision-free name for a kube context."""
    if not context:
        return "no-context"
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", context)[:60].lstrip(".") or "_"
    digest = hashlib.sha256(context.encode()).hexdigest()[:8]
    return f"{safe}-{digest}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class StepRecord:
    """What is known about one step."""

    status: str
    at: str
    exports: Mapping[str, str] = field(default_factory=dict)
    message: str = ""
    cwd: str = ""

    @property
    def complete(self) -> bool:
        """Passed or skipped: the learner may move on."""
        return self.status in COMPLETE


class ProgressStore:
    """Progress for one kube context: in memory, or backed by an atomic JSON file."""

    def __init__(self, path: Path | None = None, *, context: str | None = None) -> None:
        self.path = path
        self.context = context
        self.warnings: list[str] = []
        self._lock = threading.RLock()
        self._data: dict[str, Any] = self._empty()
        self._loaded = False

    # ------------------------------------------------------------------ construction

    @classmethod
    def for_context(cls, context: str | None, directory: Path | None = None) -> ProgressStore:
        """The file-backed store for ``context`` in the state directory."""
        base = directory if directory is not None else state_dir()
        return cls(base / "progress" / f"{context_slug(context)}.json", context=context)

    @classmethod
    def memory(cls, context: str | None = None) -> ProgressStore:
        """A store that keeps progress only in memory (tests, `--no-save`)."""
        return cls(None, context=context)

    def _empty(self) -> dict[str, Any]:
        return {"version": FORMAT_VERSION, "context": self.context, "labs": {}, "position": None}

    # ------------------------------------------------------------------ reading

    def _read_file(self) -> dict[str, Any]:
        assert self.path is not None
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return self._empty()
        except PermissionError as exc:
            raise StateError(f"cannot read progress file {self.path}: permission denied") from exc
        except OSError as exc:
            raise StateError(f"cannot read progress file {self.path}: {exc.strerror}") from exc
        try:
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("labs"), dict):
                raise ValueError("not a progress file")
        except (ValueError, UnicodeDecodeError) as exc:
            stamp = time.strftime("%Y%m%dT%H%M%S")
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
            number = 1
            while aside.exists():  # never replace an earlier copy
                number += 1
                aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{number}")
            try:
                os.replace(self.path, aside)
                self.warnings.append(
                    f"progress file {self.path} was unreadable ({exc}); moved it to {aside} "
                    "and started fresh"
                )
            except OSError as move_exc:
                raise StateError(
                    f"progress file {self.path} is unreadable ({exc}) and could not be moved "
                    f"aside ({move_exc.strerror}); fix or remove it"
                ) from move_exc
            return self._empty()
        return data

    def load(self) -> None:
        """Read the file now (later reads are cached; writes re-read under the lock)."""
        with self._lock:
            if self.path is not None:
                self._data = self._read_file()
            self._loaded = True

    def _ensure(self) -> None:
        if not self._loaded:
            self.load()

    def steps(self, lab_id: str) -> dict[str, StepRecord]:
        """Records for every step of ``lab_id`` that has one."""
        with self._lock:
            self._ensure()
            lab = self._data["labs"].get(lab_id, {})
            out = {}
            for step_id, rec in (lab.get("steps") or {}).items():
                if isinstance(rec, dict) and isinstance(rec.get("status"), str):
                    out[step_id] = StepRecord(
                        status=rec["status"],
                        at=str(rec.get("at", "")),
                        exports=dict(rec.get("exports") or {}),
                        message=str(rec.get("message", "")),
                        cwd=str(rec.get("cwd", "")),
                    )
            return out

    def completed(self, lab_id: str) -> set[str]:
        """Ids of the steps of ``lab_id`` that are passed or skipped."""
        return {k for k, v in self.steps(lab_id).items() if v.complete}

    def exports(self, lab_id: str) -> dict[str, str]:
        """Every variable recorded as exported by a completed step of ``lab_id``."""
        values: dict[str, str] = {}
        for record in self.steps(lab_id).values():
            if record.complete:
                values.update(record.exports)
        return values

    def position(self) -> tuple[str, str | None] | None:
        """The lab and step the learner was last on."""
        with self._lock:
            self._ensure()
            pos = self._data.get("position")
            if isinstance(pos, dict) and isinstance(pos.get("lab"), str):
                step = pos.get("step")
                return pos["lab"], step if isinstance(step, str) else None
            return None

    # ------------------------------------------------------------------ writing

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[dict[str, Any]]:
        with self._lock:
            if self.path is None:
                self._ensure()
                yield self._data
                return
            directory = self.path.parent
            try:
                directory.mkdir(parents=True, exist_ok=True)
                lock_fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise StateError(
                    f"cannot save progress in {directory}: {exc.strerror or exc}"
                ) from exc
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX)
                self._remove_stale_temp_files()
                data = self._read_file()
                yield data
                self._write(data)
                self._data = data
                self._loaded = True
            finally:
                os.close(lock_fd)

    def _remove_stale_temp_files(self) -> None:
        """Temp files left by a writer that died mid-write (we hold the lock, so no
        other writer is using one right now)."""
        assert self.path is not None
        for leftover in self.path.parent.glob(f".{self.path.name}.*"):
            with contextlib.suppress(OSError):
                leftover.unlink()

    def _write(self, data: dict[str, Any]) -> None:
        assert self.path is not None
        data["version"] = FORMAT_VERSION
        data["context"] = self.context
        data["updated"] = _now()
        payload = json.dumps(data, indent=2, sort_keys=True).encode("utf-8") + b"\n"
        try:
            write_atomic(self.path, payload, mode=0o600)
        except OSError as exc:
            raise StateError(f"cannot save progress to {self.path}: {exc.strerror or exc}") from exc

    def record(
        self,
        lab_id: str,
        step_id: str,
        status: str,
        *,
        exports: Mapping[str, str] | None = None,
        message: str = "",
        cwd: str | None = None,
    ) -> None:
        """Remember how ``step_id`` ended; raises StateError if it cannot be saved."""
        with self._transaction() as data:
            lab = data["labs"].setdefault(lab_id, {"steps": {}})
            steps = lab.setdefault("steps", {})
            entry: dict[str, Any] = {"status": status, "at": _now()}
            if exports:
                entry["exports"] = dict(exports)
            if message:
                entry["message"] = message[:500]
            if cwd:
                entry["cwd"] = cwd
            steps[step_id] = entry
            data["position"] = {"lab": lab_id, "step": step_id}

    def set_position(self, lab_id: str, step_id: str | None) -> None:
        """Remember where the learner is."""
        with self._transaction() as data:
            data["position"] = {"lab": lab_id, "step": step_id}

    def reset(self, lab_id: str | None = None, step_id: str | None = None) -> int:
        """Forget progress (all, one lab, or one step); returns how many steps were forgotten."""
        with self._transaction() as data:
            labs = data["labs"]
            if lab_id is None:
                count = sum(len(v.get("steps", {})) for v in labs.values())
                labs.clear()
                data["position"] = None
                return count
            lab = labs.get(lab_id)
            if not lab:
                return 0
            if step_id is None:
                count = len(lab.get("steps", {}))
                labs.pop(lab_id)
                return count
            return 1 if lab.get("steps", {}).pop(step_id, None) is not None else 0
