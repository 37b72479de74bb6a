"""The API server misbehaves while a lab verifies: every check still ends right, on time, cleanly.

The fake API server injects the failures real clusters produce: 500s that
persist or pass, 429 throttling with Retry-After, a server that stalls for
10 s, watches that are cut mid-stream or closed before they say anything,
and a port that refuses connections. For each, the lab in
``labs/faults`` (a Deployment-available and a pods-Ready check with a 2 s
``within`` budget) runs

* through the engine in this process, where we can also count what the run
  leaves behind: open file descriptors, threads, child processes (see
  ``helpers.py``), which must all return to where they were; and
* through the real ``labrunner verify`` in a subprocess for the cases whose
  exit code and report matter to CI.

Tolerance for the ``kubernetes`` client's threads is zero, on purpose:
``ApiClient`` creates its ``ThreadPool`` only for ``async_req=True`` calls,
which labrunner never makes (requests go straight through the client's
urllib3 pool, which has no threads), and a watch's cancel watchdog thread
ends with its watch.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from labrunner.engine import Engine, RunOptions
from labrunner.engine import events as ev
from labrunner.engine.events import StepStatus
from labrunner.lab.loader import load_workshop
from labrunner.lab.model import Workshop
from labrunner.state import ProgressStore
from labrunner.testing.fakecluster import FakeCluster
from labrunner.testing.fixtures import FakeClusterHandle
from labrunner.testing.waiting import wait_for
from labrunner.verify.outcome import Status
from labrunner.verify.registry import builtin_registry

from .conftest import LABS, NAMESPACE, popen_cli, run_cli
from .helpers import Usage, settles

pytestmark = pytest.mark.timeout(60)

FAULT_LABS = LABS / "faults"
WITHIN = 2.0
"""The lab's ``within`` budget."""
MARGIN = 1.5
"""How far past its budget a step may end: one last evaluation, shell and client teardown."""
CONVERGED = 1.5
"""How soon after the pods turn Ready a waiting step must pass."""


@pytest.fixture(scope="module")
def workshop() -> Workshop:
    result = load_workshop(FAULT_LABS, builtin_registry())
    assert result.workshop is not None, [str(p) for p in result.errors]
    return result.workshop


def watches(server: FakeCluster) -> int:
    """How many watch requests the fake has answered so far."""
    return sum(1 for r in server.requests() if r.verb == "watch")


def release_when(server: FakeCluster, ready: Callable[[], bool], done: list[float]) -> None:
    """Once ``ready()`` holds, make the held pods Ready and note when (in ``done``)."""
    if not wait_for(ready, timeout=10):
        return
    server.release_pods(NAMESPACE)
    done.append(time.monotonic())


@dataclass(frozen=True)
class Fault:
    """One way the API server misbehaves, and how the step must end."""

    name: str
    arm: Callable[[FakeCluster], object]
    status: StepStatus
    message: str
    """A regex the step's final message must match."""
    hold: bool = False
    """Keep the pods not Ready until ``release`` says so (the cluster converges later)."""
    release: Callable[[FakeCluster], bool] | None = None
    """When to make the held pods Ready (polled once the check first reports pending)."""
    pending: str | None = None
    """A regex some pending check result must match while the fault lasts."""


FAULTS = [
    Fault(
        "500-persistent",
        lambda s: s.faults.fail(status=500),
        StepStatus.ERROR,
        r"500 Internal Server Error .*injected fault",
    ),
    Fault(
        "500-transient",
        lambda s: s.faults.fail(status=500, times=2),
        StepStatus.PASSED,
        r"2 of 2 web pods ready",
    ),
    Fault(
        "429-retry-after-transient",
        lambda s: s.faults.fail(status=429, retry_after=1, times=2),
        StepStatus.PASSED,
        r"2 of 2 web pods ready",
        pending=r"429 too many requests \(retry after 1s\)",
    ),
    Fault(
        "429-retry-after-persistent",
        lambda s: s.faults.fail(status=429, retry_after=1),
        StepStatus.FAILED,
        r"^not done after 2(\.0)?s: 429 too many requests",
    ),
    Fault(
        "stall-10s",
        lambda s: s.faults.delay(10.0, resource="pods"),  # every pods request, 10 s each
        StepStatus.ERROR,  # the budget ran out on the API server: the environment's fault
        r"did not answer within .*\(timeout",
    ),
    Fault(
        "watch-cut-mid-stream",
        lambda s: s.faults.drop_watch(after_seconds=0.2, abrupt=True),
        StepStatus.PASSED,
        r"2 of 2 web pods ready",
        hold=True,
        release=lambda s: watches(s) >= 2,  # at least one watch was cut and reopened
    ),
    Fault(
        "watch-closed-before-any-event",
        lambda s: s.faults.drop_watch(after_events=0),
        StepStatus.PASSED,
        r"2 of 2 web pods ready",
        hold=True,
        release=lambda s: watches(s) >= 1,
    ),
    Fault(
        "connection-refused",
        lambda s: s.faults.refuse_connections(),
        StepStatus.ERROR,
        r"^cluster unreachable at http://127\.0\.0\.1:\d+: connection refused",
    ),
]


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_engine_ends_every_check_right_in_time_and_leaks_nothing(
    fault: Fault, robust_cluster: FakeClusterHandle, workshop: Workshop
) -> None:
    server = robust_cluster.server
    port = server.port
    if fault.hold:
        server.hold_pods(NAMESPACE, "app=web")
    results: list[ev.CheckResult] = []
    released: list[float] = []
    passed_at: list[float] = []
    started_release = threading.Event()
    helpers: list[threading.Thread] = []

    def emit(event: ev.Event) -> None:
        if isinstance(event, ev.CheckResult):
            results.append(event)
            if event.status is Status.PASSED:
                passed_at.append(time.monotonic())
            release = fault.release
            if (
                release is not None
                and event.status is Status.PENDING
                and not started_release.is_set()
            ):
                started_release.set()
                thread = threading.Thread(
                    target=release_when,
                    args=(server, lambda: release(server), released),
                    name="test-release",
                )
                helpers.append(thread)
                thread.start()

    baseline = Usage.now(port)
    fault.arm(server)
    engine = Engine(
        workshop,
        registry=builtin_registry(),
        store=ProgressStore.memory(),
        emit=emit,
        options=RunOptions(save=False),
        base_env=dict(robust_cluster.env),
    )
    started = time.monotonic()
    summary = engine.verify(workshop.labs)
    elapsed = time.monotonic() - started
    for thread in helpers:
        thread.join(10)

    (step,) = summary.labs["web-ready"]
    assert elapsed < WITHIN + MARGIN, (
        f"the step took {elapsed:.1f}s with a {WITHIN:g}s budget; it ended {step.status.value}: "
        f"{step.message}"
    )
    assert step.status is fault.status, f"{step.status.value}: {step.message}"
    assert re.search(fault.message, step.message), step.message
    assert results, "no check ever reported"
    if fault.pending is not None:
        pattern = fault.pending
        assert any(r.status is Status.PENDING and re.search(pattern, r.message) for r in results), [
            r.message for r in results
        ]
    if fault.hold:
        assert released, "the pods were never released"
        lag = passed_at[-1] - released[0]
        assert lag < CONVERGED, (
            f"the step passed {lag:.1f}s after the last pod turned Ready "
            f"(watch requests: {watches(server)})"
        )
    leftovers = settles(baseline, port)
    assert not leftovers, "left behind after the run:\n" + "\n".join(leftovers)


# --------------------------------------------------------------------------- the real CLI


STARTUP = 2.0
"""Allowance for starting the CLI's interpreter on top of the step's own time."""


@dataclass
class CliRun:
    """One ``labrunner verify`` of the fault lab: exit, output, time, and both reports."""

    proc: subprocess.CompletedProcess[str]
    elapsed: float
    step: dict[str, Any]
    junit_case: ET.Element

    def junit(self, kind: str) -> str:
        """The message of the JUnit case's ``failure`` or ``error`` element."""
        element = self.junit_case.find(kind)
        assert element is not None, ET.tostring(self.junit_case, encoding="unicode")
        return element.get("message") or ""


def verify_cli(env: dict[str, str], tmp_path: Path) -> CliRun:
    """Run the fault lab through the real CLI with JUnit and JSON reports."""
    junit, report = tmp_path / "junit.xml", tmp_path / "report.json"
    started = time.monotonic()
    proc = run_cli(
        "--labs", FAULT_LABS, "verify", "--no-save", "--junit", junit, "--json", report,
        env=env, cwd=tmp_path,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert report.is_file(), proc.stdout + proc.stderr
    step = json.loads(report.read_text())["labs"][0]["steps"][0]
    case = ET.parse(junit).getroot().find("testsuite/testcase")
    assert case is not None
    return CliRun(proc, elapsed, step, case)


def test_cli_connection_refused_is_an_environment_error(
    robust_cluster: FakeClusterHandle, cli_env: dict[str, str], tmp_path: Path
) -> None:
    robust_cluster.server.faults.refuse_connections()
    run = verify_cli(cli_env, tmp_path)
    assert run.proc.returncode == 3, run.proc.stdout + run.proc.stderr
    assert run.elapsed < WITHIN + MARGIN + STARTUP
    assert "cluster unreachable" in run.proc.stdout
    assert run.step["status"] == "error"
    assert "cluster unreachable" in run.step["message"]
    assert "connection refused" in run.junit("error")


def test_cli_persistent_500_names_the_500_and_exits_3(
    robust_cluster: FakeClusterHandle, cli_env: dict[str, str], tmp_path: Path
) -> None:
    robust_cluster.server.faults.fail(status=500, message="etcdserver: request timed out")
    run = verify_cli(cli_env, tmp_path)
    assert run.proc.returncode == 3, run.proc.stdout + run.proc.stderr
    assert run.elapsed < WITHIN + MARGIN + STARTUP
    assert run.step["status"] == "error"
    assert "500 Internal Server Error" in run.step["message"]
    assert "etcdserver: request timed out" in run.step["message"]
    assert "500 Internal Server Error" in run.proc.stdout
    assert "500 Internal Server Error" in run.junit("error")


def test_cli_persistent_throttling_fails_after_the_budget_saying_so(
    robust_cluster: FakeClusterHandle, cli_env: dict[str, str], tmp_path: Path
) -> None:
    robust_cluster.server.faults.fail(status=429, retry_after=1)
    run = verify_cli(cli_env, tmp_path)
    assert run.proc.returncode == 1, run.proc.stdout + run.proc.stderr
    assert WITHIN <= run.elapsed < WITHIN + MARGIN + STARTUP
    assert run.step["status"] == "failed"
    assert "too many requests" in run.step["message"]
    assert "too many requests" in run.junit("failure")


def test_cli_converges_although_watches_are_cut_mid_stream(
    robust_cluster: FakeClusterHandle, cli_env: dict[str, str], tmp_path: Path
) -> None:
    server = robust_cluster.server
    server.hold_pods(NAMESPACE, "app=web")
    server.faults.drop_watch(after_seconds=0.2, abrupt=True)
    proc = popen_cli("--labs", FAULT_LABS, "verify", "--no-save", env=cli_env, cwd=tmp_path)
    try:
        assert wait_for(lambda: watches(server) >= 2, timeout=20), "the CLI never watched"
        server.release_pods(NAMESPACE)
        released = time.monotonic()
        out, err = proc.communicate(timeout=WITHIN + MARGIN + STARTUP)
        finished = time.monotonic()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out + err
    assert finished - released < WITHIN
    assert "2 of 2 web pods ready" in out
