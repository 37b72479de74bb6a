"""Fixtures for the Istio workshop tests: the lab files, their manifests, a fake cluster.

The workshop's labs run against a real cluster with istioctl and real Envoy
traffic. Here we exercise everything that does not need those: the lab
files load and validate, the manifests validate against Kubernetes' and
Istio 1.30.3's own schemas, and each lab's kubectl steps run (with the real
kubectl and the real engine) against the fake API server, where the
resource-level checks must fail before a step and pass after it. Steps that
need istioctl, real traffic or the internet are skipped with a reason.

The labs run through ``labrunner.rehearse``, the harness ``labrunner rehearse``
uses, on its simulated cluster: it starts where the install-istio lab leaves a
real one, as the workshop declares (``rehearse:`` in ``labs/workshop.yaml``:
``manifests/rehearse/`` stands in for ``istioctl install`` and the add-ons).
The pinned release is staged as ``$ISTIO_HOME`` in the test's private HOME, as
the install lab's download step would leave it: Istio's real CRDs (from
``../shared/schemas``) where a release keeps them, and ``fixtures/istio-release``
for its ``samples/`` (Bookinfo, the curl client; the add-ons from
``manifests/rehearse/addons``).
"""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from labrunner.lab.loader import load_workshop
from labrunner.lab.model import Workshop as LoadedWorkshop
from labrunner.rehearse import CONTEXT, SimulatedCluster, resolve_plan
from labrunner.testing.fixtures import FakeClusterHandle
from labrunner.verify.registry import builtin_registry

REPO = Path(__file__).resolve().parents[2]
LABS_DIR = REPO / "labs"
MANIFESTS_DIR = REPO / "manifests"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
REHEARSE_DIR = MANIFESTS_DIR / "rehearse"
ISTIO_INSTALLED = REHEARSE_DIR / "istio-installed.yaml"
ADDONS_DIR = REHEARSE_DIR / "addons"
ISTIO_RELEASE = FIXTURES / "istio-release"
RELEASE_CRDS = Path("manifests", "charts", "base", "files", "crd-all.gen.yaml")
"""Where a downloaded Istio release keeps its CRDs (what the workshop's rehearse.crds names)."""
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
    """Every Kubernetes YAML file the labs apply (not Helm values, not rehearsal stand-ins)."""
    return sorted(
        p
        for p in MANIFESTS_DIR.rglob("*.yaml")
        if p.parent != HELM_VALUES_DIR and REHEARSE_DIR not in p.parents
    )


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
    return [ADDONS_DIR / f"{name}.yaml" for name in ADDONS]


def release_path(path: Path) -> Path:
    """Where a stand-in sits in the staged release (``samples/...``)."""
    if ADDONS_DIR in path.parents:
        return Path("samples", "addons", path.name)
    return path.relative_to(ISTIO_RELEASE)


def release_sample_docs() -> list[ManifestDoc]:
    """The release samples' objects, placed in the namespace the labs apply them to."""
    docs = []
    for path in sorted([*(ISTIO_RELEASE / "samples").rglob("*.yaml"), *addon_files()]):
        sample = release_path(path).parts[1]
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


def stage_release(home: Path, crds: Path) -> Path:
    """Put the release where the install lab's download step would (no istioctl): the stand-in
    ``samples/`` and the add-ons, and Istio's CRDs where a release keeps them."""
    target = istio_home(home)
    shutil.copytree(ISTIO_RELEASE / "samples", target / "samples", dirs_exist_ok=True)
    shutil.copytree(ADDONS_DIR, target / "samples" / "addons", dirs_exist_ok=True)
    (target / RELEASE_CRDS).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(crds, target / RELEASE_CRDS)
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


def loaded(labs: Path) -> LoadedWorkshop:
    """The workshop in ``labs``, loaded with the built-in verifiers."""
    result = load_workshop(labs, builtin_registry())
    assert result.workshop is not None, "\n".join(map(str, result.problems))
    return result.workshop


@pytest.fixture
def istio_release(istio_crds_path: Path) -> Path:
    """The pinned release staged in the test HOME, as the install lab's download leaves it
    (but no istioctl); the labs' shells find it through ISTIO_HOME from workshop.yaml."""
    assert "ISTIO_HOME" not in os.environ
    home = stage_release(Path(os.environ["HOME"]), istio_crds_path)
    assert not (home / "bin" / "istioctl").exists()
    return home


@contextmanager
def simulated_cluster(
    directory: Path, monkeypatch: pytest.MonkeyPatch, *, preload: bool = True
) -> Iterator[FakeClusterHandle]:
    """The rehearsal's simulated cluster for the bundled workshop (what it declares), with
    KUBECONFIG and KUBECACHEDIR pointing at it."""
    plan = resolve_plan(loaded(LABS_DIR), os.environ)
    assert not plan.warnings, plan.warnings
    with SimulatedCluster(directory, plan).start(preload=preload) as cluster:
        assert cluster.server is not None
        for key, value in cluster.env.items():
            monkeypatch.setenv(key, value)
        yield FakeClusterHandle(
            cluster.server, cluster.kubeconfig, cluster.cache_dir, CONTEXT, dict(os.environ)
        )


def install_istio_on(cluster: FakeClusterHandle) -> None:
    """What the install-istio lab leaves, as the rehearsal preloads it."""
    plan = resolve_plan(loaded(LABS_DIR), os.environ)
    SimulatedCluster.preload_into(cluster.server, plan)


@pytest.fixture
def istio_cluster(
    istio_release: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeClusterHandle]:
    """A simulated cluster with Istio 1.30.3's CRDs and what the install-istio lab would leave,
    and the release staged in the test HOME (but no istioctl)."""
    with simulated_cluster(tmp_path / "cluster", monkeypatch) as handle:
        yield handle


@pytest.fixture
def istio_crds_cluster(
    istio_release: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeClusterHandle]:
    """The same cluster before the install: only Istio's CRDs."""
    with simulated_cluster(tmp_path / "cluster", monkeypatch, preload=False) as handle:
        yield handle
