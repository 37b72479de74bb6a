"""Progress that tells the truth, through the real CLI: whose it is, what resumes, what is done.

- two clones of a workshop under one HOME never see each other's progress;
- a cluster deleted and recreated under the same context name starts clean,
  with a one-line notice (the fake API server gets a new ``kube-system`` UID);
- ``--from STEP`` resumes with the directory and exports of the step before STEP;
- a lab imports exports from a lab it requires, in one run and in the next;
- ``--cleanup`` runs after every lab, in reverse dependency order, and says so;
- lab services come back when a later step needs them, and stop at exit;
- a hand-edited progress file is data: a warning, never code, never a traceback;
- a stale step says why in words that fit: a file gone, the cluster changed, a
  service that is not running.
"""

from __future__ import annotations

import json
import socket
import textwrap
from pathlib import Path

import pytest

from labrunner.engine import Engine, RunOptions
from labrunner.lab.loader import load_workshop
from labrunner.state import ProgressStore
from labrunner.testing.fixtures import FakeClusterHandle
from labrunner.verify.registry import builtin_registry

from .conftest import assert_clean, cli_env, run_cli


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


SIMPLE = """\
    apiVersion: labrunner/v1
    id: simple
    title: Simple
    steps:
      - id: one
        title: One
        run: ['mkdir -p made && echo one > made/one.txt']
        check:
          - file: {path: made/one.txt}
      - id: two
        title: Two
        run: ['echo two > made/two.txt']
        check:
          - file: {path: made/two.txt}
"""


# --------------------------------------------------------------------------- identity


def test_two_clones_with_one_home_never_share_progress(tmp_path: Path) -> None:
    clone_a = tmp_path / "a" / "workshop"
    clone_b = tmp_path / "b" / "workshop"
    for clone in (clone_a, clone_b):
        write(clone / "labs" / "simple.yaml", SIMPLE)
    assert_clean(run_cli("verify", "-q", cwd=clone_b), 0)
    in_b = run_cli("list", cwd=clone_b)
    in_a = run_cli("list", cwd=clone_a)
    assert_clean(in_a, 0)
    assert "2/2 steps" in in_b.stdout
    assert "0/2 steps" in in_a.stdout, "progress of clone B showed up in clone A"
    # --from in A cannot resume in B's folder, nor with B's results
    from_two = run_cli("verify", "-q", "--from", "two", cwd=clone_a)
    assert_clean(from_two, 1)
    assert not (clone_a / "made" / "two.txt").exists()


def test_list_shows_a_stale_step_as_stale_and_does_not_count_it(tmp_path: Path) -> None:
    root = tmp_path / "workshop"
    write(root / "labs" / "simple.yaml", SIMPLE)
    assert_clean(run_cli("verify", "-q", cwd=root), 0)
    assert "2/2 steps" in run_cli("list", cwd=root).stdout
    (root / "made" / "two.txt").unlink()
    # a re-check (as the TUI makes on resume) finds step two no longer passes
    loaded = load_workshop(root / "labs", builtin_registry())
    assert loaded.workshop is not None
    store = ProgressStore.for_workshop(loaded.workshop, context=None)
    engine = _engine(root, store, cli_env())
    lab = engine.workshop.lab("simple")
    with engine.session(lab) as session:
        assert session.recheck(lab.step("two")).status.value == "failed"
    shown = run_cli("list", cwd=root, env=cli_env(NO_COLOR="1"))
    assert_clean(shown, 0)
    assert "1/2 steps" in shown.stdout, shown.stdout
    two = next(line for line in shown.stdout.splitlines() if " two " in line)
    assert two.split()[0] == "⚠", two
    assert "(stale: a file this lab made is gone: made/two.txt)" in two
    data = json.loads(run_cli("list", "--json", cwd=root).stdout)
    (simple,) = data["labs"]
    assert simple["done"] == 1
    assert [(s["id"], s["state"]) for s in simple["steps"]] == [
        ("one", "passed"),
        ("two", "stale"),
    ]
    assert simple["steps"][1]["stale"] == "a file this lab made is gone: made/two.txt"
    # `check` only reports: it neither flags nor clears progress
    assert_clean(run_cli("check", "simple", "two", cwd=root), 1)
    (root / "made" / "two.txt").write_text("two\n")
    assert_clean(run_cli("check", "simple", "two", cwd=root), 0)
    assert "1/2 steps" in run_cli("list", cwd=root).stdout


CLUSTER_LAB = """\
    apiVersion: labrunner/v1
    id: on-the-cluster
    title: On the cluster
    needs: [cluster]
    steps:
      - id: make-it
        title: Make a config map
        run: ['kubectl create configmap progress-truth --from-literal=a=b']
        check:
          - command: {run: kubectl get configmap progress-truth, exit_code: 0}
"""


def test_a_recreated_cluster_under_the_same_name_starts_clean(
    fake_cluster: FakeClusterHandle, tmp_path: Path
) -> None:
    root = tmp_path / "workshop"
    write(root / "labs" / "cluster.yaml", CLUSTER_LAB)
    env = cli_env()
    first = run_cli("verify", "-q", cwd=root, env=env)
    assert_clean(first, 0)
    assert "1/1 steps" in run_cli("list", cwd=root, env=env).stdout
    store = ProgressStore.for_root(
        root,
        context=fake_cluster.context,
        server=fake_cluster.server.url,
        cluster_labs=["on-the-cluster"],
    )
    assert store.cluster_uid == fake_cluster.server.cluster_uid

    fake_cluster.recreate_cluster()
    # list never waits on the network: it still shows what the cache knows
    assert "1/1 steps" in run_cli("list", cwd=root, env=env).stdout
    again = run_cli("verify", "-q", "--no-save", cwd=root, env=env)
    assert_clean(again, 0)
    notices = [line for line in again.stderr.splitlines() if "recorded on" in line]
    assert len(notices) == 1, again.stderr
    assert "not the one your progress was recorded on" in notices[0]
    assert "cluster labs start fresh" in notices[0]
    listing = run_cli("list", cwd=root, env=env)
    assert "0/1 steps" in listing.stdout
    assert "recorded on" not in listing.stderr, "the notice is said once"


# --------------------------------------------------------------------------- --from


FROM_LAB = """\
    apiVersion: labrunner/v1
    id: from-lab
    title: Resume as of the step before
    steps:
      - id: a
        title: A
        run: ['mkdir -p dir-a && cd dir-a && export WHERE=a']
        exports: [WHERE]
        check:
          - env: {name: WHERE, equals: a}
      - id: b
        title: B
        run:
          - test "$WHERE" = a && test "$(basename "$PWD")" = dir-a
          - mkdir -p ../dir-b && cd ../dir-b && export WHERE=b
        exports: [WHERE]
        check:
          - env: {name: WHERE, equals: b}
      - id: c
        title: C
        run: ['test "$WHERE" = b && test "$(basename "$PWD")" = dir-b']
        check:
          - env: {name: WHERE, equals: b}
"""


def test_from_restores_the_directory_and_exports_of_the_step_before(tmp_path: Path) -> None:
    root = tmp_path / "workshop"
    write(root / "labs" / "from.yaml", FROM_LAB)
    assert_clean(run_cli("verify", "-q", cwd=root), 0)
    # progress now holds b's export (WHERE=b) and directory: --from b must not see them
    again = run_cli("verify", "-q", "--from", "b", cwd=root)
    assert_clean(again, 0)
    only_c = run_cli("verify", "-q", "--only", "c", cwd=root)
    assert_clean(only_c, 0)


# --------------------------------------------------------------------------- imports


IMPORTS = {
    "first.yaml": """\
        apiVersion: labrunner/v1
        id: first
        title: First
        steps:
          - id: find-gateway
            title: Find the gateway
            run: ['export GATEWAY_IP=10.9.8.7']
            exports: [GATEWAY_IP]
            check:
              - env: {name: GATEWAY_IP, equals: 10.9.8.7}
    """,
    "second.yaml": """\
        apiVersion: labrunner/v1
        id: second
        title: Second
        requires: [first]
        import:
          first: [GATEWAY_IP]
        steps:
          - id: use-gateway
            title: Use the gateway
            run: ['echo "calling $GATEWAY_IP" > called.txt']
            check:
              - env: {name: GATEWAY_IP, equals: 10.9.8.7}
              - file: {path: called.txt, contains: calling 10.9.8.7}
    """,
}


def test_a_lab_imports_exports_from_a_lab_it_requires(tmp_path: Path) -> None:
    root = tmp_path / "workshop"
    for name, text in IMPORTS.items():
        write(root / "labs" / name, text)
    # in one run, without saving anything
    assert_clean(run_cli("verify", "-q", "--no-save", cwd=root), 0)
    # across runs: first saved, then second alone in a new process
    assert_clean(run_cli("verify", "-q", "first", cwd=root), 0)
    (root / "called.txt").unlink()
    alone = run_cli("verify", "-q", "second", cwd=root)
    assert_clean(alone, 0)
    # without the first lab's progress, the learner is told what is missing
    assert_clean(run_cli("reset", "--yes", cwd=root), 0)
    missing = run_cli("verify", "-q", "second", cwd=root)
    assert_clean(missing, 1)
    assert "$GATEWAY_IP from first is not known yet" in missing.stderr


THIRD = """\
    apiVersion: labrunner/v1
    id: third
    title: Third
    requires: [second]
    import:
      first: [GATEWAY_IP]
    steps:
      - id: reuse-gateway
        title: Reuse the gateway
        run: ['echo "again $GATEWAY_IP" > again.txt']
        check:
          - file: {path: again.txt, contains: again 10.9.8.7}
"""


def test_a_lab_imports_from_a_lab_it_requires_through_another(tmp_path: Path) -> None:
    root = tmp_path / "workshop"
    for name, text in IMPORTS.items():
        write(root / "labs" / name, text)
    write(root / "labs" / "third.yaml", THIRD)
    assert_clean(run_cli("validate", cwd=root), 0)
    assert_clean(run_cli("verify", "-q", "--no-save", cwd=root), 0)
    assert (root / "again.txt").read_text() == "again 10.9.8.7\n"
    # in a new process, from what the first lab saved
    assert_clean(run_cli("verify", "-q", "first", cwd=root), 0)
    (root / "again.txt").unlink()
    assert_clean(run_cli("verify", "-q", "third", cwd=root), 0)
    assert (root / "again.txt").read_text() == "again 10.9.8.7\n"


@pytest.mark.parametrize(
    ("second", "message"),
    [
        (
            IMPORTS["second.yaml"].replace("requires: [first]", "requires: []"),
            "imports from 'first', which it does not require, directly or through the labs "
            "it requires",
        ),
        (
            IMPORTS["second.yaml"].replace("first: [GATEWAY_IP]", "first: [GATEWAY_PORT]"),
            "imports GATEWAY_PORT from 'first', but no step of that lab exports it "
            "(it exports: GATEWAY_IP)",
        ),
        (
            IMPORTS["second.yaml"].replace("first: [GATEWAY_IP]", "frist: [GATEWAY_IP]"),
            "imports from 'frist', which is not a lab here (did you mean 'first'?)",
        ),
    ],
    ids=["not-required", "not-exported", "not-a-lab"],
)
def test_imports_are_validated_with_file_and_line(
    tmp_path: Path, second: str, message: str
) -> None:
    root = tmp_path / "workshop"
    write(root / "labs" / "first.yaml", IMPORTS["first.yaml"])
    path = write(root / "labs" / "second.yaml", second)
    proc = run_cli("validate", cwd=root)
    assert_clean(proc, 2)
    assert f"{path.resolve()}:6: {message}" in proc.stdout, proc.stdout


# --------------------------------------------------------------------------- cleanup order


CLEANUP = {
    "base.yaml": """\
        apiVersion: labrunner/v1
        id: base
        title: Base
        cleanup:
          - echo base >> cleanup-order.log
          - rm -f base-state.txt
        steps:
          - id: make
            title: Make the base state
            run: ['echo ready > base-state.txt']
            check:
              - file: {path: base-state.txt}
    """,
    "on-top.yaml": """\
        apiVersion: labrunner/v1
        id: on-top
        title: On top of base
        requires: [base]
        cleanup:
          - echo on-top >> cleanup-order.log
        steps:
          - id: use
            title: Use the base state
            run: ['cat base-state.txt']
            check:
              - file: {path: base-state.txt, contains: ready}
    """,
}


def test_cleanup_runs_after_every_lab_in_reverse_dependency_order(tmp_path: Path) -> None:
    root = tmp_path / "workshop"
    for name, text in CLEANUP.items():
        write(root / "labs" / name, text)
    proc = run_cli("verify", "--cleanup", cwd=root)
    assert_clean(proc, 0)
    assert "== cleanup, in reverse dependency order: on-top → base" in proc.stdout
    assert (root / "cleanup-order.log").read_text().split() == ["on-top", "base"]
    assert not (root / "base-state.txt").exists()


# --------------------------------------------------------------------------- services


SERVICE_LAB = """\
    apiVersion: labrunner/v1
    id: served
    title: A lab with a service
    services:
      - id: web
        title: the little web server
        step: start-web
        start: exec python3 -m http.server "$WEB_PORT" --bind 127.0.0.1
        ready:
          - http: {url: "http://127.0.0.1:${WEB_PORT}/", expect: {status: 200}}
        within: 20s
    steps:
      - id: start-web
        title: Start the web server
        run: ['python3 -m http.server "$WEB_PORT" --bind 127.0.0.1 >/dev/null 2>&1 &']
        check:
          - http: {url: "http://127.0.0.1:${WEB_PORT}/", expect: {status: 200}}
        within: 20s
      - id: call-web
        title: Call it
        run: ['curl -sS -o /dev/null "http://127.0.0.1:$WEB_PORT/"']
        check:
          - http: {url: "http://127.0.0.1:${WEB_PORT}/", expect: {status: 200}}
      - id: call-again
        title: Call it again
        run: ['curl -sS -o /dev/null "http://127.0.0.1:$WEB_PORT/"']
        check:
          - http: {url: "http://127.0.0.1:${WEB_PORT}/", expect: {status: 200}}
"""


def test_a_service_comes_back_for_from_and_stops_at_exit(tmp_path: Path) -> None:
    root = tmp_path / "workshop"
    write(root / "labs" / "served.yaml", SERVICE_LAB)
    env = cli_env()
    env["WEB_PORT"] = str(free_port())
    first = run_cli("verify", cwd=root, env=env)
    assert_clean(first, 0)
    assert not port_open(int(env["WEB_PORT"])), "the step's server outlived the run"
    later = run_cli("verify", "--from", "call-again", cwd=root, env=env)
    assert_clean(later, 0)
    assert "~ service the little web server: running (started by labrunner)" in later.stdout
    assert not port_open(int(env["WEB_PORT"])), "the service outlived the run"


def test_a_service_that_cannot_start_says_why(tmp_path: Path) -> None:
    root = tmp_path / "workshop"
    broken = SERVICE_LAB.replace(
        'start: exec python3 -m http.server "$WEB_PORT" --bind 127.0.0.1',
        "start: echo 'port is haunted' >&2; exit 3",
    )
    write(root / "labs" / "served.yaml", broken)
    env = cli_env()
    env["WEB_PORT"] = str(free_port())
    proc = run_cli("verify", "--from", "call-web", cwd=root, env=env)
    assert_clean(proc, 1)
    assert "~ service the little web server: its start command exited 3 (port is haunted)" in (
        proc.stdout
    )


# --------------------------------------------------------------------------- progress is data


EXPORTING = """\
    apiVersion: labrunner/v1
    id: exporting
    title: Exporting
    steps:
      - id: one
        title: One
        run: ['export X=fine']
        exports: [X]
        check:
          - env: {name: X}
      - id: two
        title: Two
        run: ['printf "%s" "$X" > x.txt']
        check:
          - file: {path: x.txt}
"""


@pytest.mark.parametrize(
    "record",
    [
        {"exports": {"X;touch PWNED-name": "1"}},
        {"exports": {"X": "$(touch PWNED-value)"}},
        {"exports": {"X": "'; touch PWNED-quote; echo '"}},
        {"exports": {"X": 5}},
        {"exports": ["X"]},
        {"status": {"nested": True}},
        {"cwd": ["/tmp"]},
        {"lab": None},
    ],
    ids=["name", "command-substitution", "quote", "number", "list", "status", "cwd", "lab"],
)
def test_a_hand_edited_progress_file_is_data_never_code(
    tmp_path: Path, record: dict[str, object]
) -> None:
    root = tmp_path / "workshop"
    write(root / "labs" / "exporting.yaml", EXPORTING)
    assert_clean(run_cli("verify", "-q", "--only", "one", cwd=root), 0)
    store = ProgressStore.for_root(root, context=None)
    assert store.local.path is not None
    edited = {"op": "step", "lab": "exporting", "step": "one", "status": "passed", **record}
    with store.local.path.open("a") as fh:
        fh.write(json.dumps(edited) + "\n")
    proc = run_cli("verify", "-q", "--from", "two", cwd=root)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.returncode in (0, 1)
    assert not list(root.rglob("PWNED*")), "progress was executed as code"
    exports = record.get("exports")
    if isinstance(exports, dict) and all(
        isinstance(v, str) and k.isidentifier() for k, v in exports.items()
    ):
        # a valid record: its value is restored as a plain string, never run
        assert_clean(proc, 0)
        assert (root / "x.txt").read_text() == exports["X"]
        return
    assert "ignored 1 record (line" in proc.stderr and "moved them to" in proc.stderr


# --------------------------------------------------------------------------- stale messages


def _engine(root: Path, store: ProgressStore, env: dict[str, str]) -> Engine:
    loaded = load_workshop(root / "labs", builtin_registry())
    assert loaded.workshop is not None, [str(p) for p in loaded.problems]
    return Engine(
        loaded.workshop,
        registry=builtin_registry(),
        store=store,
        emit=lambda _event: None,
        options=RunOptions(),
        base_env=env,
    )


def test_a_stale_step_says_why_in_words_that_fit(
    fake_cluster: FakeClusterHandle, tmp_path: Path
) -> None:
    root = tmp_path / "workshop"
    broken_service = SERVICE_LAB.replace(
        'start: exec python3 -m http.server "$WEB_PORT" --bind 127.0.0.1',
        "start: echo 'port is haunted'; exit 3",
    )
    write(root / "labs" / "served.yaml", broken_service)
    write(root / "labs" / "simple.yaml", SIMPLE)
    write(
        root / "labs" / "cluster.yaml",
        CLUSTER_LAB.replace(
            "          - command: {run: kubectl get configmap progress-truth, exit_code: 0}",
            "          - resource: {apiVersion: v1, kind: ConfigMap, name: progress-truth}",
        ),
    )
    env = dict(fake_cluster.env)
    env["WEB_PORT"] = str(free_port())
    store = ProgressStore.memory(root=root)
    engine = _engine(root, store, env)
    summary = engine.verify(engine.workshop.labs)
    assert summary.ok, summary.labs
    # what the steps made goes away, each in its own way
    (root / "made" / "two.txt").unlink()
    fake_cluster.kubectl("delete", "configmap", "progress-truth")
    reasons = {}
    for lab_id, step_id in (
        ("simple", "two"),
        ("on-the-cluster", "make-it"),
        ("served", "call-web"),
    ):
        lab = engine.workshop.lab(lab_id)
        with engine.session(lab) as session:
            result = session.recheck(lab.step(step_id))
        assert result.status.value == "failed", (lab_id, result.message)
        reasons[lab_id] = store.steps(lab_id)[step_id].stale
    assert reasons["simple"] == "a file this lab made is gone: made/two.txt"
    assert reasons["on-the-cluster"].startswith("the cluster changed: ")
    assert reasons["served"] == (
        "the service the little web server is not running: "
        "its start command exited 3 (port is haunted)"
    )
    # and a check that passes again clears the flag
    (root / "made" / "two.txt").write_text("two\n")
    lab = engine.workshop.lab("simple")
    with engine.session(lab) as session:
        session.recheck(lab.step("two"))
    assert store.steps("simple")["two"].stale == ""
