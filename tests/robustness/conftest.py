"""Fixtures for the robustness suite: a seeded fake cluster, and engines and CLIs aimed at it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labrunner.testing.fakecluster import FakeCluster
from labrunner.testing.fixtures import FakeClusterHandle

HERE = Path(__file__).resolve().parent
LABS = HERE / "labs"
NAMESPACE = "robust"


def seed(server: FakeCluster) -> None:
    """The namespace ``robust`` with a two-pod Deployment ``web`` and a Service ``web``."""
    server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    server.create(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": NAMESPACE, "labels": {"app": "web"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
                },
            },
        }
    )
    server.create(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": NAMESPACE},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 8080}]},
        }
    )


@pytest.fixture
def robust_cluster(fake_cluster: FakeClusterHandle) -> FakeClusterHandle:
    """The fake cluster, seeded with ``robust/web``."""
    seed(fake_cluster.server)
    return fake_cluster


def run_cli(
    *args: str | os.PathLike[str],
    env: dict[str, str],
    cwd: Path,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """The real ``labrunner`` in a subprocess (same interpreter, so the same install)."""
    return subprocess.run(
        [sys.executable, "-m", "labrunner", *map(str, args)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def popen_cli(*args: str | os.PathLike[str], env: dict[str, str], cwd: Path) -> Any:
    """The real ``labrunner`` started in the background (the caller waits for it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "labrunner", *map(str, args)],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def cli_env(robust_cluster: FakeClusterHandle) -> Iterator[dict[str, str]]:
    """The environment for a CLI subprocess aimed at the seeded fake cluster."""
    env = dict(robust_cluster.env)
    env.pop("COLUMNS", None)
    yield env
