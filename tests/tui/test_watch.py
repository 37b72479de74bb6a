"""``labrunner run --watch``: a lab file edited under the running app is reloaded in place.

The real app, driven by its Pilot, with a real bash; the test edits the lab
file on disk as an author would and waits for the app to notice (the watcher
polls; the test waits on the app's own reload counter, never on time).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from textual.widgets import Label

from labrunner.lab.model import Workshop
from labrunner.lab.watch import LabFileWatcher
from labrunner.state.rules import StepState
from labrunner.state.store import ProgressStore
from labrunner.tui.app import LabrunnerApp
from labrunner.tui.widgets.step_list import StepList

from .helpers import given_progress, idle, lab_screen, notified, wait_for


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def test_an_edited_lab_reloads_in_place_keeping_position_and_progress(
    build: Callable[..., LabrunnerApp], workshop: Workshop
) -> None:
    lab_file = workshop.lab("basics").path
    store = given_progress(workshop, "basics", "hello", at="fix-me")
    # an earlier attempt at fix-me: progress that step 4 drops (a first check is unrecorded)
    store.record("basics", "fix-me", "failed", message="not done yet")
    (workshop.root / "made.txt").write_text("ready\n")  # so hello's re-check still passes

    async def scenario() -> None:
        app = build(store=store, lab="basics", watch=True, watch_interval=0.05)
        async with app.run_test(size=(110, 34)) as pilot:
            screen = lab_screen(app)
            await idle(pilot, app)
            assert screen.selected.id == "fix-me"
            steps = screen.query_one(StepList)

            # 1. A new title and new instructions show at once; place and progress stay.
            _edit(lab_file, "title: Say hello", "title: Say hello, edited")
            _edit(lab_file, "in your own terminal.", "in your own terminal (edited).")
            await wait_for(pilot, lambda: app.reloads >= 1, "the first reload")
            await notified(pilot, app, "Reloaded 01-basics.yaml.")
            assert screen.lab.step("hello").title == "Say hello, edited"
            assert "Say hello, edited" in str(steps.item("hello").query_one(Label).render())
            assert screen.selected.id == "fix-me", "the learner stays where they were"
            assert screen.states["hello"] is StepState.PASSED, "progress is kept"
            assert "(edited)" in screen.query_one("#step-body").source  # type: ignore[attr-defined]
            assert app.driver is not None and app.driver.session.lab is screen.lab

            # 2. A file that no longer validates: its file:line errors show, the last
            #    good version keeps running.
            _edit(lab_file, "    within: 0s\n", "    within: 0s\n    colour: blue\n")
            await wait_for(pilot, lambda: app.reloads >= 2, "the broken reload")
            banner = screen.query_one("#reload-problems")
            assert not banner.has_class("-empty")
            text = str(banner.render())
            assert "still running the last version that loaded" in text
            assert f"{lab_file}:" in text and "colour" in text
            line = next(
                i + 1 for i, x in enumerate(lab_file.read_text().splitlines()) if "colour" in x
            )
            assert f"{lab_file}:{line}:" in text
            assert screen.lab.step("hello").title == "Say hello, edited"
            await pilot.press("c")  # the old version still runs: its check works
            await wait_for(pilot, lambda: "fix-me" in screen.outcomes, "a check result")
            await idle(pilot, app)

            # 3. Fixed, with the first step renamed: its progress is dropped, with a notice.
            _edit(lab_file, "    colour: blue\n", "")
            _edit(lab_file, "  - id: hello\n", "  - id: greet\n")
            await wait_for(pilot, lambda: app.reloads >= 3, "the fixed reload")
            await notified(pilot, app, "Progress of removed step(s) hello was dropped.")
            assert banner.has_class("-empty")
            assert [s.id for s in screen.lab.steps][:2] == ["greet", "fix-me"]
            assert "hello" not in store.steps("basics")
            assert screen.selected.id == "fix-me"
            assert screen.states["greet"] is StepState.TODO

            # 4. The step the learner is on disappears: they land on the one in its place.
            text = lab_file.read_text()
            start = text.index("  - id: fix-me")
            end = text.index("  - id: ask")
            lab_file.write_text(text[:start] + text[end:])
            await wait_for(pilot, lambda: app.reloads >= 4, "the shorter reload")
            await notified(pilot, app, "Progress of removed step(s) fix-me was dropped.")
            assert screen.selected.id == "ask", "the step in its place"
            assert steps.index == 1
            await wait_for(
                pilot,
                lambda: (
                    ProgressStore.for_workshop(workshop, context=None).position()
                    == ("basics", "ask")
                ),
                "the new position saved",
            )

    asyncio.run(scenario())


def test_without_watch_nothing_reloads(
    build: Callable[..., LabrunnerApp], workshop: Workshop
) -> None:
    lab_file = workshop.lab("basics").path

    async def scenario() -> None:
        app = build(lab="basics")
        async with app.run_test(size=(110, 34)) as pilot:
            await idle(pilot, app)
            assert app.watcher is None
            _edit(lab_file, "title: Say hello", "title: Changed")
            await pilot.pause(0.1)
            assert lab_screen(app).lab.step("hello").title == "Say hello"

    asyncio.run(scenario())


def test_the_watcher_reports_content_changes_only(tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text("a: 1\n")
    seen: list[Path] = []
    watcher = LabFileWatcher([path], seen.append)
    assert watcher.poll() == []
    path.write_text("a: 1\n")  # rewritten, same content
    watcher.poll()
    assert watcher.poll() == []
    path.write_text("a: 2\n")
    assert watcher.poll() == [], "first a settled stat, then a read"
    assert watcher.poll() == [path]
    assert seen == [path]
    path.unlink()
    assert watcher.poll() == [] and watcher.poll() == []
    path.write_text("a: 3\n")
    watcher.poll()
    assert watcher.poll() == [path]


def test_a_reload_refuses_what_a_fresh_start_would_refuse_across_labs(
    build: Callable[..., LabrunnerApp], workshop: Workshop
) -> None:
    """The edited file validates on its own, but not with the rest of the workshop:
    a requires cycle, and an import no required lab exports. Each is reported with
    its file:line; the last good version keeps running."""
    lab_file = workshop.lab("basics").path

    async def scenario() -> None:
        app = build(lab="basics", watch=True, watch_interval=0.05)
        async with app.run_test(size=(110, 34)) as pilot:
            screen = lab_screen(app)
            await idle(pilot, app)
            banner = screen.query_one("#reload-problems")

            # after-basics requires basics: basics requiring after-basics is a cycle
            _edit(lab_file, "summary:", "requires: [after-basics]\nsummary:")
            await wait_for(pilot, lambda: app.reloads >= 1, "the cyclic reload")
            text = str(banner.render())
            assert "requires form a cycle" in text, text
            assert f"{lab_file}:5:" in text, text
            assert screen.lab.requires == ()

            # no cycle, but an import the required lab does not export
            _edit(lab_file, "requires: [after-basics]", "requires: [cluster-basics]")
            _edit(lab_file, "summary:", "import:\n  cluster-basics: [NOT_EXPORTED]\nsummary:")
            await wait_for(pilot, lambda: app.reloads >= 2, "the import reload")
            text = str(banner.render())
            assert "imports NOT_EXPORTED from 'cluster-basics'" in text, text
            assert screen.lab.requires == (), "the last good version keeps running"

    asyncio.run(scenario())
