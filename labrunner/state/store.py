"""Where a learner's progress lives, whose it is, and why it is written the way it is.

Progress is the one thing a learner must never lose, and it must never be
confused with someone else's. So it is kept per *workshop*, keyed by the
workshop's resolved root folder (``labrunner.lab.locate``): two clones of the
same workshop on one machine, or two workshops whose labs share an id, never
see each other's ticks, and a step's working directory is stored relative to
that root, so no checkout ever resumes in another's folder (a learner's own
``cd /tmp`` stays absolute).

Labs that need no cluster are keyed by the workshop alone. Labs that act on a
cluster are also keyed by the cluster: its kube context and API server (known
from the kubeconfig at once, without a network call, so ``labrunner list`` and
the TUI's first paint never wait) and its identity, the UID of its
``kube-system`` namespace, which the journal remembers and the runner
confirms on first contact (``confirm_cluster``). A cluster deleted and
recreated under the same name has a new UID: its progress starts clean, with
a one-line notice, and the old cluster's progress is kept aside.

Each of these is one journal (``labrunner.state.journal``): an append-only
file, written under a lock with one fsync'd line per change, compacted when
opened, validated line by line as it is read. Files of the first format (one
JSON file per kube context, for every workshop at once) are migrated once:
the labs this workshop has move into its journals, unless their recorded
folders show they were done in another checkout.

Layout, under the state directory (``LABRUNNER_STATE_DIR`` or the platform's)::

    progress/<root-name>-<hash>/workshop.json    which root this folder is for
    progress/<root-name>-<hash>/local.jsonl      labs that need no cluster
    progress/<root-name>-<hash>/cluster-<context>-<server hash>.jsonl
    progress/<root-name>-<hash>/cluster-…@<uid>.jsonl   another cluster, kept aside
    progress/<root-name>-<hash>/first-format-read.json  first-format files already read
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from labrunner.fsutil import sha256_hex, write_atomic
from labrunner.state.journal import (
    COMPLETE,
    MESSAGE_LIMIT,
    Journal,
    JournalState,
    StateError,
    check_exports,
    check_record,
    locked,
    move_aside,
)
from labrunner.statedir import state_root

TYPE_CHECKING = False  # as typing's, without importing typing (a start-up cost)
if TYPE_CHECKING:
    from typing import Any

    from labrunner.lab.model import Workshop

V1_VERSION = 1
V1_CHECKED = "first-format-read.json"
"""Which first-format files this workshop already read (see ``_v1_checked``)."""
# a pattern's text: `re` compiles (and caches) it when first used, not at import
UID_SAFE = r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}\Z"


def state_dir() -> Path:
    """The state directory: ``LABRUNNER_STATE_DIR`` or the platform's user state dir."""
    return Path(state_root())


def context_slug(context: str | None) -> str:
    """A file-name-safe, collision-free name for a kube context."""
    if not context:
        return "no-context"
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", context)[:60].lstrip(".") or "_"
    digest = sha256_hex(context.encode())[:8]
    return f"{safe}-{digest}"


def workshop_key(root: Path) -> str:
    """The folder name of a workshop's progress: its root's name and a hash of its full path."""
    resolved = str(root.resolve())
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(resolved).name)[:40].lstrip(".") or "_"
    return f"{name}-{sha256_hex(resolved.encode())[:12]}"


def cluster_key(context: str | None, server: str | None) -> str:
    """The journal name (without suffix) of a kube context and the server it points at."""
    if not context:
        return "cluster-no-context"
    digest = sha256_hex((server or "").encode())[:8]
    return f"cluster-{context_slug(context)}-{digest}"


def _now(stamp: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))


def _uid_part(uid: str) -> str:
    return uid if re.match(UID_SAFE, uid) else sha256_hex(uid.encode())[:16]


@dataclass(frozen=True)
class StepRecord:
    """What is known about one step."""

    status: str
    at: str
    exports: Mapping[str, str] = field(default_factory=dict)
    message: str = ""
    cwd: str = ""
    stale: str = ""
    """Why a completed step no longer passes (empty while it does, or was not re-checked)."""

    @property
    def complete(self) -> bool:
        """Passed or skipped: the learner may move on (a stale step is still complete)."""
        return self.status in COMPLETE


class ProgressStore:
    """Progress of one workshop (and, for its cluster labs, one cluster)."""

    def __init__(
        self,
        directory: Path | None,
        *,
        root: Path | None = None,
        context: str | None = None,
        server: str | None = None,
        cluster_labs: Iterable[str] = (),
        known_labs: Iterable[str] | None = None,
        legacy_dir: Path | None = None,
    ) -> None:
        self.directory = directory
        self.root = root.resolve() if root is not None else None
        self.context = context
        self.server = server
        self.cluster_labs = frozenset(cluster_labs)
        self.known_labs = frozenset(known_labs) if known_labs is not None else None
        self.legacy_dir = legacy_dir
        self.warnings: list[str] = []
        self.notices: list[str] = []
        """One-line news for the learner from opening the store (a migration)."""
        self._lock = threading.RLock()
        self._ready = False
        self._described = False
        self._archived: dict[str, JournalState] = {}
        self._cwd_seen: dict[str, tuple[tuple[int, int], str]] = {}
        self.local = self._journal("local", {"scope": "local"})
        self.cluster = self._journal(
            cluster_key(context, server),
            {"scope": "cluster", "context": context, "server": server},
        )

    def _journal(self, name: str, header: dict[str, Any]) -> Journal:
        if self.root is not None:
            header["workshop"] = str(self.root)
        path = self.directory / f"{name}.jsonl" if self.directory is not None else None
        return Journal(path, header=header, warnings=self.warnings)

    # ------------------------------------------------------------------ construction

    @classmethod
    def for_workshop(
        cls,
        workshop: Workshop,
        *,
        context: str | None,
        server: str | None = None,
        state: Path | None = None,
    ) -> ProgressStore:
        """The file-backed store of ``workshop`` (and its cluster labs on ``context``)."""
        return cls.for_root(
            workshop.root,
            context=context,
            server=server,
            cluster_labs=[lab.id for lab in workshop.labs if lab.needs_cluster],
            known_labs=[lab.id for lab in workshop.labs],
            state=state,
        )

    @classmethod
    def for_root(
        cls,
        root: Path,
        *,
        context: str | None,
        server: str | None = None,
        cluster_labs: Iterable[str] = (),
        known_labs: Iterable[str] | None = None,
        state: Path | None = None,
    ) -> ProgressStore:
        """The file-backed store of the workshop whose root is ``root``."""
        base = (state if state is not None else state_dir()) / "progress"
        return cls(
            base / workshop_key(root),
            root=root,
            context=context,
            server=server,
            cluster_labs=cluster_labs,
            known_labs=known_labs,
            legacy_dir=base,
        )

    @classmethod
    def memory(cls, context: str | None = None, *, root: Path | None = None) -> ProgressStore:
        """A store that keeps progress only in memory (tests, `--no-save`)."""
        return cls(None, root=root, context=context)

    def set_labs(self, workshop: Workshop) -> None:
        """Route labs anew after the workshop was reloaded (a lab may now need a cluster)."""
        with self._lock:
            self.cluster_labs = frozenset(lab.id for lab in workshop.labs if lab.needs_cluster)
            self.known_labs = frozenset(lab.id for lab in workshop.labs)

    # ------------------------------------------------------------------ opening

    def load(self) -> None:
        """Open the journals now (migrating old files once); later reads are incremental."""
        with self._lock:
            self._ready = False
            self._ensure()

    def _ensure(self, *, refresh: bool = True) -> None:
        """Open the journals once; later, take in what other processes appended.

        A writer passes ``refresh=False``: the journal it appends to reads what
        others appended under its lock anyway, and the other journal is not used."""
        if self._ready:
            if not refresh:
                return
            self.local.refresh()
            self.cluster.refresh()
            return
        self.local.open()
        self.cluster.open()
        if self.legacy_dir is not None:
            self._migrate_v1()
        self._ready = True

    def sync(self) -> None:
        """Make every saved record durable against a power cut now (the end of a lab)."""
        self.local.sync()
        self.cluster.sync()

    def _write(self, journal: Journal, records: list[dict[str, Any]]) -> None:
        """Append to a journal (saying, the first time, whose folder this is)."""
        if not self._described:
            self._describe()
            self._described = True
        journal.append(records)

    def _describe(self) -> None:
        """Say which workshop a progress folder belongs to (for people browsing the state dir)."""
        if self.directory is None or self.root is None:
            return
        marker = self.directory / "workshop.json"
        if marker.exists():
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            write_atomic(
                marker,
                (json.dumps({"root": str(self.root), "version": 2}, indent=2) + "\n").encode(),
                mode=0o600,
            )
        except OSError as exc:
            raise StateError(
                f"cannot save progress in {self.directory}: {exc.strerror or exc}"
            ) from exc

    def _route(self, lab_id: str) -> Journal:
        return self.cluster if lab_id in self.cluster_labs else self.local

    # ------------------------------------------------------------------ reading

    def _cwd_out(self, cwd: str) -> str:
        if cwd and self.root is not None and not os.path.isabs(cwd):
            return str(self.root / cwd) if cwd != "." else str(self.root)
        return cwd

    def _cwd_in(self, cwd: str) -> str:
        """A directory as stored: relative to the workshop root when inside it."""
        if not cwd or self.root is None or not os.path.isabs(cwd):
            return cwd
        # Steps mostly run in the same folder: resolving it again costs more than
        # saving the step, so the answer is kept while the folder is the same one.
        try:
            info = os.stat(cwd)
        except OSError:
            return cwd
        known = self._cwd_seen.get(cwd)
        if known is not None and known[0] == (info.st_dev, info.st_ino):
            return known[1]
        try:
            resolved = Path(cwd).resolve()
        except OSError:
            return cwd
        stored = cwd
        if resolved == self.root or self.root in resolved.parents:
            stored = resolved.relative_to(self.root).as_posix() or "."
        if len(self._cwd_seen) > 64:
            self._cwd_seen.clear()
        self._cwd_seen[cwd] = ((info.st_dev, info.st_ino), stored)
        return stored

    def steps(self, lab_id: str) -> dict[str, StepRecord]:
        """Records for every step of ``lab_id`` that has one."""
        with self._lock:
            self._ensure()
            entries = self._route(lab_id).state.steps.get(lab_id, {})
            return {
                step_id: StepRecord(
                    status=entry["status"],
                    at=str(entry.get("at", "")),
                    exports=dict(entry.get("exports") or {}),
                    message=str(entry.get("message", "")),
                    cwd=self._cwd_out(str(entry.get("cwd", ""))),
                    stale=str(entry.get("stale", "")),
                )
                for step_id, entry in entries.items()
            }

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
            local, cluster = self.local.state, self.cluster.state
            if cluster.position is not None and cluster.position_t > local.position_t:
                return cluster.position
            return local.position

    @property
    def cluster_uid(self) -> str | None:
        """The identity of the cluster the cluster labs' progress belongs to, once known."""
        with self._lock:
            self._ensure()
            return self.cluster.state.uid

    # ------------------------------------------------------------------ writing

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
        stamp = time.time()
        entry: dict[str, Any] = {
            "op": "step",
            "lab": lab_id,
            "step": step_id,
            "status": status,
            "at": _now(stamp),
            "t": stamp,
        }
        if exports:
            entry["exports"] = dict(exports)
        if message:
            entry["message"] = message[:MESSAGE_LIMIT]
        if cwd:
            entry["cwd"] = self._cwd_in(cwd)
        with self._lock:
            self._ensure(refresh=False)
            self._write(self._route(lab_id), [entry])

    def mark_stale(self, lab_id: str, step_id: str, message: str | None) -> None:
        """Flag a completed step whose re-check failed (``message`` None clears the flag)."""
        with self._lock:
            self._ensure()
            journal = self._route(lab_id)
            entry = journal.state.steps.get(lab_id, {}).get(step_id)
            if entry is None or entry.get("stale", None) == (message or None):
                return
            text = message[:MESSAGE_LIMIT] if message else None
            self._write(journal, [{"op": "stale", "lab": lab_id, "step": step_id, "message": text}])

    def set_position(self, lab_id: str, step_id: str | None) -> None:
        """Remember where the learner is."""
        with self._lock:
            self._ensure()
            self._write(
                self._route(lab_id),
                [{"op": "position", "lab": lab_id, "step": step_id, "t": time.time()}],
            )

    def reset(self, lab_id: str | None = None, step_id: str | None = None) -> int:
        """Forget progress (all, one lab, or one step); returns how many steps were forgotten."""
        with self._lock:
            self._ensure()
            if lab_id is None:
                count = 0
                for journal in (self.local, self.cluster):
                    count += sum(len(v) for v in journal.state.steps.values())
                    forget = {"op": "forget", "lab": None, "step": None, "t": time.time()}
                    self._write(journal, [forget])
                return count
            journal = self._route(lab_id)
            lab = journal.state.steps.get(lab_id)
            if not lab or (step_id is not None and step_id not in lab):
                return 0
            count = 1 if step_id is not None else len(lab)
            self._write(journal, [{"op": "forget", "lab": lab_id, "step": step_id}])
            return count

    def drop_unknown(self, labs: Mapping[str, Collection[str]]) -> list[tuple[str, str]]:
        """Forget records of steps the workshop no longer has (renamed or removed).

        ``labs`` maps each lab id to its step ids. Only steps of labs that are
        still there are dropped: a lab file that failed to load keeps its
        progress. Returns the (lab, step) pairs forgotten, for a notice.
        """
        dropped: list[tuple[str, str]] = []
        with self._lock:
            self._ensure()
            for lab_id, step_ids in labs.items():
                journal = self._route(lab_id)
                gone = sorted(set(journal.state.steps.get(lab_id, {})) - set(step_ids))
                if gone:
                    self._write(journal, [{"op": "forget", "lab": lab_id, "step": s} for s in gone])
                    dropped.extend((lab_id, s) for s in gone)
        return dropped

    # ------------------------------------------------------------------ cluster identity

    def confirm_cluster(self, uid: str) -> str | None:
        """Tie the cluster labs' progress to the cluster whose identity is ``uid``.

        The first contact binds it. A different identity means another cluster
        answers under the same context and server (deleted and recreated, most
        likely): its progress is set aside (kept, and brought back should that
        cluster ever answer again) and the labs start clean. Returns the
        one-line notice to show then, else None.
        """
        with self._lock:
            self._ensure()
            journal = self.cluster
            bound = journal.state.uid
            if bound == uid:
                return None
            if bound is None:
                self._write(journal, [{"op": "cluster", "uid": uid}])
                return None
            restored = self._swap_cluster(journal, old=bound, new=uid)
            if journal.state.uid != uid:
                self._write(journal, [{"op": "cluster", "uid": uid}])
            where = self.context or "the current context"
            what = (
                "found the progress recorded on it earlier"
                if restored
                else "its cluster labs start fresh"
            )
            notice = (
                f"the cluster behind {where} is not the one your progress was recorded on "
                f"(recreated?): {what}; the other cluster's progress is kept aside"
            )
            return notice

    def _swap_cluster(self, journal: Journal, *, old: str, new: str) -> bool:
        """Put ``old``'s journal aside and bring back ``new``'s, if kept; True when found."""
        if journal.path is None:
            self._archived[old] = journal.state
            journal.state = self._archived.pop(new, JournalState())
            return journal.state.uid == new
        stem = journal.path.name.removesuffix(".jsonl")
        kept = journal.path.with_name(f"{stem}@{_uid_part(old)}.jsonl")
        earlier = journal.path.with_name(f"{stem}@{_uid_part(new)}.jsonl")
        try:
            with journal.exclusive():
                if journal.path.exists():
                    os.replace(journal.path, kept)
                if earlier.exists():
                    os.replace(earlier, journal.path)
        except OSError as exc:
            raise StateError(
                f"cannot set aside the progress of the earlier cluster in {journal.path.parent}: "
                f"{exc.strerror or exc}"
            ) from exc
        return journal.state.uid == new

    # ------------------------------------------------------------------ the first format

    def _migrate_v1(self) -> None:
        """Move this workshop's labs out of a first-format file of the current context, once."""
        assert self.legacy_dir is not None
        path = self.legacy_dir / f"{context_slug(self.context)}.json"
        if self.known_labs is None:
            return
        seen = self._v1_signature(path)
        if seen is None or self._v1_checked().get(path.name) == seen:
            return
        # the lock the first format's writers took: an older labrunner never writes in between
        with locked(self.legacy_dir / ".lock"):
            if self._migrate_v1_locked(path):
                self._remember_v1(path)

    def _v1_signature(self, path: Path) -> list[object] | None:
        """What identifies this first-format file as it is now, for this workshop's labs."""
        try:
            info = path.stat()
        except OSError:
            return None
        labs = sha256_hex("\n".join(sorted(self.known_labs or ())).encode())
        return [info.st_ino, info.st_size, info.st_mtime_ns, labs[:16]]

    def _v1_checked(self) -> dict[str, Any]:
        """First-format files this workshop already took its labs from, as they were then.

        A file of the first format holds every workshop's labs and stays behind for
        the others; reading it again on every start (tens of MB for a busy machine)
        would cost seconds, so each workshop remembers what it already read."""
        if self.directory is None:
            return {}
        try:
            data = json.loads((self.directory / V1_CHECKED).read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _remember_v1(self, path: Path) -> None:
        seen = self._v1_signature(path)
        if self.directory is None or seen is None:
            return
        checked = self._v1_checked()
        checked[path.name] = seen
        try:
            self._describe()
            write_atomic(
                self.directory / V1_CHECKED, (json.dumps(checked) + "\n").encode(), mode=0o600
            )
        except (OSError, StateError):
            pass  # only a saving of time is lost: the file is read again next time

    def _migrate_v1_locked(self, path: Path) -> bool:
        """Move the labs; True when the file was read (whether or not anything moved)."""
        if not path.is_file():
            return False
        data = self._read_v1(path)
        if data is None:
            return False
        labs: dict[str, Any] = data["labs"]
        known = self.known_labs or frozenset()
        moved: list[str] = []
        rejected = 0
        for lab_id in sorted(labs):
            if lab_id not in known or not isinstance(labs[lab_id], dict):
                continue
            steps = labs[lab_id].get("steps")
            if not isinstance(steps, dict):
                continue
            if self._done_elsewhere(steps):
                continue
            records, bad = self._v1_records(lab_id, steps)
            rejected += bad
            journal = self._route(lab_id)
            have = journal.state.steps.get(lab_id, {})
            fresh = [r for r in records if r["step"] not in have]
            if fresh:
                self._write(journal, fresh)
            moved.append(lab_id)
            labs.pop(lab_id)
        if not moved:
            return True
        position = data.get("position")
        if isinstance(position, dict) and position.get("lab") in moved:
            step = position.get("step")
            record = {
                "op": "position",
                "lab": position["lab"],
                "step": step if isinstance(step, str) else None,
                "t": time.time(),
            }
            if check_record(record) is None:
                self._write(self._route(position["lab"]), [record])
            data["position"] = None
        self._finish_v1(path, data)
        count = len(moved)
        self.notices.append(
            f"moved the progress of {count} lab{'s' if count != 1 else ''} from {path} "
            f"(labrunner's first progress format) into this workshop's progress"
        )
        if rejected:
            self.warnings.append(
                f"progress file {path}: ignored {rejected} record{'s' if rejected != 1 else ''} "
                "that were not valid progress (they stay in the file's copy)"
            )
        return True

    def _read_v1(self, path: Path) -> dict[str, Any] | None:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            self.warnings.append(f"cannot read the old progress file {path}: {exc.strerror}")
            return None
        try:
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("labs"), dict):
                raise ValueError("not a progress file")
        except (ValueError, UnicodeDecodeError) as exc:
            try:
                aside = move_aside(path, "corrupt")
            except OSError as move_exc:
                self.warnings.append(
                    f"old progress file {path} is unreadable ({exc}) and could not be moved "
                    f"aside ({move_exc.strerror}); fix or remove it"
                )
                return None
            self.warnings.append(
                f"progress file {path} was unreadable ({exc}); moved it to {aside}, and this "
                "workshop's progress starts fresh"
            )
            return None
        version = data.get("version", V1_VERSION)
        if not isinstance(version, int) or isinstance(version, bool) or version > V1_VERSION:
            self.warnings.append(
                f"progress file {path} has format version {str(version)[:20]}, which this "
                "labrunner does not know; it was not migrated and is left as it is"
            )
            return None
        return data

    def _done_elsewhere(self, steps: Mapping[str, Any]) -> bool:
        """True when a recorded folder lies in another workshop (another clone's progress)."""
        if self.root is None:
            return False
        for record in steps.values():
            cwd = record.get("cwd") if isinstance(record, dict) else None
            if not isinstance(cwd, str) or not os.path.isabs(cwd):
                continue
            place = Path(cwd)
            if place == self.root or self.root in place.parents:
                return False
            for folder in (place, *place.parents):
                if (folder / "labs").is_dir():
                    return True
        return False

    def _v1_records(
        self, lab_id: str, steps: Mapping[str, Any]
    ) -> tuple[list[dict[str, Any]], int]:
        records: list[dict[str, Any]] = []
        bad = 0
        for step_id, old in steps.items():
            if not isinstance(old, dict):
                bad += 1
                continue
            record: dict[str, Any] = {
                "op": "step",
                "lab": lab_id,
                "step": step_id,
                "status": old.get("status"),
                "at": old.get("at", ""),
                "t": 0,
            }
            exports = old.get("exports")
            if exports:
                if check_exports(exports) is not None:
                    bad += 1  # a name that is not a shell name is never restored
                    exports = None
                else:
                    record["exports"] = dict(exports)
            if isinstance(old.get("message"), str) and old["message"]:
                record["message"] = old["message"][:MESSAGE_LIMIT]
            if isinstance(old.get("cwd"), str) and old["cwd"]:
                record["cwd"] = self._cwd_in(old["cwd"])
            if check_record(record) is None:
                records.append(record)
            else:
                bad += 1
        return records, bad

    def _finish_v1(self, path: Path, data: dict[str, Any]) -> None:
        """Keep only what other workshops may still claim; retire the file when empty."""
        try:
            if any(isinstance(v, dict) for v in data["labs"].values()):
                write_atomic(path, (json.dumps(data, indent=2) + "\n").encode(), mode=0o600)
            else:
                move_aside(path, "migrated")
        except OSError as exc:
            raise StateError(
                f"cannot update the old progress file {path}: {exc.strerror or exc}"
            ) from exc
