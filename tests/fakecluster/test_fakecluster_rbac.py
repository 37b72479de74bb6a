"""Identities, tokens and RBAC: the fake refuses what a real apiserver refuses, in its words."""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from labrunner.testing.fakecluster import FakeCluster, Identity
from labrunner.testing.fakecluster.rbac import Attributes, missing_rules, rule_allows
from labrunner.testing.fixtures import FakeClusterHandle

needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is missing")

CLASS = "c"
ALICE_DENIED_BOB = (
    'configmaps "bob" is forbidden: User "system:serviceaccount:c:alice" cannot update '
    'resource "configmaps" in API group "" in the namespace "c"'
)


def configmap(name: str, value: str = "0") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": CLASS},
        "data": {"step": value},
    }


def seed_class(server: FakeCluster) -> None:
    """Namespace ``c``; ServiceAccounts alice and bob; one progress ConfigMap and one Secret
    each; a Role letting alice get/update/patch only her ConfigMap, bound to her."""
    server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": CLASS}})
    for learner in ("alice", "bob"):
        server.create(
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": learner}},
            namespace=CLASS,
        )
        server.create(configmap(learner))
        server.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": f"{learner}-secret", "namespace": CLASS},
                "stringData": {"password": "hunter2"},
            }
        )
    server.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "alice-progress", "namespace": CLASS},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "resourceNames": ["alice"],
                    "verbs": ["get", "update", "patch"],
                }
            ],
        }
    )
    server.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "alice-progress", "namespace": CLASS},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "alice-progress",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "alice", "namespace": CLASS}],
        }
    )


def status_of(exc: ApiException) -> dict[str, Any]:
    return dict(json.loads(exc.body))


@pytest.fixture
def alice(fake_cluster_rbac: FakeClusterHandle) -> FakeClusterHandle:
    seed_class(fake_cluster_rbac.server)
    return fake_cluster_rbac.as_service_account(CLASS, "alice")


def test_a_learner_writes_her_object_and_is_refused_the_rest(alice: FakeClusterHandle) -> None:
    api = alice.api_client()
    core = client.CoreV1Api(api)
    mine = core.read_namespaced_config_map("alice", CLASS)
    mine.data = {"step": "3"}
    assert core.replace_namespaced_config_map("alice", CLASS, mine).data == {"step": "3"}
    core.patch_namespaced_config_map("alice", CLASS, {"data": {"step": "4"}})
    assert alice.server.get("configmaps", "alice", CLASS)["data"] == {"step": "4"}

    with pytest.raises(ApiException) as refused:
        core.replace_namespaced_config_map("bob", CLASS, client.V1ConfigMap(data={"step": "9"}))
    body = status_of(refused.value)
    assert refused.value.status == 403
    assert body["reason"] == "Forbidden"
    assert body["message"] == ALICE_DENIED_BOB
    assert body["details"] == {"name": "bob", "kind": "configmaps"}
    assert alice.server.get("configmaps", "bob", CLASS)["data"] == {"step": "0"}

    with pytest.raises(ApiException) as secrets:
        core.read_namespaced_secret("alice-secret", CLASS)
    assert secrets.value.status == 403
    assert 'cannot get resource "secrets"' in status_of(secrets.value)["message"]
    # resourceNames cannot restrict create or an unqualified list, as in Kubernetes.
    for call in (
        lambda: core.list_namespaced_config_map(CLASS),
        lambda: core.create_namespaced_config_map(CLASS, configmap("alice2")),
        lambda: core.list_namespaced_secret(CLASS),
    ):
        with pytest.raises(ApiException) as denied:
            call()
        assert denied.value.status == 403
    api.close()


def test_a_list_or_watch_pinned_to_the_allowed_name_is_authorized(
    alice: FakeClusterHandle,
) -> None:
    role = alice.server.get("roles", "alice-progress", CLASS)
    assert role is not None
    role["rules"][0]["verbs"] += ["list", "watch"]
    alice.server.apply(role)
    api = alice.api_client()
    core = client.CoreV1Api(api)
    listed = core.list_namespaced_config_map(CLASS, field_selector="metadata.name=alice")
    assert [c.metadata.name for c in listed.items] == ["alice"]
    for selector in ("metadata.name=bob", ""):
        with pytest.raises(ApiException) as other:
            core.list_namespaced_config_map(CLASS, field_selector=selector)
        assert other.value.status == 403
    alice.server.patch("configmaps", "alice", {"data": {"step": "7"}}, CLASS)
    stream = watch.Watch().stream(
        core.list_namespaced_config_map,
        CLASS,
        field_selector="metadata.name=alice",
        resource_version=listed.metadata.resource_version,
        timeout_seconds=10,
    )
    event = next(iter(stream))
    assert (event["type"], event["object"].data) == ("MODIFIED", {"step": "7"})
    api.close()


@needs_kubectl
def test_kubectl_prints_the_forbidden_message_verbatim(
    fake_cluster_rbac: FakeClusterHandle, tmp_path: Path
) -> None:
    admin = fake_cluster_rbac
    seed_class(admin.server)
    token = admin.kubectl("create", "token", "alice", "-n", CLASS, "--duration=2h", check=True)
    learner = admin.as_token(token.stdout.strip(), label="alice", namespace=CLASS)
    assert learner.kubectl("label", "configmap", "alice", "step=2").returncode == 0
    bob = tmp_path / "bob.yaml"
    bob.write_text(json.dumps(configmap("bob", "hijacked")))
    replaced = learner.kubectl("replace", "-f", str(bob))
    assert replaced.returncode == 1
    assert (
        replaced.stderr.strip() == f"Error from server (Forbidden): error when replacing "
        f'"{bob}": {ALICE_DENIED_BOB}'
    )
    secrets = learner.kubectl("get", "secrets")
    assert secrets.returncode == 1
    assert secrets.stderr.strip() == (
        'Error from server (Forbidden): secrets is forbidden: User "system:serviceaccount:c:alice" '
        'cannot list resource "secrets" in API group "" in the namespace "c"'
    )
    assert learner.kubectl("auth", "can-i", "update", "configmaps/alice").stdout.strip() == "yes"
    bob_check = learner.kubectl("auth", "can-i", "update", "configmaps/bob")
    assert (bob_check.returncode, bob_check.stdout.strip()) == (1, "no")
    assert learner.kubectl("auth", "can-i", "get", "secrets").stdout.strip() == "no"
    whoami = learner.kubectl("auth", "whoami", "-o", "json", check=True)
    info = json.loads(whoami.stdout)["status"]["userInfo"]
    assert info["username"] == "system:serviceaccount:c:alice"
    assert "system:serviceaccounts:c" in info["groups"]
    rules = learner.kubectl("auth", "can-i", "--list", check=True).stdout
    assert any(
        line.split()[:3] == ["configmaps", "[]", "[alice]"] for line in rules.splitlines()
    ), rules
    # The admin may impersonate; the learner may not.
    as_alice = admin.kubectl(
        "auth",
        "can-i",
        "patch",
        "configmaps/alice",
        "-n",
        CLASS,
        "--as=system:serviceaccount:c:alice",
    )
    assert as_alice.stdout.strip() == "yes"
    impersonating = learner.kubectl("get", "configmap", "bob", "--as=system:serviceaccount:c:bob")
    assert impersonating.returncode == 1
    assert 'cannot impersonate resource "serviceaccounts"' in impersonating.stderr


@needs_kubectl
def test_kubectl_creates_roles_and_bindings_through_protobuf(
    fake_cluster_rbac: FakeClusterHandle,
) -> None:
    admin = fake_cluster_rbac
    admin.kubectl("create", "namespace", CLASS, check=True)
    admin.kubectl("create", "serviceaccount", "carol", "-n", CLASS, check=True)
    admin.kubectl(
        "create",
        "role",
        "reader",
        "-n",
        CLASS,
        "--verb=get,list,watch",
        "--resource=pods,pods/log",
        check=True,
    )
    admin.kubectl(
        "create",
        "rolebinding",
        "carol-reads",
        "-n",
        CLASS,
        "--role=reader",
        f"--serviceaccount={CLASS}:carol",
        "--user=dave",
        "--group=teachers",
        check=True,
    )
    role = admin.server.get("roles", "reader", CLASS)
    assert role is not None
    assert role["rules"] == [
        {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods", "pods/log"]}
    ]
    binding = admin.server.get("rolebindings", "carol-reads", CLASS)
    assert binding is not None
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "reader",
    }
    assert {(s["kind"], s["name"]) for s in binding["subjects"]} == {
        ("ServiceAccount", "carol"),
        ("User", "dave"),
        ("Group", "teachers"),
    }
    table = admin.kubectl("get", "rolebinding", "carol-reads", "-n", CLASS, "-o", "wide").stdout
    header, row = table.splitlines()[:2]
    assert header.split()[:3] == ["NAME", "ROLE", "AGE"]
    assert row.split()[:2] == ["carol-reads", "Role/reader"]
    moved = admin.kubectl(
        "patch",
        "rolebinding",
        "carol-reads",
        "-n",
        CLASS,
        "--type=merge",
        "-p",
        '{"roleRef":{"name":"other"}}',
    )
    assert moved.returncode == 1
    assert "cannot change roleRef" in moved.stderr


def test_subresources_scopes_and_cluster_roles(fake_cluster_rbac: FakeClusterHandle) -> None:
    server = fake_cluster_rbac.server
    for ns in ("a", "b"):
        server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    token = server.add_token("erin", ["devs"])
    server.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "log-reader"},
            "rules": [{"apiGroups": [""], "resources": ["*/log"], "verbs": ["get"]}],
        }
    )
    server.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "devs-read-logs", "namespace": "a"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "log-reader",
            },
            "subjects": [{"kind": "Group", "name": "devs"}],
        }
    )
    assert server.can(token, "get", "pods/log", namespace="a")
    assert not server.can(token, "get", "pods", namespace="a")
    assert not server.can(token, "get", "pods/log", namespace="b")
    assert not server.can(token, "list", "namespaces")
    server.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "erin-views"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "view",
            },
            "subjects": [{"kind": "User", "name": "erin"}],
        }
    )
    assert server.can(token, "list", "pods", namespace="b")
    assert server.can(token, "list", "namespaces")
    assert server.can(token, "watch", "deployments.apps", namespace="b")
    assert not server.can(token, "get", "secrets", namespace="b")
    assert not server.can(token, "delete", "pods", namespace="b")
    # A namespace is authorized inside itself, as the apiserver does.
    server.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "see-ns", "namespace": "b"},
            "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["delete"]}],
        }
    )
    server.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "erin-see-ns", "namespace": "b"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "see-ns"},
            "subjects": [{"kind": "User", "name": "erin"}],
        }
    )
    assert server.can(token, "delete", "namespaces", namespace="b", name="b")
    assert not server.can(token, "delete", "namespaces", namespace="a", name="a")


def test_cluster_scope_denial_wording(fake_cluster_rbac: FakeClusterHandle) -> None:
    server = fake_cluster_rbac.server
    nobody = fake_cluster_rbac.as_token(server.add_token("nobody"), label="nobody")
    api = nobody.api_client()
    with pytest.raises(ApiException) as denied:
        client.CoreV1Api(api).list_namespace()
    assert status_of(denied.value)["message"] == (
        'namespaces is forbidden: User "nobody" cannot list resource "namespaces" in API group '
        '"" at the cluster scope'
    )
    assert client.VersionApi(api).get_code().minor == "32"
    api.close()


def test_a_namespace_admin_cannot_grant_more_than_it_holds(
    fake_cluster_rbac: FakeClusterHandle,
) -> None:
    server = fake_cluster_rbac.server
    seed_class(server)
    server.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "teacher-admin", "namespace": CLASS},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "admin",
            },
            "subjects": [{"kind": "User", "name": "teacher"}],
        }
    )
    teacher = fake_cluster_rbac.as_token(server.add_token("teacher"), label="teacher")
    api = teacher.api_client()
    rbac_api = client.RbacAuthorizationV1Api(api)
    core = client.CoreV1Api(api)
    core.create_namespaced_service_account(CLASS, {"metadata": {"name": "frank"}})
    rbac_api.create_namespaced_role(
        CLASS,
        {
            "metadata": {"name": "frank-progress"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "resourceNames": ["frank"],
                    "verbs": ["get", "update", "patch"],
                }
            ],
        },
    )
    rbac_api.create_namespaced_role_binding(
        CLASS,
        {
            "metadata": {"name": "frank-progress"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "frank-progress",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "frank", "namespace": CLASS}],
        },
    )
    issued = core.create_namespaced_service_account_token(
        "frank", CLASS, {"spec": {"expirationSeconds": 7200}}
    )
    assert server.identity(issued.status.token) == Identity(
        "system:serviceaccount:c:frank",
        ("system:serviceaccounts", "system:serviceaccounts:c", "system:authenticated"),
        server.get("serviceaccounts", "frank", CLASS)["metadata"]["uid"],
    )
    with pytest.raises(ApiException) as escalation:
        rbac_api.create_namespaced_role(
            CLASS,
            {
                "metadata": {"name": "everything"},
                "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
            },
        )
    message = status_of(escalation.value)["message"]
    assert escalation.value.status == 403
    assert message.startswith(
        'roles.rbac.authorization.k8s.io "everything" is forbidden: user "teacher" '
        '(groups=["system:authenticated"]) is attempting to grant RBAC permissions not '
        "currently held:"
    )
    with pytest.raises(ApiException) as cluster_wide:
        rbac_api.create_cluster_role(
            {
                "metadata": {"name": "mine"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
            }
        )
    assert cluster_wide.value.status == 403
    assert server.get("roles", "everything", CLASS) is None
    api.close()


def test_token_request_lifetimes_and_revocation(fake_cluster_rbac: FakeClusterHandle) -> None:
    server = fake_cluster_rbac.server
    seed_class(server)
    api = fake_cluster_rbac.api_client()
    core = client.CoreV1Api(api)
    reply = core.create_namespaced_service_account_token(
        "alice", CLASS, {"spec": {"expirationSeconds": 7200, "audiences": ["labrunner"]}}
    )
    assert reply.spec.expiration_seconds == 7200
    assert reply.spec.audiences == ["labrunner"]
    claims_part = reply.status.token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(claims_part + "=" * (-len(claims_part) % 4)))
    assert claims["exp"] - claims["iat"] == 7200
    assert claims["sub"] == "system:serviceaccount:c:alice"
    remaining = reply.status.expiration_timestamp.timestamp() - time.time()
    assert 7100 < remaining <= 7200

    with pytest.raises(ApiException) as too_short:
        core.create_namespaced_service_account_token(
            "alice", CLASS, {"spec": {"expirationSeconds": 60}}
        )
    assert too_short.value.status == 422
    assert (
        "may not specify a duration less than 10 minutes" in status_of(too_short.value)["message"]
    )
    with pytest.raises(ApiException) as missing:
        core.create_namespaced_service_account_token("nobody", CLASS, {"spec": {}})
    assert missing.value.status == 404

    token = reply.status.token
    learner = fake_cluster_rbac.as_token(token, label="alice")
    learner_api = learner.api_client()
    learner_core = client.CoreV1Api(learner_api)
    assert learner_core.read_namespaced_config_map("alice", CLASS).data == {"step": "0"}
    core.delete_namespaced_service_account("alice", CLASS)
    with pytest.raises(ApiException) as revoked:
        learner_core.read_namespaced_config_map("alice", CLASS)
    assert revoked.value.status == 401
    # A new account with the same name does not bring the old token back.
    core.create_namespaced_service_account(CLASS, {"metadata": {"name": "alice"}})
    with pytest.raises(ApiException) as still_revoked:
        learner_core.read_namespaced_config_map("alice", CLASS)
    assert still_revoked.value.status == 401
    fresh = server.issue_token(CLASS, "alice")
    assert server.identity(fresh) is not None
    server.expire_token(fresh)
    assert server.identity(fresh) is None
    learner_api.close()
    api.close()


def test_a_capped_lifetime_is_reported_with_a_warning() -> None:
    with FakeCluster(https=True, token="admin-token", max_token_seconds=3600) as server:
        server.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "x"}})
        ca = ssl.create_default_context(cadata=(server.ca_pem or b"").decode())
        request = urllib.request.Request(
            f"{server.url}/api/v1/namespaces/default/serviceaccounts/x/token",
            data=json.dumps({"spec": {"expirationSeconds": 86400}}).encode(),
            headers={"Authorization": "Bearer admin-token", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, context=ca) as reply:
            body = json.loads(reply.read())
            warning = reply.headers["Warning"]
        assert body["spec"]["expirationSeconds"] == 3600
        assert "requested expiration of 86400 seconds shortened to 3600 seconds" in warning


def test_unknown_tokens_and_anonymous_requests() -> None:
    with FakeCluster(https=True, token="admin-token", rbac=True) as server:
        ca = ssl.create_default_context(cadata=(server.ca_pem or b"").decode())

        def get(path: str, token: str | None) -> int:
            request = urllib.request.Request(f"{server.url}{path}")
            if token:
                request.add_header("Authorization", f"Bearer {token}")
            try:
                with urllib.request.urlopen(request, context=ca) as reply:
                    return int(reply.status)
            except urllib.error.HTTPError as err:
                return err.code

        assert get("/api/v1/namespaces", "admin-token") == 200
        assert get("/api/v1/namespaces", "made-up") == 401
        assert get("/api/v1/namespaces", None) == 401
        guest = server.add_token("guest")
        assert get("/version", guest) == 200
        assert get("/api", guest) == 200
        assert get("/api/v1/namespaces", guest) == 403
    # Without RBAC or an admin token the fake stays open: unknown tokens act as the admin,
    # while a token it knows keeps its identity.
    with FakeCluster() as open_server:
        token = open_server.issue_token("default", "default")
        assert open_server.identity(token) is not None
        assert open_server.can(token, "delete", "nodes")


@pytest.mark.parametrize(
    ("rule", "attrs", "allowed"),
    [
        (
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
            Attributes("get", "pods", "", namespace="n", name="p"),
            True,
        ),
        (
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
            Attributes("get", "pods", "", "log", "n", "p"),
            False,
        ),
        (
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
            Attributes("get", "pods", "", "log", "n", "p"),
            True,
        ),
        (
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            Attributes("escalate", "roles", "rbac.authorization.k8s.io"),
            True,
        ),
        (
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]},
            Attributes("get", "deployments", "extensions", namespace="n", name="d"),
            False,
        ),
        (
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "verbs": ["create"],
                "resourceNames": ["x"],
            },
            Attributes("create", "configmaps", "", namespace="n"),
            False,
        ),
        (
            {"nonResourceURLs": ["/healthz/*"], "verbs": ["get"]},
            Attributes("get", path="/healthz/etcd"),
            True,
        ),
        (
            {"nonResourceURLs": ["/healthz"], "verbs": ["get"]},
            Attributes("post", path="/healthz"),
            False,
        ),
    ],
)
def test_rule_matching(rule: dict[str, Any], attrs: Attributes, allowed: bool) -> None:
    assert rule_allows(rule, attrs) is allowed


def test_coverage_for_escalation_checks() -> None:
    held = [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "update"]},
        {"apiGroups": ["apps"], "resources": ["deployments/*"], "verbs": ["*"]},
    ]
    assert (
        missing_rules(
            held,
            [
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "resourceNames": ["a"],
                    "verbs": ["get"],
                },
                {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["patch"]},
            ],
        )
        == []
    )
    missing = missing_rules(
        held, [{"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": ["get", "*"]}]
    )
    assert {(m["resources"][0], m["verbs"][0]) for m in missing} == {
        ("configmaps", "*"),
        ("secrets", "get"),
        ("secrets", "*"),
    }
