"""What the learner is told, proven on the screen: quitting with a service up, an
environment error's fix in the checks panel, hints as Markdown, the solution in
view, and a typed command's ✘ with its exit status.

Each test drives the real app (Pilot, real bash) and reads what a widget renders or
where it was placed, so a regression in what is shown fails here even when the
state behind it is right.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path

from textual.widgets import Markdown
from textual.widgets._markdown import MarkdownParagraph

from labrunner.lab.model import Workshop
from labrunner.tui.app import LabrunnerApp
from labrunner.tui.dialogs.confirm import ConfirmDialog
from labrunner.tui.widgets.checks_panel import ChecksPanel

from .helpers import (
    find_pids,
    idle,
    lab_screen,
    load,
    mesh_workshop,
    wait_for,
)
from .test_layout import terminal_ready
from .test_terminal_pane import ready, status, type_line, typing_workshop

SERVICE_LAB = """\
apiVersion: labrunner/v1
kind: Lab
id: served
title: A lab with a service
services:
  - id: sleeper
    title: the sleeper
    step: start
    start: exec sleep 611
    ready:
      - file: {path: sleeper.started}
    within: 10s
steps:
  - id: start
    title: Start the sleeper
    run: ['touch sleeper.started; (exec sleep 611 >/dev/null 2>&1 &)']
    check:
      - file: {path: sleeper.started}
"""

GONE_LAB = """\
apiVersion: labrunner/v1
kind: Lab
id: gone
title: Look at a cluster that is gone
needs: [cluster]
steps:
  - id: default-ns
    title: The default namespace is there
    run: ['true']
    check:
      - title: the default namespace exists
        namespace: {name: default}
        hint: list the namespaces with kubectl get namespaces
    hints: [Is the cluster up?]
    within: 1s
"""


def one_lab(root: Path, name: str, text: str) -> Workshop:
    """A workshop of the test workshop's header and one lab."""
    labs = root / "labs"
    labs.mkdir(parents=True)
    (labs / "workshop.yaml").write_text("apiVersion: labrunner/v1\nkind: Workshop\ntitle: T\n")
    (labs / name).write_text(text)
    return load(labs)


def test_q_asks_first_while_a_lab_service_runs(
    build: Callable[..., LabrunnerApp], tmp_path: Path, reap: list[int]
) -> None:
    workshop = one_lab(tmp_path / "one", "served.yaml", SERVICE_LAB)

    async def scenario() -> None:
        app = build(workshop=workshop, lab="served")
        async with app.run_test(size=(120, 35)) as pilot:
            screen = lab_screen(app)
            await pilot.press("r")
            await wait_for(pilot, lambda: screen.services["sleeper"][0] == "running", "the service")
            await idle(pilot, app)
            reap.extend(find_pids("sleep 611"))
            await pilot.press("q")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the question")
            body = str(app.screen.query_one(".dialog-body").render())
            assert "The lab service the sleeper is running." in body
            await pilot.press("n")  # keep working: nothing stopped
            await wait_for(pilot, lambda: app.screen is screen, "the lab screen")
            assert app.is_running and screen.services["sleeper"][0] == "running"
            await pilot.press("q")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the question")
            await pilot.press("y")
            await wait_for(pilot, lambda: not app.is_running, "the app to end")

    asyncio.run(scenario())


def unreachable_kubeconfig(path: Path) -> Path:
    """A disposable-looking context (no guard question) whose API server is not there."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "kind-gone",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {}}],
        "contexts": [{"name": "kind-gone", "context": {"cluster": "c", "user": "u"}}],
    }
    path.write_text(json.dumps(config))
    return path


def test_an_environment_error_shows_its_fix_in_the_checks_not_a_hint(
    build: Callable[..., LabrunnerApp], tmp_path: Path
) -> None:
    """A check that meets an unreachable cluster: its row says what fixes that (the same
    words as ``labrunner doctor``), with no hint, and the step offers none either."""
    workshop = one_lab(tmp_path / "one", "gone.yaml", GONE_LAB)
    kubeconfig = unreachable_kubeconfig(tmp_path / "kubeconfig")
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}

    async def scenario() -> None:
        app = build(workshop=workshop, lab="gone", base_env=env)
        async with app.run_test(size=(120, 35)) as pilot:
            screen = lab_screen(app)
            await idle(pilot, app)
            await pilot.press("r")
            await wait_for(
                pilot,
                lambda: screen.job is None and "default-ns" in screen.records,
                f"the run {[n.message for n in app.notices]} {screen.records}",
                30,
            )
            assert screen.records["default-ns"].status == "error", screen.records
            (row,) = screen.query_one(ChecksPanel).rows()
            await wait_for(pilot, lambda: row.state == "-error", "the check row's error")
            shown = str(row.render())
            assert shown.startswith("! the default namespace exists:")
            assert "Fix: start the cluster" in shown, shown
            assert "hint" not in shown.lower()  # the check's own hint fixes nothing here
            hints = screen.query_one("#hints", Markdown)
            assert hints.has_class("-empty") and not hints.source  # no "h: hint 1 of 1"
            assert "default-ns" not in screen.failed

    asyncio.run(scenario())


def test_a_hint_shows_its_backticks_as_inline_code(
    build: Callable[..., LabrunnerApp], tmp_path: Path
) -> None:
    app = build(workshop=mesh_workshop(tmp_path), lab="mesh-security-basics")

    async def scenario() -> None:
        async with app.run_test(size=(120, 35)) as pilot:
            screen = lab_screen(app)
            await wait_for(pilot, lambda: terminal_ready(screen), "the lab shell")
            await pilot.press("c")  # before any attempt: not yet, and hints unlock
            await wait_for(pilot, lambda: "mesh-ca" in screen.failed, "the first check")
            await idle(pilot, app)
            await pilot.press("h")
            hints = screen.query_one("#hints", Markdown)
            await wait_for(pilot, lambda: "Hint 1 of 3" in hints.source, "the first hint")
            await wait_for(pilot, lambda: hints.query(MarkdownParagraph), "its paragraphs")
            await pilot.pause()
            paragraph = hints.query(MarkdownParagraph).first()
            content = paragraph._content
            plain = content.plain
            assert "`" not in plain, plain  # the backticks are markup, not text
            start = plain.index("O=cluster.local")
            code_spans = [
                span
                for span in content.spans
                if span.start <= start < span.end and "code" in str(span.style)
            ]
            assert code_spans, content.spans  # and the text between them is styled as code

    asyncio.run(scenario())


def test_the_solution_scrolls_into_view(build: Callable[..., LabrunnerApp], tmp_path: Path) -> None:
    app = build(workshop=mesh_workshop(tmp_path), lab="mesh-security-basics")

    async def scenario() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            screen = lab_screen(app)
            await wait_for(pilot, lambda: terminal_ready(screen), "the lab shell")
            solution = screen.query_one("#solution")
            assert not solution.display or solution.has_class("-empty")
            await pilot.press("s")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the question")
            await pilot.press("y")
            await wait_for(pilot, lambda: not solution.has_class("-empty"), "the solution")
            work = screen.query_one("#step-work")

            def in_view() -> bool:
                geometry = screen.find_widget(solution)
                visible = geometry.visible_region
                # its first rows are painted, inside the scrolling commands-and-checks area
                return (
                    visible.height > 0
                    and visible.y == geometry.region.y
                    and work.region.contains_region(visible)
                )

            await wait_for(pilot, in_view, "the solution to scroll into view")
            assert work.scroll_y > 0  # it was below the fold and the area scrolled to it

    asyncio.run(scenario())


def test_a_typed_failing_command_shows_its_exit_status(
    build: Callable[..., LabrunnerApp], tmp_path: Path
) -> None:
    workshop = load(typing_workshop(tmp_path))

    async def scenario() -> None:
        app = build(workshop=workshop, lab="typing")
        async with app.run_test(size=(120, 35)) as pilot:
            pane = await ready(pilot, app)
            await pilot.press("i")
            await type_line(pilot, pane, "false")
            await wait_for(pilot, lambda: "✘ exit 1" in status(pane), "the ✘ and its status")
            await type_line(pilot, pane, "(exit 7)")
            await wait_for(pilot, lambda: "✘ exit 7" in status(pane), "exit 7")
            await type_line(pilot, pane, "true")
            await wait_for(pilot, lambda: "✔ exit 0" in status(pane), "the ✔ after")

    asyncio.run(scenario())
