"""Cluster identity: ``kube-system``'s UID names the cluster, and a recreated one gets a new UID."""

from __future__ import annotations

import shutil
import threading
import uuid

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from labrunner.testing.fakecluster import FakeCluster
from labrunner.testing.fixtures import FakeClusterHandle

needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is missing")


def kube_system_uid(api: client.ApiClient) -> str:
    return str(client.CoreV1Api(api).read_namespace("kube-system").metadata.uid)


def test_the_uid_is_stable_and_can_be_chosen() -> None:
    chosen = str(uuid.uuid4())
    with FakeCluster(cluster_uid=chosen) as fixed:
        assert fixed.cluster_uid == chosen
        assert fixed.get("namespaces", "kube-system")["metadata"]["uid"] == chosen
        fixed.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})
        assert fixed.cluster_uid == chosen
    with FakeCluster() as one, FakeCluster() as two:
        assert one.cluster_uid and two.cluster_uid and one.cluster_uid != two.cluster_uid


def test_recreating_the_cluster_wipes_it_behind_the_same_address(
    fake_cluster_rbac: FakeClusterHandle,
) -> None:
    handle = fake_cluster_rbac
    server = handle.server
    api = handle.api_client()
    before = kube_system_uid(api)
    assert before == server.cluster_uid
    server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lab"}})
    learner_token = server.issue_token("lab", "default")
    learner = handle.as_token(learner_token, label="learner").api_client()
    assert client.AuthenticationV1Api(learner).create_self_subject_review({}).status
    url = server.url
    core = client.CoreV1Api(api)
    listed = core.list_namespace().metadata.resource_version
    ended: list[list[str]] = []

    def watch_namespaces() -> None:
        stream = watch.Watch().stream(
            core.list_namespace, resource_version=listed, timeout_seconds=60
        )
        ended.append([e["type"] for e in stream])

    watcher = threading.Thread(target=watch_namespaces)
    watcher.start()
    assert server.wait_for_watch("namespaces")
    after = handle.recreate_cluster()
    watcher.join(timeout=20)
    assert ended == [[]]  # the open watch ended with the old cluster, saying nothing
    with pytest.raises(ApiException) as expired:
        next(iter(watch.Watch().stream(core.list_namespace, resource_version=listed)))
    assert expired.value.status == 410
    assert after != before
    assert server.url == url
    assert kube_system_uid(api) == after
    assert server.get("namespaces", "lab") is None
    assert {n["metadata"]["name"] for n in server.list("namespaces")} >= {"default", "kube-system"}
    assert server.get("clusterroles", "admin") is not None
    with pytest.raises(ApiException) as gone:
        client.CoreV1Api(learner).list_namespaced_config_map("lab")
    assert gone.value.status == 401
    api.close()
    learner.close()


def test_recreating_without_wiping_keeps_objects() -> None:
    with FakeCluster() as server:
        server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lab"}})
        before = server.cluster_uid
        since = server.resource_version
        after = server.recreate(wipe=False, cluster_uid="11111111-2222-3333-4444-555555555555")
        assert after == "11111111-2222-3333-4444-555555555555" != before
        api = client.ApiClient(client.Configuration(host=server.url))
        stream = watch.Watch().stream(
            client.CoreV1Api(api).list_namespace, resource_version=str(since), timeout_seconds=1
        )
        assert [(e["type"], e["object"].metadata.uid) for e in stream] == [
            ("DELETED", before),
            ("ADDED", after),
        ]
        api.close()
        assert server.get("namespaces", "lab") is not None
        assert server.cluster_uid == after


@needs_kubectl
def test_kubectl_sees_the_new_identity(fake_cluster: FakeClusterHandle) -> None:
    uid_path = "jsonpath={.metadata.uid}"
    first = fake_cluster.kubectl("get", "ns", "kube-system", "-o", uid_path, check=True).stdout
    assert first == fake_cluster.server.cluster_uid
    fake_cluster.server.load_crds(
        [
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": "widgets.example.com"},
                "spec": {
                    "group": "example.com",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                    "scope": "Namespaced",
                    "versions": [{"name": "v1", "served": True, "storage": True}],
                },
            }
        ]
    )
    assert fake_cluster.kubectl("get", "widgets").returncode == 0
    second_uid = fake_cluster.recreate_cluster()
    shown = fake_cluster.kubectl("get", "ns", "kube-system", "-o", uid_path, check=True).stdout
    assert shown == second_uid != first
    missing = fake_cluster.kubectl("get", "widgets")
    assert missing.returncode == 1
    assert 'the server doesn\'t have a resource type "widgets"' in missing.stderr
