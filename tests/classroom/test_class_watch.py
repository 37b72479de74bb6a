"""The instructor's view (``class watch``), driven by Pilot against the fake API server.

Learners publish through their real publishers; the view follows a watch (one list, then
no polling), flags the stuck (repeated failures, too long on a step) and shows the last
failing message of the learner selected.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tui.helpers import wait_for

from labrunner.classroom import admin, document, joinfile, learner, publisher
from labrunner.classroom.document import StuckRules
from labrunner.cluster.client import Kube
from labrunner.testing.fixtures import FakeClusterHandle
from labrunner.tui.classwatch import ClassWatchApp
from labrunner.tui.widgets.learner_table import LearnerTable

from .conftest import Machine, init_class

NS = "labrunner-class-demo"


@pytest.fixture
def publishers(teacher: Machine, tmp_path: Path) -> Iterator[dict[str, publisher.Publisher]]:
    out = tmp_path / "joins"
    init_class(teacher, out, "alice", "bob")
    found = {}
    for name in ("alice", "bob"):
        directory = tmp_path / f"state-{name}" / "class"
        learner.join(directory, out / f"{name}.yaml")
        found[name] = publisher.Publisher(directory, joinfile.read(directory / "join.yaml"))
    yield found
    for pub in found.values():
        pub.close(0)


def send(pub: publisher.Publisher, kind: str, lab: str, step: str, **extra: Any) -> None:
    pub.publish(document.event(kind, lab, step, at=time.time(), total=2, **extra))
    assert pub.flush(20)


def cell(app: ClassWatchApp, row: str, column: str) -> str:
    return app.query_one(LearnerTable).cell(row, column)


def test_the_class_view_follows_the_learners_live(
    class_api: FakeClusterHandle, publishers: dict[str, publisher.Publisher]
) -> None:
    kube = Kube.connect(class_api.env, class_api.context)
    ref = admin.ClassRef("demo", NS)
    now = [time.time()]
    app = ClassWatchApp(
        class_name="demo",
        where=f"{NS} on {class_api.context}",
        follow=lambda **callbacks: admin.follow(kube, ref, **callbacks),
        rules=StuckRules(after=600, failures=2),
        clock=lambda: now[0],
    )
    alice, bob = publishers["alice"], publishers["bob"]

    async def scenario() -> None:
        async with app.run_test(size=(160, 40)) as pilot:
            await wait_for(pilot, lambda: set(app.shown) == {"alice", "bob"}, "both learners")
            assert cell(app, "alice", "on") == "not started"
            class_api.server.clear_requests()

            await asyncio.to_thread(send, alice, "started", "first", "broken", lab_title="First")
            for _ in range(2):
                await asyncio.to_thread(
                    send, alice, "failed", "first", "broken", message="the service answers 503"
                )
            await wait_for(pilot, lambda: cell(app, "alice", "flag") == "⚑ stuck", "alice stuck")
            assert cell(app, "alice", "fails") == "2"
            assert cell(app, "alice", "lab:first") == "▶ 0/2"
            assert "1 stuck" in str(app.query_one("#class-summary").render())

            await asyncio.to_thread(send, bob, "started", "second", "only", lab_title="Second")
            await wait_for(pilot, lambda: cell(app, "bob", "lab") == "second", "bob moved")
            assert cell(app, "bob", "flag") == ""
            now[0] += 700  # ten minutes on one step, and more
            await wait_for(pilot, lambda: cell(app, "bob", "flag") == "⚑ stuck", "bob too long")
            assert cell(app, "bob", "on").startswith("11m")

            await asyncio.to_thread(send, bob, "passed", "second", "only")
            await wait_for(pilot, lambda: cell(app, "bob", "on") == "✔ done", "bob done")
            assert cell(app, "bob", "flag") == ""

            table = app.query_one(LearnerTable)
            table.move_to("alice")
            await wait_for(
                pilot,
                lambda: "the service answers 503" in str(app.query_one("#class-detail").render()),
                "alice's last failure in the detail panel",
            )
            detail = str(app.query_one("#class-detail").render())
            assert "STUCK: 2 failed attempts" in detail

            await pilot.press("s")
            await pilot.pause()
            assert table.row_index("alice") == 0 and table.selected == "alice"

            # every change came over the watch: no list after the first
            lists = [
                r
                for r in class_api.server.requests(method="GET")
                if r.path.endswith(f"/namespaces/{NS}/configmaps") and "watch" not in r.query
            ]
            assert lists == []

            # a learner's object deleted (revoked and removed by hand): the row goes
            class_api.server.delete("configmaps", "progress-bob", NS)
            await wait_for(pilot, lambda: "bob" not in table.keys, "bob's row gone")

    try:
        asyncio.run(scenario())
    finally:
        kube.close()


def test_the_class_view_says_when_the_api_is_gone_and_recovers(
    class_api: FakeClusterHandle, publishers: dict[str, publisher.Publisher]
) -> None:
    kube = Kube.connect(class_api.env, class_api.context)
    app = ClassWatchApp(
        class_name="demo",
        where=NS,
        follow=lambda **callbacks: admin.follow(kube, admin.ClassRef("demo", NS), **callbacks),
        rules=StuckRules(),
    )

    async def scenario() -> None:
        async with app.run_test(size=(160, 40)) as pilot:
            await wait_for(pilot, lambda: set(app.shown) == {"alice", "bob"}, "both learners")
            summary = app.query_one("#class-summary")
            class_api.server.faults.refuse_connections(True)
            try:
                await wait_for(
                    pilot, lambda: "unreachable" in str(summary.render()), "the API gone", 30
                )
            finally:
                class_api.server.faults.refuse_connections(False)
            await asyncio.to_thread(
                send, publishers["alice"], "started", "first", "hello", lab_title="First"
            )
            await wait_for(pilot, lambda: cell(app, "alice", "lab") == "first", "back", 30)
            assert "unreachable" not in str(summary.render())

    try:
        asyncio.run(scenario())
    finally:
        kube.close()
