"""The TUI publishes to the class too: steps viewed and run, checks, hints; and says how it goes.

Driven with Textual's Pilot on the TUI test workshop, in this process, joined to a class on
the fake API server; what the instructor would see is read back from the learner's object.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tui.helpers import FINDINGS, copy_workshop, idle, lab_screen, load, wait_for

from labrunner.classroom import learner, publisher
from labrunner.classroom.names import PROGRESS_KEY
from labrunner.engine.classfeed import class_directory
from labrunner.state.rules import StepState
from labrunner.testing.fixtures import FakeClusterHandle
from labrunner.tui.app import make_app
from labrunner.tui.screens.home import HomeScreen

from .conftest import Machine, init_class

NS = "labrunner-class-demo"


@pytest.fixture
def joined(teacher: Machine, tmp_path: Path) -> Iterator[Path]:
    out = tmp_path / "joins"
    init_class(teacher, out, "alice")
    directory = class_directory()
    learner.join(directory, out / "alice.yaml")
    yield directory
    publisher.forget(directory)


def remote(api: FakeClusterHandle) -> dict[str, object]:
    obj = api.server.get("configmaps", "progress-alice", NS)
    assert obj is not None
    return json.loads(obj["data"][PROGRESS_KEY])


def test_the_tui_tells_the_class_what_the_learner_does(
    class_api: FakeClusterHandle, joined: Path, tmp_path: Path
) -> None:
    workshop = load(copy_workshop(tmp_path / "ws"))
    pub = publisher.active(joined)
    assert pub is not None

    def steps() -> dict[str, dict[str, object]]:
        return remote(class_api)["labs"].get("basics", {}).get("steps", {})  # type: ignore[union-attr]

    async def scenario() -> None:
        app = make_app(workshop, doctor=lambda: list(FINDINGS))
        async with app.run_test(size=(120, 30)) as pilot:
            home = app.screen
            assert isinstance(home, HomeScreen)
            await wait_for(
                pilot, lambda: "class demo as alice" in home.status.describe(), "the class note"
            )
            await pilot.press("enter")
            screen = lab_screen(app)
            await pilot.press("r")
            await wait_for(pilot, lambda: screen.states["hello"] is StepState.PASSED, "pass")
            await pilot.press("n")
            await pilot.press("r")
            await wait_for(pilot, lambda: screen.states["fix-me"] is StepState.FAILED, "fail")
            await pilot.press("h")
            await pilot.press("h")
            await idle(pilot, app)
            assert "class demo as alice" in str(screen.query_one("#lab-title").render())
            assert await asyncio.to_thread(pub.flush, 20)
            found = steps()
            assert found["hello"]["state"] == "passed"
            assert found["fix-me"]["state"] == "failed"
            assert found["fix-me"]["fails"] == 1
            assert found["fix-me"]["hints"] == 2
            assert "fixed.txt" in str(found["fix-me"]["message"])
            assert remote(class_api)["current"] == {"lab": "basics", "step": "fix-me"}

            # checked again after the learner fixed it in their own terminal: passed
            (workshop.root / "fixed.txt").write_text("")
            await pilot.press("c")
            await wait_for(pilot, lambda: screen.states["fix-me"] is StepState.PASSED, "pass")
            await idle(pilot, app)
            assert await asyncio.to_thread(pub.flush, 20)
            assert steps()["fix-me"]["state"] == "passed"

            # the class API goes away: the title says so, and nothing else changes
            class_api.server.faults.refuse_connections(True)
            try:
                await pilot.press("n")  # viewing "ask" is an event
                await wait_for(
                    pilot,
                    lambda: "offline" in str(screen.query_one("#lab-title").render()),
                    "the offline note",
                )
            finally:
                class_api.server.faults.refuse_connections(False)
            assert await asyncio.to_thread(pub.flush, 30)
            await wait_for(
                pilot,
                lambda: "class demo as alice" in str(screen.query_one("#lab-title").render()),
                "the class note back",
            )
            assert remote(class_api)["current"] == {"lab": "basics", "step": "ask"}

    asyncio.run(scenario())


def test_served_hides_the_terminal_key(tmp_path: Path) -> None:
    workshop = load(copy_workshop(tmp_path / "ws"))

    async def scenario(served: bool) -> tuple[bool, bool]:
        opened: list[str] = []

        def shell(*args: object) -> int:
            opened.append("shell")
            return 0

        def attach(*args: object) -> None:
            opened.append("attach")

        app = make_app(
            workshop,
            doctor=lambda: list(FINDINGS),
            served=served,
            shell_runner=shell,
            attacher=attach,
        )
        async with app.run_test(size=(160, 30)) as pilot:
            await pilot.press("enter")
            screen = lab_screen(app)
            await pilot.pause()
            offered = any(b.binding.action == "shell" for b in screen.active_bindings.values())
            await pilot.press("t")
            await idle(pilot, app)
            await pilot.pause()
            return bool(opened), offered

    assert asyncio.run(scenario(served=True)) == (False, False)
    assert asyncio.run(scenario(served=False)) == (True, True)
