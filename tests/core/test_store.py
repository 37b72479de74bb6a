"""The progress store: atomic, per context, never silently reset."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from labrunner.state import ProgressStore, StateError, context_slug, state_dir

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


def test_state_dir_follows_the_override(isolated_env: Path) -> None:
    assert state_dir() == isolated_env / "state"


def test_records_survive_a_reload() -> None:
    store = ProgressStore.for_context("kind-a")
    store.record("lab", "one", "passed", exports={"IP": "10.0.0.1"})
    store.record("lab", "two", "failed", message="not yet")
    store.record("other", "x", "skipped")
    again = ProgressStore.for_context("kind-a")
    steps = again.steps("lab")
    assert steps["one"].complete and steps["one"].exports == {"IP": "10.0.0.1"}
    assert not steps["two"].complete and steps["two"].message == "not yet"
    assert again.completed("lab") == {"one"}
    assert again.completed("other") == {"x"}
    assert again.exports("lab") == {"IP": "10.0.0.1"}
    assert again.position() == ("other", "x")
    data = json.loads(again.path.read_text())  # type: ignore[union-attr]
    assert data["context"] == "kind-a" and data["version"] == 1


def test_failed_steps_do_not_contribute_exports() -> None:
    store = ProgressStore.memory()
    store.record("lab", "one", "failed", exports={"X": "1"})
    assert store.exports("lab") == {}


def test_progress_is_kept_per_context() -> None:
    ProgressStore.for_context("kind-a").record("lab", "one", "passed")
    assert ProgressStore.for_context("kind-b").completed("lab") == set()
    assert ProgressStore.for_context(None).completed("lab") == set()
    assert ProgressStore.for_context("kind-a").completed("lab") == {"one"}


def test_context_names_map_to_distinct_safe_file_names() -> None:
    names = ["a/b", "a_b", "a b", "user@cluster:6443/ns", "../../etc", "x" * 300]
    slugs = [context_slug(n) for n in names]
    assert len(set(slugs)) == len(names)
    for slug in slugs:
        assert "/" not in slug and slug not in (".", "..")
        assert len(slug) < 80
    assert context_slug(None) == "no-context"


def test_reset() -> None:
    store = ProgressStore.for_context("kind-r")
    for lab in ("a", "b"):
        for step in ("one", "two"):
            store.record(lab, step, "passed")
    assert store.reset("a", "one") == 1
    assert store.reset("a", "one") == 0
    assert store.completed("a") == {"two"}
    assert store.reset("b") == 2
    assert store.reset("missing") == 0
    assert store.reset() == 1
    assert ProgressStore.for_context("kind-r").completed("a") == set()
    assert ProgressStore.for_context("kind-r").position() is None


@pytest.mark.parametrize(
    "content",
    [
        b'{"version": 1, "labs": {"lab": {"steps": {"one": {"status": "pass',
        b"",
        b"[]",
        b"\xff\xfe garbage",
        b'{"version": 1, "labs": []}',
    ],
    ids=["truncated", "empty", "list", "binary", "wrong-shape"],
)
def test_unreadable_file_is_moved_aside_with_a_warning(content: bytes) -> None:
    store = ProgressStore.for_context("kind-c")
    assert store.path is not None
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_bytes(content)
    assert store.completed("lab") == set()
    (warning,) = store.warnings
    assert f"progress file {store.path} was unreadable" in warning
    asides = list(store.path.parent.glob(f"{store.path.name}.corrupt-*"))
    assert len(asides) == 1
    assert asides[0].read_bytes() == content
    assert f"moved it to {asides[0]}" in warning
    store.record("lab", "one", "passed")
    assert ProgressStore.for_context("kind-c").completed("lab") == {"one"}


def test_a_second_corrupt_file_does_not_replace_the_first_copy() -> None:
    path = ProgressStore.for_context("kind-twice").path
    assert path is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    for content in (b"{first", b"{second"):
        path.write_bytes(content)
        store = ProgressStore(path)
        store.load()
        assert len(store.warnings) == 1
    asides = sorted(p.read_bytes() for p in path.parent.glob(f"{path.name}.corrupt-*"))
    assert asides == [b"{first", b"{second"]


def test_writes_from_two_stores_do_not_lose_each_other() -> None:
    path = ProgressStore.for_context("kind-shared").path
    assert path is not None
    go = threading.Event()

    def writer(name: str) -> None:
        store = ProgressStore(path)
        store.load()
        go.wait()
        for i in range(25):
            store.record(name, f"s{i}", "passed")

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join()
    again = ProgressStore(path)
    assert len(again.completed("a")) == 25 and len(again.completed("b")) == 25


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
    store = ProgressStore(blocker / "sub" / "p.json")
    with pytest.raises(StateError, match=r"cannot save progress in .*/file/sub"):
        store.record("lab", "one", "passed")


def test_sigkill_at_random_points_never_loses_a_completed_step(tmp_path: Path) -> None:
    path = tmp_path / "state" / "progress.json"
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
        store = ProgressStore(path)
        store.load()
        assert store.warnings == []
        done = store.completed("lab")
        missing = {f"step-{i:05d}" for i in confirmed} - done
        assert not missing, f"completed steps lost: {sorted(missing)}"
        next_index = max(next_index, len(done))
    assert not list(path.parent.glob("*.corrupt-*"))
    json.loads(path.read_text())
