"""Fixtures for the class tests: an instructor and learners, each a machine of their own.

The class API is the fake API server with RBAC (``fake_cluster_rbac``): the
instructor's kubeconfig holds its admin token. Each learner is a separate
HOME and state directory, whose own kubeconfig points at a *different* fake
cluster (their lab cluster), so a test can show that class events never go
through the lab's context. Every command runs the real CLI in a fresh
interpreter.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from labrunner.cluster import writes
from labrunner.cluster.client import Kube
from labrunner.cluster.errors import ClusterError
from labrunner.testing.fakecluster import FakeCluster
from labrunner.testing.fixtures import FakeClusterHandle, cli_environ

LABS = Path(__file__).resolve().parent / "labs"
CONTEXT = "kind-labrunner"


@dataclass
class Machine:
    """One person's computer: a HOME, a state directory, a kubeconfig."""

    home: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def state(self) -> Path:
        """The labrunner state directory."""
        return Path(self.env["LABRUNNER_STATE_DIR"])

    def cli(
        self, *args: str | os.PathLike[str], timeout: float = 90.0, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``labrunner ARGS`` on this machine."""
        return subprocess.run(
            [sys.executable, "-m", "labrunner", *map(str, args)],
            env=self.env,
            cwd=cwd or self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )


def machine(root: Path, kubeconfig: Path) -> Machine:
    """A machine under ``root`` whose KUBECONFIG is ``kubeconfig``."""
    root.mkdir(parents=True, exist_ok=True)
    return Machine(root, cli_environ(root, KUBECONFIG=str(kubeconfig)))


def status_of(kube: Kube, method: str, path: str, body: dict[str, Any] | None = None) -> int:
    """The HTTP status a request through ``kube`` gets (200 for any success)."""
    try:
        writes.request(
            kube,
            method,
            path,
            body=body,
            timeout=20,
            content_type=writes.MERGE_PATCH if method == "PATCH" else "application/json",
        )
    except ClusterError as exc:
        return exc.status or 0
    return 200


def ok(proc: subprocess.CompletedProcess[str], code: int = 0) -> subprocess.CompletedProcess[str]:
    """Assert the command exited with ``code`` and without a traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == code, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def status_json(teacher: Machine, name: str = "demo") -> dict[str, dict[str, Any]]:
    """``class status NAME --json``, by learner."""
    rows = json.loads(ok(teacher.cli("class", "status", name, "--json")).stdout)
    return {row["learner"]: row for row in rows}


@pytest.fixture
def class_api(fake_cluster_rbac: FakeClusterHandle) -> FakeClusterHandle:
    """The instructor's cluster: the fake API server over HTTPS with RBAC enforced."""
    return fake_cluster_rbac


@pytest.fixture
def teacher(class_api: FakeClusterHandle, tmp_path: Path) -> Machine:
    """The instructor's machine: its kubeconfig is the class cluster's admin."""
    return machine(tmp_path / "teacher", class_api.kubeconfig)


@pytest.fixture
def lab_cluster(tmp_path: Path) -> Iterator[FakeCluster]:
    """The learners' own lab cluster: another fake server, which must see no class traffic."""
    with FakeCluster() as server:
        yield server


@pytest.fixture
def workshop(tmp_path: Path) -> Path:
    """A private copy of the class test workshop (commands run in its folder)."""
    labs = tmp_path / "workshop" / "labs"
    shutil.copytree(LABS, labs)
    return labs


@pytest.fixture
def learner_machine(tmp_path: Path, lab_cluster: FakeCluster) -> Any:
    """Make a learner's machine (its kubeconfig reaches the lab cluster only)."""

    def make(name: str) -> Machine:
        root = tmp_path / f"learner-{name}"
        root.mkdir(parents=True, exist_ok=True)
        kubeconfig = lab_cluster.write_kubeconfig(root / "kubeconfig", context=CONTEXT)
        return machine(root, kubeconfig)

    return make


def init_class(
    teacher: Machine, out: Path, *learners: str, name: str = "demo", extra: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """``class init`` for the named learners (a names file) into ``out``."""
    names = out.parent / f"{name}-names.txt"
    names.parent.mkdir(parents=True, exist_ok=True)
    names.write_text("\n".join(learners) + "\n")
    return ok(
        teacher.cli(
            "class", "init", name, "--names", names, "--context", CONTEXT, "--out", out, *extra
        )
    )


def joined_learner(
    teacher: Machine, learner_machine: Any, tmp_path: Path, name: str = "alice"
) -> Machine:
    """Class demo with one learner ``name``, joined on their own machine."""
    out = tmp_path / "joins"
    init_class(teacher, out, name)
    learner: Machine = learner_machine(name)
    ok(learner.cli("class", "join", out / f"{name}.yaml"))
    return learner
