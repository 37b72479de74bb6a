"""A hundred verify runs in a row: no growth in memory, processes, threads or open files.

An instructor's TUI stays open all day and CI runs ``verify`` in loops; a
small leak per run becomes an outage. ``labs/steady`` holds a small cluster
lab (the real kubectl and cluster checks against the fake API server) and a
bash-only lab. Each runs 100 times through its own engine in this process,
the two side by side in two threads (as the TUI's workers and a ``verify``
would), with a file-backed progress store, after a few warm-up runs that pay
for imports and caches. Then:

* resident memory may grow by less than ``RSS_GROWTH_MB`` between the end of
  the warm-up and the last run (allocator noise is a few hundred kB);
* open file descriptors, threads and child processes must be back to the
  warm-up baseline, checked every ``PROBE_EVERY`` runs, while both loops
  stand at a barrier (the fake server's own threads and sockets are left
  out, see ``helpers.py``).
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from labrunner.engine import Engine, RunOptions
from labrunner.lab.loader import load_workshop
from labrunner.lab.model import Lab, Workshop
from labrunner.state import ProgressStore
from labrunner.testing.fixtures import FakeClusterHandle
from labrunner.verify.registry import builtin_registry

from .conftest import LABS
from .helpers import Usage, rss_mb, settles

RUNS = 100
WARM_UP = 3
PROBE_EVERY = 25
RSS_GROWTH_MB = 10.0
BARRIER_TIMEOUT = 60.0


def verify_once(workshop: Workshop, lab: Lab, store: ProgressStore, env: dict[str, str]) -> None:
    """One ``labrunner verify`` of ``lab``, as the CLI runs it; every step must pass."""
    engine = Engine(
        workshop,
        registry=builtin_registry(),
        store=store,
        emit=lambda event: None,
        options=RunOptions(),
        base_env=env,
    )
    summary = engine.verify([lab])
    failed = [
        f"{lab_id}/{r.step_id}: {r.message}"
        for lab_id, results in summary.labs.items()
        for r in results
        if not r.ok
    ]
    assert not failed, failed


@pytest.mark.timeout(120)
def test_a_hundred_verify_runs_hold_steady(
    robust_cluster: FakeClusterHandle, tmp_path: Path
) -> None:
    labs_dir = tmp_path / "labs"  # the bash lab writes files beside its lab file
    shutil.copytree(LABS / "steady", labs_dir)
    result = load_workshop(labs_dir, builtin_registry())
    assert result.workshop is not None, [str(p) for p in result.errors]
    workshop = result.workshop
    labs = {lab.id: lab for lab in workshop.labs}
    assert set(labs) == {"steady-bash", "steady-cluster"}
    store = ProgressStore.for_workshop(workshop, context="kind-labrunner", state=tmp_path / "state")
    env = dict(robust_cluster.env)
    port = robust_cluster.server.port
    for _ in range(WARM_UP):
        for lab in labs.values():
            verify_once(workshop, lab, store, env)

    baseline = Usage.now(port)
    rss_start = rss_mb()
    arrived = threading.Barrier(len(labs) + 1, timeout=BARRIER_TIMEOUT)
    resume = threading.Barrier(len(labs) + 1, timeout=BARRIER_TIMEOUT)
    errors: list[BaseException] = []

    def loop(lab: Lab) -> None:
        try:
            for run in range(1, RUNS + 1):
                verify_once(workshop, lab, store, env)
                if run % PROBE_EVERY == 0:
                    arrived.wait()
                    resume.wait()
        except BaseException as exc:
            errors.append(exc)
            arrived.abort()
            resume.abort()

    workers = [
        threading.Thread(target=loop, args=(lab,), name=f"steady-{lab.id}") for lab in labs.values()
    ]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    rss: list[float] = []
    try:
        for probe in range(RUNS // PROBE_EVERY):
            arrived.wait()
            leftovers = settles(baseline, port, also=("steady-",))  # the loops themselves
            assert not leftovers, f"after {(probe + 1) * PROBE_EVERY} runs:\n" + "\n".join(
                leftovers
            )
            rss.append(rss_mb())
            resume.wait()
    except threading.BrokenBarrierError:
        pass
    finally:
        for worker in workers:
            worker.join(BARRIER_TIMEOUT)
    elapsed = time.monotonic() - started
    if errors:
        raise errors[0]
    assert len(rss) == RUNS // PROBE_EVERY
    final = settles(baseline, port)
    assert not final, "after the last run:\n" + "\n".join(final)
    growth = rss[-1] - rss_start
    assert growth < RSS_GROWTH_MB, (
        f"RSS grew {growth:.1f} MB over {RUNS} runs of each lab ({rss_start:.1f} MB after "
        f"warm-up, then {', '.join(f'{x:.1f}' for x in rss)} MB)"
    )
    assert elapsed < 60, f"{RUNS} runs of each lab took {elapsed:.0f}s"
