"""A learner's publishing never gets in the way: queued, batched, persisted, retried.

The class API going away costs the learner a status note and nothing else:
events fold into the outbox in the state directory and go out, all of them,
once the API answers again, in this process or the next labrunner.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labrunner.classroom import JOIN_FILE, document, learner, publisher
from labrunner.classroom.names import PROGRESS_KEY
from labrunner.engine.classfeed import class_directory
from labrunner.testing.fixtures import FakeClusterHandle
from labrunner.testing.waiting import wait_for

from .conftest import Machine, init_class, joined_learner, ok, status_json

NS = "labrunner-class-demo"


def remote_doc(api: FakeClusterHandle, name: str) -> dict[str, object]:
    obj = api.server.get("configmaps", f"progress-{name}", NS)
    assert obj is not None
    return json.loads(obj["data"][PROGRESS_KEY])


@pytest.fixture
def joined(teacher: Machine, tmp_path: Path) -> Iterator[Path]:
    """This test process joined class demo as alice; yields the class directory."""
    out = tmp_path / "joins"
    init_class(teacher, out, "alice", "bob")
    directory = class_directory()
    learner.join(directory, out / "alice.yaml")
    yield directory
    publisher.forget(directory)


def started(step: str, at: float | None = None) -> dict[str, object]:
    return document.event("started", "first", step, at=at or time.time(), total=2)


def test_events_are_batched_into_one_document(class_api: FakeClusterHandle, joined: Path) -> None:
    pub = publisher.active(joined)
    assert pub is not None and publisher.active(joined) is pub
    class_api.server.clear_requests()
    for step in ("hello", "broken"):
        pub.publish(started(step))
    pub.publish(document.event("failed", "first", "broken", at=time.time(), message="nope"))
    assert pub.flush(10)
    patches = class_api.server.requests(method="PATCH")
    assert 1 <= len(patches) <= 2  # three events, one batch window (two at most under load)
    doc = remote_doc(class_api, "alice")
    assert doc["seq"] == 3
    assert doc["current"] == {"lab": "first", "step": "broken"}
    assert doc["labs"]["first"]["steps"]["broken"]["fails"] == 1
    assert pub.status().state == "online" and pub.status().note() == "class demo as alice"


def test_an_unreachable_class_api_queues_events_and_sends_them_later(
    class_api: FakeClusterHandle, joined: Path
) -> None:
    pub = publisher.active(joined)
    assert pub is not None
    notes: list[str] = []
    pub.on_change(lambda status: notes.append(status.note()))
    class_api.server.faults.refuse_connections(True)
    try:
        took = []
        for step in ("hello", "broken"):
            begin = time.perf_counter()
            pub.publish(started(step))
            took.append(time.perf_counter() - begin)
        assert max(took) < 0.05  # a queue put, whatever the network does
        assert not pub.flush(1.5)
        assert wait_for(lambda: pub.status().state == "offline", timeout=10)
        assert pub.status().waiting == 2
        assert "class demo: offline, 2 events waiting" in notes
        assert "connection refused" in pub.status().problem
        saved = publisher.read_outbox(joined)
        assert saved is not None and saved["seq"] == 2 and saved["acked"] == 0
        assert remote_doc(class_api, "alice")["seq"] == 0
    finally:
        class_api.server.faults.refuse_connections(False)
    assert pub.flush(30)
    assert remote_doc(class_api, "alice")["seq"] == 2
    assert pub.status().note() == "class demo as alice"


def test_what_one_process_queued_offline_the_next_one_sends(
    class_api: FakeClusterHandle,
    teacher: Machine,
    learner_machine: object,
    workshop: Path,
    tmp_path: Path,
) -> None:
    alice = joined_learner(teacher, learner_machine, tmp_path)
    class_api.server.faults.refuse_connections(True)
    try:
        begin = time.monotonic()
        ok(alice.cli("--labs", workshop, "verify", "first", "-q"), code=1)
        offline_run = time.monotonic() - begin
        info = ok(alice.cli("class", "info")).stdout
        assert "events waiting to be sent: 4" in info  # started ×2, passed, failed
    finally:
        class_api.server.faults.refuse_connections(False)
    assert offline_run < 30  # no retry loop held the run up at exit
    assert status_json(teacher)["alice"]["state"] == "not started"
    ok(alice.cli("--labs", workshop, "verify", "second", "-q"))
    row = status_json(teacher)["alice"]
    assert row["labs_done"] == 1 and row["lab"] == "second"
    assert "first/broken" in row["last_failure"]
    assert "events waiting to be sent: 0" in ok(alice.cli("class", "info")).stdout


def test_two_processes_of_one_learner_fold_into_one_document(
    class_api: FakeClusterHandle, joined: Path
) -> None:
    join = publisher.joinfile.read(joined / JOIN_FILE)
    first, second = publisher.Publisher(joined, join), publisher.Publisher(joined, join)

    def burst(pub: publisher.Publisher, step: str) -> None:
        for _ in range(20):
            pub.publish(document.event("hint", "first", step, at=time.time(), hint=1))

    threads = [
        threading.Thread(target=burst, args=(first, "hello")),
        threading.Thread(target=burst, args=(second, "broken")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert first.flush(20) and second.flush(20)
    first.close(0)
    second.close(0)
    doc = remote_doc(class_api, "alice")
    assert doc["seq"] == 40
    assert set(doc["labs"]["first"]["steps"]) == {"hello", "broken"}


def test_a_join_file_the_class_refuses_is_an_error_and_a_broken_one_too(
    class_api: FakeClusterHandle, teacher: Machine, learner_machine: object, tmp_path: Path
) -> None:
    out = tmp_path / "joins"
    init_class(teacher, out, "alice")
    alice: Machine = learner_machine("alice")  # type: ignore[operator]
    kubeconfig = Path(alice.env["KUBECONFIG"])
    refused = ok(alice.cli("class", "join", kubeconfig), code=2)
    assert "not a labrunner class join file" in refused.stderr
    missing = ok(alice.cli("class", "join", tmp_path / "nope.yaml"), code=2)
    assert "no such file" in missing.stderr
    ok(teacher.cli("class", "revoke", "demo", "alice"))
    gone = ok(alice.cli("class", "join", out / "alice.yaml"), code=3)
    assert "ask your instructor for a new join file" in gone.stderr
    assert "not in a class" in ok(alice.cli("class", "info"), code=1).stdout


def test_joining_while_offline_keeps_the_file_and_says_so(
    class_api: FakeClusterHandle, teacher: Machine, learner_machine: object, tmp_path: Path
) -> None:
    out = tmp_path / "joins"
    init_class(teacher, out, "alice")
    alice: Machine = learner_machine("alice")  # type: ignore[operator]
    class_api.server.faults.refuse_connections(True)
    try:
        joined = ok(alice.cli("class", "join", out / "alice.yaml"))
    finally:
        class_api.server.faults.refuse_connections(False)
    assert "joined class demo as alice" in joined.stdout
    assert "cannot be reached now" in joined.stderr
    assert "class demo as alice" in ok(alice.cli("class", "info")).stdout
    left = ok(alice.cli("class", "leave"))
    assert "left class demo" in left.stdout
    assert not (alice.state / "class" / "join.yaml").exists()


def test_a_hanging_class_api_holds_up_neither_steps_nor_the_exit_for_long(
    class_api: FakeClusterHandle,
    teacher: Machine,
    learner_machine: object,
    workshop: Path,
    tmp_path: Path,
) -> None:
    alice = joined_learner(teacher, learner_machine, tmp_path)
    ok(alice.cli("--labs", workshop, "verify", "second", "-q"))  # warm: python, imports
    rule = class_api.server.faults.hang(verb="patch", resource="configmaps")
    try:
        begin = time.monotonic()
        ok(alice.cli("--labs", workshop, "verify", "first", "-q"), code=1)
        hanging_run = time.monotonic() - begin
    finally:
        class_api.server.faults.remove(rule)
    # the send timeout is 5 s; the exit waits at most EXIT_GRACE (+0.5 s) for it
    assert hanging_run < 20
    saved = publisher.read_outbox(alice.state / "class")
    assert saved is not None and saved["seq"] > saved["acked"]  # kept, not lost
    info = ok(alice.cli("class", "info")).stdout
    assert "were sent just now" in info
    row = status_json(teacher)["alice"]
    assert "first/broken" in row["last_failure"]


def test_a_headless_run_offline_says_what_waits_and_class_info_sends_it(
    class_api: FakeClusterHandle,
    teacher: Machine,
    learner_machine: object,
    workshop: Path,
    tmp_path: Path,
) -> None:
    alice = joined_learner(teacher, learner_machine, tmp_path)
    class_api.server.faults.refuse_connections(True)
    try:
        run = ok(alice.cli("--labs", workshop, "verify", "second"))
        assert "PASS only" in run.stdout
        assert "class demo: 2 class events not sent yet" in run.stderr
        assert "labrunner class info" in run.stderr
        offline = ok(alice.cli("class", "info"))
        assert "events waiting to be sent: 2" in offline.stdout
        assert "cannot send them now" in offline.stderr
        assert remote_doc(class_api, "alice")["seq"] == 0
    finally:
        class_api.server.faults.refuse_connections(False)
    back = ok(alice.cli("class", "info"))
    assert "events waiting to be sent: 0" in back.stdout
    assert "were sent just now" in back.stdout
    assert remote_doc(class_api, "alice")["seq"] == 2
    assert status_json(teacher)["alice"]["state"] == "passed"
    quiet = ok(alice.cli("--labs", workshop, "verify", "second"))  # online: no note
    assert "not sent yet" not in quiet.stderr


def test_leaving_the_tui_offline_says_what_waits(
    class_api: FakeClusterHandle,
    teacher: Machine,
    learner_machine: object,
    workshop: Path,
    tmp_path: Path,
) -> None:
    pexpect = pytest.importorskip("pexpect")
    alice = joined_learner(teacher, learner_machine, tmp_path)
    class_api.server.faults.refuse_connections(True)
    try:
        tui = pexpect.spawn(
            sys.executable,
            ["-m", "labrunner", "--labs", str(workshop), "run", "first"],
            env={**alice.env, "TERM": "xterm-256color"},
            cwd=str(alice.home),
            dimensions=(30, 100),
            timeout=90,
        )
        try:
            tui.expect("Say hello")  # the lab opened: its first step was viewed
            tui.expect("offline")  # the status line says the class API is out of reach
            tui.send("q")
            tui.expect(pexpect.EOF)
        finally:
            tui.close(force=True)
        said = (tui.before or b"").decode(errors="replace")
        assert "class events not sent yet" in said or "class event not sent yet" in said
        assert "labrunner class info" in said
    finally:
        class_api.server.faults.refuse_connections(False)
    assert "were sent just now" in ok(alice.cli("class", "info")).stdout
    assert status_json(teacher)["alice"]["lab"] == "first"
