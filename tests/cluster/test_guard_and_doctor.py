"""The context guard and ``labrunner doctor``'s cluster findings, from the command line too.

The guard tests point several contexts (``prod-eu``, ``kind-x``,
``workshop-eu``) at one fake API server, so the only thing that differs is
the name: ``verify`` must refuse the production-looking one unless it is
named with ``--context``, and accept the rest.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from labrunner.cluster.guard import decide, looks_disposable
from labrunner.doctor import Finding
from labrunner.doctor.cluster import findings
from labrunner.lab.model import Workshop
from labrunner.testing.fixtures import FakeClusterHandle

from .conftest import LABS, apply

# --------------------------------------------------------------------------- guard rules


def test_guard_rules() -> None:
    assert looks_disposable("kind-istio") and looks_disposable("k3d-lab")
    assert looks_disposable("microk8s") and not looks_disposable("prod-eu")
    assert looks_disposable("workshop-eu", ["workshop-*"])
    refused = decide("prod-eu", explicit=False, server="https://10.0.0.1:6443")
    assert not refused.allowed
    assert refused.reason.startswith(
        "refusing to act on kube context 'prod-eu' at https://10.0.0.1:6443: it does not look"
    )
    assert refused.reason.endswith("If you are sure, pass --context prod-eu")
    assert decide("prod-eu", explicit=True).allowed
    assert not decide(None, explicit=False).allowed


# --------------------------------------------------------------------------- guard on the CLI


def write_contexts(cluster: FakeClusterHandle, path: Path, current: str) -> dict[str, str]:
    """A kubeconfig with prod-eu, kind-x and workshop-eu, all pointing at the fake."""
    names = ("prod-eu", "kind-x", "workshop-eu")
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": n, "cluster": {"server": cluster.server.url}} for n in names],
        "users": [{"name": n, "user": {}} for n in names],
        "contexts": [{"name": n, "context": {"cluster": n, "user": n}} for n in names],
        "current-context": current,
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return {**cluster.env, "KUBECONFIG": str(path)}


def labrunner(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labrunner", "--labs", str(LABS), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


VERIFY = ("verify", "checks", "--only", "default-namespace", "--no-save")


def test_verify_refuses_a_production_looking_context(
    fake_cluster: FakeClusterHandle, tmp_path: Path
) -> None:
    env = write_contexts(fake_cluster, tmp_path / "config", "prod-eu")
    done = labrunner(env, *VERIFY)
    assert done.returncode == 3, done.stderr
    assert "refusing to act on kube context 'prod-eu'" in done.stderr
    assert "If you are sure, pass --context prod-eu" in done.stderr
    assert not fake_cluster.server.requests(path_prefix="/api/v1/namespaces")


def test_verify_accepts_it_when_named_with_context(
    fake_cluster: FakeClusterHandle, tmp_path: Path
) -> None:
    env = write_contexts(fake_cluster, tmp_path / "config", "prod-eu")
    done = labrunner(env, *VERIFY, "--context", "prod-eu")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "using context 'prod-eu' (chosen with --context)" in done.stderr


@pytest.mark.parametrize("context", ["kind-x", "workshop-eu"])
def test_verify_accepts_disposable_and_workshop_contexts(
    fake_cluster: FakeClusterHandle, tmp_path: Path, context: str
) -> None:
    env = write_contexts(fake_cluster, tmp_path / "config", context)
    done = labrunner(env, *VERIFY)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"using context '{context}'" in done.stderr


def test_doctor_reports_the_guard_and_exits_3(
    fake_cluster: FakeClusterHandle, tmp_path: Path
) -> None:
    env = write_contexts(fake_cluster, tmp_path / "config", "prod-eu")
    done = labrunner(env, "doctor")
    assert done.returncode == 3, done.stdout + done.stderr
    line = next(x for x in done.stdout.splitlines() if "kube context" in x)
    assert "prod-eu" in line and "does not look like a disposable workshop cluster" in line
    assert "pass --context prod-eu" in done.stdout
    confirmed = labrunner(env, "doctor", "--context", "prod-eu")
    assert "✔ kube context" in confirmed.stdout


# --------------------------------------------------------------------------- doctor findings


def by_name(found: list[Finding]) -> dict[str, Finding]:
    return {f.name: f for f in found}


def test_doctor_on_a_fresh_cluster(fake_cluster: FakeClusterHandle, workshop: Workshop) -> None:
    found = by_name(findings(context=None, workshop=workshop))
    assert found["kube context"].ok
    assert found["kube context"].detail == f"kind-labrunner ({fake_cluster.server.url})"
    assert found["cluster"].ok and found["cluster"].required
    assert found["kubernetes"].ok
    assert found["kubernetes"].detail.endswith("Istio 1.30.3 supports Kubernetes 1.32–1.34")
    istio = found["istio"]
    assert not istio.ok and not istio.required
    assert istio.detail == "not installed (no istiod Deployment in istio-system)"
    assert "istioctl install --set profile=demo -y (Istio 1.30.3)" in istio.fix
    assert "ingress gateway" not in found
    assert all(f.category == "cluster" for f in found.values())


def test_doctor_with_istio_installed(
    fake_cluster_istio: FakeClusterHandle, workshop: Workshop
) -> None:
    apply(fake_cluster_istio, "istio/control-plane.yaml")
    found = by_name(findings(context=None, workshop=workshop))
    assert found["istio"].ok and found["istio"].detail == "istiod runs Istio 1.30.3"
    gateway = found["ingress gateway"]
    assert not gateway.ok and not gateway.required
    assert gateway.detail.startswith("LoadBalancer without an external address")
    assert "kubectl -n istio-system port-forward svc/istio-ingressgateway 8080:80" in gateway.fix
    fake_cluster_istio.server.set_load_balancer_ip(
        "istio-system", "istio-ingressgateway", "172.18.255.200"
    )
    found = by_name(findings(context=None, workshop=workshop))
    assert found["ingress gateway"].ok
    assert found["ingress gateway"].detail == "LoadBalancer with external address 172.18.255.200"


def test_doctor_flags_another_istio_version(
    fake_cluster_istio: FakeClusterHandle, workshop: Workshop
) -> None:
    apply(fake_cluster_istio, "istio/control-plane.yaml")
    fake_cluster_istio.server.patch(
        "deployments",
        "istiod",
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "discovery", "image": "docker.io/istio/pilot:1.28.0"}
                        ]
                    }
                }
            }
        },
        "istio-system",
        patch_type="strategic",
    )
    istio = by_name(findings(context=None, workshop=workshop))["istio"]
    assert not istio.ok
    assert istio.detail == "istiod runs Istio 1.28.0; the workshop pins 1.30.3"
    assert istio.fix.startswith("uninstall it (istioctl uninstall --purge -y)")


def test_doctor_on_an_unreachable_cluster_is_blocking(
    fake_cluster: FakeClusterHandle, workshop: Workshop, tmp_path: Path
) -> None:
    fake_cluster.server.stop()
    found = by_name(findings(context=None, workshop=workshop))
    cluster = found["cluster"]
    assert cluster.blocking
    assert cluster.detail.startswith(f"cluster unreachable at {fake_cluster.server.url}")
    assert cluster.fix.startswith("start the cluster")
    done = labrunner(dict(fake_cluster.env), "doctor")
    assert done.returncode == 3
    assert "✘ cluster" in done.stdout


def test_doctor_without_a_kubeconfig(
    monkeypatch: pytest.MonkeyPatch, workshop: Workshop, tmp_path: Path
) -> None:
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    found = findings(context=None, workshop=workshop)
    assert [f.name for f in found] == ["kube context"]
    assert found[0].blocking
    assert found[0].detail.startswith("no kubeconfig: KUBECONFIG is unset")
    assert found[0].fix.startswith("create a cluster: see Bring a cluster")


def test_doctor_does_not_load_kubernetes_at_import() -> None:
    code = (
        "import sys, labrunner.doctor, labrunner.cli, labrunner.verify.kubernetes, "
        "labrunner.verify.istio, labrunner.doctor.cluster;"
        "print('kubernetes' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert done.stdout.strip() == "False"
