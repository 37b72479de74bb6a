"""The class's RBAC on a real cluster: the fake's model of RBAC is not Kubernetes' RBAC.

Runs with ``LABRUNNER_CLUSTER_TESTS=1`` against the current context of
``LABRUNNER_CLUSTER_KUBECONFIG`` (or ``KUBECONFIG``, or ``~/.kube/config``), which must
allow creating a namespace (a kind cluster does). It makes a class with a random name,
checks what a join file may do exactly as the fake-server tests do, and ends the class.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import pytest
import yaml

from labrunner.cluster import writes
from labrunner.cluster.client import Kube
from labrunner.cluster.errors import ClusterError, ErrorKind
from labrunner.cluster.kubeconfig import current_context
from labrunner.testing.waiting import wait_for

from .conftest import machine, ok, status_of

# Read before the autouse fixture points KUBECONFIG at an empty file.
REAL_KUBECONFIG = os.environ.get("LABRUNNER_CLUSTER_KUBECONFIG") or os.environ.get(
    "KUBECONFIG", str(Path.home() / ".kube" / "config")
)
CLUSTER_TESTS = os.environ.get("LABRUNNER_CLUSTER_TESTS") == "1"


@pytest.mark.cluster
@pytest.mark.skipif(not CLUSTER_TESTS, reason="needs a real cluster (LABRUNNER_CLUSTER_TESTS=1)")
def test_a_join_file_on_a_real_cluster_writes_only_its_own_progress(tmp_path: Path) -> None:
    context = current_context({"KUBECONFIG": REAL_KUBECONFIG})
    assert context, f"no current context in {REAL_KUBECONFIG}"
    teacher = machine(tmp_path / "teacher", Path(REAL_KUBECONFIG))
    name = f"t{secrets.token_hex(4)}"
    ns = f"labrunner-class-{name}"
    names = tmp_path / "names.txt"
    names.write_text("alice\nbob\n")
    out = tmp_path / "joins"
    ok(teacher.cli("class", "init", name, "--names", names, "--context", context, "--out", out))
    try:
        join = out / "alice.yaml"
        ctx = f"labrunner-class-{name}"
        kube = Kube.connect({"KUBECONFIG": str(join)}, ctx)
        try:
            own = writes.item(ns, "configmaps", "progress-alice")
            kube.get(own, timeout=20)
            writes.merge_patch(kube, own, {"data": {"note": "mine"}}, timeout=20)
            for method, path, body in (
                ("PATCH", writes.item(ns, "configmaps", "progress-bob"), {"data": {"x": "1"}}),
                ("GET", writes.item(ns, "configmaps", "progress-bob"), None),
                ("GET", writes.collection(ns, "secrets"), None),
                ("POST", writes.collection(ns, "configmaps"), {"metadata": {"name": "extra"}}),
                ("DELETE", own, None),
            ):
                assert status_of(kube, method, path, body) == 403, (method, path)
        finally:
            kube.close()
        # kubectl reads the join file as the kubeconfig it is
        proc = subprocess.run(
            ["kubectl", "--kubeconfig", str(join), "auth", "can-i", "get", "secrets"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.stdout.strip() == "no"

        ok(teacher.cli("class", "revoke", name, "bob"))
        bob = Kube.connect({"KUBECONFIG": str(out / "bob.yaml")}, ctx)
        token = yaml.safe_load((out / "bob.yaml").read_text())["users"][0]["user"]["token"]
        assert token

        def refused_now() -> bool:
            try:
                bob.get(writes.item(ns, "configmaps", "progress-bob"), timeout=20)
            except ClusterError as exc:
                return exc.kind is ErrorKind.CREDENTIALS
            return False

        try:
            assert wait_for(refused_now, timeout=60, interval=0.5)
        finally:
            bob.close()
    finally:
        ok(teacher.cli("class", "end", name, "--yes"), code=0)
