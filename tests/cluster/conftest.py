"""Fixtures for the cluster tests: the fake API server, the test workshop, and an engine.

The labs in ``tests/cluster/labs`` run their commands (the real kubectl) and
their checks (the real verifiers, through the engine) against the fake API
server. ``Harness`` wraps an engine on that workshop: ``check`` polls one
step's checks as the TUI would, ``verify`` runs labs as ``labrunner verify``
does, and both record the engine's events with the time they arrived, so
tests can measure how fast a step passes after the cluster converged.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from labrunner.engine import Engine, RunOptions
from labrunner.engine import events as ev
from labrunner.engine.runner import RunSummary, StepResult
from labrunner.lab.loader import load_workshop
from labrunner.lab.model import Workshop
from labrunner.state import ProgressStore
from labrunner.testing.fakecluster import run_on_host
from labrunner.testing.fixtures import FakeClusterHandle
from labrunner.verify.context import CheckContext
from labrunner.verify.outcome import Status
from labrunner.verify.registry import builtin_registry

HERE = Path(__file__).resolve().parent
LABS = HERE / "labs"
MANIFESTS = HERE / "manifests"


def needs_kubectl() -> None:
    """Skip the calling test when the kubectl binary is not installed."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed; this test drives the real kubectl")


@pytest.fixture(scope="session")
def workshop() -> Workshop:
    """The test workshop in tests/cluster/labs, loaded with the built-in verifiers."""
    result = load_workshop(LABS, builtin_registry())
    assert result.workshop is not None, [str(p) for p in result.errors]
    return result.workshop


@pytest.fixture
def check_ctx(fake_cluster: FakeClusterHandle, tmp_path: Path) -> Iterator[CheckContext]:
    """A CheckContext pointing at the fake cluster, 10 s deadline; its resources close after."""
    ctx = CheckContext(
        env=dict(fake_cluster.env),
        cwd=tmp_path,
        workdir=tmp_path,
        deadline=time.monotonic() + 10,
    )
    yield ctx
    ctx.resources.close()


@dataclass
class Harness:
    """An engine on the test workshop, pointed at one fake cluster."""

    cluster: FakeClusterHandle
    workshop: Workshop
    events: list[tuple[float, ev.Event]] = field(default_factory=list)
    on_event: Callable[[ev.Event], None] | None = None
    changed_at: float = 0.0
    action_done: threading.Event | None = None
    done_at: dict[str, float] = field(default_factory=dict)

    @property
    def released_at(self) -> float:
        """When the action of ``when_pending`` finished changing the cluster.

        Waits for the action first: the step may pass while the action's last
        calls are still returning, and the time must not be read before it is set.
        """
        if self.action_done is not None:
            self.action_done.wait(10)
        return self.changed_at

    def emit(self, event: ev.Event) -> None:
        self.events.append((time.monotonic(), event))
        if self.on_event is not None:
            self.on_event(event)

    def engine(self, **options: Any) -> Engine:
        return Engine(
            self.workshop,
            registry=builtin_registry(),
            store=ProgressStore.memory(),
            emit=self.emit,
            options=RunOptions(save=False, **options),
            base_env=dict(self.cluster.env),
        )

    def check(self, lab_id: str, step_id: str, *, within: float | None = None) -> StepResult:
        """Poll one step's checks until they pass or its budget is spent."""
        engine = self.engine()
        lab = self.workshop.lab(lab_id)
        with engine.session(lab) as session:
            result = session.check(lab.step(step_id), within=within)
        self.done_at[step_id] = time.monotonic()
        return result

    def verify(self, *lab_ids: str, **options: Any) -> RunSummary:
        """Run labs as ``labrunner verify`` does (commands, then checks)."""
        return self.engine(**options).verify([self.workshop.lab(i) for i in lab_ids])

    def when_pending(self, action: Callable[[], object]) -> threading.Event:
        """Run ``action`` in another thread once a check first reports pending.

        Returns an event set when the action has finished; ``released_at`` holds its time.
        """
        done = threading.Event()
        started = threading.Event()

        def run() -> None:
            action()
            self.changed_at = time.monotonic()
            done.set()

        def watch(event: ev.Event) -> None:
            if (
                isinstance(event, ev.CheckResult)
                and event.status is Status.PENDING
                and not started.is_set()
            ):
                started.set()
                threading.Thread(target=run, daemon=True).start()

        self.on_event = watch
        self.action_done = done
        return done

    def finished_at(self, step_id: str) -> float:
        """When the step's last check result arrived (its checks passed or gave up)."""
        return max(
            t for t, e in self.events if isinstance(e, ev.CheckResult) and e.step_id == step_id
        )

    def checks(self, step_id: str | None = None) -> list[ev.CheckResult]:
        """The CheckResult events (of one step)."""
        return [
            e
            for _, e in self.events
            if isinstance(e, ev.CheckResult) and (step_id is None or e.step_id == step_id)
        ]


@pytest.fixture
def harness(fake_cluster: FakeClusterHandle, workshop: Workshop) -> Harness:
    """An engine on the test workshop against a fresh fake cluster (exec runs on this host)."""
    fake_cluster.server.exec_handler = run_on_host
    return Harness(fake_cluster, workshop)


@pytest.fixture
def istio_harness(fake_cluster_istio: FakeClusterHandle, workshop: Workshop) -> Harness:
    """Like ``harness`` with Istio 1.30.3's CRDs installed."""
    fake_cluster_istio.server.exec_handler = run_on_host
    return Harness(fake_cluster_istio, workshop)


def apply(cluster: FakeClusterHandle, *files: str) -> None:
    """``kubectl apply`` manifests under tests/cluster/manifests (namespaces go first)."""
    needs_kubectl()
    for group in (
        [f for f in files if f.endswith("namespace.yaml")],
        [f for f in files if not f.endswith("namespace.yaml")],
    ):
        if not group:
            continue
        args = [a for name in group for a in ("-f", str(MANIFESTS / name))]
        done = cluster.kubectl("apply", *args)
        assert done.returncode == 0, done.stderr


def deploy_shop(cluster: FakeClusterHandle) -> None:
    """The shop namespace with the two-pod web Deployment, applied with kubectl."""
    apply(cluster, "shop/namespace.yaml", "shop/web.yaml")
