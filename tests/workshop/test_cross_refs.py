"""Every name a check uses (namespace, object, selector, service, identity) exists in the
manifests, in what Istio installs, or in what a lab command creates, and every expected
field is what the manifest really says. A typo in a check would otherwise only show on a
real cluster, as a step that can never pass."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from labrunner.verify.kubernetes import field_differences
from tests.workshop.conftest import (
    ISTIO_INSTALLED,
    ISTIO_RELEASE,
    MANIFESTS_DIR,
    REPO,
    ManifestDoc,
    helm_installed_docs,
    istio_provided_docs,
    kubernetes_docs,
    lab_data,
    own_lab_files,
    release_sample_docs,
)

CRDS_FILE = REPO.parent / "shared" / "schemas" / "istio-1.30.3-crds.yaml"


@dataclass(frozen=True)
class Use:
    """One check in one step."""

    where: str
    verifier: str
    params: Mapping[str, Any]
    commands: str = ""
    exported: frozenset[str] = frozenset()  # variables this or an earlier step of the lab exports


def _uses() -> Iterator[Use]:
    for path in own_lab_files():
        data = lab_data(path)
        env = {k: str(v) for k, v in (data.get("env") or {}).items()}
        exported: set[str] = set()
        for step in data["steps"]:
            items = [*(step.get("run") or []), *(step.get("solution") or [])]
            commands = "\n".join(i if isinstance(i, str) else i["cmd"] for i in items)
            exported |= set(step.get("exports") or [])
            for check in step.get("check") or []:
                (name,) = [k for k in check if k not in ("title", "hint")]
                params = _expand(check[name] or {}, env)
                yield Use(f"{data['id']}/{step['id']}", name, params, commands, frozenset(exported))


def _expand(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), m.group(0)), value)
    if isinstance(value, Mapping):
        return {k: _expand(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env) for v in value]
    return value


USES = list(_uses())


def _commands() -> list[str]:
    out = []
    for path in own_lab_files():
        data = lab_data(path)
        items = [*(data.get("setup") or []), *(data.get("cleanup") or [])]
        for step in data["steps"]:
            items += [*(step.get("run") or []), *(step.get("solution") or [])]
        out += [i if isinstance(i, str) else i["cmd"] for i in items]
    out += [p.read_text() for p in MANIFESTS_DIR.rglob("*.sh")]
    return out


class Inventory:
    """What exists on a cluster where the labs ran: manifests, Istio's install, commands."""

    def __init__(self, *, helm: bool = False) -> None:
        installed = (
            [ManifestDoc(ISTIO_INSTALLED, d) for d in helm_installed_docs()]
            if helm
            else istio_provided_docs()
        )
        self.docs: list[ManifestDoc] = kubernetes_docs() + installed + release_sample_docs()
        self.namespaces = {d.name for d in self.docs if d.kind == "Namespace"}
        self.namespaces |= {d.namespace for d in self.docs if d.namespace}
        self.secrets: set[tuple[str, str]] = set()
        for command in _commands():
            self.namespaces |= set(
                re.findall(r"kubectl create (?:namespace|ns) ([a-z0-9-]+)", command)
            )
            for name, ns in re.findall(
                r"kubectl create secret \w+ ([a-z0-9-]+) -n ([a-z0-9-]+)", command
            ):
                self.secrets.add((ns, name))
        self.crds: set[str] = set()
        if CRDS_FILE.is_file():
            self.crds = {
                d["metadata"]["name"]
                for d in yaml.safe_load_all(CRDS_FILE.read_text())
                if d and d.get("kind") == "CustomResourceDefinition"
            }

    def find(self, kind: str, name: str, namespace: str | None) -> list[ManifestDoc]:
        return [
            d
            for d in self.docs
            if d.kind == kind and d.name == name and (namespace is None or d.namespace == namespace)
        ]

    def one(self, kind: str, name: str, namespace: str | None) -> ManifestDoc:
        found = self.find(kind, name, namespace)
        assert found, f"no {kind} {name} in {namespace} in the manifests or Istio's install"
        return found[-1]

    def deployments(self, namespace: str) -> list[ManifestDoc]:
        return [d for d in self.docs if d.kind == "Deployment" and d.namespace == namespace]

    def fake_service_names(self) -> set[str]:
        names = set()
        for d in self.docs:
            if d.kind != "Deployment":
                continue
            for c in d.doc["spec"]["template"]["spec"]["containers"]:
                for env in c.get("env") or []:
                    if env["name"] == "NAME":
                        names.add(env["value"])
        return names

    def service_port(self, namespace: str, name: str, port: int | str) -> bool:
        for d in self.find("Service", name, namespace):
            for p in d.doc["spec"]["ports"]:
                if str(p["port"]) == str(port) or p.get("name") == str(port):
                    return True
        return False


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return Inventory()


@pytest.fixture(scope="module")
def helm_inventory() -> Inventory:
    """The same cluster, installed by the Helm lab instead of istioctl."""
    return Inventory(helm=True)


def _selector(value: Any) -> dict[str, str]:
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    pairs = [p.split("=", 1) for p in str(value or "").split(",") if p]
    return {k.strip(): v.strip() for k, v in pairs}


def _matches_some_pod(inv: Inventory, namespace: str, selector: Any) -> bool:
    wanted = _selector(selector)
    for d in inv.deployments(namespace):
        labels = d.doc["spec"]["template"]["metadata"].get("labels") or {}
        if all(labels.get(k) == v for k, v in wanted.items()):
            return True
    return False


def _of(verifier: str) -> list[Use]:
    return [u for u in USES if u.verifier == verifier]


def test_every_check_is_covered_here() -> None:
    known = {
        "resource",
        "namespace",
        "deployment_available",
        "pods_ready",
        "sidecar_injected",
        "secret",
        "peer_authentication",
        "istio_installed",
        "crd",
        "workload_certificate",
        "certificate",
        "http",
        "traffic_split",
        "traces",
        "command",
        "file",
        "env",
    }
    assert {u.verifier for u in USES} <= known


def test_resources_exist_with_the_expected_fields(
    inventory: Inventory, helm_inventory: Inventory
) -> None:
    for use in _of("resource"):
        if "name" not in use.params:
            continue  # "no object of this kind here" names nothing to look up
        if use.where.startswith("install-istio-helm/"):
            _check_resource(use, helm_inventory)
        else:
            _check_resource(use, inventory)


def _check_resource(use: Use, inventory: Inventory) -> None:
    p = use.params
    kind, name = p["kind"], p["name"]
    namespace = p.get("namespace")
    if kind == "CustomResourceDefinition":
        if inventory.crds:
            assert name in inventory.crds, f"{use.where}: no Istio CRD {name}"
        return
    if kind == "Secret":
        assert (namespace, name) in inventory.secrets, f"{use.where}: no command makes {name}"
        return
    inventory.one(kind, name, namespace)
    variants = inventory.find(kind, name, namespace)
    applied = [d for d in variants if _source(d) in use.commands]
    # A copy the lab generates from a template (make-jwt.sh fills in the key set).
    applied = applied or [d for d in variants if f"/{d.path.name}" in use.commands]
    for doc in applied or variants:
        assert doc.api_version == p["apiVersion"], f"{use.where}: {doc.api_version}"
    if "fields" in p:
        # Through JSON, as the API server stores it (map keys become strings: portLevelMtls).
        as_stored = [json.loads(json.dumps(dict(d.doc))) for d in applied or variants]
        docs = [_patched(d, use.commands) for d in as_stored]
        diffs = [field_differences(p["fields"], d) for d in docs]
        assert any(not d for d in diffs), f"{use.where}: the manifest differs: {diffs}"
        if not applied:
            assert len(variants) == 1, f"{use.where}: say which manifest the step applies"


def _patched(doc: dict[str, Any], commands: str) -> dict[str, Any]:
    """``doc`` after the ``kubectl patch`` a step runs on it (Service ports merge by port)."""
    name = doc["metadata"]["name"]
    kind = doc["kind"].lower()
    for match in re.finditer(rf"kubectl patch {kind} {re.escape(name)} .*?-p '([^']+)'", commands):
        patch = json.loads(match.group(1))
        merged = {p["port"]: dict(p) for p in doc["spec"]["ports"]}
        for port in patch["spec"]["ports"]:
            merged.setdefault(port["port"], {}).update(port)
        doc = {**doc, "spec": {**doc["spec"], "ports": list(merged.values())}}
    return doc


def _source(doc: ManifestDoc) -> str:
    """How a lab command names the file ``doc`` comes from."""
    if ISTIO_RELEASE in doc.path.parents:
        return "$ISTIO_HOME/" + str(doc.path.relative_to(ISTIO_RELEASE))
    return str(doc.path.relative_to(REPO))


def test_namespaces_exist(inventory: Inventory) -> None:
    for use in _of("namespace"):
        if use.params.get("exists") is False:
            continue
        name = use.params["name"]
        assert name in inventory.namespaces, use.where
        declared = inventory.find("Namespace", name, None)
        for key, value in (use.params.get("labels") or {}).items():
            if key == "istio-injection" and value is not None:
                assert value == "enabled", use.where
            if value is None:  # the manifest must not set what the check says is absent
                for d in declared:
                    assert key not in ((d.doc.get("metadata") or {}).get("labels") or {}), use.where


def test_deployments_exist(inventory: Inventory) -> None:
    for use in _of("deployment_available"):
        names = use.params["name"]
        for name in names if isinstance(names, list) else [names]:
            inventory.one("Deployment", name, use.params.get("namespace", "default"))


def test_selectors_match_pods(inventory: Inventory) -> None:
    for use in _of("pods_ready") + _of("sidecar_injected"):
        ns = use.params.get("namespace", "default")
        assert _matches_some_pod(inventory, ns, use.params.get("selector")), (
            f"{use.where}: selector {use.params.get('selector')} matches no pod in {ns}"
        )


def test_secrets_are_created_by_a_command(inventory: Inventory) -> None:
    refs = [(u.where, u.params) for u in _of("secret")]
    refs += [(u.where, u.params["secret"]) for u in _of("certificate") if "secret" in u.params]
    assert refs
    for where, ref in refs:
        assert (ref.get("namespace", "default"), ref["name"]) in inventory.secrets, where


def test_peer_authentication_matches_the_manifest(inventory: Inventory) -> None:
    for use in _of("peer_authentication"):
        ns = use.params.get("namespace", "istio-system")
        docs = [d for d in inventory.docs if d.kind == "PeerAuthentication" and d.namespace == ns]
        assert any(
            d.doc["spec"]["mtls"]["mode"] == use.params["mode"] and "selector" not in d.doc["spec"]
            for d in docs
        ), use.where


def test_workload_identities_match_service_accounts(inventory: Inventory) -> None:
    for use in _of("workload_certificate"):
        kind, _, name = use.params["target"].partition("/")
        assert kind == "deploy", use.where
        ns = use.params["namespace"]
        deployment = inventory.one("Deployment", name, ns)
        account = deployment.doc["spec"]["template"]["spec"]["serviceAccountName"]
        assert use.params["spiffe_id"] == f"spiffe://cluster.local/ns/{ns}/sa/{account}", use.where


def _host_exists(inv: Inventory, host: str, port: int | None) -> bool:
    if host in ("127.0.0.1", "localhost"):
        return True
    gateways = [d for d in inv.docs if d.kind == "Gateway"]
    gateway_hosts = {h for d in gateways for s in d.doc["spec"]["servers"] for h in s["hosts"]}
    external = {h for d in inv.docs if d.kind == "ServiceEntry" for h in d.doc["spec"]["hosts"]}
    if host in gateway_hosts | external:
        return True
    parts = host.split(".")
    if len(parts) >= 2:
        return inv.service_port(parts[1], parts[0], port or 80)
    return False


def test_http_calls_reach_real_objects(inventory: Inventory) -> None:
    for use in _of("http") + _of("traffic_split"):
        p = use.params
        source = p.get("from")
        if source:
            deployment = inventory.one("Deployment", source["deployment"], source["namespace"])
            names = [c["name"] for c in deployment.doc["spec"]["template"]["spec"]["containers"]]
            if "container" in source:
                assert source["container"] in names, use.where
        if "${" in p["url"]:
            for var in re.findall(r"\$\{(\w+)\}", p["url"]):
                assert var in use.exported, f"{use.where}: no step of the lab exports {var}"
        elif "via" in p:
            via = p["via"]
            ns = via.get("namespace", "default")
            assert inventory.service_port(ns, via["service"], via["port"]), (
                f"{use.where}: no Service {via['service']} with port {via['port']}"
            )
        else:
            url = urlsplit(p["url"])
            assert _host_exists(inventory, url.hostname or "", url.port), f"{use.where}: {p['url']}"
        if p.get("host"):
            assert _host_exists(inventory, p["host"], None), use.where


def test_expected_answers_name_real_services(inventory: Inventory) -> None:
    names = inventory.fake_service_names()
    for use in _of("traffic_split"):
        if "regex" in use.params["group_by"]:  # buckets are Deployments (a pod-name prefix)
            deployments = {d.name for d in inventory.deployments(use.params["from"]["namespace"])}
            names_here = deployments
        else:
            names_here = names
        for bucket in use.params["expect"]:
            assert bucket in names_here, f"{use.where}: no app answers as {bucket}"
    for use in _of("http"):
        for path, value in ((use.params.get("expect") or {}).get("json") or {}).items():
            if path.endswith("name"):
                assert value in names, f"{use.where}: no app answers as {value}"


def test_traces_name_real_workloads(inventory: Inventory) -> None:
    for use in _of("traces"):
        svc = use.params["service"]
        assert inventory.service_port(svc["namespace"], svc["name"], svc["port"]), use.where
        trace = use.params["trace"]
        for service in [trace["service"], *trace.get("includes", [])]:
            app, _, ns = service.partition(".")
            assert _matches_some_pod(inventory, ns, {"app": app}), f"{use.where}: {service}"
