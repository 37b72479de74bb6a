"""Events and container logs: what forensics reads when a step fails on the simulated cluster."""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from labrunner.testing.fakecluster import FakeCluster
from labrunner.testing.fixtures import FakeClusterHandle

needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is missing")

NS = "shop"


def deployment(replicas: int = 2, image: str = "nginx:1.27") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }


def events_about(server: FakeCluster, name: str) -> list[tuple[str, str, str]]:
    """``(type, reason, message)`` of the events about one object, in the order they were
    last written."""
    found = [e for e in server.list("events", NS) if e["involvedObject"]["name"] == name]
    found.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))
    return [(e["type"], e["reason"], e["message"]) for e in found]


@pytest.fixture
def server() -> Any:
    with FakeCluster() as fake:
        fake.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        yield fake


def test_a_rollout_records_what_the_controllers_and_kubelet_did(server: FakeCluster) -> None:
    server.create(deployment())
    pods = sorted(p["metadata"]["name"] for p in server.list("pods", NS))
    rs = server.list("replicasets", NS)[0]["metadata"]["name"]
    assert events_about(server, "web") == [
        ("Normal", "ScalingReplicaSet", f"Scaled up replica set {rs} from 0 to 2")
    ]
    assert sorted(events_about(server, rs)) == [
        ("Normal", "SuccessfulCreate", f"Created pod: {pods[0]}"),
        ("Normal", "SuccessfulCreate", f"Created pod: {pods[1]}"),
    ]
    first, second = (events_about(server, p) for p in pods)
    pulled_once = [first, second]
    pulled_once.sort(key=lambda evs: [r for _, r, _ in evs].count("Pulling"), reverse=True)
    fresh, cached = pulled_once
    assert [r for _, r, _ in fresh] == ["Scheduled", "Pulling", "Pulled", "Created", "Started"]
    assert fresh[1][2] == 'Pulling image "nginx:1.27"'
    assert fresh[2][2].startswith('Successfully pulled image "nginx:1.27" in ')
    assert fresh[3:] == [
        ("Normal", "Created", "Created container: web"),
        ("Normal", "Started", "Started container web"),
    ]
    assert cached[1] == (
        "Normal",
        "Pulled",
        'Container image "nginx:1.27" already present on machine',
    )
    event = next(e for e in server.list("events", NS) if e["reason"] == "Started")
    assert event["involvedObject"]["kind"] == "Pod"
    assert event["involvedObject"]["fieldPath"] == "spec.containers{web}"
    assert event["source"] == {"component": "kubelet", "host": "labrunner-control-plane"}
    assert event["count"] == 1
    assert event["firstTimestamp"] == event["lastTimestamp"]
    server.patch("deployments", "web", {"spec": {"replicas": 1}}, NS)
    assert events_about(server, "web")[-1] == (
        "Normal",
        "ScalingReplicaSet",
        f"Scaled down replica set {rs} from 2 to 1",
    )
    assert events_about(server, rs)[-1][1] == "SuccessfulDelete"


def test_stuck_pods_leave_warnings_that_name_the_cause(server: FakeCluster) -> None:
    server.hold_pods(NS, {"app": "web"})
    server.create(deployment(replicas=1))
    pod = server.list("pods", NS)[0]["metadata"]["name"]
    assert events_about(server, pod)[-1] == (
        "Warning",
        "Unhealthy",
        "Readiness probe failed: HTTP probe failed with statuscode: 503",
    )
    server.set_container_waiting(NS, pod, "ImagePullBackOff")
    assert events_about(server, pod)[-2:] == [
        ("Normal", "BackOff", 'Back-off pulling image "nginx:1.27"'),
        ("Warning", "Failed", "Error: ImagePullBackOff"),
    ]
    server.set_container_waiting(NS, pod, "ErrImagePull", "manifest unknown")
    assert ("Warning", "Failed", 'Failed to pull image "nginx:1.27": manifest unknown') in (
        events_about(server, pod)
    )
    # A repeat is counted on the same event, as the kubelet's event correlator does.
    server.set_container_waiting(NS, pod, "ImagePullBackOff")
    backoff = [e for e in server.list("events", NS) if e["reason"] == "BackOff"]
    assert len(backoff) == 1
    assert backoff[0]["count"] == 2
    uid = server.get("pods", pod, NS)["metadata"]["uid"]
    server.set_container_waiting(NS, pod, "CrashLoopBackOff")
    assert events_about(server, pod)[-1] == (
        "Warning",
        "BackOff",
        f"Back-off restarting failed container web in pod {pod}_{NS}({uid})",
    )


def test_events_are_served_by_both_apis_and_watchable(fake_cluster: FakeClusterHandle) -> None:
    server = fake_cluster.server
    server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    api = fake_cluster.api_client()
    core = client.CoreV1Api(api)
    events_v1 = client.EventsV1Api(api)
    start = core.list_namespaced_event(NS).metadata.resource_version
    server.create(deployment(replicas=1))
    pod = server.list("pods", NS)[0]["metadata"]["name"]
    core_events = core.list_namespaced_event(
        NS, field_selector=f"involvedObject.name={pod},reason=Scheduled"
    ).items
    assert [e.message for e in core_events] == [
        f"Successfully assigned {NS}/{pod} to labrunner-control-plane"
    ]
    new_api = events_v1.list_namespaced_event(NS).items
    scheduled = next(e for e in new_api if e.reason == "Scheduled")
    assert scheduled.regarding.name == pod
    assert scheduled.note == core_events[0].message
    assert scheduled.reporting_controller == "default-scheduler"
    assert scheduled.deprecated_count == 1
    assert scheduled.metadata.name == core_events[0].metadata.name
    seen = [
        e["object"].reason
        for e in watch.Watch().stream(
            events_v1.list_namespaced_event, NS, resource_version=start, timeout_seconds=2
        )
    ]
    assert {"ScalingReplicaSet", "SuccessfulCreate", "Scheduled", "Started"} <= set(seen)
    created = events_v1.create_namespaced_event(
        NS,
        {
            "metadata": {"name": "by-hand"},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "reason": "Tested",
            "note": "written through events.k8s.io",
            "type": "Normal",
            "action": "Test",
            "reportingController": "labrunner",
            "reportingInstance": "here",
            "regarding": {"kind": "Pod", "name": pod, "namespace": NS},
        },
    )
    assert created.note == "written through events.k8s.io"
    stored = core.read_namespaced_event("by-hand", NS)
    assert (stored.message, stored.involved_object.name) == ("written through events.k8s.io", pod)
    api.close()


@needs_kubectl
def test_kubectl_get_events_prints_the_table(fake_cluster: FakeClusterHandle) -> None:
    server = fake_cluster.server
    server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    server.hold_pods(NS)
    server.create(deployment(replicas=1))
    pod = server.list("pods", NS)[0]["metadata"]["name"]
    result = fake_cluster.kubectl("get", "events", "-n", NS, check=True)
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    rows = [line.split(None, 4) for line in lines[1:]]
    assert [
        "Warning",
        "Unhealthy",
        f"pod/{pod}",
        "Readiness probe failed: HTTP probe failed with statuscode: 503",
    ] in [r[1:] for r in rows]
    wide = fake_cluster.kubectl("get", "events", "-n", NS, "-o", "wide", check=True).stdout
    assert wide.splitlines()[0].split()[-4:] == ["FIRST", "SEEN", "COUNT", "NAME"]
    assert "kubelet, labrunner-control-plane" in wide
    v1 = fake_cluster.kubectl("get", "events.events.k8s.io", "-n", NS, "-o", "json", check=True)
    items = json.loads(v1.stdout)["items"]
    assert items and all(i["apiVersion"] == "events.k8s.io/v1" for i in items)
    assert {"Unhealthy", "Scheduled"} <= {i["reason"] for i in items}


def test_log_subresource_options(fake_cluster: FakeClusterHandle) -> None:
    server = fake_cluster.server
    server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    server.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "two", "namespace": NS},
            "spec": {
                "initContainers": [{"name": "setup", "image": "busybox"}],
                "containers": [
                    {"name": "app", "image": "busybox"},
                    {"name": "proxy", "image": "envoy"},
                ],
            },
        }
    )
    server.set_pod_log(NS, "two", "a\nb\nc\n", container="app")
    server.append_pod_log(NS, "two", "d\n", container="app")
    server.set_pod_log(NS, "two", "proxy says hi\n", container="proxy")
    api = fake_cluster.api_client()
    core = client.CoreV1Api(api)
    assert core.read_namespaced_pod_log("two", NS, container="app") == "a\nb\nc\nd\n"
    assert core.read_namespaced_pod_log("two", NS, container="app", tail_lines=2) == "c\nd\n"
    assert core.read_namespaced_pod_log("two", NS, container="app", limit_bytes=3) == "a\nb"
    assert core.read_namespaced_pod_log("two", NS, container="proxy") == "proxy says hi\n"
    stamped = core.read_namespaced_pod_log("two", NS, container="app", timestamps=True)
    first = stamped.splitlines()[0]
    assert first.endswith("Z a") and first[4] == "-" and first[10] == "T"
    assert core.read_namespaced_pod_log("two", NS, container="app", since_seconds=3600)
    with pytest.raises(ApiException) as unnamed:
        core.read_namespaced_pod_log("two", NS)
    assert json.loads(unnamed.value.body)["message"] == (
        "a container name must be specified for pod two, choose one of: [app proxy] "
        "or one of the init containers: [setup]"
    )
    with pytest.raises(ApiException) as no_previous:
        core.read_namespaced_pod_log("two", NS, container="app", previous=True)
    assert json.loads(no_previous.value.body)["message"] == (
        'previous terminated container "app" in pod "two" not found'
    )
    with pytest.raises(ApiException) as bogus:
        core.read_namespaced_pod_log("two", NS, container="nope")
    assert bogus.value.status == 400
    api.close()


@needs_kubectl
def test_restarts_keep_the_previous_log(fake_cluster: FakeClusterHandle) -> None:
    server = fake_cluster.server
    server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    server.create(deployment(replicas=1))
    pod = server.list("pods", NS)[0]["metadata"]["name"]
    server.set_pod_log(NS, pod, "starting\npanic: config missing\n")
    server.restart_container(NS, pod, exit_code=2, reason="Error", log="starting again\n")
    status = server.get("pods", pod, NS)["status"]["containerStatuses"][0]
    assert status["restartCount"] == 1
    assert status["lastState"]["terminated"]["exitCode"] == 2
    assert status["lastState"]["terminated"]["reason"] == "Error"
    assert "running" in status["state"]
    assert fake_cluster.kubectl("logs", "-n", NS, pod, check=True).stdout == "starting again\n"
    previous = fake_cluster.kubectl("logs", "-n", NS, pod, "--previous", "--tail=1", check=True)
    assert previous.stdout == "panic: config missing\n"
    server.restart_container(NS, pod, crash_loop=True, log="")
    crashed = server.get("pods", pod, NS)["status"]["containerStatuses"][0]
    assert crashed["restartCount"] == 2
    assert crashed["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert crashed["state"]["waiting"]["message"].startswith("back-off 20s restarting failed")
    table = fake_cluster.kubectl("get", "pods", "-n", NS, "--no-headers", check=True).stdout
    assert table.split()[1:4] == ["0/1", "CrashLoopBackOff", "2"]
    assert fake_cluster.kubectl("logs", "-n", NS, pod, "--previous", check=True).stdout == (
        "starting again\n"
    )


@needs_kubectl
def test_logs_of_a_container_that_never_started(fake_cluster: FakeClusterHandle) -> None:
    server = fake_cluster.server
    server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    server.create(deployment(replicas=1, image="nginx:does-not-exist"))
    pod = server.list("pods", NS)[0]["metadata"]["name"]
    server.set_container_waiting(NS, pod, "ImagePullBackOff", "Back-off pulling image")
    result = fake_cluster.kubectl("logs", "-n", NS, pod)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f'Error from server (BadRequest): container "web" in pod "{pod}" is waiting to start: '
        "trying and failing to pull image"
    )


def test_events_can_be_switched_off_and_recorded_by_hand() -> None:
    with FakeCluster(record_events=False) as quiet:
        quiet.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        quiet.create(deployment(replicas=1))
        assert quiet.list("events", NS) == []
    with FakeCluster() as fake:
        fake.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        fake.create(deployment(replicas=1))
        dep = fake.get("deployments", "web", NS)
        assert dep is not None
        for _ in range(3):
            fake.record_event(
                dep,
                "ProgressDeadlineExceeded",
                "took too long",
                type="Warning",
                component="deployment-controller",
            )
        recorded = [e for e in fake.list("events", NS) if e["reason"] == "ProgressDeadlineExceeded"]
        assert [(e["count"], e["type"], e["source"]) for e in recorded] == [
            (3, "Warning", {"component": "deployment-controller"})
        ]
