"""Progress that tells the truth in the TUI: stale everywhere, per checkout, services back.

- a completed step whose re-check fails is stale in the step list (glyph and
  word), the heading, the lab's counter and the lab list, and is not counted
  as done; so is a passed step that fails when the learner checks it with ``c``;
- two clones of a workshop under one HOME: the TUI on one shows none of the
  other's progress;
- the cluster-free mesh lab: quit after step 6, reopen, and the payments
  server is back, steps 4-6 are not stale, and step 8 passes;
- a cluster recreated under the same context (a new ``kube-system`` UID on
  the fake API server) is noticed after the first paint: its labs start clean.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from labrunner.certs import mtls_server
from labrunner.lab.model import Workshop
from labrunner.state import ProgressStore
from labrunner.state.rules import StepState
from labrunner.testing.fixtures import FakeClusterHandle
from labrunner.tui.app import LabrunnerApp
from labrunner.tui.screens.home import HomeScreen
from labrunner.tui.widgets.step_list import StepList

from .helpers import (
    REPO_LABS,
    copy_workshop,
    given_progress,
    idle,
    lab_screen,
    load,
    notified,
    saved,
    wait_for,
)

MESH_LAB = REPO_LABS / "00-mesh-security-basics.yaml"


def label(app: LabrunnerApp, step_id: str) -> str:
    return str(lab_screen(app).query_one(StepList).item(step_id)._label.render())


def text(app: LabrunnerApp, selector: str) -> str:
    return str(app.screen.query_one(selector).render())


def test_a_failing_recheck_turns_the_step_stale_everywhere(
    build: Callable[..., LabrunnerApp], workshop: Workshop
) -> None:
    given_progress(workshop, "basics", "hello", "fix-me", at="ask")
    (workshop.root / "made.txt").write_text("ready\n")  # hello still passes; fixed.txt is gone

    async def scenario() -> None:
        app = build()
        async with app.run_test(size=(100, 30)) as pilot:
            screen = lab_screen(app)
            await wait_for(
                pilot, lambda: screen.states["fix-me"] is StepState.STALE, "the stale step"
            )
            await idle(pilot, app)
            steps = screen.query_one(StepList)
            # the step list: its own glyph, word and class, no longer the tick
            assert steps.item("fix-me").has_class("-stale")
            assert not steps.item("fix-me").has_class("-passed")
            assert label(app, "fix-me") == "⚠ 2. Create fixed.txt yourself (stale)"
            assert label(app, "hello").startswith("✔ 1.")
            # the header's counter does not count it as done
            assert "1/4 steps (1 stale)" in text(app, "#lab-title")
            # the heading says so, and why
            steps.select_step("fix-me")
            await pilot.pause()
            heading = text(app, "#step-heading")
            assert "[stale]" in heading
            assert "No longer passes: a file this lab made is gone: fixed.txt" in heading

            # a passed step that fails when checked with `c` turns stale just the same
            (workshop.root / "made.txt").unlink()
            steps.select_step("hello")
            await pilot.pause()
            await pilot.press("c")
            await wait_for(
                pilot, lambda: screen.states["hello"] is StepState.STALE, "hello to turn stale"
            )
            assert steps.item("hello").has_class("-stale")
            assert "0/4 steps (2 stale)" in text(app, "#lab-title")
            assert (
                saved(workshop)
                .steps("basics")["hello"]
                .stale.startswith("a file this lab made is gone")
            )
            assert saved(workshop).steps("basics")["hello"].status == "passed"  # kept

            # the lab list agrees
            await pilot.press("escape")
            assert isinstance(app.screen, HomeScreen)
            assert "0/4 steps (2 stale)" in text(app, "#lab-basics .lab-meta")
            assert text(app, "#lab-basics .lab-title").startswith("⚠")

            # a passing check clears the flag everywhere
            await pilot.press("enter")
            screen = lab_screen(app)
            await idle(pilot, app)
            (workshop.root / "made.txt").write_text("ready\n")
            screen.query_one(StepList).select_step("hello")
            await pilot.pause()
            await pilot.press("c")
            await wait_for(
                pilot, lambda: screen.states["hello"] is StepState.PASSED, "hello to pass"
            )
            assert "1/4 steps (1 stale)" in text(app, "#lab-title")

    asyncio.run(scenario())


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
            screen = lab_screen(app)
            for step_id in first_six:
                screen.select(step_id)
                await pilot.pause()
                await pilot.press("r")
                await wait_for(
                    pilot, lambda s=step_id: screen.states[s] is StepState.PASSED, step_id, 90
                )
                await idle(pilot, app)
            assert mtls_server.running_pid(work / "payments.pid") is not None
            await pilot.press("q")

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
            for step_id in ("inspect-san", "expiry"):
                screen.select(step_id)
                await pilot.pause()
                await pilot.press("r")
                await wait_for(
                    pilot, lambda s=step_id: screen.states[s] is StepState.PASSED, step_id, 90
                )
                await idle(pilot, app)
            await notified(pilot, app, "Lab complete")
            pid = mtls_server.running_pid(work / "payments.pid")
            assert pid is not None
            await pilot.press("q")
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
