"""Labs that act on a cluster: the context guard, and a run against the fake API server."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from labrunner.lab.model import Workshop
from labrunner.shell.pane import PaneShell
from labrunner.state.rules import StepState
from labrunner.testing.fakecluster import FakeCluster
from labrunner.tui.app import LabrunnerApp, make_app
from labrunner.tui.dialogs.confirm import GuardDialog
from labrunner.tui.widgets.terminal_pane import TerminalPane

from .helpers import (
    copy_workshop,
    idle,
    lab_screen,
    load,
    notifications,
    notified,
    output,
    wait_for,
)


def kubeconfig(path: Path, context: str) -> Path:
    """A kubeconfig whose current context is ``context`` (its server is never reached)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": context,
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {}}],
        "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}],
    }
    path.write_text(json.dumps(config))
    return path


async def open_cluster_lab(pilot: Any, app: LabrunnerApp) -> None:
    app.home.highlighted = "cluster-basics"
    await pilot.pause()
    await pilot.press("enter")
    assert lab_screen(app).lab.id == "cluster-basics"
    await idle(pilot, app)


def test_the_guard_asks_before_acting_on_a_context_that_is_not_disposable(
    build: Callable[..., LabrunnerApp], workshop: Workshop, tmp_path: Path
) -> None:
    env = {"KUBECONFIG": str(kubeconfig(tmp_path / "kubeconfig", "prod-cluster"))}
    marker = workshop.root / "ran-create-ns.txt"

    async def scenario() -> None:
        app = build(base_env={**_path_env(), **env})
        async with app.run_test(size=(100, 30)) as pilot:
            await open_cluster_lab(pilot, app)
            screen = lab_screen(app)
            assert "context: prod-cluster" in str(screen.query_one("#lab-title").render())
            await pilot.press("r")
            await wait_for(pilot, lambda: isinstance(app.screen, GuardDialog), "the guard")
            body = str(app.screen.query_one(".dialog-body").render())
            assert "prod-cluster" in body and "disposable" in body
            await pilot.press("n")
            await notified(pilot, app, "Nothing ran.")
            assert app.screen is screen
            await idle(pilot, app)
            assert not marker.exists()
            assert screen.job is None
            assert "(not confirmed)" in str(screen.query_one("#lab-title").render())

            # Asked again next time; saying yes runs the commands.
            await pilot.press("r")
            await wait_for(pilot, lambda: isinstance(app.screen, GuardDialog), "the guard")
            await pilot.press("y")
            await wait_for(pilot, marker.exists, "the first command")
            await wait_for(pilot, lambda: screen.job is None, "the run to end")
            assert screen.states["create-ns"] is StepState.FAILED  # no server behind it
            # Confirmed once is enough for this run of labrunner.
            await pilot.press("r")
            await pilot.pause()
            assert not isinstance(app.screen, GuardDialog)
            await wait_for(pilot, lambda: screen.job is None, "the run to end")

    asyncio.run(scenario())


def test_t_before_the_lab_shell_started_starts_it_past_the_guard_and_attaches_it(
    build: Callable[..., LabrunnerApp], tmp_path: Path
) -> None:
    # On a context that is not disposable the lab shell waits for the guard; `t` then
    # asks, starts the lab's own shell and gives the terminal to it: never a second shell.
    env = {"KUBECONFIG": str(kubeconfig(tmp_path / "kubeconfig", "prod-cluster"))}
    attached: list[PaneShell] = []

    def attacher(shell: PaneShell, escape: str, banner: str) -> None:
        attached.append(shell)

    def second_shell(env: dict[str, str], cwd: Path, banner: str) -> int:
        raise AssertionError("t opened a shell other than the lab's")

    async def scenario() -> None:
        app = build(base_env={**_path_env(), **env}, attacher=attacher, shell_runner=second_shell)
        async with app.run_test(size=(120, 35)) as pilot:
            await open_cluster_lab(pilot, app)
            pane = lab_screen(app).query_one(TerminalPane)
            assert pane.shell is None
            await pilot.press("t")
            await wait_for(pilot, lambda: isinstance(app.screen, GuardDialog), "the guard")
            await pilot.press("y")
            await wait_for(pilot, lambda: bool(attached), "the terminal to be attached")
            assert attached == [pane.shell]
            assert attached[0].alive
            assert app.driver is not None and app.driver.attached_shell() is attached[0]

    asyncio.run(scenario())


def test_a_disposable_context_needs_no_confirmation(
    build: Callable[..., LabrunnerApp], workshop: Workshop, tmp_path: Path
) -> None:
    env = {"KUBECONFIG": str(kubeconfig(tmp_path / "kubeconfig", "kind-x"))}
    marker = workshop.root / "ran-create-ns.txt"

    async def scenario() -> None:
        app = build(base_env={**_path_env(), **env})
        async with app.run_test(size=(100, 30)) as pilot:
            await open_cluster_lab(pilot, app)
            assert "Shift+S runs the lab's setup" in str(
                lab_screen(app).query_one("#step-heading").render()
            )
            await pilot.press("S")
            await notified(pilot, app, "The lab's setup finished.")
            assert (workshop.root / "setup-ran.txt").exists()
            await pilot.press("r")
            await wait_for(pilot, marker.exists, "the first command")
            assert not isinstance(app.screen, GuardDialog)
            await wait_for(pilot, lambda: lab_screen(app).job is None, "the run to end")
            await pilot.press("C", "y")
            await notified(pilot, app, "The lab's cleanup finished.")
            assert not (workshop.root / "setup-ran.txt").exists()

    asyncio.run(scenario())


def test_an_explicit_context_needs_no_confirmation(
    build: Callable[..., LabrunnerApp], workshop: Workshop, tmp_path: Path
) -> None:
    env = {"KUBECONFIG": str(kubeconfig(tmp_path / "kubeconfig", "prod-cluster"))}
    marker = workshop.root / "ran-create-ns.txt"

    async def scenario() -> None:
        app = build(base_env={**_path_env(), **env}, context="prod-cluster")
        async with app.run_test(size=(100, 30)) as pilot:
            await open_cluster_lab(pilot, app)
            await pilot.press("r")
            await wait_for(pilot, marker.exists, "the first command")
            assert not isinstance(app.screen, GuardDialog)
            await wait_for(pilot, lambda: lab_screen(app).job is None, "the run to end")

    asyncio.run(scenario())


def test_a_cluster_lab_passes_against_the_fake_api_server(
    build: Callable[..., LabrunnerApp], workshop: Workshop, fake_cluster: Any
) -> None:
    async def scenario() -> None:
        app = build()  # KUBECONFIG points at the fake server (context kind-labrunner)
        async with app.run_test(size=(100, 30)) as pilot:
            await open_cluster_lab(pilot, app)
            screen = lab_screen(app)
            assert "context: kind-labrunner" in str(screen.query_one("#lab-title").render())
            await pilot.press("r")
            await wait_for(pilot, lambda: screen.job is None and screen.records, "the run")
            assert screen.states["create-ns"] is StepState.PASSED, screen.records
            assert any("namespace/tui-demo created" in line for line in output(app))
            await notified(pilot, app, "Lab complete")
        listed = fake_cluster.kubectl("get", "namespace", "tui-demo", "-o", "name")
        assert listed.stdout.strip() == "namespace/tui-demo"

    asyncio.run(scenario())


def _path_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}


NS_CHECK_LAB = """\
apiVersion: labrunner/v1
kind: Lab
id: ns-check
title: Look at the cluster
needs: [cluster]
steps:
  - id: default-ns
    title: The default namespace is there
    run: ['true']
    check: [{namespace: {name: default}}]
    within: 2s
"""


HOSTILE = {
    "untrusted": (
        "its certificate is signed by a certificate authority",
        {"tls_fault": "untrusted"},
    ),
    "trickle": ("did not answer within", {}),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_api_server_is_reported_and_the_tui_carries_on(tmp_path: Path, case: str) -> None:
    """An untrusted certificate or a trickling server: the real doctor's status line and a
    step's check both name the cause; the app does not crash and stays usable."""
    labs = copy_workshop(tmp_path / "ws")
    (labs / "09-ns-check.yaml").write_text(NS_CHECK_LAB)
    workshop = load(labs)
    cause, options = HOSTILE[case]
    with FakeCluster(**options) as server:
        if case == "trickle":
            server.faults.trickle(1.0)
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        env = {**_path_env(), "KUBECONFIG": str(kubeconfig)}

        async def scenario() -> None:
            app = make_app(workshop, base_env=env, live_interval=0.2)  # the real doctor
            async with app.run_test(size=(100, 30)) as pilot:
                await wait_for(pilot, lambda: app.environment.checked, "the doctor", 30)
                assert app.environment.reachable is False
                assert any(cause in p for p in app.environment.problems), app.environment
                app.home.highlighted = "ns-check"
                await pilot.pause()
                await pilot.press("enter")
                screen = lab_screen(app)
                await pilot.press("c")
                await wait_for(
                    pilot, lambda: screen.job is None and screen.records, "the check", 30
                )
                record = screen.records["default-ns"]
                assert record.status == "error", record
                assert cause in record.message
                await wait_for(
                    pilot,
                    lambda: any(cause in n for n in notifications(app)),
                    "a notice naming the cause",
                    30,
                )
                assert app.is_running

        asyncio.run(scenario())
