"""A real headless Chromium against ``labrunner serve``: the TUI in a browser, behind a token.

Debian's ``chromium`` is driven by Playwright's Python package through
``executable_path`` (browser downloads are not possible here). The page draws on a
canvas, so the screen is read where the app writes it: the page's WebSocket frames
(the app's terminal output) are fed to a pyte screen sized like the page's terminal.
Waits are on screen content (each frame is checked as it arrives), with generous bounds.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyte
import pytest

from labrunner.testing.waiting import wait_for

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TUI_LABS = Path(__file__).resolve().parents[1] / "tui" / "labs"
WAIT_MS = 90_000

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip(
        "Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True
    )


class Screen:
    """The app's terminal as the page's WebSocket frames draw it."""

    def __init__(self, url: str) -> None:
        query = parse_qs(urlsplit(url).query)
        self.columns = int(query.get("width", ["80"])[0])
        self.lines = int(query.get("height", ["24"])[0])
        self.screen = pyte.Screen(self.columns, self.lines)
        self.stream = pyte.ByteStream(self.screen)

    def feed(self, payload: Any) -> None:
        if isinstance(payload, bytes):
            self.stream.feed(payload)

    def text(self) -> str:
        return "\n".join(self.screen.display)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``labrunner serve`` on a free port, as a user starts it; yields its URL and process."""
    labs = tmp_path / "ws" / "labs"
    shutil.copytree(TUI_LABS, labs)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "labrunner",
            "--labs",
            str(labs),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        start_new_session=True,
    )
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        ready = selector.select(timeout=60)
    if not ready:
        proc.kill()
        pytest.fail("labrunner serve printed no URL within 60 s")
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:") and "/?token=" in url, url
    try:
        yield url, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def children(pid: int) -> list[int]:
    """Direct children of ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except OSError:
                continue
    return found


def wait_screen(ws: Any, screen: Screen, text: str) -> None:
    """Wait until ``text`` is on the screen (checked at each frame, bounded)."""
    if text in screen.text():
        return
    try:
        ws.wait_for_event(
            "framereceived", predicate=lambda _: text in screen.text(), timeout=WAIT_MS
        )
    except Exception as exc:  # a timeout: show what the screen held
        raise AssertionError(f"{text!r} never appeared; the screen:\n{screen.text()}") from exc


def test_the_tui_in_a_browser_behind_the_token(served: tuple[str, subprocess.Popen[str]]) -> None:
    url, proc = served
    base = url.split("/?token=")[0]
    token = url.split("token=")[1]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            # without the token: the page is refused, and so is the WebSocket
            stranger = browser.new_context()
            page = stranger.new_page()
            refused = page.goto(base + "/")
            assert refused is not None and refused.status == 403
            assert "carries the token" in page.content()
            outcome = page.evaluate(
                """(url) => new Promise((resolve) => {
                    const ws = new WebSocket(url);
                    ws.onopen = () => { ws.close(); resolve("open"); };
                    ws.onerror = () => resolve("refused");
                })""",
                base.replace("http:", "ws:") + "/ws?width=80&height=24",
            )
            assert outcome == "refused"
            stranger.close()
            assert children(proc.pid) == []  # no app was started for them

            # with it: the home screen, then a key opens a lab
            context = browser.new_context(viewport={"width": 1200, "height": 800})
            page = context.new_page()
            with page.expect_websocket(timeout=WAIT_MS) as opened:
                reply = page.goto(url)
            assert reply is not None and reply.ok
            assert page.url == base + "/"  # the token left the address bar
            cookies = context.cookies()
            assert [c["name"] for c in cookies] == ["labrunner_session"]
            assert cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Strict"
            assert token not in json.dumps(cookies)
            ws = opened.value
            screen = Screen(ws.url)
            ws.on("framereceived", screen.feed)
            wait_screen(ws, screen, "TUI test workshop")
            wait_screen(ws, screen, "Files and prompts")
            page.click(".xterm-screen")
            page.keyboard.press("Enter")
            wait_screen(ws, screen, "Say hello")
            assert "Shell" not in screen.text()  # `t` needs a real terminal: hidden

            apps = children(proc.pid)
            assert len(apps) == 1
            with open(f"/proc/{apps[0]}/environ", "rb") as fh:
                assert token.encode() not in fh.read()
            with open(f"/proc/{apps[0]}/cmdline", "rb") as fh:
                assert b"served" in fh.read()

            # closing the tab ends the app
            context.close()
            assert wait_for(lambda: children(proc.pid) == [], timeout=60)
        finally:
            browser.close()
