"""The home screen: labs in order with progress, locks, and the environment line."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from labrunner.doctor import Finding, Topic
from labrunner.lab.model import Workshop
from labrunner.tui.app import LabrunnerApp
from labrunner.tui.dialogs.findings import FindingsDialog
from labrunner.tui.screens.home import HomeScreen
from labrunner.tui.screens.lab import LabScreen

from .helpers import given_progress, notified, text, wait_for


def test_labs_show_in_order_with_progress_locks_and_cluster_needs(
    build: Callable[..., LabrunnerApp], workshop: Workshop
) -> None:
    given_progress(workshop, "basics", "hello")
    (workshop.root / "made.txt").write_text("ready\n")  # so its re-check still passes

    async def scenario() -> None:
        app = build()
        async with app.run_test(size=(100, 30)) as pilot:
            # the recorded step is also where the learner was: the lab reopens; go back
            assert isinstance(app.screen, LabScreen)
            await pilot.press("escape")
            assert isinstance(app.screen, HomeScreen)
            assert text(app, "#home-title") == "TUI test workshop"
            titles = [str(label.render()) for label in app.screen.query(".lab-title")]
            assert titles == [
                "▶ 1. Files and prompts",
                "· 2. Talk to the cluster",
                "○ 3. After the basics",
            ]
            assert "1/4 steps  ·  no cluster needed" in text(app, "#lab-basics .lab-meta")
            assert "needs a cluster" in text(app, "#lab-cluster-basics .lab-meta")
            after = text(app, "#lab-after-basics .lab-meta")
            assert "locked: finish basics first" in after
            assert app.screen.query_one("#lab-after-basics").has_class("-locked")
            assert app.screen.query_one("#lab-basics").has_class("-cluster-free")
            assert not app.screen.query_one("#lab-cluster-basics").has_class("-cluster-free")

            # A locked lab does not open; it says why.
            app.home.highlighted = "after-basics"
            await pilot.pause()
            assert "Locked: finish basics first." in text(app, "#lab-summary")
            await pilot.press("enter")
            await notified(pilot, app, "is locked: finish basics first")
            assert isinstance(app.screen, HomeScreen)

    asyncio.run(scenario())


def test_the_status_line_fills_in_when_the_doctor_answers(
    build: Callable[..., LabrunnerApp],
) -> None:
    release = threading.Event()
    findings = [
        Finding("bash", True, "5.2", required=True),
        Finding("cluster", False, "connection refused", "start your cluster", topic=Topic.CLUSTER),
        Finding(
            "istio",
            False,
            "not installed (no istiod Deployment)",
            topic=Topic.ISTIO,
            found=False,
        ),
        Finding("kubectl", False, "not installed", "install kubectl", required=True, found=False),
    ]

    def slow_doctor() -> list[Finding]:
        release.wait(30)
        return findings

    async def scenario() -> None:
        app = build(doctor=slow_doctor)
        try:
            started = time.monotonic()
            async with app.run_test(size=(100, 30)) as pilot:
                # The first screen is up while the doctor is still busy.
                assert time.monotonic() - started < 5
                status = app.screen.query_one("#env-status")
                assert "context: none  ·  checking the environment…" in text(app, "#env-status")
                assert status.has_class("-checking")
                release.set()
                await wait_for(pilot, lambda: not status.has_class("-checking"), "the doctor")
                line = text(app, "#env-status")
                assert "cluster: unreachable" in line
                assert "istio: not installed" in line
                assert "1 problem (d: details)" in line
                assert status.has_class("-unreachable")
                await pilot.press("d")
                assert isinstance(app.screen, FindingsDialog)
                shown = [str(w.render()) for w in app.screen.query(".findings Static")]
                assert "✘ kubectl: not installed\n    fix: install kubectl" in shown
                assert "· cluster: connection refused\n    fix: start your cluster" in shown
                await pilot.press("escape")
                assert isinstance(app.screen, HomeScreen)
        finally:
            release.set()

    asyncio.run(scenario())


def test_quitting_does_not_wait_for_a_stuck_doctor(build: Callable[..., LabrunnerApp]) -> None:
    release = threading.Event()

    async def scenario() -> None:
        app = build(doctor=lambda: [release.wait(60)])
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("q")

    started = time.monotonic()
    try:
        asyncio.run(scenario())
        assert time.monotonic() - started < 10
    finally:
        release.set()


def test_a_failing_doctor_is_reported_not_fatal(build: Callable[..., LabrunnerApp]) -> None:
    def broken() -> list[Finding]:
        raise RuntimeError("kubectl exploded")

    async def scenario() -> None:
        app = build(doctor=broken)
        async with app.run_test(size=(100, 30)) as pilot:
            status = app.screen.query_one("#env-status")
            await wait_for(pilot, lambda: not status.has_class("-checking"), "the doctor")
            assert "1 problem" in text(app, "#env-status")
            await pilot.press("d")
            body = str(app.screen.query_one(".dialog-body").render())
            assert "context: none" in body
            assert app.environment.problems == ("doctor: RuntimeError: kubectl exploded",)

    asyncio.run(scenario())
