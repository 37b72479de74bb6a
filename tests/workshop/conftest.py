"""Fixtures for the Istio workshop tests: the lab files, their manifests, a fake cluster.

The workshop's labs run against a real cluster with istioctl and real Envoy
traffic. Here we exercise everything that does not need those: the lab
files load and validate, the manifests validate against Kubernetes' and
Istio 1.30.3's own schemas, and each lab's kubectl steps run (with the real
kubectl and the real engine) against the fake API server, where the
resource-level checks must fail before a step and pass after it. Steps that
need istioctl, real traffic or the internet are skipped with a reason.

The fake cluster starts where the install-istio lab leaves a real one:
``fixtures/istio-installed.yaml`` stands in for ``istioctl install`` (istiod,
gateways, injector webhook, mesh config), on top of Istio's real CRDs from
``../shared/schemas``, and ``fixtures/istio-release`` for the downloaded
release's ``samples/`` (the add-ons, Bookinfo, the curl client), staged as
``$ISTIO_HOME`` in the test's private HOME.
"""

from __future__ import annotations

import copy
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
ISTIO_RELEASE = FIXTURES / "istio-release"
HELM_VALUES_DIR = MANIFESTS_DIR / "helm"
ADDONS = ("prometheus", "grafana", "jaeger", "kiali")
# Release samples the labs apply into a namespace of their choosing (`kubectl apply -n`).
SAMPLE_NAMESPACES = {"bookinfo": "bookinfo", "curl": "bookinfo"}

# Labs in labs/ that this suite does not own (they are tested elsewhere).
OTHER_LABS = frozenset({"00-mesh-security-basics.yaml"})
SKIP_ON_FAKE = frozenset({"traffic", "istioctl", "internet", "helm"})
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
    """Every Kubernetes YAML file under manifests/ (Helm values files are not manifests)."""
    return sorted(p for p in MANIFESTS_DIR.rglob("*.yaml") if p.parent != HELM_VALUES_DIR)


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


def _helm_release(d: ManifestDoc) -> str | None:
    if d.kind == "Namespace":
        return None
    for gateway in ("istio-ingressgateway", "istio-egressgateway"):
        if gateway.removeprefix("istio-") in d.name:
            return gateway
    return "istiod"


def helm_installed_docs() -> list[dict[str, Any]]:
    """The istioctl fixture as the Helm lab's releases leave it: the same objects (the values in
    manifests/helm/ make them so, see test_helm.py), each annotated with its release."""
    docs = []
    for d in istio_provided_docs():
        doc = copy.deepcopy(dict(d.doc))
        release = _helm_release(d)
        if release:
            meta = doc["metadata"]
            meta["annotations"] = {
                **(meta.get("annotations") or {}),
                "meta.helm.sh/release-name": release,
                "meta.helm.sh/release-namespace": "istio-system",
            }
            meta["labels"] = {**(meta.get("labels") or {}), "app.kubernetes.io/managed-by": "Helm"}
        docs.append(doc)
    return docs


def addon_files() -> list[Path]:
    """The stand-ins for the release's four add-on files the install lab applies."""
    return [ISTIO_RELEASE / "samples" / "addons" / f"{name}.yaml" for name in ADDONS]


def release_sample_docs() -> list[ManifestDoc]:
    """The release samples' objects, placed in the namespace the labs apply them to."""
    docs = []
    for path in sorted((ISTIO_RELEASE / "samples").rglob("*.yaml")):
        sample = path.relative_to(ISTIO_RELEASE / "samples").parts[0]
        for d in load_docs([path]):
            namespace = SAMPLE_NAMESPACES.get(sample)
            if namespace and d.kind not in ("Namespace",) and not d.namespace:
                doc = dict(d.doc)
                doc["metadata"] = {**doc["metadata"], "namespace": namespace}
                d = ManifestDoc(path, doc)
            docs.append(d)
    return docs


def istio_home(home: Path) -> Path:
    """Where the workshop's env puts ISTIO_HOME for this HOME."""
    version = yaml.safe_load((LABS_DIR / "workshop.yaml").read_text())["env"]["ISTIO_VERSION"]
    return home / ".istio-workshop" / f"istio-{version}"


def stage_release_samples(home: Path) -> Path:
    """Put the stand-in ``samples/`` where the labs look for the release (no istioctl)."""
    target = istio_home(home)
    shutil.copytree(ISTIO_RELEASE / "samples", target / "samples", dirs_exist_ok=True)
    return target


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


def _rbac_crd(kind: str, plural: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.rbac.authorization.k8s.io"},
        "spec": {
            "group": "rbac.authorization.k8s.io",
            "scope": "Cluster",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


def serve_cluster_rbac(cluster: FakeClusterHandle) -> None:
    """Let the fake API server store ClusterRoles and ClusterRoleBindings.

    It has no RBAC API of its own, but the add-on files hold both kinds and the
    clean-up lab checks they are gone; served as schemaless cluster-scoped
    custom resources, ``kubectl apply``, ``get`` and ``delete`` treat them as usual.
    """
    cluster.server.load_crds(
        [
            _rbac_crd("ClusterRole", "clusterroles"),
            _rbac_crd("ClusterRoleBinding", "clusterrolebindings"),
        ]
    )


def install_istio_on(cluster: FakeClusterHandle) -> None:
    """What the install-istio lab leaves: ``istioctl install`` and the four add-ons."""
    serve_cluster_rbac(cluster)
    args = ["apply", "-f", str(ISTIO_INSTALLED)]
    for path in addon_files():
        args += ["-f", str(path)]
    result = cluster.kubectl(*args)
    assert result.returncode == 0, result.stderr


@pytest.fixture
def istio_cluster(fake_cluster_istio: FakeClusterHandle) -> Iterator[FakeClusterHandle]:
    """A fake cluster with Istio 1.30.3's CRDs and what the install-istio lab would leave,
    and the release's samples staged in the test HOME (but no istioctl)."""
    install_istio_on(fake_cluster_istio)
    # The lab shells inherit this environment; ISTIO_HOME comes from labs/workshop.yaml.
    assert "ISTIO_HOME" not in os.environ
    home = stage_release_samples(Path(os.environ["HOME"]))
    assert not (home / "bin" / "istioctl").exists()
    yield fake_cluster_istio
