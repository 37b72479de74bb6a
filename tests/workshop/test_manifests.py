"""The workshop's manifests: valid for Kubernetes 1.32 and Istio 1.30.3, current APIs only."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from labrunner.testing.fixtures import FakeClusterHandle
from tests.workshop.conftest import (
    ISTIO_INSTALLED,
    MANIFESTS_DIR,
    REPO,
    ManifestDoc,
    istio_provided_docs,
    kubernetes_docs,
    lab_data,
    load_docs,
    manifest_files,
    own_lab_files,
    release_sample_docs,
)

KUBERNETES_VERSION = "1.32"
MANIFEST_IDS = [str(p.relative_to(MANIFESTS_DIR)) for p in manifest_files()]

# Kinds and API groups that Istio removed; a lab must never use them (notes §1.1).
REMOVED_KINDS = {
    "MeshPolicy",
    "ServiceRole",
    "ServiceRoleBinding",
    "RbacConfig",
    "ClusterRbacConfig",
    "HTTPAPISpec",
    "HTTPAPISpecBinding",
    "QuotaSpec",
    "QuotaSpecBinding",
}
REMOVED_GROUPS = {"authentication.istio.io", "rbac.istio.io", "config.istio.io"}
# Kinds that only exist in an older version; everything else must be authored as v1.
ONLY_ALPHA = {"EnvoyFilter", "WasmPlugin", "ProxyConfig"}
REMOVED_COMMANDS = [
    (r"istioctl\s+verify-install", "istioctl verify-install (removed in 1.24)"),
    (r"istioctl\s+profile\s+(list|dump|diff)", "istioctl profile list/dump/diff (removed in 1.24)"),
    (r"istioctl\s+manifest\s+diff", "istioctl manifest diff (removed in 1.24)"),
    (r"istioctl\s+(x|experimental)\s+wait", "istioctl x wait (removed in 1.23)"),
    (r"istioctl\s+(x|experimental)\s+uninstall", "istioctl x uninstall (use istioctl uninstall)"),
    (r"samples/sleep|deploy/sleep|app=sleep", "the sleep sample (replaced by curl)"),
    (r"proxy-config\s+routes\b.*--name\s+http\.80\b", "route http.80 (gateways listen on 8080)"),
    (r"\.dynamicActiveSecrets\[0\]", "picking the SDS secret by index (select it by name)"),
]


def jwt_request_authentication(tmp_path: Path) -> Path:
    """The RequestAuthentication the JWT lab generates (key set filled in)."""
    out = tmp_path / "jwt"
    subprocess.run(
        ["bash", str(MANIFESTS_DIR / "jwt" / "make-jwt.sh"), str(out)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out / "request-authentication.yaml"


@pytest.mark.parametrize("path", manifest_files(), ids=MANIFEST_IDS)
def test_manifest_parses_and_names_its_objects(path: Path) -> None:
    docs = load_docs([path])
    assert docs, f"{path} is empty"
    for d in docs:
        assert d.api_version and d.kind, f"{path}: a document without apiVersion/kind"
        if d.kind != "Cluster":  # kind's own config has no metadata
            assert d.name, f"{path}: {d.kind} without a name"
        if d.kind not in ("Namespace", "Cluster", "MutatingWebhookConfiguration"):
            assert d.namespace, f"{path}: {d.kind} {d.name} must name its namespace"


def test_builtin_kinds_validate_against_kubernetes_schemas() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    docs = kubernetes_docs() + istio_provided_docs() + release_sample_docs()
    docs = [d for d in docs if not d.is_istio]
    assert len(docs) > 20
    for d in docs:
        try:
            kubernetes_validate.validate(dict(d.doc), KUBERNETES_VERSION, strict=True)
        except Exception as exc:  # the library raises several error types
            pytest.fail(f"{d.path.name}: {d.kind} {d.name}: {exc}")


def test_kind_cluster_config() -> None:
    config = yaml.safe_load((MANIFESTS_DIR / "kind" / "cluster.yaml").read_text())
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert config["kind"] == "Cluster"
    roles = [n["role"] for n in config["nodes"]]
    assert roles.count("control-plane") == 1
    assert set(roles) <= {"control-plane", "worker"}


def _apply(cluster: FakeClusterHandle, path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl("apply", "--dry-run=server", "-f", str(path), *extra)


def test_manifests_validate_on_the_fake_api_server(
    istio_cluster: FakeClusterHandle, tmp_path: Path
) -> None:
    """The fake API server validates custom resources against Istio 1.30.3's own CRD schemas
    the way a real API server does (structural schema, strict field validation), and built-in
    kinds against Kubernetes' schemas; a server-side dry run checks every file."""
    namespaces = {d.namespace for d in kubernetes_docs() if d.namespace} - {"istio-system"}
    for namespace in sorted(namespaces):
        istio_cluster.kubectl("create", "namespace", namespace, check=True)
    files = sorted({d.path for d in kubernetes_docs()})
    files.append(jwt_request_authentication(tmp_path))
    istio_files = {d.path for d in kubernetes_docs() if d.is_istio}
    assert len(istio_files) >= 15
    for path in files:
        result = _apply(istio_cluster, path)
        assert result.returncode == 0, f"{path.name}: {result.stderr}"
        assert "unknown field" not in result.stderr, f"{path.name}: {result.stderr}"


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (
            {
                "apiVersion": "security.istio.io/v1",
                "kind": "PeerAuthentication",
                "metadata": {"name": "default", "namespace": "istio-system"},
                "spec": {"mtls": {"mode": "STRIKT"}},
            },
            "STRIKT",
        ),
        (
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "DestinationRule",
                "metadata": {"name": "web-api", "namespace": "istio-system"},
                "spec": {"hosts": ["web-api"], "trafficPolicy": {}},
            },
            "hosts",
        ),
    ],
    ids=["unknown-mtls-mode", "destination-rule-hosts"],
)
def test_the_validation_catches_known_mistakes(
    istio_cluster: FakeClusterHandle, tmp_path: Path, broken: dict[str, Any], message: str
) -> None:
    """Guard the guard: the mistakes old workshops shipped are rejected here."""
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))
    result = _apply(istio_cluster, path)
    assert result.returncode != 0
    assert message in result.stderr


def _all_docs(tmp_path: Path) -> list[ManifestDoc]:
    return kubernetes_docs() + load_docs([jwt_request_authentication(tmp_path), ISTIO_INSTALLED])


def _walk(value: Any, path: str = "") -> list[tuple[str, Any]]:
    out = [(path, value)]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _walk(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _walk(v, f"{path}[{i}]")
    return out


def test_no_removed_or_outdated_istio_apis(tmp_path: Path) -> None:
    for d in _all_docs(tmp_path):
        where = f"{d.path.name}: {d.kind} {d.name}"
        group, _, version = d.api_version.rpartition("/")
        assert d.kind not in REMOVED_KINDS, where
        assert group not in REMOVED_GROUPS, where
        assert not (group == "authentication.istio.io" and d.kind == "Policy"), where
        if d.is_istio and d.kind not in ONLY_ALPHA:
            assert version == "v1", f"{where}: author {group}/v1, not {version}"
        if d.kind == "DestinationRule":
            assert "hosts" not in d.doc["spec"], f"{where}: DestinationRule takes host, not hosts"
        for path, value in _walk(d.doc.get("spec")):
            if path.endswith((".abort", ".delay")) and isinstance(value, dict):
                assert "percent" not in value, f"{where}: use percentage.value, not percent"
        text = yaml.safe_dump(dict(d.doc))
        assert not re.search(r"\bsleep\b.*image|image:.*\bsleep\b", text), where


def _lab_commands() -> list[tuple[str, str]]:
    out = []
    for path in own_lab_files():
        data = lab_data(path)
        items = [*(data.get("setup") or []), *(data.get("cleanup") or [])]
        for step in data["steps"]:
            items += [*(step.get("run") or []), *(step.get("solution") or [])]
            for check in step.get("check") or []:
                if "command" in check:
                    items.append(check["command"]["run"])
        for item in items:
            out.append((data["id"], item if isinstance(item, str) else item["cmd"]))
    return out


def _shell_blocks(markdown: str) -> list[str]:
    return re.findall(r"```(?:bash|sh|shell|console)?\n(.*?)```", markdown, re.DOTALL)


def test_no_removed_commands() -> None:
    sources: list[tuple[str, str]] = _lab_commands()
    for script in MANIFESTS_DIR.rglob("*.sh"):
        sources.append((script.name, script.read_text()))
    workflow = REPO / ".github" / "workflows" / "workshop.yml"
    sources.append((workflow.name, workflow.read_text()))
    doc = REPO / "README.md"
    sources += [(doc.name, block) for block in _shell_blocks(doc.read_text())]
    for path in own_lab_files():
        for block in _shell_blocks(path.read_text()):
            sources.append((path.name, block))
    for where, text in sources:
        for pattern, what in REMOVED_COMMANDS:
            assert not re.search(pattern, text), f"{where} uses {what}: {text[:120]}"


def test_sample_apps_follow_the_mesh_conventions() -> None:
    docs = [d for d in kubernetes_docs() if d.namespace in ("istioinaction", "legacy")]
    accounts = {(d.namespace, d.name) for d in docs if d.kind == "ServiceAccount"}
    deployments = [d for d in docs if d.kind == "Deployment"]
    assert {d.name for d in deployments} >= {
        "web-api",
        "recommendation",
        "purchase-history-v1",
        "purchase-history-v2",
        "curl",
    }
    for d in deployments:
        template = d.doc["spec"]["template"]
        labels = template["metadata"]["labels"]
        assert {"app", "version"} <= set(labels), f"{d.name}: needs app and version labels"
        sa = template["spec"].get("serviceAccountName")
        assert sa and sa != "default", f"{d.name}: needs its own ServiceAccount"
        assert (d.namespace, sa) in accounts, f"{d.name}: ServiceAccount {sa} is not defined"
        for container in template["spec"]["containers"]:
            image = container["image"]
            tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
            assert tag and tag != "latest", f"{d.name}: pin the image tag ({image})"
            if "fake-service" in image:
                assert tag == "v0.26.2", image
            if "curl" in image:
                assert image.split("/")[-1].startswith("curl:"), image
    for d in docs:
        if d.kind == "Service":
            for port in d.doc["spec"]["ports"]:
                assert re.match(r"^(http|https|grpc|tcp|tls)(-|$)", port.get("name", "")), (
                    f"Service {d.name}: name its ports after their protocol"
                )


def test_legacy_namespace_stays_out_of_the_mesh() -> None:
    namespace = next(d for d in kubernetes_docs() if d.kind == "Namespace" and d.name == "legacy")
    labels = (namespace.doc.get("metadata") or {}).get("labels") or {}
    assert labels.get("istio-injection") != "enabled"
    assert "istio.io/rev" not in labels


def test_lab_commands_keep_manifests_in_files() -> None:
    """Manifests live in manifests/, where the tests above validate them; a heredoc in a lab
    command would dodge that validation."""
    for where, command in _lab_commands():
        assert not re.search(r"<<-?\s*['\"]?\w+", command) or "apiVersion" not in command, (
            f"{where}: move the embedded manifest to manifests/"
        )
