"""What a step costs in ``labrunner verify``, next to the peers' bash runner, and how it grows.

The peer is ``bench/peer/verify_runner.sh``: one bash process runs each
step's commands, then checks the step with a check script in a new process,
retried with ``sleep`` until it passes (istio.io's ``_verify_*`` style; the
check scripts are what Killercoda and Instruqt authors write). Both sides run
the same labs in the same run:

* growth: labs of 10, 100 and 1,000 steps, each running ``true`` and checking
  an environment variable and a file (``engine_overhead``'s lab). labrunner's
  cost is load + validate + verify, wall time, per step; the runner's is its
  wall time per step (it has nothing to load). The growth ratio is the cost
  per step at 1,000 steps over the cost per step at 10: at most 1.0 means no
  worse than linear. ``engine_overhead``'s own figure (verify time beyond the
  commands' own run time, per step, at 100 steps) is reported beside it.
* cluster steps: a 20-step lab whose steps run ``true`` and check that 6 pods
  are Ready on the fake API server (converged, so every check passes at
  once): labrunner's ``pods_ready`` against ``pods_ready_check.sh``
  (``kubectl get pods -o json | jq``).

``measure()`` returns plain data; ``run()`` the Figures; ``main()`` prints.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO, Figure, report
from check_latency import APPS, NAMESPACE, REPLICAS, environment, seed
from engine_overhead import measure as engine_measure

from labrunner.engine import Engine, RunOptions
from labrunner.lab.loader import load_workshop
from labrunner.state import ProgressStore
from labrunner.testing.fakecluster import FakeCluster
from labrunner.verify.registry import builtin_registry

RUNNER = REPO / "bench" / "peer" / "verify_runner.sh"
PODS_CHECK = REPO / "bench" / "peer" / "pods_ready_check.sh"
SIZES = (10, 100, 1000)
CLUSTER_STEPS = 20
PODS = len(APPS) * REPLICAS


def _write_runner_lab(directory: Path, steps: int, check: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(steps):
        (directory / f"{i:05d}.run").write_text("true\n")
        (directory / f"{i:05d}.check").write_text(check + "\n")
    (directory / "marker").write_text("x")


def _runner(directory: Path, env: dict[str, str]) -> float:
    """Seconds the bash runner takes over a lab directory (which must pass)."""
    started = time.perf_counter()
    subprocess.run(
        ["bash", str(RUNNER), str(directory)], env=env, check=True, stdout=subprocess.DEVNULL
    )
    return time.perf_counter() - started


def growth(repeat: int) -> dict[int, dict[str, float]]:
    """Per size: labrunner's seconds per step (total and beyond commands) and the runner's."""
    engine_measure(10)  # imports and first-use caches, paid once per process anywhere
    out: dict[int, dict[str, float]] = {}
    env = {**os.environ, "MARK": "ok"}
    with tempfile.TemporaryDirectory() as tmp:
        for steps in SIZES:
            times = 1 if steps >= 1000 else repeat
            ours = [engine_measure(steps) for _ in range(times)]
            lab = Path(tmp) / f"runner-{steps}"
            _write_runner_lab(lab, steps, '[ "$MARK" = ok ] && [ -f marker ]')
            theirs = [_runner(lab, env) for _ in range(times)]
            out[steps] = {
                "total": statistics.median(m["load"] + m["verify"] for m in ours) / steps,
                "overhead": statistics.median(m["verify"] - m["commands"] for m in ours) / steps,
                "load": statistics.median(m["load"] for m in ours),
                "peer": statistics.median(theirs) / steps,
            }
    return out


CLUSTER_LAB_HEAD = """\
apiVersion: labrunner/v1
id: cluster-steps
title: Cluster steps
steps:
"""
CLUSTER_STEP = f"""\
  - id: s{{i}}
    title: Step {{i}}
    run: ['true']
    check:
      - pods_ready: {{{{namespace: {NAMESPACE}, selector: bench=yes, count: {PODS}}}}}
"""


def cluster_steps(repeat: int) -> dict[str, Any]:
    """Seconds per step of a lab whose steps check pods on the fake, both ways."""
    tools = all(shutil.which(t) for t in ("bash", "kubectl", "jq"))
    with FakeCluster() as server, tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        seed(server)
        env = environment(server, directory)
        labs = directory / "labs"
        labs.mkdir()
        text = CLUSTER_LAB_HEAD + "".join(CLUSTER_STEP.format(i=i) for i in range(CLUSTER_STEPS))
        (labs / "cluster.yaml").write_text(text, encoding="utf-8")
        result = load_workshop(labs, builtin_registry())
        assert result.workshop is not None, [str(p) for p in result.problems]
        workshop = result.workshop

        def ours() -> float:
            engine = Engine(
                workshop,
                registry=builtin_registry(),
                store=ProgressStore.memory(),
                emit=lambda e: None,
                options=RunOptions(save=False),
                base_env=env,
            )
            started = time.perf_counter()
            assert engine.verify(workshop.labs).ok
            return time.perf_counter() - started

        ours()  # imports the kubernetes client once, as any verify process does
        labrunner = [ours() for _ in range(repeat)]
        peer: list[float] = []
        if tools:
            runner_lab = directory / "runner"
            _write_runner_lab(
                runner_lab,
                CLUSTER_STEPS,
                f"exec bash {PODS_CHECK} {NAMESPACE} bench=yes {PODS}",
            )
            warm = ["bash", str(PODS_CHECK), NAMESPACE, "bench=yes", str(PODS)]
            subprocess.run(warm, env=env, check=False)  # warm kubectl's discovery cache
            peer = [_runner(runner_lab, env) for _ in range(max(1, repeat - 1))]
    return {
        "steps": CLUSTER_STEPS,
        "labrunner": statistics.median(labrunner) / CLUSTER_STEPS,
        "peer": statistics.median(peer) / CLUSTER_STEPS if peer else None,
    }


def measure(repeat: int = 3) -> dict[str, Any]:
    """Both comparisons as plain data (seconds per step)."""
    return {"growth": growth(repeat), "cluster": cluster_steps(repeat)}


def figures(m: dict[str, Any]) -> list[Figure]:
    """The Figures for measured data."""
    g = m["growth"]
    out = []
    for steps in SIZES:
        row = g[steps]
        out.append(
            Figure(
                f"verify a {steps:,}-step lab (true + env + file checks), per step",
                row["total"] * 1000,
                "ms/step",
                peer=row["peer"] * 1000,
                note=(
                    f"load+validate+verify, the lab run's fixed cost included; load+validate "
                    f"{row['load'] * 1000:.0f} ms; peer = istio.io-style bash runner"
                ),
            )
        )
    out.append(
        Figure(
            "engine overhead beyond the commands' own time, 100 steps",
            g[100]["overhead"] * 1000,
            "ms/step",
            "< 20 ms/step",
        )
    )
    ratio = g[1000]["total"] / g[10]["total"]
    out.append(
        Figure(
            "growth: cost per step at 1,000 steps / at 10 steps",
            ratio,
            "x",
            "<= 1.0 (no worse than linear)",
            note=f"the bash runner's: {g[1000]['peer'] / g[10]['peer']:.2f}x",
        )
    )
    c = m["cluster"]
    out.append(
        Figure(
            f"verify a {c['steps']}-step cluster lab (true + pods_ready on {PODS} pods), per step",
            c["labrunner"] * 1000,
            "ms/step",
            peer=c["peer"] * 1000 if c["peer"] is not None else None,
            note="peer = bash runner + kubectl|jq check script per step",
        )
    )
    return out


def run(repeat: int = 3) -> list[Figure]:
    """The figures for the combined benchmark table."""
    return figures(measure(repeat))


def main() -> None:
    """Print the figures."""
    report(run())


if __name__ == "__main__":
    main()
