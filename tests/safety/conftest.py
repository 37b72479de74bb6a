"""Two fake API servers, a safe kind cluster and a production one, shared by a test module.

Every test gets its own copy of the user's kubeconfig (so a bug that rewrote
it could not leak into the next test, and "unchanged" is checked on that
copy), its own HOME, state directory and kube cache, and traffic counters
that start at zero. The servers are shared per module: starting two HTTPS
servers per test would cost more than the tests themselves.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from labrunner.testing.fixtures import (
    SAFE_AND_PROD,
    FakeClusters,
    cli_environ,
    running_fake_clusters,
)

PROD_CONFIGMAP = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "prod-config", "namespace": "default"},
    "data": {"owner": "payments"},
}


@pytest.fixture(scope="module")
def clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeClusters]:
    """``safe`` and ``prod`` (see ``SAFE_AND_PROD``), for the whole module."""
    with (
        pytest.MonkeyPatch.context() as patch,
        running_fake_clusters(
            tmp_path_factory.mktemp("clusters"),
            patch,
            servers={
                "safe": {"https": True, "token": secrets.token_urlsafe(24)},
                "prod": {"https": True, "token": secrets.token_urlsafe(24)},
            },
            contexts=SAFE_AND_PROD,
        ) as found,
    ):
        found.servers["prod"].create(dict(PROD_CONFIGMAP))
        yield found


@dataclass
class World:
    """One test's view: its kubeconfig copy, environment, workshop folder and CLI."""

    clusters: FakeClusters
    root: Path
    kubeconfig: Path
    env: dict[str, str]
    original: bytes

    @property
    def labs(self) -> Path:
        """The workshop's labs directory (the workshop root is its parent)."""
        return self.root / "labs"

    @property
    def prod(self) -> Any:
        """The production server."""
        return self.clusters.servers["prod"]

    @property
    def safe(self) -> Any:
        """The safe server."""
        return self.clusters.servers["safe"]

    def lab(self, name: str, text: str) -> Path:
        """Write ``labs/<name>.yaml``."""
        self.labs.mkdir(parents=True, exist_ok=True)
        path = self.labs / f"{name}.yaml"
        path.write_text(textwrap.dedent(text))
        return path

    def cluster_lab(self, name: str, command: str, *, header: str = "") -> Path:
        """A one-step lab that needs a cluster: runs ``command``, checks ``default`` exists."""
        return self.lab(
            name,
            f"apiVersion: labrunner/v1\nid: {name}\ntitle: {name}\nneeds: [cluster]\n{header}"
            f"steps:\n  - id: act\n    title: Act\n    run: [{command!r}]\n"
            "    check: [{namespace: {name: default}}]\n",
        )

    def kubeconfig_with(self, path: Path, *, current: str) -> Path:
        """A copy of the user's kubeconfig at ``path`` with another current context."""
        config = yaml.safe_load(self.original)
        config["current-context"] = current
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config))
        return path

    def use(self, current: str) -> None:
        """Make ``current`` the current context of the user's kubeconfig."""
        self.kubeconfig_with(self.kubeconfig, current=current)
        self.original = self.kubeconfig.read_bytes()

    def cli(
        self,
        *args: str | Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 90,
    ) -> subprocess.CompletedProcess[str]:
        """The real ``labrunner --labs LABS ...`` in a subprocess."""
        proc = subprocess.run(
            [sys.executable, "-m", "labrunner", "--labs", str(self.labs), *map(str, args)],
            env=env or self.env,
            cwd=cwd or self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
        return proc

    def assert_prod_untouched(self) -> None:
        """Not one connection, TLS hello or request reached prod; the kubeconfig is as it was."""
        self.prod.assert_untouched()
        assert self.kubeconfig.read_bytes() == self.original, "the user's kubeconfig was written"


@pytest.fixture
def world(clusters: FakeClusters, tmp_path: Path, isolated_env: Path) -> World:
    """A private copy of the kubeconfig (current context ``kind-safe``) and zeroed counters."""
    kubeconfig = tmp_path / "home-kube" / "config"
    kubeconfig.parent.mkdir()
    shutil.copyfile(clusters.kubeconfig, kubeconfig)
    kubeconfig.chmod(0o600)
    cache = tmp_path / "kube-cache"
    cache.mkdir()
    env = cli_environ(isolated_env, KUBECONFIG=str(kubeconfig), KUBECACHEDIR=str(cache))
    root = tmp_path / "workshop"
    root.mkdir()
    clusters.reset_traffic()
    return World(clusters, root, kubeconfig, env, kubeconfig.read_bytes())
