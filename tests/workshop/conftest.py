"""Fixtures for the Istio workshop tests: the lab files, their manifests, a fake cluster.

The workshop's labs run against a real cluster with istioctl and real Envoy
traffic. Here we exercise everything that does not need those: the lab
files load and validate, the manifests validate against Kubernetes' and
Istio 1.30.3's own schemas, and each lab's kubectl steps run (with the real
kubectl and the real engine) against the fake API server, where the
resource-level checks must fail before a step and pass after it. Steps that
need istioctl, real traffic or the internet are skipped with a reason.

The fake cluster starts where the install-istio lab leaves a real one:
``fixtures/istio-installed.yaml`` stands in for ``istioctl install`` and
the add-ons (istiod, gateways, injector webhook, mesh config), on top of
Istio's real CRDs from ``../shared/schemas``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from labrunner.testing.fixtures import FakeClusterHandle

REPO = Path(__file__).resolve().parents[2]
LABS_DIR = REPO / "labs"
MANIFESTS_DIR = REPO / "manifests"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
ISTIO_INSTALLED = FIXTURES / "istio-installed.yaml"

# Labs in labs/ that this suite does not own (they are tested elsewhere).
OTHER_LABS = frozenset({"00-mesh-security-basics.yaml"})
SKIP_ON_FAKE = frozenset({"traffic", "istioctl", "internet"})
RESOURCE_VERIFIERS = frozenset(
    {
        "resource",
        "namespace",
        "pods_ready",
        "deployment_available",
        "secret",
        "crd",
        "sidecar_injected",
        "istio_installed",
        "peer_authentication",
    }
)
ISTIO_GROUPS = ("networking.istio.io", "security.istio.io", "telemetry.istio.io")


def own_lab_files() -> list[Path]:
    """The workshop's Istio lab files, in name order."""
    return sorted(p for p in LABS_DIR.glob("[0-9][0-9]-*.yaml") if p.name not in OTHER_LABS)


def lab_data(path: Path) -> dict[str, Any]:
    """A lab file as plain data."""
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), path
    return data


@dataclass(frozen=True)
class ManifestDoc:
    """One YAML document of a manifest file."""

    path: Path
    doc: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.doc.get("kind", ""))

    @property
    def api_version(self) -> str:
        return str(self.doc.get("apiVersion", ""))

    @property
    def name(self) -> str:
        return str((self.doc.get("metadata") or {}).get("name", ""))

    @property
    def namespace(self) -> str | None:
        ns = (self.doc.get("metadata") or {}).get("namespace")
        return str(ns) if ns else None

    @property
    def is_istio(self) -> bool:
        return self.api_version.split("/")[0] in ISTIO_GROUPS


def manifest_files() -> list[Path]:
    """Every YAML file under manifests/."""
    return sorted(MANIFESTS_DIR.rglob("*.yaml"))


def load_docs(paths: list[Path]) -> list[ManifestDoc]:
    """Every non-empty document of ``paths``."""
    docs = []
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append(ManifestDoc(path, doc))
    return docs


def kubernetes_docs() -> list[ManifestDoc]:
    """Manifest documents meant for a Kubernetes API (the kind config is for kind itself)."""
    return [d for d in load_docs(manifest_files()) if not d.api_version.startswith("kind.x-k8s.io")]


def istio_provided_docs() -> list[ManifestDoc]:
    """Objects that Istio's install creates (the labs reference them, no manifest holds them)."""
    return load_docs([ISTIO_INSTALLED])


@dataclass
class Workshop:
    """A copy of the workshop (labs, manifests, certs/) in a temporary directory."""

    root: Path
    labs: Path = field(init=False)

    def __post_init__(self) -> None:
        self.labs = self.root / "labs"


def copy_workshop(target: Path) -> Workshop:
    """Copy this suite's labs and the manifests to ``target`` (commands write files there)."""
    labs = target / "labs"
    labs.mkdir(parents=True)
    for path in own_lab_files():
        shutil.copy2(path, labs / path.name)
    meta = yaml.safe_load((LABS_DIR / "workshop.yaml").read_text())
    meta["labs"] = [name for name in meta.get("labs", []) if name not in OTHER_LABS]
    (labs / "workshop.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    shutil.copytree(MANIFESTS_DIR, target / "manifests")
    (target / "certs").mkdir()
    return Workshop(target)


@pytest.fixture
def workshop_copy(tmp_path: Path) -> Workshop:
    """A private copy of the workshop, so labs never write into the checkout."""
    return copy_workshop(tmp_path / "workshop")


@pytest.fixture
def istio_cluster(fake_cluster_istio: FakeClusterHandle) -> Iterator[FakeClusterHandle]:
    """A fake cluster with Istio 1.30.3's CRDs and what ``istioctl install`` would create."""
    result = fake_cluster_istio.kubectl("apply", "-f", str(ISTIO_INSTALLED))
    assert result.returncode == 0, result.stderr
    # The lab shells inherit this environment; no istioctl download exists in the test HOME.
    assert "ISTIO_HOME" not in os.environ
    yield fake_cluster_istio
