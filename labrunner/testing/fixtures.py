"""pytest fixtures that ship with labrunner (loaded by the suite's conftest).

``fake_cluster`` starts a :class:`~labrunner.testing.fakecluster.FakeCluster` per test, writes a
kubeconfig whose context looks disposable (``kind-labrunner``), gives kubectl a private cache
directory (kubectl caches discovery per host:port, so a reused port would otherwise see another
test's CRDs) and points ``KUBECONFIG``/``KUBECACHEDIR`` at them for the test's duration.
The Istio CRDs are parsed once per session; loading them into a fresh server is cheap.

``fake_cluster_rbac`` is the same over HTTPS with RBAC enforced, and a handle's
:meth:`~FakeClusterHandle.as_service_account` gives a second handle acting as that account.
``safe_and_prod`` starts two servers behind one kubeconfig (a disposable ``kind-safe`` and a
``prod-eks`` whose URL looks like EKS), so a safety test can show that ``prod`` saw nothing:
``clusters.servers["prod"].assert_untouched()``.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from labrunner.testing.fakecluster import FakeCluster, parse_manifests
from labrunner.testing.fakecluster.kubeconfig import render_entries, write
from labrunner.testing.fakecluster.server import EKS_URL

ISTIO_CRDS_FILE = "istio-1.30.3-crds.yaml"
DEFAULT_CONTEXT = "kind-labrunner"


def _run_kubectl(
    env: Mapping[str, str], args: Sequence[str], *, check: bool, timeout: float, input: str | None
) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("kubectl", path=env.get("PATH"))
    if binary is None:
        pytest.skip("kubectl is not installed on this machine")
    return subprocess.run(
        [binary, *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
        input=input,
    )


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
        return _run_kubectl(self.env, args, check=check, timeout=timeout, input=input)

    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` configured from this handle's kubeconfig."""
        from kubernetes import config

        return config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig), context=self.context
        )

    def as_token(
        self, token: str | None, *, label: str = "user", namespace: str | None = None
    ) -> FakeClusterHandle:
        """A handle on the same server whose kubeconfig (``kubeconfig-<label>`` beside this
        one, same context name, same kube cache) presents ``token`` (None: no credentials)."""
        path = self.kubeconfig.with_name(f"kubeconfig-{label}")
        self.server.write_kubeconfig(path, self.context, namespace, token=token)
        env = {**self.env, "KUBECONFIG": str(path)}
        return FakeClusterHandle(self.server, path, self.cache_dir, self.context, env)

    def as_service_account(
        self, namespace: str, name: str, *, seconds: int = 3600
    ) -> FakeClusterHandle:
        """A handle acting as ServiceAccount ``namespace/name`` through a TokenRequest token
        (the account must exist); its default namespace is the account's."""
        token = self.server.issue_token(namespace, name, seconds=seconds)
        return self.as_token(token, label=f"{namespace}-{name}", namespace=namespace)

    def recreate_cluster(self, *, wipe: bool = True) -> str:
        """:meth:`FakeCluster.recreate` plus a fresh kube cache (a new cluster's discovery
        differs); returns the new ``kube-system`` UID."""
        uid = self.server.recreate(wipe=wipe)
        if wipe:
            shutil.rmtree(self.cache_dir, ignore_errors=True)
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        return uid


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
def fake_cluster_rbac(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeClusterHandle]:
    """A fresh fake cluster over HTTPS with RBAC enforced; the handle itself is the admin."""
    with running_fake_cluster(
        tmp_path, monkeypatch, https=True, token=secrets.token_urlsafe(24), rbac=True
    ) as handle:
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


# --- several clusters behind one kubeconfig ---------------------------------------------------


@dataclass(frozen=True)
class ContextSpec:
    """One context of a multi-cluster kubeconfig.

    ``cluster`` names the server it reaches; ``server_url`` is the URL written into the
    kubeconfig (default: the server's own ``https://127.0.0.1:PORT``). A URL on another host
    gets ``proxy-url`` pointing at the server, whose certificate then also names that host, so
    the context works without DNS while looking like, say, EKS. ``token`` defaults to the
    server's admin token.
    """

    name: str
    cluster: str
    server_url: str | None = None
    namespace: str | None = None
    token: str | None = None


@dataclass
class FakeClusters:
    """Several running fake servers and one kubeconfig holding a context for each."""

    servers: dict[str, FakeCluster]
    contexts: dict[str, ContextSpec]
    kubeconfig: Path
    cache_dir: Path
    current: str
    env: dict[str, str] = field(default_factory=dict)

    def kubectl(
        self,
        *args: str,
        check: bool = False,
        timeout: float = 30,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl with this kubeconfig (its current context unless told)."""
        return _run_kubectl(self.env, args, check=check, timeout=timeout, input=input)

    def server_of(self, context: str) -> FakeCluster:
        """The server a context reaches."""
        return self.servers[self.contexts[context].cluster]

    def handle(self, context: str) -> FakeClusterHandle:
        """A single-cluster handle on one context (same kubeconfig file, that context)."""
        return FakeClusterHandle(
            self.server_of(context), self.kubeconfig, self.cache_dir, context, dict(self.env)
        )

    def traffic(self) -> dict[str, Any]:
        """Each server's :class:`~labrunner.testing.fakecluster.server.Traffic`, by name."""
        return {name: server.traffic() for name, server in self.servers.items()}

    def reset_traffic(self) -> None:
        """Start every server's counters from zero."""
        for server in self.servers.values():
            server.reset_traffic()


def _hosts_of(specs: Sequence[ContextSpec], cluster: str) -> tuple[str, ...]:
    hosts = []
    for spec in specs:
        if spec.cluster == cluster and spec.server_url:
            host = urlsplit(spec.server_url).hostname or ""
            if host and not re.fullmatch(r"127\.0\.0\.1|localhost", host):
                hosts.append(host)
    return tuple(dict.fromkeys(hosts))


@contextmanager
def running_fake_clusters(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    servers: Mapping[str, Mapping[str, Any]],
    contexts: Sequence[ContextSpec],
    current: str | None = None,
) -> Iterator[FakeClusters]:
    """Start one server per entry of ``servers`` (FakeCluster options by name), write one
    kubeconfig with ``contexts`` (current: ``current`` or the first) and point ``KUBECONFIG``
    and ``KUBECACHEDIR`` at it."""
    unknown = {c.cluster for c in contexts} - set(servers)
    if unknown:
        raise ValueError(f"contexts name servers that are not started: {sorted(unknown)}")
    with ExitStack() as stack:
        started: dict[str, FakeCluster] = {}
        for name, options in servers.items():
            opts = dict(options)
            extra = _hosts_of(contexts, name)
            if extra:
                opts["https"] = True
                opts["tls_names"] = tuple(opts.get("tls_names", ())) + extra
            server = FakeCluster(**opts).start()
            stack.callback(server.stop)
            started[name] = server
        entries = [
            started[c.cluster].kubeconfig_entry(c.name, c.namespace, server_url=c.server_url)
            if c.token is None
            else started[c.cluster].kubeconfig_entry(
                c.name, c.namespace, server_url=c.server_url, token=c.token
            )
            for c in contexts
        ]
        chosen = current or contexts[0].name
        kubeconfig = write(tmp_path / "kubeconfig", render_entries(entries, chosen))
        cache_dir = tmp_path / "kube-cache"
        cache_dir.mkdir(exist_ok=True)
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        monkeypatch.setenv("KUBECACHEDIR", str(cache_dir))
        yield FakeClusters(
            servers=started,
            contexts={c.name: c for c in contexts},
            kubeconfig=kubeconfig,
            cache_dir=cache_dir,
            current=chosen,
            env=dict(os.environ),
        )


SAFE_AND_PROD: tuple[ContextSpec, ...] = (
    ContextSpec("kind-safe", "safe"),
    ContextSpec("prod-eks", "prod", server_url=EKS_URL),
    ContextSpec("kind-prod", "prod", server_url=EKS_URL),
    ContextSpec("prod-local", "prod"),
)
"""``kind-safe`` (current) reaches the safe server at 127.0.0.1; ``prod-eks`` and ``kind-prod``
(a disposable-looking name) show an EKS URL and ``prod-local`` the prod server's loopback URL;
all three reach the prod server."""


@pytest.fixture
def safe_and_prod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClusters]:
    """Two HTTPS fake servers, ``safe`` and ``prod``, with the :data:`SAFE_AND_PROD` contexts
    in one kubeconfig whose current context is ``kind-safe``."""
    with running_fake_clusters(
        tmp_path,
        monkeypatch,
        servers={
            "safe": {"https": True, "token": secrets.token_urlsafe(24)},
            "prod": {"https": True, "token": secrets.token_urlsafe(24)},
        },
        contexts=SAFE_AND_PROD,
    ) as clusters:
        yield clusters
