"""The services panel under a lab's title: stopped before its step, failed with its last lines.

(A service brought back on resume and shown running: ``test_progress_truth.py``.)
"""

from __future__ import annotations

import asyncio
import os
import socket
import textwrap
from collections.abc import Callable
from pathlib import Path

from labrunner.tui.app import LabrunnerApp

from .helpers import given_progress, idle, lab_screen, load, quit_app, text, wait_for

HAUNTED = """\
    apiVersion: labrunner/v1
    id: served
    title: A lab with a service
    services:
      - id: web
        title: the little web server
        step: start-web
        start: "echo binding port; echo retrying once; echo 'port is haunted' >&2; exit 3"
        ready:
          - http: {url: "http://127.0.0.1:${WEB_PORT}/", expect: {status: 200}}
        within: 5s
    steps:
      - id: start-web
        title: Start the web server
        run: ['true']
        check:
          - env: {name: WEB_PORT}
      - id: call-web
        title: Call it
        run: ['curl -sS -o /dev/null "http://127.0.0.1:$WEB_PORT/"']
        check:
          - http: {url: "http://127.0.0.1:${WEB_PORT}/", expect: {status: 200}}
"""


def closed_port() -> int:
    """A port nothing listens on (bound, read, released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def haunted_workshop(tmp_path: Path) -> Path:
    labs = tmp_path / "workshop" / "labs"
    labs.mkdir(parents=True)
    (labs / "served.yaml").write_text(textwrap.dedent(HAUNTED))
    return labs


def test_a_service_not_started_yet_says_which_step_starts_it(
    build: Callable[..., LabrunnerApp], tmp_path: Path
) -> None:
    workshop = load(haunted_workshop(tmp_path))
    env = dict(os.environ, WEB_PORT=str(closed_port()))

    async def scenario() -> None:
        app = build(workshop=workshop, base_env=env, lab="served")
        async with app.run_test(size=(120, 35)) as pilot:
            screen = lab_screen(app)
            await idle(pilot, app)
            assert screen.services["web"][0] == "stopped"
            panel = text(app, "#services")
            assert "the little web server: not started yet (step 1)" in panel
            assert screen.query_one("#services").has_class("-stopped")
            await quit_app(pilot, app)

    asyncio.run(scenario())


def test_a_service_that_fails_to_come_back_shows_failed_and_its_last_lines(
    build: Callable[..., LabrunnerApp], tmp_path: Path
) -> None:
    workshop = load(haunted_workshop(tmp_path))
    given_progress(workshop, "served", "start-web", at="call-web")
    env = dict(os.environ, WEB_PORT=str(closed_port()))

    async def scenario() -> None:
        app = build(workshop=workshop, base_env=env)
        async with app.run_test(size=(120, 35)) as pilot:
            screen = lab_screen(app)
            assert screen.selected.id == "call-web"
            await wait_for(
                pilot, lambda: screen.services["web"][0] == "failed", "the service to fail", 60
            )
            panel = text(app, "#services")
            assert "its start command exited 3" in panel, panel
            for line in ("binding port", "retrying once", "port is haunted"):
                assert line in panel, (line, panel)
            assert screen.query_one("#services").has_class("-failed")
            await idle(pilot, app)
            await quit_app(pilot, app)

    asyncio.run(scenario())
