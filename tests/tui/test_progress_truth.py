"""Progress that tells the truth in the TUI: per checkout, per cluster, services back.

(Stale steps shown everywhere: ``test_resume.py``.)

- two clones of a workshop under one HOME: the TUI on one shows none of the
  other's progress;
- the cluster-free mesh lab: quit after step 6, reopen, and the payments
  server is back, steps 4-6 are not stale, and step 8 passes;
- a cluster recreated under the same context (a new ``kube-system`` UID on
  the fake API server) is noticed after the first paint: its labs start clean;
  a context the guard would refuse is never asked.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from labrunner.certs import mtls_server
from labrunner.lab.model import Workshop
from labrunner.state import ProgressStore
from labrunner.state.rules import StepState
from labrunner.testing.fixtures import FakeClusterHandle, running_fake_cluster
from labrunner.tui.app import LabrunnerApp
from labrunner.tui.screens.home import HomeScreen
from labrunner.tui.widgets.checks_panel import CheckRow
from labrunner.tui.widgets.output_pane import OutputPane

from .helpers import (
    REPO_LABS,
    copy_workshop,
    given_progress,
    idle,
    lab_screen,
    load,
    notified,
    quit_app,
    saved,
    text,
    wait_for,
)

MESH_LAB = REPO_LABS / "00-mesh-security-basics.yaml"


def test_two_clones_do_not_see_each_others_progress_in_the_tui(
    build: Callable[..., LabrunnerApp], tmp_path: Path
) -> None:
    clone_a = load(copy_workshop(tmp_path / "clone-a"))
    clone_b = load(copy_workshop(tmp_path / "clone-b"))
    given_progress(clone_b, "basics", "hello", "fix-me", at="ask")

    async def scenario() -> None:
        app = build(workshop=clone_a)
        async with app.run_test(size=(100, 30)) as pilot:
            assert isinstance(app.screen, HomeScreen), "clone A opened on clone B's position"
            assert "0/4 steps" in text(app, "#lab-basics .lab-meta")
            await pilot.press("enter")
            screen = lab_screen(app)
            assert screen.selected.id == "hello"
            assert screen.states["hello"] is StepState.TODO
            await idle(pilot, app)

    asyncio.run(scenario())
    assert saved(clone_a).completed("basics") == set()
    assert saved(clone_b).completed("basics") == {"hello", "fix-me"}


def where_it_stands(app: LabrunnerApp, step_id: str) -> str:
    """What the app shows and holds about ``step_id``: enough to tell a run that never
    started (refused, dropped) from one that hangs in a command or in its checks."""
    screen = lab_screen(app)
    driver = app.driver
    shell = driver.attached_shell() if driver is not None else None
    tracker = shell.tracker if shell is not None else None
    lines = [
        f"state {screen.states[step_id].name}, record {screen.records.get(step_id)}",
        f"screen job {screen.job}, running step {screen.running_step}, "
        f"driver job {driver.busy if driver else None}",
        f"workers {[(w.name, w.state.name) for w in app.workers]}",
        f"notifications {[n.message for n in list(app.notices)[-8:]]}",
        f"checks {[str(row.render()) for row in screen.query(CheckRow)]}",
        f"output {[line[:160] for line in screen.query_one(OutputPane).plain_lines()[-20:]]}",
        f"services {text(app, '#services')!r}",
    ]
    if tracker is not None and shell is not None:
        lines.append(
            f"shell phase {tracker.phase.name}, at empty prompt {tracker.at_empty_prompt}, "
            f"finished {tracker.commands_finished}, "
            f"terminal {[line[:160] for line in shell.scrollback.tail(12)]}"
        )
    return "\n".join(lines)


async def run_steps(pilot: Any, app: LabrunnerApp, step_ids: list[str]) -> None:
    """Run each step with `r` and wait for it to pass."""
    screen = lab_screen(app)
    for step_id in step_ids:
        screen.select(step_id)
        await pilot.pause()
        await pilot.press("r")
        try:
            await wait_for(
                pilot,
                lambda s=step_id: screen.states[s] in (StepState.PASSED, StepState.FAILED),
                step_id,
                90,
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{where_it_stands(app, step_id)}") from None
        await idle(pilot, app)
        assert screen.states[step_id] is StepState.PASSED, where_it_stands(app, step_id)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.skipif(not MESH_LAB.is_file(), reason="the bundled cluster-free lab is not here")
def test_quit_after_step_six_and_reopen_brings_the_server_back(
    build: Callable[..., LabrunnerApp], tmp_path: Path
) -> None:
    workshop = load(copy_workshop(tmp_path / "mesh", MESH_LAB))
    work = workshop.root / ".lab-work" / "mesh-security"
    env = dict(os.environ)
    env["PAYMENTS_PORT"] = str(free_port())
    first_six = ["mesh-ca", "workload-certs", "start-payments", "no-client-cert", "wrong-ca"]
    first_six.append("frontend-calls")

    async def first_visit() -> None:
        app = build(workshop=workshop, base_env=env, lab="mesh-security-basics")
        async with app.run_test(size=(100, 30)) as pilot:
            await run_steps(pilot, app, first_six)
            assert mtls_server.running_pid(work / "payments.pid") is not None
            await quit_app(pilot, app)

    async def second_visit() -> None:
        app = build(workshop=workshop, base_env=env)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = lab_screen(app)
            assert screen.lab.id == "mesh-security-basics"
            await wait_for(
                pilot,
                lambda: screen.services["payments"][0] == "running",
                "the payments server to be back",
                60,
            )
            assert "started by labrunner" in screen.services["payments"][1]
            assert "running (started by labrunner)" in text(app, "#services")
            await idle(pilot, app)
            for step_id in first_six:
                assert screen.states[step_id] is StepState.PASSED, (step_id, screen.stale)
            assert screen.stale == {}
            await run_steps(pilot, app, ["inspect-san", "expiry"])
            await notified(pilot, app, "Lab complete")
            pid = mtls_server.running_pid(work / "payments.pid")
            assert pid is not None
            await quit_app(pilot, app)
        # the service the runner started is stopped when the app ends
        assert mtls_server.running_pid(work / "payments.pid") is None

    asyncio.run(first_visit())
    assert mtls_server.running_pid(work / "payments.pid") is None, "the step's server outlived q"
    asyncio.run(second_visit())


def test_a_recreated_cluster_starts_clean_after_the_first_paint(
    build: Callable[..., LabrunnerApp], workshop: Workshop, fake_cluster: FakeClusterHandle
) -> None:
    store = ProgressStore.for_workshop(
        workshop, context=fake_cluster.context, server=fake_cluster.server.url
    )
    assert store.confirm_cluster(fake_cluster.server.cluster_uid) is None
    store.record("cluster-basics", "create-ns", "passed")
    store.record("basics", "hello", "passed")
    store.set_position("basics", "hello")
    (workshop.root / "made.txt").write_text("ready\n")  # hello still passes when re-checked
    fake_cluster.recreate_cluster()

    async def scenario() -> None:
        app = build(base_env=dict(fake_cluster.env))
        async with app.run_test(size=(100, 30)) as pilot:
            await notified(pilot, app, "not the one your progress was recorded on")
            await pilot.press("escape")
            assert isinstance(app.screen, HomeScreen)
            assert "0/1 steps" in text(app, "#lab-cluster-basics .lab-meta")
            # labs that need no cluster keep their progress
            assert "1/4 steps" in text(app, "#lab-basics .lab-meta")
            await idle(pilot, app)

    asyncio.run(scenario())
    again = ProgressStore.for_workshop(
        workshop, context=fake_cluster.context, server=fake_cluster.server.url
    )
    assert again.cluster_uid == fake_cluster.server.cluster_uid
    assert again.completed("cluster-basics") == set()


def test_a_context_the_learner_has_not_approved_gets_no_identity_request(
    build: Callable[..., LabrunnerApp],
    workshop: Workshop,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with running_fake_cluster(tmp_path, monkeypatch, context="prod-cluster") as prod:
        prod.server.reset_traffic()

        async def scenario() -> None:
            app = build(base_env=dict(prod.env))
            async with app.run_test(size=(100, 30)) as pilot:
                await wait_for(pilot, app.ready.is_set, "the first paint")
                await idle(pilot, app)
                assert not [w for w in app.workers if w.name == "identify"]

        asyncio.run(scenario())
        prod.server.assert_untouched()
