"""Peak memory of ``labrunner verify`` on a cluster lab, next to the peers' bash runner.

A three-step lab against the fake API server: ``kubectl apply`` a namespace
and a two-pod Deployment, wait for it, look at the pods. labrunner runs it as
the real CLI in a fresh interpreter; its peak resident set (VmHWM of the
labrunner process itself, read at exit) is the figure. The lab's own
commands run in child processes under both approaches and cost the same, so
they are not counted.

The peer runs the same commands and checks through ``peer/verify_runner.sh``
with ``kubectl | jq`` check scripts; its figure is the peak resident set of
the largest process in the runner's tree (``wait4``'s ``ru_maxrss``, which is
a kubectl), i.e. what one check costs there. The total across processes is
not comparable either way and is not reported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import REPO, Figure, report

from labrunner.testing.fakecluster import FakeCluster

RUNNER = REPO / "bench" / "peer" / "verify_runner.sh"
PODS_CHECK = REPO / "bench" / "peer" / "pods_ready_check.sh"
NAMESPACE = "memory"

MANIFEST = f"""\
apiVersion: v1
kind: Namespace
metadata: {{name: {NAMESPACE}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {NAMESPACE}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: web, image: "nginx:1.27"}}]
"""

LAB = f"""\
apiVersion: labrunner/v1
id: memory
title: Deploy and check a small app
steps:
  - id: deploy
    title: Apply the app
    run:
      - kubectl apply -f "$WEB_MANIFEST"
    check:
      - namespace: {{name: {NAMESPACE}}}
      - deployment_available: {{namespace: {NAMESPACE}, name: web}}
      - pods_ready: {{namespace: {NAMESPACE}, selector: app=web, count: 2}}
    within: 30s
  - id: look
    title: Look at the pods
    run:
      - kubectl get pods -n {NAMESPACE} -o wide
    check:
      - resource: {{resource: pods, namespace: {NAMESPACE}, selector: app=web, count: 2}}
  - id: describe
    title: Read the Deployment back
    run:
      - kubectl get deployment web -n {NAMESPACE} -o yaml
    check:
      - command:
          run: kubectl get deployment web -n {NAMESPACE} -o name
          stdout: {{contains: web}}
"""

PROBE = r"""
import atexit, sys
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            open(sys.argv[1], "w").write(line.split()[1])
atexit.register(peak)
from labrunner.cli import main
main(sys.argv[2:], prog_name="labrunner")
"""


def _env(server: FakeCluster, directory: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HOME=str(directory),
        LABRUNNER_STATE_DIR=str(directory / "state"),
        KUBECONFIG=str(server.write_kubeconfig(directory / "kubeconfig")),
        KUBECACHEDIR=str(directory / "kube-cache"),
        NO_COLOR="1",
    )
    env.pop("LABRUNNER_LABS", None)
    return env


def labrunner_peak_mb() -> float:
    """Peak RSS of one ``labrunner verify`` process on the lab, in MB."""
    with FakeCluster() as server, tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        labs = directory / "labs"
        labs.mkdir()
        (labs / "memory.yaml").write_text(LAB)
        manifest = directory / "web.yaml"
        manifest.write_text(MANIFEST)
        out = directory / "peak"
        proc = subprocess.run(
            [sys.executable, "-c", PROBE, str(out), "--labs", str(labs), "verify", "--no-save"],
            env={**_env(server, directory), "WEB_MANIFEST": str(manifest)},
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"labrunner verify failed:\n{proc.stdout}{proc.stderr}")
        return int(out.read_text()) / 1024


def peer_peak_mb() -> float | None:
    """Peak RSS of the largest process of the bash runner on the same lab, in MB."""
    if not all(shutil.which(t) for t in ("bash", "kubectl", "jq")):
        return None
    with FakeCluster() as server, tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        lab = directory / "runner"
        lab.mkdir()
        (lab / "web.yaml").write_text(MANIFEST)
        steps = [
            (
                "kubectl apply -f web.yaml",
                f"exec bash {PODS_CHECK} {NAMESPACE} app=web 2",
            ),
            (
                f"kubectl get pods -n {NAMESPACE} -o wide",
                f"kubectl get pods -n {NAMESPACE} -l app=web -o json"
                " | jq -e '.items | length == 2' >/dev/null",
            ),
            (
                f"kubectl get deployment web -n {NAMESPACE} -o yaml",
                f"kubectl get deployment web -n {NAMESPACE} -o name | grep -q web",
            ),
        ]
        for i, (command, check) in enumerate(steps):
            (lab / f"{i:05d}.run").write_text(command + "\n")
            (lab / f"{i:05d}.check").write_text(check + "\n")
        process = subprocess.Popen(
            ["bash", str(RUNNER), str(lab)],
            env=_env(server, directory),
            stdout=subprocess.DEVNULL,
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise RuntimeError(f"the bash runner failed with {process.returncode}")
        return usage.ru_maxrss / 1024


def run(repeat: int = 3) -> list[Figure]:
    """Median peak RSS over ``repeat`` runs of each."""
    import statistics

    ours = statistics.median(labrunner_peak_mb() for _ in range(repeat))
    peers = [peer_peak_mb() for _ in range(repeat)]
    theirs = None if peers[0] is None else statistics.median(p for p in peers if p is not None)
    return [
        Figure(
            "peak RSS of labrunner verify on a 3-step cluster lab",
            ours,
            "MB",
            "< 200 MB",
            peer=theirs,
            note="peer = the largest process of the bash runner (a kubectl check)",
        )
    ]


def main() -> None:
    """Print the figures."""
    report(run())


if __name__ == "__main__":
    main()
