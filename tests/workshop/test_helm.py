"""The Helm install path, read closely: there is no helm binary here and the charts need the
internet, so its commands and values are checked against what the istioctl path installs and
what the other labs expect of it (names, labels, ports, service accounts)."""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest
import yaml

from tests.workshop.conftest import (
    LABS_DIR,
    MANIFESTS_DIR,
    istio_provided_docs,
    kubernetes_docs,
    lab_data,
)

LAB = lab_data(LABS_DIR / "02-install-istio-helm.yaml")
CLEAN_UP = lab_data(LABS_DIR / "18-clean-up.yaml")
REPO_URL = "https://istio-release.storage.googleapis.com/charts"
# Release → chart, in install order (base first: it holds the CRDs istiod needs).
RELEASES = {
    "istio-base": "istio/base",
    "istiod": "istio/istiod",
    "istio-ingressgateway": "istio/gateway",
    "istio-egressgateway": "istio/gateway",
}
GATEWAY_VALUES = {
    "istio-ingressgateway": MANIFESTS_DIR / "helm" / "ingressgateway-values.yaml",
    "istio-egressgateway": MANIFESTS_DIR / "helm" / "egressgateway-values.yaml",
}
# The istio/gateway chart's values these files may set (from the chart's values.yaml).
GATEWAY_CHART_KEYS = {
    "serviceAccount": {"name"},
    "service": {"type", "ports"},
    "autoscaling": {"enabled"},
}


def _commands(items: list[Any]) -> list[str]:
    return [i if isinstance(i, str) else str(i["cmd"]) for i in items]


def _helm_installs() -> list[list[str]]:
    out = []
    for step in LAB["steps"]:
        for command in _commands(step.get("run") or []):
            if command.startswith("helm upgrade --install"):
                out.append(shlex.split(command))
    return out


def _option(argv: list[str], *names: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg in names:
            return argv[i + 1]
    return None


def _doc(kind: str, name: str) -> dict[str, Any]:
    (found,) = [d.doc for d in istio_provided_docs() if d.kind == kind and d.name == name]
    return dict(found)


def test_every_chart_is_installed_pinned_in_order_into_istio_system() -> None:
    installs = _helm_installs()
    assert [(argv[3], argv[4]) for argv in installs] == list(RELEASES.items())
    for argv in installs:
        assert _option(argv, "--version") == "$ISTIO_VERSION", argv
        assert _option(argv, "-n", "--namespace") == "istio-system", argv
        assert "--wait" in argv, f"{argv[3]}: the next chart needs this one ready"
    assert "--create-namespace" in installs[0]
    assert _option(installs[1], "--set") == "profile=demo"


def test_the_repository_is_istios() -> None:
    commands = _commands(LAB["steps"][0]["run"])
    assert any(c.startswith(f"helm repo add istio {REPO_URL}") for c in commands)


@pytest.mark.parametrize("release", sorted(GATEWAY_VALUES))
def test_gateway_values_reproduce_the_istioctl_layout(release: str) -> None:
    argv = next(a for a in _helm_installs() if a[3] == release)
    values_path = GATEWAY_VALUES[release]
    assert _option(argv, "-f", "--values") == str(values_path.relative_to(MANIFESTS_DIR.parent))
    values = yaml.safe_load(values_path.read_text())
    for key, sub in values.items():
        assert key in GATEWAY_CHART_KEYS and set(sub) <= GATEWAY_CHART_KEYS[key], key
    deployment = _doc("Deployment", release)
    service = _doc("Service", release)
    template = deployment["spec"]["template"]
    # The chart names the service account from the values, the pods' `istio` label from
    # the release name without its "istio-" prefix, and the Service ports from the values.
    assert values["serviceAccount"]["name"] == template["spec"]["serviceAccountName"]
    assert release.removeprefix("istio-") == template["metadata"]["labels"]["istio"]
    assert values["service"]["type"] == service["spec"].get("type", "ClusterIP")
    chart_ports = {(p["name"], p["port"], p["targetPort"]) for p in values["service"]["ports"]}
    fixture_ports = {(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    assert chart_ports == fixture_ports
    assert values["autoscaling"]["enabled"] is False


def test_gateways_select_what_the_charts_label() -> None:
    """Every Gateway in the manifests selects a gateway the Helm path also installs."""
    labels = {release.removeprefix("istio-") for release in GATEWAY_VALUES}
    for d in kubernetes_docs():
        if d.kind == "Gateway":
            assert d.doc["spec"]["selector"]["istio"] in labels, d.name


def test_authorization_principal_is_the_helm_service_account() -> None:
    values = yaml.safe_load(GATEWAY_VALUES["istio-ingressgateway"].read_text())
    account = values["serviceAccount"]["name"]
    principal = f"cluster.local/ns/istio-system/sa/{account}"
    assert principal in (MANIFESTS_DIR / "authorization" / "allow-callers.yaml").read_text()


def _uninstall_order(commands: list[str]) -> list[str]:
    for command in commands:
        match = re.search(r"for release in ([\w -]+); do", command)
        if match and "helm uninstall" in command:
            return match.group(1).split()
    raise AssertionError("no helm uninstall loop")


def test_uninstall_reverses_the_install_and_removes_the_crds() -> None:
    expected = list(reversed(RELEASES))
    lab_cleanup = _commands(LAB["cleanup"])
    assert _uninstall_order(lab_cleanup) == expected
    assert any("grep 'istio\\.io'" in c and "xargs -r kubectl delete" in c for c in lab_cleanup)
    uninstall = next(s for s in CLEAN_UP["steps"] if s["id"] == "uninstall-istio")
    commands = _commands(uninstall["run"])
    assert _uninstall_order(commands) == expected
    assert any("istioctl uninstall --purge -y" in c for c in commands), "the istioctl way too"


def test_helm_steps_need_helm() -> None:
    for step in LAB["steps"]:
        if any("helm " in c for c in _commands(step.get("run") or [])):
            assert "helm" in (step.get("needs") or []), step["id"]
