"""Can the fake API server carry a class: 100 learners each writing once a second, one watcher?

The classroom feature keeps one progress ConfigMap per learner and an instructor's view that
watches them all. Before that view is measured, the fake it is measured against must not be the
bottleneck. The fake runs in its own process (so its CPU can be read from ``/proc``) over HTTPS
with RBAC on: per learner a ServiceAccount, a Role allowing get/update/patch of only that
learner's ConfigMap, a RoleBinding and a TokenRequest token. Then every learner PATCHes its own
ConfigMap once a second (spread evenly over the second) on a kept-alive connection, and one
admin watch on the class namespace timestamps every event it receives.

Reported: updates sent and seen, the latency from each PATCH leaving the learner to its watch
event arriving (p50/p99/max), how many arrived within 1 s, and the server's CPU as a
percentage of one core over the run.

    python bench/fake_class_watch.py [--learners 100] [--seconds 20] [--no-rbac]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from typing import Any

NAMESPACE = "class"

SERVER = r"""
import json, sys
from labrunner.testing.fakecluster import FakeCluster

learners, rbac = int(sys.argv[1]), sys.argv[2] == "1"
server = FakeCluster(https=True, token="admin", rbac=rbac).start()
server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "class"}})
tokens = []
for i in range(learners):
    name = f"learner-{i:03d}"
    server.create(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
        namespace="class",
    )
    server.create({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "class", "labels": {"class": "demo"}},
        "data": {"seq": "0"},
    })
    server.create({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": name, "namespace": "class"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [name],
                   "verbs": ["get", "update", "patch"]}],
    })
    server.create({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": "class"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "class"}],
    })
    tokens.append(server.issue_token("class", name))
print(json.dumps({"port": server.port, "ca": server.ca_pem.decode(), "tokens": tokens,
                  "rv": server.resource_version}), flush=True)
sys.stdin.read()
server.stop()
"""


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _watch(
    port: int, ctx: ssl.SSLContext, rv: int, latencies: list[float], ready: threading.Event
) -> None:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
    conn.request(
        "GET",
        f"/api/v1/namespaces/{NAMESPACE}/configmaps?watch=true&labelSelector=class%3Ddemo"
        f"&resourceVersion={rv}&timeoutSeconds=3600",
        headers={"Authorization": "Bearer admin"},
    )
    reply = conn.getresponse()
    ready.set()
    while True:
        size_line = reply.fp.readline()
        size = int(size_line.strip() or b"0", 16)
        if size == 0:
            return
        chunk = reply.fp.read(size)
        reply.fp.readline()
        data = json.loads(chunk)["object"].get("data") or {}
        if "sent" in data:
            latencies.append(time.time() - float(data["sent"]))


def _learner(
    port: int,
    ctx: ssl.SSLContext,
    index: int,
    token: str,
    start: float,
    seconds: float,
    count: list[int],
    failures: list[str],
    lock: threading.Lock,
) -> None:
    name = f"learner-{index:03d}"
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
    due = start + (index % 100) / 100.0
    seq = 0
    while due < start + seconds:
        time.sleep(max(0.0, due - time.time()))
        seq += 1
        body = json.dumps({"data": {"seq": str(seq), "sent": repr(time.time())}})
        conn.request(
            "PATCH",
            f"/api/v1/namespaces/{NAMESPACE}/configmaps/{name}",
            body=body,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/merge-patch+json",
            },
        )
        reply = conn.getresponse()
        reply.read()
        with lock:
            count[0] += 1
            if reply.status != 200:
                failures.append(f"{name}: HTTP {reply.status}")
        due += 1.0
    conn.close()


def measure(learners: int = 100, seconds: float = 20.0, rbac: bool = True) -> dict[str, Any]:
    """Run the class load once and return the figures."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(learners), "1" if rbac else "0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    info = json.loads(proc.stdout.readline())
    ctx = ssl.create_default_context(cadata=info["ca"])
    latencies: list[float] = []
    ready = threading.Event()
    threading.Thread(
        target=_watch, args=(info["port"], ctx, info["rv"], latencies, ready), daemon=True
    ).start()
    ready.wait(10)
    count, failures, lock = [0], [], threading.Lock()
    start = time.time() + 1.0
    threads = [
        threading.Thread(
            target=_learner,
            args=(info["port"], ctx, i, token, start, seconds, count, failures, lock),
        )
        for i, token in enumerate(info["tokens"])
    ]
    cpu_before, t_before = _cpu_seconds(proc.pid), time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    settle = time.time() + 5
    while len(latencies) < count[0] and time.time() < settle:
        time.sleep(0.05)
    cpu_after, t_after = _cpu_seconds(proc.pid), time.time()
    proc.stdin.close()
    proc.wait(10)
    ordered = sorted(latencies)

    def quantile(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

    return {
        "learners": learners,
        "seconds": seconds,
        "rbac": rbac,
        "updates_sent": count[0],
        "updates_seen": len(ordered),
        "failures": len(failures),
        "latency_ms_p50": quantile(0.5) if ordered else None,
        "latency_ms_p99": quantile(0.99) if ordered else None,
        "latency_ms_max": round(ordered[-1] * 1000, 1) if ordered else None,
        "seen_within_1s": sum(1 for x in ordered if x <= 1.0),
        "server_cpu_percent_of_one_core": round(
            100 * (cpu_after - cpu_before) / (t_after - t_before), 1
        ),
    }


def main() -> None:
    """Print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--no-rbac", action="store_true")
    args = parser.parse_args()
    print(json.dumps(measure(args.learners, args.seconds, not args.no_rbac), indent=1))


if __name__ == "__main__":
    main()
