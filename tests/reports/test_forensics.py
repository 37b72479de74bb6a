"""Forensics on failure, on the simulated cluster: events, pod states and logs of a failed step.

The real CLI runs a real lab against the fake API server (which records the
Events a kubelet would and serves container logs); the folder it writes and
the JUnit ``system-out`` must name the cause.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from labrunner.lab.loader import load_workshop
from labrunner.testing.fixtures import FakeClusterHandle
from labrunner.testing.waiting import wait_for
from labrunner.verify.forensics import lab_namespaces
from labrunner.verify.registry import builtin_registry

STUCK = """\
apiVersion: labrunner/v1
kind: Lab
id: stuck
title: Pods that never become Ready
needs: [cluster]
steps:
  - id: deploy
    title: Deploy the web app
    run:
      - kubectl create namespace demo
      - kubectl create deployment web --image=nginx:1.27 -n demo
    check:
      - pods_ready: {namespace: demo, selector: app=web}
    within: 3s
"""

CRASHING = """\
apiVersion: labrunner/v1
kind: Lab
id: crashing
title: A crash loop
needs: [cluster]
namespaces: ["${SHOP_NS}", elsewhere]
env:
  SHOP_NS: shop
steps:
  - id: wait
    title: Wait for the api
    run:
      - kubectl get pods -n shop
    check:
      - pods_ready: {namespace: shop, selector: app=api}
    within: 1s
"""


def _verify(
    tmp_path: Path, lab: str, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    labs = tmp_path / "labs"
    labs.mkdir(exist_ok=True)
    (labs / "10-lab.yaml").write_text(lab)
    return subprocess.run(
        [sys.executable, "-m", "labrunner", "--labs", str(labs), "verify", "--no-save", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_pods_that_never_become_ready_leave_events_and_pod_states(
    fake_cluster: FakeClusterHandle, tmp_path: Path
) -> None:
    fake_cluster.server.hold_pods("demo")
    out, junit = tmp_path / "forensics", tmp_path / "report.xml"
    done = _verify(
        tmp_path, STUCK, fake_cluster.env, "--forensics", str(out), "--junit", str(junit)
    )
    assert done.returncode == 1, done.stdout + done.stderr
    folder = out / "stuck" / "deploy"
    assert sorted(p.name for p in folder.iterdir()) == ["events.txt", "logs.txt", "pods.txt"]
    events = (folder / "events.txt").read_text()
    assert events.startswith("# namespace demo\n")
    assert "Warning  Unhealthy  Pod/web-" in events and "Readiness probe failed" in events
    assert "ScalingReplicaSet" in events
    stamps = [line.split()[0] for line in events.splitlines()[1:] if line[:2] == "20"]
    assert stamps == sorted(stamps, reverse=True), "newest first"
    pods = (folder / "pods.txt").read_text()
    assert "pod web-" in pods and "Running, not ready (nginx)" in pods
    assert "Ready=False" in pods and "container nginx: running, not ready" in pods
    assert (folder.stat().st_mode & 0o777, (folder / "pods.txt").stat().st_mode & 0o777) == (
        0o700,
        0o600,
    )
    assert f"forensics of 1 failed step(s) in {out}" in done.stderr
    assert "forensics collected: events.txt, pods.txt, logs.txt" in done.stdout
    (case,) = ET.parse(junit).getroot().iter("testcase")
    system_out = case.findtext("system-out") or ""
    assert "forensics:" in system_out and "Readiness probe failed" in system_out


def test_a_crash_loop_leaves_its_logs_and_the_previous_container_s_redacted(
    fake_cluster: FakeClusterHandle, tmp_path: Path
) -> None:
    server = fake_cluster.server
    server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    server.create(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "shop"},
            "spec": {
                "selector": {"matchLabels": {"app": "api"}},
                "template": {
                    "metadata": {"labels": {"app": "api"}},
                    "spec": {"containers": [{"name": "api", "image": "shop/api:1"}]},
                },
            },
        }
    )
    assert wait_for(lambda: server.list("pods", "shop"), timeout=10)
    pod = server.list("pods", "shop")[0]["metadata"]["name"]
    server.set_pod_log("shop", pod, "starting\nusing Authorization: Bearer abcdef0123456789xyz\n")
    server.restart_container("shop", pod, "api", exit_code=2, crash_loop=True, log="again\n")
    out = tmp_path / "forensics"
    done = _verify(tmp_path, CRASHING, fake_cluster.env, "--forensics", str(out))
    assert done.returncode == 1, done.stdout + done.stderr
    folder = out / "crashing" / "wait"
    pods = (folder / "pods.txt").read_text()
    assert "CrashLoopBackOff" in pods and "last terminated: exit 2" in pods
    events = (folder / "events.txt").read_text()
    assert "BackOff" in events
    assert "# namespace elsewhere\nno events" in events, "the lab's declared namespaces too"
    logs = (folder / "logs.txt").read_text()
    assert f"# shop/{pod} [api]\nagain" in logs
    assert f"# shop/{pod} [api] previous\nstarting" in logs
    assert "abcdef0123456789xyz" not in logs and "[REDACTED]" in logs


def test_without_a_request_nothing_is_collected(
    fake_cluster: FakeClusterHandle, tmp_path: Path
) -> None:
    fake_cluster.server.hold_pods("demo")
    done = _verify(tmp_path, STUCK, fake_cluster.env)
    assert done.returncode == 1
    assert "forensics" not in done.stdout + done.stderr


def test_the_lab_namespaces_come_from_declaration_checks_and_env(tmp_path: Path) -> None:
    labs = tmp_path / "labs"
    labs.mkdir()
    (labs / "10-lab.yaml").write_text(
        CRASHING.replace(
            "      - pods_ready: {namespace: shop, selector: app=api}",
            "      - pods_ready: {namespace: shop, selector: app=api}\n"
            "      - http:\n"
            "          url: http://api.shop/\n"
            "          from: {namespace: '${CLIENT_NS}', deployment: curl}",
        ).replace("  SHOP_NS: shop", "  SHOP_NS: shop\n  CLIENT_NS: legacy\n  GREETING: nope")
    )
    result = load_workshop(labs, builtin_registry())
    assert result.workshop is not None, result.problems
    lab = result.workshop.lab("crashing")
    env = {"SHOP_NS": "shop", "CLIENT_NS": "legacy", "GREETING": "nope"}
    assert lab_namespaces(lab, lab.step("wait"), env) == ["shop", "elsewhere", "legacy"]


@pytest.mark.parametrize("bad", ["${UNSET_NS}", "Not_A_Name"])
def test_unusable_namespaces_are_left_out(tmp_path: Path, bad: str) -> None:
    labs = tmp_path / "labs"
    labs.mkdir()
    (labs / "10-lab.yaml").write_text(CRASHING.replace('["${SHOP_NS}", elsewhere]', f'["{bad}"]'))
    result = load_workshop(labs, builtin_registry())
    assert result.workshop is not None
    lab = result.workshop.lab("crashing")
    assert lab_namespaces(lab, lab.step("wait"), os.environ) == ["shop"]
