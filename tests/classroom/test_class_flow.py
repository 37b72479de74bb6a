"""A class from start to end on the fake API server, through the real CLI on every machine.

init → two learners join → their steps appear in ``class status --json`` →
learner A cannot write B's object (403) → end removes everything.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from labrunner.cluster import writes
from labrunner.cluster.client import Kube
from labrunner.cluster.errors import ClusterError
from labrunner.testing.fakecluster import FakeCluster
from labrunner.testing.fixtures import FakeClusterHandle
from labrunner.testing.waiting import wait_for

from .conftest import CONTEXT, Machine, init_class, ok, status_json

NS = "labrunner-class-demo"


def kubectl(join: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The real kubectl with a learner's join file as its kubeconfig."""
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(join), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def patch_as(join: Path, name: str, patch: dict[str, object]) -> None:
    """A merge patch of ConfigMap ``name`` in the class namespace, through a join file."""
    kube = Kube.connect({"KUBECONFIG": str(join)}, "labrunner-class-demo")
    try:
        writes.merge_patch(kube, writes.item(NS, "configmaps", name), patch, timeout=10)
    finally:
        kube.close()


def test_a_class_from_init_to_end(
    class_api: FakeClusterHandle,
    teacher: Machine,
    learner_machine: object,
    lab_cluster: FakeCluster,
    workshop: Path,
    tmp_path: Path,
) -> None:
    out = tmp_path / "joins"
    init = init_class(teacher, out, "Ada Lovelace", "Bob")
    assert "2 learners" in init.stdout
    assert "labrunner class renew" in init.stdout
    assert "only this machine can reach" in init.stderr  # the fake listens on 127.0.0.1
    join_a, join_b = out / "ada-lovelace.yaml", out / "bob.yaml"
    assert join_a.stat().st_mode & 0o777 == 0o600

    # what init made, as the instructor's kubectl sees it
    names = class_api.kubectl("get", "sa,role,rolebinding,configmap", "-n", NS, "-o", "name")
    assert names.returncode == 0, names.stderr
    for learner in ("ada-lovelace", "bob"):
        for kind in ("serviceaccount", "role.rbac.authorization.k8s.io"):
            assert f"{kind}/{learner}" in names.stdout
        assert f"configmap/progress-{learner}" in names.stdout

    ada: Machine = learner_machine("ada")  # type: ignore[operator]
    bob: Machine = learner_machine("bob")  # type: ignore[operator]
    joined = ok(ada.cli("class", "join", join_a))
    assert "joined class demo as ada-lovelace (Ada Lovelace)" in joined.stdout
    ok(bob.cli("class", "join", join_b))
    lab_cluster.clear_requests()

    # Ada: hello passes, broken fails (its message carries a password); Bob passes second
    ok(ada.cli("--labs", workshop, "verify", "first", "-q"), code=1)
    ok(bob.cli("--labs", workshop, "verify", "second", "-q"))

    rows = status_json(teacher)
    assert set(rows) == {"ada-lovelace", "bob"}
    a, b = rows["ada-lovelace"], rows["bob"]
    assert (a["lab"], a["step"], a["state"], a["fails"]) == ("first", "broken", "failed", 1)
    first = a["labs"]["first"]
    assert (first["done"], first["total"]) == (1, 2)
    assert first["steps"]["hello"]["state"] == "passed"
    assert first["steps"]["hello"]["seconds"] >= 0
    assert first["steps"]["broken"] == {"state": "failed", "fails": 1, "hints": 0, "seconds": None}
    assert "the service answers" in a["last_failure"] or "exit" in a["last_failure"]
    assert "hunter2secretvalue" not in json.dumps(rows)
    assert a["name"] == "Ada Lovelace"
    assert (b["lab"], b["step"], b["state"]) == ("second", "only", "passed")
    assert (b["labs"]["second"]["done"], b["labs"]["second"]["total"]) == (1, 1)
    assert b["on_step_seconds"] is None  # done: no clock running

    # CSV has the same learners
    table = list(
        csv.DictReader(io.StringIO(ok(teacher.cli("class", "status", "demo", "--csv")).stdout))
    )
    assert {r["learner"] for r in table} == {"ada-lovelace", "bob"}

    # the lab's own cluster saw nothing of the class
    assert not [r for r in lab_cluster.requests() if NS in r.path]

    # Ada's join file is a kubeconfig: it reads and patches her own object, not Bob's
    own = kubectl(join_a, "get", "configmap", "progress-ada-lovelace", "-o", "json", env=ada.env)
    assert own.returncode == 0, own.stderr
    reading = kubectl(join_a, "get", "configmap", "progress-bob", env=ada.env)
    assert reading.returncode != 0 and "forbidden" in reading.stderr.lower()
    with pytest.raises(ClusterError) as refused:
        patch_as(join_a, "progress-bob", {"data": {"progress.json": "{}"}})
    assert refused.value.status == 403
    assert "ada-lovelace cannot patch configmaps" in str(refused.value)
    patch_as(join_a, "progress-ada-lovelace", {"metadata": {"labels": {"seen": "yes"}}})

    # end: the namespace and everything in it go
    ended = ok(teacher.cli("class", "end", "demo", "--yes"))
    assert f"namespace {NS} deleted" in ended.stdout
    assert wait_for(lambda: class_api.server.get("namespaces", NS) is None, timeout=30)
    assert class_api.server.list("configmaps", namespace=NS) == []
    assert class_api.server.list("serviceaccounts", namespace=NS) == []
    gone = ok(teacher.cli("class", "status", "demo", "--context", CONTEXT), code=3)
    assert "no class 'demo'" in gone.stderr


def test_the_join_file_names_the_class_and_holds_a_token_request_token(
    class_api: FakeClusterHandle, teacher: Machine, tmp_path: Path
) -> None:
    out = tmp_path / "joins"
    init_class(
        teacher, out, "carol", extra=("--token-ttl", "2h", "--server", "https://class.example:6443")
    )
    data = yaml.safe_load((out / "carol.yaml").read_text())
    context = data["contexts"][0]["context"]
    details = context["extensions"][0]["extension"]
    assert details["class"] == "demo" and details["learner"] == "carol"
    assert context["namespace"] == NS
    assert data["clusters"][0]["cluster"]["server"] == "https://class.example:6443"
    assert data["clusters"][0]["cluster"]["certificate-authority-data"]
    token = data["users"][0]["user"]["token"]
    identity = class_api.server.identity(token)
    assert identity is not None and identity.user == f"system:serviceaccount:{NS}:carol"
    issued = class_api.server.tokens.issued_for(NS, "carol")
    assert len(issued) == 1 and 7100 <= issued[0].expires - issued[0].issued <= 7300


def test_a_cluster_that_caps_tokens_is_named_with_what_it_granted(
    class_api: FakeClusterHandle, teacher: Machine, tmp_path: Path
) -> None:
    class_api.server.max_token_seconds = 3600
    made = init_class(teacher, tmp_path / "joins", "dora")  # asks for 24h
    assert "asked for tokens of 24h00m, the cluster granted 1h00m" in made.stderr
    assert "labrunner class renew" in made.stderr
    class_api.server.max_token_seconds = None
    renewed = ok(teacher.cli("class", "renew", "demo", "--out", tmp_path / "again"))
    assert "the cluster granted" not in renewed.stderr
    assert "readmitted" not in renewed.stdout
