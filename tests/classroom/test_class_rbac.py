"""What a join file may do, proved with RBAC on the fake API server (per-identity tokens).

A learner's token may get, update and patch that learner's progress object and
nothing else: not another learner's, not a Secret, not a new ConfigMap, not a
list. Revoking a learner ends their token at once. An instructor who is only a
namespace admin can run a class in their namespace.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from labrunner.cluster import writes
from labrunner.cluster.client import Kube
from labrunner.cluster.errors import ClusterError, ErrorKind
from labrunner.testing.fixtures import FakeClusterHandle

from .conftest import CONTEXT, Machine, init_class, machine, ok, status_json, status_of

NS = "labrunner-class-demo"


def token_of(join: Path) -> str:
    return str(yaml.safe_load(join.read_text())["users"][0]["user"]["token"])


@pytest.fixture
def two_joins(teacher: Machine, tmp_path: Path) -> tuple[Path, Path]:
    out = tmp_path / "joins"
    init_class(teacher, out, "alice", "bob")
    return out / "alice.yaml", out / "bob.yaml"


def test_a_join_file_may_touch_only_its_own_progress(
    class_api: FakeClusterHandle, two_joins: tuple[Path, Path]
) -> None:
    alice = class_api.as_token(token_of(two_joins[0]), label="alice", namespace=NS)

    def allowed(verb: str, what: str) -> bool:
        proc = alice.kubectl("auth", "can-i", verb, what, "-n", NS)
        assert proc.returncode in (0, 1), proc.stderr
        return proc.stdout.strip() == "yes"

    assert allowed("get", "configmap/progress-alice")
    assert allowed("patch", "configmap/progress-alice")
    assert allowed("update", "configmap/progress-alice")
    assert not allowed("delete", "configmap/progress-alice")
    assert not allowed("get", "configmap/progress-bob")
    assert not allowed("patch", "configmap/progress-bob")
    assert not allowed("create", "configmaps")
    assert not allowed("list", "configmaps")
    assert not allowed("get", "secrets")
    assert not allowed("list", "secrets")

    # and what RBAC says is what the API does
    kube = Kube.connect({"KUBECONFIG": str(two_joins[0])}, "labrunner-class-demo")
    try:
        own = writes.item(NS, "configmaps", "progress-alice")
        writes.merge_patch(kube, own, {"data": {"note": "mine"}}, timeout=10)
        current = kube.get(own, timeout=10)
        current["data"]["note"] = "replaced"
        writes.request(kube, "PUT", own, body=current, timeout=10)
        for method, path, body in (
            ("PATCH", writes.item(NS, "configmaps", "progress-bob"), {"data": {"x": "1"}}),
            ("GET", writes.item(NS, "secrets", "anything"), None),
            ("POST", writes.collection(NS, "configmaps"), {"metadata": {"name": "extra"}}),
        ):
            assert status_of(kube, method, path, body) == 403, (method, path)
    finally:
        kube.close()
    assert class_api.server.get("configmaps", "progress-alice", NS)["data"]["note"] == "replaced"
    assert "x" not in (class_api.server.get("configmaps", "progress-bob", NS)["data"] or {})


def test_revoking_ends_the_token_and_keeps_the_progress(
    class_api: FakeClusterHandle,
    teacher: Machine,
    two_joins: tuple[Path, Path],
    learner_machine: object,
    workshop: Path,
) -> None:
    bob: Machine = learner_machine("bob")  # type: ignore[operator]
    ok(bob.cli("class", "join", two_joins[1]))
    ok(bob.cli("--labs", workshop, "verify", "second", "-q"))
    assert status_json(teacher)["bob"]["state"] == "passed"

    revoked = ok(teacher.cli("class", "revoke", "demo", "bob"))
    assert "revoked bob" in revoked.stdout
    assert class_api.server.get("serviceaccounts", "bob", NS) is None
    assert class_api.server.identity(token_of(two_joins[1])) is None
    assert class_api.server.get("roles", "bob", NS) is None
    rows = status_json(teacher)
    assert rows["bob"]["revoked"] is True and rows["bob"]["state"] == "passed"
    assert rows["alice"]["revoked"] is False

    kube = Kube.connect({"KUBECONFIG": str(two_joins[1])}, "labrunner-class-demo")
    try:
        with pytest.raises(ClusterError) as refused:
            kube.get(writes.item(NS, "configmaps", "progress-bob"), timeout=10)
        assert refused.value.kind is ErrorKind.CREDENTIALS
    finally:
        kube.close()
    again = ok(bob.cli("class", "join", two_joins[1]), code=3)
    assert "not accepted (expired or revoked)" in again.stderr
    missing = ok(teacher.cli("class", "revoke", "demo", "nobody"), code=3)
    assert "no learner 'nobody'" in missing.stderr

    # Bob works on, revoked: the step is his, the run says why the class did not hear of it
    rerun = ok(bob.cli("--labs", workshop, "verify", "second"))
    assert "PASS only" in rerun.stdout
    assert "class demo: 2 class events not sent yet" in rerun.stderr
    assert "not accepted (expired or revoked)" in rerun.stderr

    # renew readmits him: a new ServiceAccount, so only the new token works
    out = two_joins[1].parent / "renewed"
    renewed = ok(teacher.cli("class", "renew", "demo", "bob", "--out", out))
    assert "readmitted, their old join files stay revoked" in renewed.stdout
    assert class_api.server.get("serviceaccounts", "bob", NS) is not None
    assert class_api.server.get("rolebindings", "bob", NS) is not None
    assert class_api.server.identity(token_of(two_joins[1])) is None
    assert status_json(teacher)["bob"]["revoked"] is False
    before = status_json(teacher)["bob"]["updated"]
    ok(bob.cli("class", "join", out / "bob.yaml"))  # sends what waited
    info = ok(bob.cli("class", "info"))
    assert "events waiting to be sent: 0" in info.stdout
    assert status_json(teacher)["bob"]["updated"] != before


def test_renew_writes_new_join_files_and_add_numbers_on(
    class_api: FakeClusterHandle, teacher: Machine, tmp_path: Path
) -> None:
    out = tmp_path / "joins"
    ok(teacher.cli("class", "init", "demo", "--learners", "2", "--context", CONTEXT, "--out", out))
    assert sorted(p.name for p in out.iterdir()) == ["learner-01.yaml", "learner-02.yaml"]
    old = token_of(out / "learner-01.yaml")
    renewed = ok(teacher.cli("class", "renew", "demo", "learner-01", "--out", out))
    assert "learner-01" in renewed.stdout and "learner-02" not in renewed.stdout
    new = token_of(out / "learner-01.yaml")
    assert new != old
    assert class_api.server.identity(new) is not None
    assert class_api.server.identity(old) is not None  # lasts until it expires
    ok(teacher.cli("class", "add", "demo", "--learners", "2", "--out", out))
    assert (out / "learner-04.yaml").is_file()
    assert set(status_json(teacher)) == {f"learner-0{i}" for i in range(1, 5)}
    twice = ok(teacher.cli("class", "init", "demo", "--learners", "1", "--context", CONTEXT), 3)
    assert "holds a class already" in twice.stderr


def test_a_namespace_admin_runs_a_class_in_their_namespace(
    class_api: FakeClusterHandle, tmp_path: Path
) -> None:
    server = class_api.server
    server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "course"}})
    server.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep-me"}},
        namespace="course",
    )
    server.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "teacher-admin", "namespace": "course"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "admin",
            },
            "subjects": [{"kind": "User", "name": "teacher"}],
        }
    )
    token = server.add_token("teacher", ["system:authenticated"])
    teacher = machine(tmp_path / "ns-admin", class_api.as_token(token, label="teacher").kubeconfig)
    out = tmp_path / "joins"

    refused = ok(
        teacher.cli("class", "init", "demo", "--learners", "1", "--context", CONTEXT), code=3
    )
    assert "may not create namespace labrunner-class-demo" in refused.stderr
    assert "--namespace" in refused.stderr

    init_class(teacher, out, "dana", extra=("--namespace", "course"))
    assert server.get("serviceaccounts", "dana", "course") is not None
    rows = json.loads(ok(teacher.cli("class", "status", "demo", "--json")).stdout)
    assert [r["learner"] for r in rows] == ["dana"]

    ended = ok(teacher.cli("class", "end", "demo", "--yes"))
    assert "deleted from course" in ended.stdout
    assert server.get("namespaces", "course") is not None
    assert server.get("configmaps", "keep-me", "course") is not None
    assert server.get("serviceaccounts", "dana", "course") is None
    assert server.get("configmaps", "progress-dana", "course") is None
    assert server.get("roles", "dana", "course") is None


def test_an_expired_token_costs_the_learner_a_note_and_renew_brings_the_events_in(
    class_api: FakeClusterHandle,
    teacher: Machine,
    two_joins: tuple[Path, Path],
    learner_machine: object,
    workshop: Path,
) -> None:
    alice: Machine = learner_machine("alice")  # type: ignore[operator]
    ok(alice.cli("class", "join", two_joins[0]))
    class_api.server.expire_token(token_of(two_joins[0]))
    run = ok(alice.cli("--labs", workshop, "verify", "second"))
    assert "PASS only" in run.stdout  # the step is the learner's, whatever the class API says
    assert "class events not sent yet" in run.stderr
    assert "not accepted (expired or revoked)" in run.stderr
    assert status_json(teacher)["alice"]["state"] == "not started"
    refused = ok(alice.cli("class", "join", two_joins[0]), code=3)
    assert "not accepted (expired or revoked)" in refused.stderr

    out = two_joins[0].parent / "renewed"
    renewed = ok(teacher.cli("class", "renew", "demo", "alice", "--out", out))
    assert "readmitted" not in renewed.stdout  # expired, not revoked
    joined = ok(alice.cli("class", "join", out / "alice.yaml"))
    assert "kept the events saved here" in joined.stdout
    row = status_json(teacher)["alice"]
    assert (row["lab"], row["step"], row["state"]) == ("second", "only", "passed")
