"""The simulated cluster: controllers, pod lifecycle, injection, CRDs, namespaces, dry runs."""

from __future__ import annotations

import base64
import json
import queue
import shutil
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from labrunner.testing.fakecluster import ApiError, FakeCluster, WatchEvent
from labrunner.testing.fixtures import FakeClusterHandle


def namespace(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels or {}},
    }


def pod(name: str, ns: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {"app": name}},
        "spec": {
            "containers": [{"name": "app", "image": "busybox", "ports": [{"containerPort": 80}]}]
        },
    }


def deployment(name: str, ns: str, replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "busybox"}]},
            },
        },
    }


def containers(obj: dict[str, Any], key: str = "containers") -> list[str]:
    return [c["name"] for c in obj["spec"].get(key) or []]


def next_event(events: queue.SimpleQueue[WatchEvent | None]) -> WatchEvent:
    event = events.get(timeout=5)
    assert event is not None
    return event


@pytest.fixture
def server() -> Any:
    with FakeCluster() as fake:
        yield fake


def test_seeded_cluster_looks_like_kind(server: FakeCluster) -> None:
    names = {n["metadata"]["name"] for n in server.list("namespaces")}
    assert {"default", "kube-system", "kube-public"} <= names
    assert server.get("ns", "kube-system")["metadata"]["labels"] == {  # type: ignore[index]
        "kubernetes.io/metadata.name": "kube-system"
    }
    assert server.get("sa", "default", "default") is not None
    assert server.get("svc", "kubernetes", "default")["spec"]["clusterIP"] == "10.96.0.1"  # type: ignore[index]
    assert server.list("nodes")[0]["status"]["conditions"][0]["status"] == "True"


def test_injection_rules(server: FakeCluster) -> None:
    server.create(namespace("mesh", {"istio-injection": "enabled"}))
    server.create(namespace("off", {"istio-injection": "disabled", "istio.io/rev": "canary"}))
    server.create(namespace("rev", {"istio.io/rev": "canary"}))
    server.create(namespace("plain"))
    injected = server.create(pod("a", "mesh"))
    assert containers(injected) == ["app", "istio-proxy"]
    assert containers(injected, "initContainers") == ["istio-init"]
    status = json.loads(injected["metadata"]["annotations"]["sidecar.istio.io/status"])
    assert status["revision"] == "default"
    assert {"istio-envoy", "istio-token", "istiod-ca-cert"} <= set(status["volumes"])
    assert injected["metadata"]["labels"]["service.istio.io/canonical-name"] == "a"
    assert len(injected["status"]["containerStatuses"]) == 2
    assert containers(server.create(pod("b", "off"))) == ["app"]
    canary = server.create(pod("c", "rev"))
    assert (
        json.loads(canary["metadata"]["annotations"]["sidecar.istio.io/status"])["revision"]
        == "canary"
    )
    opted_out = server.create(pod("d", "mesh", {"app": "d", "sidecar.istio.io/inject": "false"}))
    assert containers(opted_out) == ["app"]
    opted_in = server.create(pod("e", "plain", {"app": "e", "sidecar.istio.io/inject": "true"}))
    assert containers(opted_in) == ["app", "istio-proxy"]
    assert containers(server.create(pod("f", "plain"))) == ["app"]


def test_native_sidecars_and_webhook_mode() -> None:
    with FakeCluster(native_sidecars=True, injection="webhook") as server:
        server.create(namespace("mesh", {"istio-injection": "enabled"}))
        assert containers(server.create(pod("before", "mesh"))) == ["app"]
        server.create(
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "MutatingWebhookConfiguration",
                "metadata": {"name": "istio-sidecar-injector"},
                "webhooks": [
                    {
                        "name": "namespace.sidecar-injector.istio.io",
                        "clientConfig": {
                            "service": {"name": "istiod", "namespace": "istio-system"}
                        },
                        "sideEffects": "None",
                        "admissionReviewVersions": ["v1"],
                    }
                ],
            }
        )
        after = server.create(pod("after", "mesh"))
        assert containers(after) == ["app"]
        assert containers(after, "initContainers") == ["istio-init", "istio-proxy"]
        assert after["spec"]["initContainers"][1]["restartPolicy"] == "Always"
        status = json.loads(after["metadata"]["annotations"]["sidecar.istio.io/status"])
        assert status["initContainers"] == ["istio-init", "istio-proxy"]
        assert status["containers"] is None


def test_deployment_status_and_generation(server: FakeCluster) -> None:
    server.create(namespace("app"))
    server.create(deployment("web", "app", replicas=3))
    dep = server.get("deploy", "web", "app")
    assert dep is not None
    assert dep["metadata"]["generation"] == 1
    status = dep["status"]
    assert (
        status["replicas"],
        status["updatedReplicas"],
        status["readyReplicas"],
        status["availableReplicas"],
    ) == (3, 3, 3, 3)
    assert {c["type"]: c["reason"] for c in status["conditions"]} == {
        "Available": "MinimumReplicasAvailable",
        "Progressing": "NewReplicaSetAvailable",
    }
    server.patch("deploy", "web", {"metadata": {"labels": {"x": "y"}}}, "app")
    assert server.get("deploy", "web", "app")["metadata"]["generation"] == 1  # type: ignore[index]
    server.patch("deploy", "web", {"spec": {"replicas": 1}}, "app")
    dep = server.get("deploy", "web", "app")
    assert dep is not None
    assert (dep["metadata"]["generation"], dep["status"]["observedGeneration"]) == (2, 2)
    assert len(server.list("pods", "app")) == 1
    assert "generation" not in server.get("ns", "app")["metadata"]  # type: ignore[index]


def test_held_pods_waiting_reasons_and_release(server: FakeCluster) -> None:
    server.create(namespace("app"))
    server.hold_pods("app", "app=web")
    server.create(deployment("web", "app", replicas=2))
    pods = server.list("pods", "app")
    assert all(p["status"]["phase"] == "Running" for p in pods)
    assert all(p["status"]["containerStatuses"][0]["ready"] is False for p in pods)
    dep = server.get("deploy", "web", "app")
    assert dep is not None
    assert dep["status"].get("readyReplicas", 0) == 0
    assert {c["type"]: c["status"] for c in dep["status"]["conditions"]}["Available"] == "False"
    first = pods[0]["metadata"]["name"]
    crashed = server.set_container_waiting("app", first, "CrashLoopBackOff", "back-off restarting")
    state = crashed["status"]["containerStatuses"][0]
    assert (state["restartCount"], state["state"]["waiting"]["reason"]) == (1, "CrashLoopBackOff")
    pulling = server.set_container_waiting("app", first, "ImagePullBackOff")
    assert pulling["status"]["phase"] == "Pending"
    with server.events("pods", "app") as events:
        server.release_pods("app", "app=web")
        modified = {next_event(events).obj["metadata"]["name"] for _ in range(2)}
    assert modified == {p["metadata"]["name"] for p in pods}
    assert all(p["status"]["conditions"][2]["status"] == "True" for p in server.list("pods", "app"))
    assert server.get("deploy", "web", "app")["status"]["readyReplicas"] == 2  # type: ignore[index]
    server.set_pod_ready("app", first, False)
    assert server.get("deploy", "web", "app")["status"]["readyReplicas"] == 1  # type: ignore[index]


def test_services_and_load_balancers(server: FakeCluster) -> None:
    server.create(namespace("app"))
    svc = server.create(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "gw", "namespace": "app"},
            "spec": {
                "type": "LoadBalancer",
                "selector": {"app": "gw"},
                "ports": [{"name": "http", "port": 80}],
            },
        }
    )
    assert svc["spec"]["clusterIP"].startswith("10.96.")
    port = svc["spec"]["ports"][0]
    assert (port["protocol"], port["targetPort"]) == ("TCP", 80)
    assert 30000 <= port["nodePort"] <= 32767
    assert svc["status"]["loadBalancer"] == {}
    updated = server.set_load_balancer_ip("app", "gw", "172.18.255.200")
    assert updated["status"]["loadBalancer"]["ingress"][0]["ip"] == "172.18.255.200"
    replaced = server.patch(
        "svc", "gw", {"spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}, "app"
    )
    assert replaced["spec"]["clusterIP"] == svc["spec"]["clusterIP"]
    assert replaced["status"]["loadBalancer"]["ingress"][0]["ip"] == "172.18.255.200"


def test_namespace_terminates_then_disappears(server: FakeCluster) -> None:
    server.create(namespace("gone"))
    server.create(deployment("web", "gone"))
    with server.events("namespaces") as events:
        terminating = server.delete("ns", "gone")
        assert terminating["status"]["phase"] == "Terminating"
        assert terminating["metadata"]["deletionTimestamp"]
        assert next_event(events).type == "MODIFIED"
        with pytest.raises(Exception, match="being terminated"):
            server.create(pod("late", "gone"))
        assert next_event(events).type == "DELETED"
    assert server.list("pods", "gone") == []
    assert server.list("deployments", "gone") == []


def test_crd_lifecycle_updates_discovery_and_drops_objects(
    fake_cluster_istio: FakeClusterHandle, istio_crd_docs: list[dict[str, Any]]
) -> None:
    server = fake_cluster_istio.server
    api = fake_cluster_istio.api_client()
    groups = {g.name for g in client.ApisApi(api).get_api_versions().groups}
    assert {"networking.istio.io", "security.istio.io", "telemetry.istio.io"} <= groups
    server.create(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": "default"},
            "spec": {
                "servers": [
                    {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}
                ]
            },
        }
    )
    assert len(server.list("gw")) == 1
    server.delete("crd", "gateways.networking.istio.io")
    with pytest.raises(KeyError):
        server.list("gw")
    resources = client.CustomObjectsApi(api)
    with pytest.raises(ApiException) as gone:
        resources.list_cluster_custom_object("networking.istio.io", "v1", "gateways")
    assert gone.value.status == 404
    assert "gateways.networking.istio.io" in server.load_crds(istio_crd_docs)
    assert server.list("gw") == []
    api.close()


def test_dry_run_and_webhook_configurations(fake_cluster: FakeClusterHandle) -> None:
    api = fake_cluster.api_client()
    core = client.CoreV1Api(api)
    created = core.create_namespaced_config_map(
        "default", {"metadata": {"name": "dry"}}, dry_run="All"
    )
    assert created.metadata.name == "dry"
    assert fake_cluster.server.get("cm", "dry", "default") is None
    admission = client.AdmissionregistrationV1Api(api)
    webhook = {
        "metadata": {"name": "policy"},
        "webhooks": [
            {
                "name": "policy.example.com",
                "clientConfig": {"url": "https://example.com/validate"},
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
            }
        ],
    }
    admission.create_validating_webhook_configuration(webhook)
    names = [w.metadata.name for w in admission.list_validating_webhook_configuration().items]
    assert names == ["policy"]
    assert admission.delete_validating_webhook_configuration("policy")["status"] == "Success"
    bad = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "bad"},
        "webhooks": [{"name": "x"}],
    }
    with pytest.raises(ApiError) as invalid:
        fake_cluster.server.create(bad)
    assert invalid.value.code == 422
    assert [c.field for c in invalid.value.causes] == [
        "webhooks[0].clientConfig",
        "webhooks[0].sideEffects",
        "webhooks[0].admissionReviewVersions",
    ]
    api.close()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_auth_can_i_and_tokens(fake_cluster: FakeClusterHandle) -> None:
    assert fake_cluster.kubectl("auth", "can-i", "list", "pods").stdout.strip() == "yes"
    fake_cluster.server.faults.fail("delete", resource="pods", namespace="default", status=403)
    denied = fake_cluster.kubectl("auth", "can-i", "delete", "pods", "-n", "default")
    assert denied.returncode == 1
    assert denied.stdout.startswith("no")
    token = fake_cluster.kubectl("create", "token", "default", "--audience=istio-ca")
    assert token.returncode == 0, token.stderr
    _, claims, _ = token.stdout.strip().split(".")
    decoded = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    assert decoded["sub"] == "system:serviceaccount:default:default"
    assert decoded["aud"] == ["istio-ca"]
