"""The bundled cluster-free lab, mesh-security-basics, driven through the TUI.

It needs nothing but bash, openssl and labrunner itself, so a learner without
a cluster can start here; the home screen must say so, and its first step
must pass in the TUI exactly as it does headless.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from labrunner.state.rules import StepState
from labrunner.tui.app import LabrunnerApp
from labrunner.tui.dialogs.confirm import ConfirmDialog

from .helpers import REPO_LABS, copy_workshop, lab_screen, load, notified, output, wait_for

MESH_LAB = REPO_LABS / "00-mesh-security-basics.yaml"


@pytest.mark.skipif(not MESH_LAB.is_file(), reason="the bundled cluster-free lab is not here")
def test_the_cluster_free_lab_runs_its_first_step(
    build: Callable[..., LabrunnerApp], tmp_path: Path
) -> None:
    workshop = load(copy_workshop(tmp_path / "mesh", MESH_LAB))
    lab = workshop.lab("mesh-security-basics")
    assert not lab.needs_cluster
    work = workshop.root / ".lab-work" / "mesh-security"

    async def scenario() -> None:
        app = build(workshop=workshop)
        async with app.run_test(size=(100, 30)) as pilot:
            meta = str(app.screen.query_one("#lab-mesh-security-basics .lab-meta").render())
            assert "no cluster needed" in meta
            app.home.highlighted = "mesh-security-basics"
            await pilot.pause()
            await pilot.press("enter")
            screen = lab_screen(app)
            assert screen.selected.id == "mesh-ca"
            await pilot.press("r")
            await wait_for(
                pilot, lambda: screen.states["mesh-ca"] is StepState.PASSED, "the CA step", 60
            )
            assert (work / "ca.crt").is_file()
            assert any("subject=O" in line for line in output(app))
            await pilot.press("C")
            assert isinstance(app.screen, ConfirmDialog)
            await pilot.press("y")
            await notified(pilot, app, "The lab's cleanup finished.")
            assert not work.exists()

    asyncio.run(scenario())
