"""Time from the last pod turning Ready to the step passing: a watch against a polling loop.

Against the fake API server, 3 Deployments × 2 pods are held not Ready. Then:

* labrunner: the engine polls a step whose check is ``pods_ready``; once the
  check reports pending, the pods are released, and we measure from the
  moment the last pod became Ready to the moment the engine has the passing
  result. The check's watch-based ``wait`` wakes the engine (target < 100 ms).
* the script way: ``until kubectl get pods -o json | jq -e ...; do sleep 1;
  done`` in bash, released at a random moment of its loop; we measure from
  the release to the loop's exit.

``measure()`` returns the figures as a dict; ``run()`` as Figures for the
combined table; ``main()`` prints them.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import Figure, median_ms, report
from check_latency import APPS, NAMESPACE, REPLICAS, SCRIPT, environment, seed

from labrunner.engine import Engine, RunOptions
from labrunner.engine import events as ev
from labrunner.lab.loader import load_workshop
from labrunner.state import ProgressStore
from labrunner.testing.fakecluster import FakeCluster
from labrunner.verify.outcome import Status
from labrunner.verify.registry import builtin_registry

ROUNDS = 10
SCRIPT_ROUNDS = 6

LAB = f"""\
apiVersion: labrunner/v1
id: converge
title: Convergence
steps:
  - id: ready
    title: All pods ready
    check:
      - pods_ready: {{namespace: {NAMESPACE}, selector: bench=yes, count: {len(APPS) * REPLICAS}}}
    within: 60s
"""


def _labrunner_rounds(server: FakeCluster, env: dict[str, str], directory: Path) -> list[float]:
    labs = directory / "labs"
    labs.mkdir()
    (labs / "converge.yaml").write_text(LAB, encoding="utf-8")
    result = load_workshop(labs, builtin_registry())
    assert result.workshop is not None, [str(p) for p in result.problems]
    workshop = result.workshop
    pending = threading.Event()
    passed_at: list[float] = []

    def emit(event: ev.Event) -> None:
        if isinstance(event, ev.CheckResult):
            if event.status is Status.PENDING:
                pending.set()
            elif event.status is Status.PASSED:
                passed_at.append(time.perf_counter())

    engine = Engine(
        workshop,
        registry=builtin_registry(),
        store=ProgressStore.memory(),
        emit=emit,
        options=RunOptions(save=False),
        base_env=env,
    )
    lab = workshop.labs[0]
    latencies = []
    with engine.session(lab) as session:
        for _ in range(ROUNDS + 1):  # the first round also builds the client
            server.hold_pods(NAMESPACE, "bench=yes")
            pending.clear()
            passed_at.clear()
            worker = threading.Thread(target=session.check, args=(lab.steps[0],))
            worker.start()
            assert pending.wait(30), "the check never reported pending"
            time.sleep(random.uniform(0.05, 0.2))  # the engine is now blocked in its wait
            server.release_pods(NAMESPACE)  # returns once the last pod is Ready
            last_ready = time.perf_counter()
            worker.join(30)
            assert passed_at, "the step did not pass"
            latencies.append(passed_at[-1] - last_ready)
    return latencies[1:]


def _script_rounds(server: FakeCluster, env: dict[str, str]) -> list[float]:
    loop = f"until {SCRIPT}; do sleep 1; done"
    subprocess.run(["bash", "-c", SCRIPT], env=env, check=False)  # warm kubectl's cache
    latencies = []
    for _ in range(SCRIPT_ROUNDS):
        server.hold_pods(NAMESPACE, "bench=yes")
        process = subprocess.Popen(["bash", "-c", loop], env=env)
        time.sleep(random.uniform(1.2, 2.2))  # release at a random phase of the loop
        server.release_pods(NAMESPACE)
        last_ready = time.perf_counter()
        process.wait(30)
        latencies.append(time.perf_counter() - last_ready)
    return latencies


def measure() -> dict[str, Any]:
    """Latencies in milliseconds, as plain data."""
    with FakeCluster() as server, tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        seed(server)
        env = environment(server, directory)
        ours = _labrunner_rounds(server, env, directory)
        tools = all(shutil.which(t) for t in ("bash", "kubectl", "jq"))
        theirs = _script_rounds(server, env) if tools else []
    return {
        "rounds": len(ours),
        "watch_median_ms": median_ms(ours),
        "watch_max_ms": max(ours) * 1000,
        "poll_rounds": len(theirs),
        "poll_median_ms": median_ms(theirs) if theirs else None,
        "poll_max_ms": max(theirs) * 1000 if theirs else None,
    }


def run() -> list[Figure]:
    """The figures for the combined benchmark table."""
    m = measure()
    poll = (
        f"kubectl|jq loop with sleep 1: median {m['poll_median_ms']:.0f} ms, "
        f"max {m['poll_max_ms']:.0f} ms over {m['poll_rounds']} rounds"
        if m["poll_median_ms"] is not None
        else "kubectl or jq missing: no peer figure"
    )
    return [
        Figure(
            "last pod Ready → step passed (watch, median)",
            m["watch_median_ms"],
            "ms",
            "< 100 ms",
            peer=m["poll_median_ms"],
            note=f"max {m['watch_max_ms']:.1f} ms over {m['rounds']} rounds; peer = {poll}",
        )
    ]


def main() -> None:
    """Print the figures."""
    report(run())


if __name__ == "__main__":
    main()
