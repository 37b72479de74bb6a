"""The progress store: per workshop and cluster, journaled, validated, never silently reset."""

from __future__ import annotations

import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from labrunner.state import (
    NewerFormat,
    ProgressStore,
    StateError,
    context_slug,
    journal,
    state_dir,
    workshop_key,
)

WRITER = r"""
import sys
from pathlib import Path
from labrunner.state import ProgressStore

store = ProgressStore(Path(sys.argv[1]), context="kind-atomic")
start = int(sys.argv[2])
i = start
while True:
    store.record("lab", f"step-{i:05d}", "passed", exports={"N": str(i)}, message="")
    sys.stdout.write(f"{i}\n")
    sys.stdout.flush()
    i += 1
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A workshop root (with its labs/ folder)."""
    folder = tmp_path / "workshop"
    (folder / "labs").mkdir(parents=True)
    return folder


def open_store(root: Path, context: str | None = None, **options: Any) -> ProgressStore:
    options.setdefault("cluster_labs", ["mesh"])
    options.setdefault("known_labs", ["lab", "other", "mesh"])
    return ProgressStore.for_root(root, context=context, **options)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_state_dir_follows_the_override(isolated_env: Path) -> None:
    assert state_dir() == isolated_env / "state"


def test_records_survive_a_reload(root: Path) -> None:
    store = open_store(root, "kind-a")
    store.record("lab", "one", "passed", exports={"IP": "10.0.0.1"})
    store.record("lab", "two", "failed", message="not yet")
    store.record("other", "x", "skipped")
    again = open_store(root, "kind-a")
    steps = again.steps("lab")
    assert steps["one"].complete and steps["one"].exports == {"IP": "10.0.0.1"}
    assert not steps["two"].complete and steps["two"].message == "not yet"
    assert again.completed("lab") == {"one"}
    assert again.completed("other") == {"x"}
    assert again.exports("lab") == {"IP": "10.0.0.1"}
    assert again.position() == ("other", "x")
    assert again.local.path is not None
    header = lines(again.local.path)[0]
    assert header["version"] == 2 and header["workshop"] == str(root.resolve())
    assert oct(again.local.path.stat().st_mode & 0o777) == "0o600"


def test_failed_steps_do_not_contribute_exports() -> None:
    store = ProgressStore.memory()
    store.record("lab", "one", "failed", exports={"X": "1"})
    assert store.exports("lab") == {}


def test_two_checkouts_never_share_progress(tmp_path: Path) -> None:
    clone_a, clone_b = tmp_path / "a" / "workshop", tmp_path / "b" / "workshop"
    for clone in (clone_a, clone_b):
        (clone / "labs").mkdir(parents=True)
    open_store(clone_b).record("lab", "one", "passed")
    assert open_store(clone_a).completed("lab") == set()
    assert open_store(clone_b).completed("lab") == {"one"}
    assert workshop_key(clone_a) != workshop_key(clone_b)
    # the same folder reached through a symlink is the same workshop
    (tmp_path / "link").symlink_to(clone_b)
    assert open_store(tmp_path / "link").completed("lab") == {"one"}


def test_cluster_labs_are_kept_per_context_and_server_other_labs_per_workshop(root: Path) -> None:
    store = open_store(root, "kind-a", server="https://127.0.0.1:6443")
    store.record("mesh", "one", "passed")
    store.record("lab", "one", "passed")
    elsewhere = open_store(root, "kind-b", server="https://127.0.0.1:7443")
    assert elsewhere.completed("mesh") == set()
    assert elsewhere.completed("lab") == {"one"}, "a lab without a cluster follows the workshop"
    moved = open_store(root, "kind-a", server="https://10.0.0.9:6443")
    assert moved.completed("mesh") == set(), "the same name on another server is another cluster"
    assert open_store(root, "kind-a", server="https://127.0.0.1:6443").completed("mesh") == {"one"}


def test_a_directory_inside_the_workshop_is_stored_relative_to_it(root: Path) -> None:
    (root / "work" / "inner").mkdir(parents=True)
    store = open_store(root)
    store.record("lab", "inside", "passed", cwd=str(root / "work" / "inner"))
    store.record("lab", "root", "passed", cwd=str(root))
    store.record("lab", "outside", "passed", cwd="/tmp")
    assert store.local.path is not None
    stored = {r.get("step"): r.get("cwd") for r in lines(store.local.path)[1:]}
    assert stored == {"inside": "work/inner", "root": ".", "outside": "/tmp"}
    steps = open_store(root).steps("lab")
    assert steps["inside"].cwd == str(root.resolve() / "work" / "inner")
    assert steps["root"].cwd == str(root.resolve())
    assert steps["outside"].cwd == "/tmp"


def test_a_remembered_directory_follows_a_link_that_now_points_elsewhere(root: Path) -> None:
    """Steps in the same folder reuse its resolved path, but never after the folder changed."""
    (root / "one").mkdir()
    outside = root.parent / "elsewhere"
    outside.mkdir()
    link = root / "here"
    link.symlink_to(root / "one")
    store = open_store(root)
    store.record("lab", "first", "passed", cwd=str(link))
    store.record("lab", "again", "passed", cwd=str(link))
    link.unlink()
    link.symlink_to(outside)
    store.record("lab", "moved", "passed", cwd=str(link))
    assert store.local.path is not None
    stored = {r.get("step"): r.get("cwd") for r in lines(store.local.path)[1:]}
    assert stored == {"first": "one", "again": "one", "moved": str(link)}


def test_context_names_map_to_distinct_safe_file_names() -> None:
    names = ["a/b", "a_b", "a b", "user@cluster:6443/ns", "../../etc", "x" * 300]
    slugs = [context_slug(n) for n in names]
    assert len(set(slugs)) == len(names)
    for slug in slugs:
        assert "/" not in slug and slug not in (".", "..")
        assert len(slug) < 80
    assert context_slug(None) == "no-context"


def test_reset(root: Path) -> None:
    store = open_store(root, "kind-r")
    for lab in ("lab", "mesh"):
        for step in ("one", "two"):
            store.record(lab, step, "passed")
    assert store.reset("lab", "one") == 1
    assert store.reset("lab", "one") == 0
    assert store.completed("lab") == {"two"}
    assert store.reset("mesh") == 2
    assert store.reset("missing") == 0
    assert store.reset() == 1
    again = open_store(root, "kind-r")
    assert again.completed("lab") == set() and again.position() is None


def test_stale_flags_are_kept_and_a_pass_clears_them(root: Path) -> None:
    store = open_store(root)
    store.record("lab", "one", "passed")
    store.mark_stale("lab", "one", "a file this lab made is gone: x.txt")
    record = open_store(root).steps("lab")["one"]
    assert record.complete and record.stale == "a file this lab made is gone: x.txt"
    store.mark_stale("lab", "one", None)
    assert open_store(root).steps("lab")["one"].stale == ""
    store.mark_stale("lab", "one", "gone again")
    store.record("lab", "one", "passed")
    assert open_store(root).steps("lab")["one"].stale == ""
    store.mark_stale("lab", "never-ran", "ignored")
    assert "never-ran" not in open_store(root).steps("lab")


def test_drop_unknown_forgets_renamed_steps_of_labs_still_there(root: Path) -> None:
    store = open_store(root)
    for step in ("kept", "renamed"):
        store.record("lab", step, "passed")
    store.record("other", "x", "passed")
    assert store.drop_unknown({"lab": ["kept", "new-name"]}) == [("lab", "renamed")]
    again = open_store(root)
    assert again.completed("lab") == {"kept"}
    assert again.completed("other") == {"x"}, "a lab not named (not loaded) keeps its progress"


# --------------------------------------------------------------------------- the journal


def test_a_step_is_saved_by_appending_not_by_rewriting(root: Path) -> None:
    store = open_store(root)
    store.record("lab", "s0", "passed")
    path = store.local.path
    assert path is not None
    inode = path.stat().st_ino
    before = path.read_bytes()
    store.record("lab", "s1", "passed")
    assert path.stat().st_ino == inode
    assert path.read_bytes().startswith(before)
    assert len(path.read_bytes().splitlines()) == 3


def test_appends_are_synced_as_a_group_and_always_at_the_end(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real = os.fdatasync

    def counting(fd: int) -> None:
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counting)
    monkeypatch.setattr(journal, "SYNC_INTERVAL", 3600.0)  # no time-based sync in this test
    store = open_store(root)
    store.record("lab", "s0", "passed")
    assert len(synced) == 1, "the first record of a run is made durable at once"
    for i in range(1, 50):
        store.record("lab", f"s{i}", "passed")
    assert len(synced) == 1, "later records within the interval share one sync"
    # written, though not yet synced: another process (and a crash of this one) sees them
    assert len(open_store(root).completed("lab")) == 50
    store.sync()
    assert len(synced) == 2, "the end of a lab syncs what the interval left"
    store.sync()
    assert len(synced) == 2, "nothing new, nothing to sync"
    store.record("lab", "late", "passed")
    store.local.close()
    assert len(synced) == 3, "closing a journal syncs it first"


def test_the_sync_interval_bounds_what_a_power_cut_could_cost(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    monkeypatch.setattr(os, "fdatasync", synced.append)
    monkeypatch.setattr(journal, "SYNC_INTERVAL", 0.0)
    store = open_store(root)
    for i in range(5):
        store.record("lab", f"s{i}", "passed")
    assert len(synced) == 5


def _lock_is_free(lock: Path) -> bool:
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_the_lock_kept_open_between_appends_is_the_one_others_see(root: Path) -> None:
    """The journal keeps its lock file open, yet always locks the file on disk, even a new one."""
    store = open_store(root)
    store.record("lab", "s0", "passed")
    lock = store.local.lock_path
    assert lock is not None and lock.exists()
    assert _lock_is_free(lock), "the lock is let go between appends"
    with store.local.exclusive():
        assert not _lock_is_free(lock), "another process is kept out while it is held"
    lock.unlink()  # someone tidied the state folder
    store.record("lab", "s1", "passed")
    assert lock.exists(), "the lock file is made again"
    with store.local.exclusive():
        assert not _lock_is_free(lock), "the new lock file is the one held"
    assert open_store(root).completed("lab") == {"s0", "s1"}


def test_opening_compacts_a_journal_that_grew(root: Path) -> None:
    store = open_store(root)
    for i in range(200):
        store.record("lab", "same", "passed", exports={"N": str(i)})
        store.set_position("lab", "same")
    path = store.local.path
    assert path is not None
    assert len(path.read_bytes().splitlines()) == 401
    again = open_store(root)
    assert again.steps("lab")["same"].exports == {"N": "199"}
    assert len(path.read_bytes().splitlines()) == 3  # header, the step, the position
    assert again.position() == ("lab", "same")
    assert again.warnings == []


def test_a_torn_last_line_is_ignored_and_earlier_records_kept(root: Path) -> None:
    store = open_store(root)
    store.record("lab", "one", "passed")
    path = store.local.path
    assert path is not None
    with path.open("ab") as fh:
        fh.write(b'{"op":"step","lab":"lab","step":"two","stat')
    again = open_store(root)
    assert again.completed("lab") == {"one"}
    (warning,) = again.warnings
    assert "its last record was cut short" in warning and "every earlier record is kept" in warning


def test_a_writer_that_died_mid_line_is_cut_off_by_the_next_append(root: Path) -> None:
    store = open_store(root)
    store.record("lab", "one", "passed")
    reader = open_store(root)
    assert reader.completed("lab") == {"one"}
    path = store.local.path
    assert path is not None
    # a writer killed in the middle of its write (SIGKILL can cut one at a page boundary)
    torn = b'{"op":"step","lab":"lab","step":"two","stat'
    with path.open("ab") as fh:
        fh.write(torn)
    assert reader.completed("lab") == {"one"}, "a reader takes no unfinished record"
    store.record("lab", "three", "passed")
    assert torn not in path.read_bytes(), "the unfinished record was left in the journal"
    assert all(json.loads(line) for line in path.read_bytes().splitlines())
    fresh = open_store(root)
    assert fresh.completed("lab") == {"one", "three"}
    assert fresh.warnings == [], "the next start had to reject something"
    assert reader.completed("lab") == {"one", "three"}, "a reader that saw the torn tail"


# one malformed shape per case: each must end as a warning, never as code or a traceback
MALFORMED = {
    "export-name-injection": {
        "op": "step",
        "lab": "lab",
        "step": "x",
        "status": "passed",
        "exports": {"X;touch PWNED": "1"},
    },
    "export-value-number": {
        "op": "step",
        "lab": "lab",
        "step": "x",
        "status": "passed",
        "exports": {"N": 5},
    },
    "exports-a-list": {"op": "step", "lab": "lab", "step": "x", "status": "passed", "exports": []},
    "status-number": {"op": "step", "lab": "lab", "step": "x", "status": 1},
    "status-unknown": {"op": "step", "lab": "lab", "step": "x", "status": "great"},
    "lab-a-list": {"op": "step", "lab": ["lab"], "step": "x", "status": "passed"},
    "step-missing": {"op": "step", "lab": "lab", "status": "passed"},
    "step-id-path": {"op": "step", "lab": "lab", "step": "../../etc", "status": "passed"},
    "cwd-number": {"op": "step", "lab": "lab", "step": "x", "status": "passed", "cwd": 3},
    "message-mapping": {"op": "step", "lab": "lab", "step": "x", "status": "passed", "message": {}},
    "unknown-op": {"op": "exec", "cmd": "touch PWNED"},
    "a-list": ["op", "step"],
    "a-string": "passed",
    "position-number": {"op": "position", "lab": 5},
    "cluster-uid-empty": {"op": "cluster", "uid": ""},
}


@pytest.mark.parametrize("shape", sorted(MALFORMED))
def test_a_hand_edited_record_of_any_shape_is_moved_aside_with_a_warning(
    root: Path, shape: str
) -> None:
    store = open_store(root)
    store.record("lab", "good", "passed", exports={"GOOD": "yes"})
    path = store.local.path
    assert path is not None
    with path.open("ab") as fh:
        fh.write(json.dumps(MALFORMED[shape]).encode() + b"\n")
    again = open_store(root)
    assert again.steps("lab").keys() == {"good"}
    assert again.exports("lab") == {"GOOD": "yes"}
    (warning,) = again.warnings
    assert "ignored 1 record (line 3:" in warning and "moved them to" in warning
    rejected = path.with_name(path.name + ".rejected")
    assert json.loads(rejected.read_text())["line"] == 3
    assert len(path.read_bytes().splitlines()) == 3, "the journal was compacted without it"
    assert open_store(root).warnings == [], "moved aside once, not warned about again"


@pytest.mark.parametrize(
    "content",
    [b"", b"[]\n", b"\xff\xfe garbage", b'{"labrunner": "progress", "version": 1}\n', b"{trunc"],
    ids=["empty", "list", "binary", "old-version", "truncated"],
)
def test_a_journal_without_a_valid_header_is_moved_aside(root: Path, content: bytes) -> None:
    store = open_store(root)
    assert store.local.path is not None
    store.local.path.parent.mkdir(parents=True)
    store.local.path.write_bytes(content)
    assert store.completed("lab") == set()
    (warning,) = store.warnings
    assert f"progress file {store.local.path} was unreadable" in warning
    asides = list(store.local.path.parent.glob("local.jsonl.corrupt-*"))
    assert len(asides) == 1 and asides[0].read_bytes() == content
    store.record("lab", "one", "passed")
    assert open_store(root).completed("lab") == {"one"}


def test_a_newer_format_is_refused_and_left_untouched(root: Path) -> None:
    store = open_store(root)
    assert store.local.path is not None
    store.local.path.parent.mkdir(parents=True)
    content = b'{"labrunner":"labrunner-progress","version":99}\n{"op":"future"}\n'
    store.local.path.write_bytes(content)
    with pytest.raises(NewerFormat, match="format version 99, newer than this labrunner"):
        store.completed("lab")
    with pytest.raises(StateError):
        store.record("lab", "one", "passed")
    assert store.local.path.read_bytes() == content
    assert not list(store.local.path.parent.glob("*.corrupt-*"))


def test_writes_from_two_stores_do_not_lose_each_other(root: Path) -> None:
    go = threading.Event()

    def writer(name: str) -> None:
        store = open_store(root)
        store.load()
        go.wait()
        for i in range(25):
            store.record(name, f"s{i}", "passed")

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("lab", "other")]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join()
    again = open_store(root)
    assert len(again.completed("lab")) == 25 and len(again.completed("other")) == 25


def test_a_reader_sees_what_another_store_appended(root: Path) -> None:
    reader = open_store(root)
    assert reader.completed("lab") == set()
    open_store(root).record("lab", "one", "passed")
    assert reader.completed("lab") == {"one"}


def test_memory_store_never_touches_disk(isolated_env: Path) -> None:
    store = ProgressStore.memory("kind-m")
    store.record("lab", "one", "passed")
    store.set_position("lab", None)
    assert store.completed("lab") == {"one"}
    assert store.position() == ("lab", None)
    assert not (isolated_env / "state").exists()


def test_unwritable_location_raises_a_clear_state_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    store = ProgressStore(blocker / "sub", root=tmp_path)
    with pytest.raises(StateError, match=r"cannot read progress file .*/file/sub"):
        store.record("lab", "one", "passed")


def test_sigkill_at_random_points_never_loses_a_completed_step(tmp_path: Path) -> None:
    path = tmp_path / "state" / "progress" / "ws"
    rng = random.Random(1234)
    confirmed: set[int] = set()
    next_index = 0
    for _ in range(50):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(next_index)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        # let it finish a random number of writes, then kill it in the middle of the next
        for _ in range(rng.randint(1, 6)):
            line = proc.stdout.readline()
            assert line, "the writer died on its own"
            confirmed.add(int(line))
            next_index = int(line) + 1
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        store = ProgressStore(path, context="kind-atomic")
        store.load()
        # the kill may cut the write in flight short: that unconfirmed record is dropped with
        # a notice; any other warning means the store had to repair damage
        damage = [w for w in store.warnings if "its last record was cut short" not in w]
        assert damage == []
        done = store.completed("lab")
        missing = {f"step-{i:05d}" for i in confirmed} - done
        assert not missing, f"completed steps lost: {sorted(missing)}"
        next_index = max(next_index, len(done))
    assert not list(path.glob("*.corrupt-*"))


# --------------------------------------------------------------------------- cluster identity


def test_the_first_contact_binds_the_cluster_and_a_new_one_starts_clean(root: Path) -> None:
    store = open_store(root, "kind-w", server="https://127.0.0.1:6443")
    store.record("mesh", "one", "passed")
    assert store.cluster_uid is None
    assert store.confirm_cluster("uid-first") is None
    assert open_store(root, "kind-w", server="https://127.0.0.1:6443").cluster_uid == "uid-first"
    assert store.confirm_cluster("uid-first") is None
    notice = store.confirm_cluster("uid-second")
    assert notice is not None and "\n" not in notice
    assert "not the one your progress was recorded on" in notice and "start fresh" in notice
    assert store.completed("mesh") == set()
    again = open_store(root, "kind-w", server="https://127.0.0.1:6443")
    assert again.cluster_uid == "uid-second" and again.completed("mesh") == set()
    # the first cluster's progress was kept aside, and comes back with it
    back = again.confirm_cluster("uid-first")
    assert back is not None and "found the progress recorded on it earlier" in back
    assert again.completed("mesh") == {"one"}


def test_a_recreated_cluster_leaves_labs_without_a_cluster_alone(root: Path) -> None:
    store = open_store(root, "kind-w")
    store.record("lab", "one", "passed")
    store.record("mesh", "one", "passed")
    store.confirm_cluster("uid-1")
    store.confirm_cluster("uid-2")
    assert store.completed("lab") == {"one"}
    assert store.completed("mesh") == set()


# --------------------------------------------------------------------------- the first format


def write_v1(state: Path, context: str | None, data: dict[str, Any] | bytes) -> Path:
    path = state / "progress" / f"{context_slug(context)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
    return path


def test_a_first_format_file_is_migrated_once(root: Path, isolated_env: Path) -> None:
    (root / "work").mkdir()
    old = write_v1(
        isolated_env / "state",
        "kind-old",
        {
            "version": 1,
            "context": "kind-old",
            "labs": {
                "lab": {
                    "steps": {
                        "one": {
                            "status": "passed",
                            "at": "2026-01-01T00:00:00Z",
                            "exports": {"IP": "10.1.1.1"},
                            "cwd": str(root / "work"),
                        },
                        "two": {"status": "failed", "message": "not yet"},
                    }
                },
                "mesh": {"steps": {"a": {"status": "passed"}}},
                "someone-elses": {"steps": {"x": {"status": "passed"}}},
            },
            "position": {"lab": "lab", "step": "two"},
        },
    )
    store = open_store(root, "kind-old")
    assert store.completed("lab") == {"one"}
    assert store.steps("lab")["one"].exports == {"IP": "10.1.1.1"}
    assert store.steps("lab")["one"].cwd == str(root.resolve() / "work")
    assert store.steps("lab")["two"].message == "not yet"
    assert store.completed("mesh") == {"a"}
    assert store.position() == ("lab", "two")
    (notice,) = store.notices
    assert "moved the progress of 2 labs" in notice
    # what this workshop does not have stays in the old file for others
    left = json.loads(old.read_text())
    assert list(left["labs"]) == ["someone-elses"]
    # once: a second opening finds nothing more to move
    assert open_store(root, "kind-old").notices == []
    assert open_store(root, "kind-old").completed("lab") == {"one"}


def test_a_first_format_file_left_for_others_is_read_once_per_workshop(
    root: Path, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Labs of other workshops stay in the old file; this workshop does not read it every start."""
    content: dict[str, Any] = {
        "version": 1,
        "labs": {"someone-elses": {"steps": {"x": {"status": "passed"}}}},
    }
    old = write_v1(isolated_env / "state", "kind-old", content)
    reads: list[Path] = []
    real = ProgressStore._read_v1

    def counting(self: ProgressStore, path: Path) -> dict[str, Any] | None:
        reads.append(path)
        return real(self, path)

    monkeypatch.setattr(ProgressStore, "_read_v1", counting)
    assert open_store(root, "kind-old").completed("lab") == set()
    assert open_store(root, "kind-old").completed("lab") == set()
    assert reads == [old], "an unchanged old file was read again"
    # an older labrunner adds this workshop's lab to it: the change is seen and moved
    content["labs"]["lab"] = {"steps": {"one": {"status": "passed"}}}
    old.write_text(json.dumps(content))
    assert open_store(root, "kind-old").completed("lab") == {"one"}
    assert len(reads) == 2
    # a workshop that gained a lab looks again, for that lab
    assert open_store(root, "kind-old", known_labs=["lab", "someone-elses"]).completed(
        "someone-elses"
    ) == {"x"}
    assert len(reads) == 3


def test_a_first_format_file_done_in_another_checkout_stays_there(
    tmp_path: Path, isolated_env: Path
) -> None:
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    for clone in (mine, theirs):
        (clone / "labs").mkdir(parents=True)
    old = write_v1(
        isolated_env / "state",
        None,
        {"labs": {"lab": {"steps": {"one": {"status": "passed", "cwd": str(theirs)}}}}},
    )
    assert open_store(mine).completed("lab") == set()
    assert open_store(theirs).completed("lab") == {"one"}
    assert not old.exists(), "an emptied first-format file is retired"
    assert list(old.parent.glob(f"{old.name}.migrated-*"))


def test_a_corrupt_first_format_file_is_moved_aside(root: Path, isolated_env: Path) -> None:
    old = write_v1(isolated_env / "state", None, b'{"version": 1, "labs": {"lab": {"ste')
    store = open_store(root)
    assert store.completed("lab") == set()
    (warning,) = store.warnings
    assert f"progress file {old} was unreadable" in warning
    assert not old.exists()
    assert len(list(old.parent.glob(f"{old.name}.corrupt-*"))) == 1
    store.record("lab", "one", "passed")
    assert open_store(root).completed("lab") == {"one"}


@pytest.mark.parametrize(
    "labs",
    [
        {"lab": {"steps": {"one": {"status": "passed", "exports": {"X;touch PWNED": "1"}}}}},
        {"lab": {"steps": {"one": {"status": "passed", "exports": {"X": 1}}}}},
        {"lab": {"steps": {"one": {"status": "passed", "exports": ["X"]}}}},
        {"lab": {"steps": {"one": "passed"}}},
        {"lab": {"steps": {"one": {"status": 7}}}},
        {"lab": {"steps": ["one"]}},
        {"lab": "done"},
        {"lab": {"steps": {"one": {"status": "passed", "cwd": ["/tmp"]}}}},
    ],
    ids=[
        "export-name",
        "export-value",
        "exports-list",
        "record-string",
        "status-number",
        "steps-list",
        "lab-string",
        "cwd-list",
    ],
)
def test_first_format_files_of_any_shape_never_crash(
    root: Path, isolated_env: Path, labs: dict[str, Any]
) -> None:
    write_v1(isolated_env / "state", None, {"version": 1, "labs": labs})
    store = open_store(root)
    records = store.steps("lab")
    for record in records.values():
        assert all(name.isidentifier() for name in record.exports)
        assert all(isinstance(value, str) for value in record.exports.values())
    assert not (root / "PWNED").exists()


def test_a_newer_first_format_version_is_refused_and_left_as_it_is(
    root: Path, isolated_env: Path
) -> None:
    data = {"version": 99, "labs": {"lab": {"steps": {"one": {"status": "passed"}}}}}
    old = write_v1(isolated_env / "state", None, data)
    before = old.read_bytes()
    store = open_store(root)
    assert store.completed("lab") == set()
    assert any("format version 99" in w and "left as it is" in w for w in store.warnings)
    assert old.read_bytes() == before
