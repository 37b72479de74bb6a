"""How long one ``pods_ready`` check takes, against a Killercoda-style check script.

Against the fake API server, a converged namespace (3 Deployments × 2 pods)
is checked two ways, side by side:

* labrunner: the ``pods_ready`` verifier as the engine calls it, with the
  run's warm client (median and p95 of many evaluations), plus the cold first
  call of a run (the client built from the kubeconfig; the very first call in
  a process also imports the cluster client, its HTTP/1.1 connections and,
  for an https server, ssl — no ``kubernetes`` package);
* the script way: ``bash -c 'kubectl get pods -o json | jq -e ...'``, what
  Killercoda and Instruqt check scripts do, with a warm kubectl cache.

Targets: labrunner's warm median under 20 ms and at least 10× faster than the
script. ``measure()`` returns the figures as a dict; ``run()`` as Figures for
the combined table; ``main()`` prints them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import Figure, median_ms, p95_ms, report, timed

from labrunner.testing.fakecluster import FakeCluster
from labrunner.verify.context import CheckContext
from labrunner.verify.outcome import Status
from labrunner.verify.registry import builtin_registry

NAMESPACE = "bench"
APPS = ("web", "api", "db")
REPLICAS = 2
WARM_RUNS = 300
SCRIPT_RUNS = 20
JQ_READY = (
    "[.items[] | select(.metadata.deletionTimestamp == null)] as $pods"
    ' | ($pods | length) > 0 and ($pods | all(.status.conditions[]? | select(.type == "Ready")'
    ' | .status == "True"))'
)
SCRIPT = f"kubectl get pods -n {NAMESPACE} -o json | jq -e '{JQ_READY}' >/dev/null"


def seed(server: FakeCluster) -> None:
    """A converged namespace: 3 Deployments with 2 ready pods each."""
    server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    for app in APPS:
        server.create(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": app, "namespace": NAMESPACE},
                "spec": {
                    "replicas": REPLICAS,
                    "selector": {"matchLabels": {"app": app}},
                    "template": {
                        "metadata": {"labels": {"app": app, "bench": "yes"}},
                        "spec": {"containers": [{"name": app, "image": "nginx:1.27"}]},
                    },
                },
            }
        )


def environment(server: FakeCluster, directory: Path) -> dict[str, str]:
    """The environment a lab shell would have: KUBECONFIG and a private kubectl cache."""
    kubeconfig = server.write_kubeconfig(directory / "kubeconfig")
    return {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "KUBECACHEDIR": str(directory / "kube-cache"),
        "HOME": str(directory),
    }


def context(env: dict[str, str], directory: Path) -> CheckContext:
    """A fresh run's check context (its own resources, so its own client)."""
    return CheckContext(env=env, cwd=directory, workdir=directory, deadline=time.monotonic() + 3600)


def measure() -> dict[str, Any]:
    """All figures, in milliseconds, as plain data."""
    first_in_process = "labrunner.cluster.connection" not in sys.modules
    spec = builtin_registry().get("pods_ready")
    assert spec is not None
    params = {"namespace": NAMESPACE, "selector": "bench=yes", "count": len(APPS) * REPLICAS}
    with FakeCluster() as server, tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        seed(server)
        env = environment(server, directory)

        ctx = context(env, directory)
        start = time.perf_counter()
        outcome = spec.func(ctx, dict(params))
        cold_first = time.perf_counter() - start
        assert outcome.status is Status.PASSED, outcome.message

        warm = timed(lambda: spec.func(ctx, dict(params)), WARM_RUNS)
        ctx.resources.close()

        colds = []
        for _ in range(5):
            fresh = context(env, directory)
            colds.extend(timed(lambda fresh=fresh: spec.func(fresh, dict(params)), 1))
            fresh.resources.close()

        script: list[float] = []
        tools = all(shutil.which(t) for t in ("bash", "kubectl", "jq"))
        if tools:
            argv = ["bash", "-c", SCRIPT]
            subprocess.run(argv, env=env, check=True)  # warm kubectl's discovery cache
            for _ in range(SCRIPT_RUNS):
                started = time.perf_counter()
                subprocess.run(argv, env=env, check=True)
                script.append(time.perf_counter() - started)
    result: dict[str, Any] = {
        "pods": len(APPS) * REPLICAS,
        "warm_median_ms": median_ms(warm),
        "warm_p95_ms": p95_ms(warm),
        "cold_first_ms": cold_first * 1000,
        "cold_first_imports_client": first_in_process,
        "cold_new_run_median_ms": median_ms(colds),
        "script_median_ms": median_ms(script) if script else None,
        "speedup": (median_ms(script) / median_ms(warm)) if script else None,
        "message": outcome.message,
    }
    return result


def run() -> list[Figure]:
    """The figures for the combined benchmark table."""
    m = measure()
    cold_note = (
        "includes importing the cluster client"
        if m["cold_first_imports_client"]
        else "client build"
    )
    figures = [
        Figure(
            f"pods_ready on {m['pods']} pods, warm client (median)",
            m["warm_median_ms"],
            "ms",
            "< 20 ms; >= 10x faster than kubectl|jq",
            peer=m["script_median_ms"],
            note=f"p95 {m['warm_p95_ms']:.2f} ms; peer = bash -c 'kubectl get pods -o json | jq'",
        ),
        Figure(
            "pods_ready, cold first call of the process",
            m["cold_first_ms"],
            "ms",
            note=cold_note,
        ),
        Figure(
            "pods_ready, first call of a new run (client built from kubeconfig)",
            m["cold_new_run_median_ms"],
            "ms",
        ),
    ]
    if m["speedup"] is not None:
        figures.append(Figure("speedup over the kubectl|jq script", m["speedup"], "x", ">= 10x"))
    return figures


def main() -> None:
    """Print the figures."""
    report(run())


if __name__ == "__main__":
    main()
