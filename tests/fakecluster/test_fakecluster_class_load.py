"""Many learners writing their own ConfigMaps at once: the watcher sees every write, in order.

Timing is measured by ``bench/fake_class_watch.py``; this test checks that concurrent writers
with per-learner tokens and RBAC lose nothing and reorder nothing.
"""

from __future__ import annotations

import http.client
import json
import queue
import ssl
import threading

from labrunner.testing.fakecluster import FakeCluster, WatchEvent

LEARNERS = 40
ROUNDS = 3


def seed(server: FakeCluster) -> list[str]:
    server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "class"}})
    tokens = []
    for i in range(LEARNERS):
        name = f"learner-{i:02d}"
        server.create(
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
            namespace="class",
        )
        server.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "class"},
                "data": {"seq": "0"},
            }
        )
        server.create(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": name, "namespace": "class"},
                "rules": [
                    {
                        "apiGroups": [""],
                        "resources": ["configmaps"],
                        "resourceNames": [name],
                        "verbs": ["patch"],
                    }
                ],
            }
        )
        server.create(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": name, "namespace": "class"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": name,
                },
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "class"}],
            }
        )
        tokens.append(server.issue_token("class", name))
    return tokens


def test_concurrent_writers_lose_and_reorder_nothing() -> None:
    with FakeCluster(https=True, token="admin", rbac=True) as server:
        tokens = seed(server)
        ctx = ssl.create_default_context(cadata=(server.ca_pem or b"").decode())
        statuses: queue.SimpleQueue[tuple[int, int]] = queue.SimpleQueue()

        def learner(index: int, token: str) -> None:
            conn = http.client.HTTPSConnection(server.host, server.port, context=ctx, timeout=30)
            for seq in range(1, ROUNDS + 1):
                conn.request(
                    "PATCH",
                    f"/api/v1/namespaces/class/configmaps/learner-{index:02d}",
                    body=json.dumps({"data": {"seq": str(seq)}}),
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Content-Type": "application/merge-patch+json",
                    },
                )
                reply = conn.getresponse()
                reply.read()
                statuses.put((index, reply.status))
            # One write outside the learner's own object, refused without disturbing the rest.
            conn.request(
                "PATCH",
                f"/api/v1/namespaces/class/configmaps/learner-{(index + 1) % LEARNERS:02d}",
                body=json.dumps({"data": {"seq": "stolen"}}),
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/merge-patch+json",
                },
            )
            refused = conn.getresponse()
            refused.read()
            statuses.put((index, refused.status))
            conn.close()

        with server.events("configmaps", "class") as events:
            threads = [threading.Thread(target=learner, args=(i, t)) for i, t in enumerate(tokens)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            seen: dict[str, list[str]] = {}
            for _ in range(LEARNERS * ROUNDS):
                event: WatchEvent | None = events.get(timeout=30)
                assert event is not None
                seen.setdefault(event.obj["metadata"]["name"], []).append(event.obj["data"]["seq"])
        codes = [statuses.get_nowait()[1] for _ in range(LEARNERS * (ROUNDS + 1))]
        assert codes.count(200) == LEARNERS * ROUNDS
        assert codes.count(403) == LEARNERS
        assert seen == {f"learner-{i:02d}": ["1", "2", "3"] for i in range(LEARNERS)}
        users = {r.user for r in server.requests(method="PATCH")}
        assert users == {f"system:serviceaccount:class:learner-{i:02d}" for i in range(LEARNERS)}
