"""pytest fixtures that ship with labrunner (loaded by the suite's conftest).

``fake_cluster`` starts a :class:`~labrunner.testing.fakecluster.FakeCluster` per test, writes a
kubeconfig whose context looks disposable (``kind-labrunner``), gives kubectl a private cache
directory (kubectl caches discovery per host:port, so a reused port would otherwise see another
test's CRDs) and points ``KUBECONFIG``/``KUBECACHEDIR`` at them for the test's duration.
The Istio CRDs are parsed once per session; loading them into a fresh server is cheap.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from labrunner.testing.fakecluster import FakeCluster, parse_manifests

ISTIO_CRDS_FILE = "istio-1.30.3-crds.yaml"
DEFAULT_CONTEXT = "kind-labrunner"


def cli_environ(home: Path, **extra: str) -> dict[str, str]:
    """An environment for a CLI subprocess with its own HOME, state and caches under ``home``.

    For fixtures wider than one test, where the per-test isolation is not in force yet;
    ``extra`` (KUBECONFIG, say) is added last.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABRUNNER_", "COLUMNS"))}
    env.update(
        HOME=str(home),
        LABRUNNER_STATE_DIR=str(home / "state"),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        KUBECONFIG=str(home / ".kube" / "config"),
        KUBECACHEDIR=str(home / ".kube" / "cache"),
        NO_COLOR="1",
    )
    env.update(extra)
    return env


@dataclass
class FakeClusterHandle:
    """A running fake server plus the kubeconfig and environment that point at it."""

    server: FakeCluster
    kubeconfig: Path
    cache_dir: Path
    context: str
    env: dict[str, str] = field(default_factory=dict)

    def kubectl(
        self,
        *args: str,
        check: bool = False,
        timeout: float = 30,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against the fake (skips the test when kubectl is missing)."""
        binary = shutil.which("kubectl", path=self.env.get("PATH"))
        if binary is None:
            pytest.skip("kubectl is not installed on this machine")
        return subprocess.run(
            [binary, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
            input=input,
        )

    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` configured from this handle's kubeconfig."""
        from kubernetes import config

        return config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig), context=self.context
        )


@contextmanager
def running_fake_cluster(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    context: str = DEFAULT_CONTEXT,
    **options: Any,
) -> Iterator[FakeClusterHandle]:
    """Start a fake server, write its kubeconfig and point the environment at it."""
    server = FakeCluster(**options).start()
    try:
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig", context=context)
        cache_dir = tmp_path / "kube-cache"
        cache_dir.mkdir(exist_ok=True)
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        monkeypatch.setenv("KUBECACHEDIR", str(cache_dir))
        env = dict(os.environ)
        yield FakeClusterHandle(server, kubeconfig, cache_dir, context, env)
    finally:
        server.stop()


@pytest.fixture
def fake_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClusterHandle]:
    """A fresh fake cluster over plain HTTP, with KUBECONFIG and KUBECACHEDIR set."""
    with running_fake_cluster(tmp_path, monkeypatch) as handle:
        yield handle


@pytest.fixture
def fake_cluster_https(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeClusterHandle]:
    """A fresh fake cluster over HTTPS (throwaway CA) that requires a bearer token."""
    with running_fake_cluster(
        tmp_path, monkeypatch, https=True, token=secrets.token_urlsafe(24)
    ) as handle:
        yield handle


@pytest.fixture(scope="session")
def istio_crds_path(pytestconfig: pytest.Config) -> Path:
    """Istio 1.30.3's CRDs in ``../shared/schemas`` beside the checkout (skips when absent)."""
    override = os.environ.get("LABRUNNER_ISTIO_CRDS")
    path = (
        Path(override)
        if override
        else pytestconfig.rootpath.parent / "shared" / "schemas" / ISTIO_CRDS_FILE
    )
    if not path.is_file():
        pytest.skip(f"Istio CRDs not found at {path} (set LABRUNNER_ISTIO_CRDS to another copy)")
    return path


@pytest.fixture(scope="session")
def istio_crd_docs(istio_crds_path: Path) -> list[Mapping[str, Any]]:
    """The parsed CRD documents (parsed once per session with the C YAML loader)."""
    return list(parse_manifests(istio_crds_path))


@pytest.fixture
def fake_cluster_istio(
    fake_cluster: FakeClusterHandle, istio_crd_docs: list[Mapping[str, Any]]
) -> FakeClusterHandle:
    """``fake_cluster`` with Istio's CRDs already installed."""
    fake_cluster.server.load_crds(istio_crd_docs)
    return fake_cluster
