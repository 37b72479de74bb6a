"""Helpers shared by the TUI tests: the test workshop, waiting, and looking at processes."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

from labrunner.doctor import Finding, Topic
from labrunner.lab.loader import load_workshop
from labrunner.lab.model import Workshop
from labrunner.state.store import ProgressStore
from labrunner.tui.app import LabrunnerApp
from labrunner.tui.screens.lab import LabScreen
from labrunner.verify.registry import builtin_registry

LABS = Path(__file__).parent / "labs"
REPO_LABS = Path(__file__).resolve().parents[2] / "labs"
MESH_LAB = REPO_LABS / "00-mesh-security-basics.yaml"
"""The bundled cluster-free lab: its first step has six commands and two checks."""
DEADLINE = 20.0


def footer_actions(screen: Screen[Any]) -> list[str]:
    """The actions the footer shows now."""
    return [key.action for key in screen.query_one(Footer).query(FooterKey)]


FINDINGS = [
    Finding("bash", True, "5.2.15", required=True),
    Finding("kubectl", True, "v1.34.1"),
    Finding("kube context", True, "kind-workshop (https://127.0.0.1:6443)", topic=Topic.CONTEXT),
    Finding("cluster", True, "reachable at https://127.0.0.1:6443", topic=Topic.CLUSTER),
    Finding(
        "kubernetes",
        True,
        "v1.34.0; Istio 1.30 supports 1.30-1.34",
        topic=Topic.KUBERNETES,
        version="v1.34.0",
    ),
    Finding("istio", True, "istiod runs Istio 1.30.3", topic=Topic.ISTIO, version="1.30.3"),
]


def copy_workshop(dest: Path, *extra: Path) -> Path:
    """Copy the test labs (plus ``extra`` lab files) to ``dest/labs``; returns that dir."""
    labs = dest / "labs"
    shutil.copytree(LABS, labs)
    for path in extra:
        shutil.copy(path, labs / path.name)
    return labs


def mesh_workshop(tmp_path: Path) -> Workshop:
    """The test labs plus the bundled cluster-free lab, in a private folder."""
    return load(copy_workshop(tmp_path / "mesh", MESH_LAB))


def load(labs: Path) -> Workshop:
    """Load a workshop, failing the test with its problems if it does not load."""
    result = load_workshop(labs, builtin_registry())
    assert result.workshop is not None, [str(p) for p in result.problems]
    return result.workshop


async def wait_for(
    pilot: Pilot[Any], condition: Callable[[], object], what: str, timeout: float = DEADLINE
) -> None:
    """Let the app run until ``condition()`` holds; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


async def idle(pilot: Pilot[Any], app: LabrunnerApp) -> None:
    """Wait until the open lab has no job running and every worker is done."""
    await app.workers.wait_for_complete()
    await pilot.pause()


def lab_screen(app: LabrunnerApp) -> LabScreen:
    """The open lab screen (fails the test if there is none)."""
    screen = app.screen
    assert isinstance(screen, LabScreen), f"expected the lab screen, got {type(screen).__name__}"
    return screen


def text(app: LabrunnerApp, selector: str) -> str:
    """What the widget matching ``selector`` on the current screen shows."""
    return str(app.screen.query_one(selector).render())


def step_label(app: LabrunnerApp, step_id: str) -> str:
    """The text of a step in the open lab's step list."""
    from labrunner.tui.widgets.step_list import StepList

    return str(lab_screen(app).query_one(StepList).item(step_id)._label.render())


def notifications(app: LabrunnerApp) -> list[str]:
    """Every notification message the app has shown so far."""
    return [n.message for n in app.notices]


def output(app: LabrunnerApp) -> list[str]:
    """The lines in the open lab's output pane."""
    from labrunner.tui.widgets.output_pane import OutputPane

    return lab_screen(app).query_one(OutputPane).plain_lines()


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _parent(pid: int) -> int:
    """The parent of ``pid`` (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _descends_from_us(pid: int) -> bool:
    me = os.getpid()
    seen = 0
    while pid > 1 and seen < 64:
        pid = _parent(pid)
        if pid == me:
            return True
        seen += 1
    return False


def find_pids(pattern: str) -> list[int]:
    """Pids of this test process's descendants whose command line contains ``pattern``.

    Only descendants: other test runs on the same machine (same user) start the
    same commands, and their processes are not ours to judge or kill.
    """
    found = []
    me = os.getuid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != me:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        pid = int(entry)
        if pattern in cmdline and pid_alive(pid) and _descends_from_us(pid):
            found.append(pid)
    return found


def saved(workshop: Workshop) -> ProgressStore:
    """A fresh view of the workshop's progress (no cached reads) for the default context."""
    return ProgressStore.for_workshop(workshop, context=None)


async def notified(pilot: Pilot[Any], app: LabrunnerApp, text: str) -> None:
    """Wait until a notification containing ``text`` has been shown."""
    await wait_for(
        pilot, lambda: any(text in n for n in notifications(app)), f"a notification: {text!r}"
    )


def given_progress(
    workshop: Workshop, lab_id: str, *passed: str, at: str | None = None
) -> ProgressStore:
    """Record ``passed`` steps in the workshop's progress; ``at`` is where the learner was."""
    store = ProgressStore.for_workshop(workshop, context=None)
    for step_id in passed:
        store.record(lab_id, step_id, "passed")
    if at is not None:
        store.set_position(lab_id, at)
    return store


async def quit_app(pilot: Pilot[Any], app: LabrunnerApp) -> None:
    """Press q, and say yes if labrunner asks first (something is running)."""
    await pilot.press("q")
    await wait_for(
        pilot, lambda: not app.is_running or app.screen.id == "quit-dialog", "quit or its question"
    )
    if app.is_running:
        await pilot.press("y")
        await wait_for(pilot, lambda: not app.is_running, "the app to end")
