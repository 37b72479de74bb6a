"""The token guard, the Origin check, one session at a time, and the end of a session.

The server is the real ``TokenServer`` on loopback, driven by aiohttp's client; the
served app is a small stand-in that speaks textual-serve's pipe protocol
(``fake_app.py``), so these tests are about serving, not about the TUI (the browser
test serves the real TUI).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from labrunner.serve import TOKEN_ENV, ServeProblem, TokenServer, origin_of
from labrunner.testing.waiting import wait_for

FAKE_APP = Path(__file__).with_name("fake_app.py")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def run(scenario: Callable[[], Any]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 120))


class Served:
    """A running TokenServer plus a client that holds (or lacks) its cookie."""

    def __init__(self, server: TokenServer, base: str) -> None:
        self.server = server
        self.base = base

    def client(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def login(self, client: aiohttp.ClientSession) -> None:
        async with client.get(self.server.url, allow_redirects=False) as reply:
            assert reply.status == 303
            assert reply.headers["Location"] == "/"
            cookie = reply.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
            assert self.server.token not in cookie

    async def socket(
        self, client: aiohttp.ClientSession, origin: str | None = None
    ) -> aiohttp.ClientWebSocketResponse:
        headers = {"Origin": origin if origin is not None else self.server.origin}
        return await client.ws_connect(f"{self.base}/ws?width=80&height=24", headers=headers)


async def serving(argv: list[str], **options: Any) -> AsyncIterator[Served]:
    server = TokenServer(argv, host="127.0.0.1", port=0, **options)
    base = await server.start()
    try:
        yield Served(server, base)
    finally:
        await server.close()


async def read_data(ws: aiohttp.ClientWebSocketResponse) -> str:
    message = await asyncio.wait_for(ws.receive(), 60)
    assert message.type == aiohttp.WSMsgType.BINARY, message
    return bytes(message.data).decode()


def test_without_the_token_nothing_is_served() -> None:
    async def scenario() -> None:
        async for served in serving([sys.executable, str(FAKE_APP)]):
            async with served.client() as client:
                for path in ("/", "/static/js/textual.js", "/?token=not-the-token"):
                    async with client.get(served.base + path) as reply:
                        assert reply.status == 403, path
                        assert reply.headers["X-Frame-Options"] == "DENY"
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await served.socket(client)
                assert refused.value.status == 403
                assert served.server.session is None  # no app was started

    run(scenario)


def test_the_token_becomes_a_cookie_that_opens_the_page_and_the_socket() -> None:
    async def scenario() -> None:
        async for served in serving([sys.executable, str(FAKE_APP)]):
            async with served.client() as client:
                await served.login(client)
                async with client.get(served.base + "/") as page:
                    assert page.status == 200
                    text = await page.text()
                    assert f"ws://127.0.0.1:{served.server.port}/ws" in text
                    assert served.server.token not in text
                    assert page.headers["Cache-Control"] == "no-store"
                async with client.get(served.base + "/static/js/textual.js") as script:
                    assert script.status == 200
                for origin in ("http://evil.example", "", f"http://localhost:{served.server.port}"):
                    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                        await served.socket(client, origin=origin)
                    assert refused.value.status == 403, origin
                ws = await served.socket(client)
                assert (await read_data(ws)).startswith("ready pid=")
                await ws.send_json(["stdin", "x"])
                assert await read_data(ws) == "echo:x"
                await ws.close()

    run(scenario)


def test_one_session_at_a_time_and_closing_the_tab_ends_the_app() -> None:
    async def scenario() -> None:
        async for served in serving([sys.executable, str(FAKE_APP)]):
            async with served.client() as client:
                await served.login(client)
                first = await served.socket(client)
                pid = int(re.search(r"pid=(\d+)", await read_data(first))[1])  # type: ignore[index]
                with pytest.raises(aiohttp.WSServerHandshakeError) as busy:
                    await served.socket(client)
                assert busy.value.status == 409
                await first.close()
                assert await asyncio.to_thread(wait_for, lambda pid=pid: not alive(pid), 30)
                again = await served.socket(client)  # a reload gets a new session
                assert (await read_data(again)).startswith("ready pid=")
                await again.close()

    run(scenario)


def test_an_app_that_ignores_quit_is_killed_after_the_grace_and_its_leftovers_reaped() -> None:
    async def scenario() -> None:
        argv = [sys.executable, str(FAKE_APP), "--stubborn", "--child"]
        async for served in serving(argv, grace=0.5):
            async with served.client() as client:
                await served.login(client)
                ws = await served.socket(client)
                said = await read_data(ws)
                pid = int(re.search(r"pid=(\d+)", said)[1])  # type: ignore[index]
                child = int(re.search(r"child=(\d+)", said)[1])  # type: ignore[index]
                assert alive(pid) and alive(child)
                await ws.close()
                assert served.server.session is not None
                await asyncio.wait_for(served.server.session.ended.wait(), 30)
                assert await asyncio.to_thread(wait_for, lambda pid=pid: not alive(pid), 30)
                assert await asyncio.to_thread(wait_for, lambda child=child: not alive(child), 30)

    run(scenario)


def test_the_token_never_reaches_the_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "a-token-from-the-environment-0123")
    seen = tmp_path / "env.json"

    async def scenario() -> None:
        argv = [sys.executable, str(FAKE_APP), "--env", str(seen)]
        async for served in serving(argv, token=os.environ[TOKEN_ENV]):
            async with served.client() as client:
                await served.login(client)
                ws = await served.socket(client)
                await read_data(ws)
                await ws.close()
        environment = json.loads(seen.read_text())
        assert TOKEN_ENV not in environment
        assert os.environ[TOKEN_ENV] not in json.dumps(environment)
        assert environment["TEXTUAL_DRIVER"].endswith("WebDriver")

    run(scenario)


def test_options_it_refuses() -> None:
    with pytest.raises(ServeProblem, match="at least 16"):
        TokenServer(["true"], token="short")
    with pytest.raises(ServeProblem, match="--public-url"):
        TokenServer(["true"], host="0.0.0.0")
    server = TokenServer(["true"], host="0.0.0.0", public_url="https://lab.example/")
    assert server.origin == "https://lab.example"
    assert origin_of("http://Example.COM:80/x") == "http://example.com"
    assert origin_of("http://[::1]:8000/") == "http://[::1]:8000"


def test_behind_a_tls_proxy_the_cookie_is_secure_and_the_page_uses_wss() -> None:
    async def scenario() -> None:
        public = "https://lab7.example.org"
        async for served in serving([sys.executable, str(FAKE_APP)], public_url=public):
            assert served.base == public and served.server.url.startswith(public + "/?token=")
            runner = served.server._runner  # where it listens: the proxy's upstream
            assert runner is not None
            upstream = f"http://127.0.0.1:{runner.addresses[0][1]}"
            async with served.client() as client:
                login = f"{upstream}/?token={served.server.token}"
                async with client.get(login, allow_redirects=False) as reply:
                    assert reply.status == 303
                    cookie = reply.headers["Set-Cookie"]
                    assert "Secure" in cookie and "HttpOnly" in cookie
                secret = served.server.cookie_secret
                headers = {"Cookie": f"labrunner_session={secret}"}
                async with client.get(upstream + "/", headers=headers) as page:
                    assert page.status == 200
                    assert "wss://lab7.example.org/ws" in await page.text()
                for origin in (upstream, "http://lab7.example.org"):
                    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                        await client.ws_connect(
                            f"{upstream}/ws", headers={**headers, "Origin": origin}
                        )
                    assert refused.value.status == 403, origin
                ws = await client.ws_connect(
                    f"{upstream}/ws?width=80&height=24", headers={**headers, "Origin": public}
                )
                assert (await read_data(ws)).startswith("ready pid=")
                await ws.close()

    run(scenario)


def test_behind_a_proxy_path_the_token_swap_lands_on_that_path() -> None:
    async def scenario() -> None:
        public = "https://class.example.org/lab7/"
        async for served in serving([sys.executable, str(FAKE_APP)], public_url=public):
            runner = served.server._runner
            assert runner is not None
            upstream = f"http://127.0.0.1:{runner.addresses[0][1]}"  # the proxy strips /lab7
            async with served.client() as client:
                login = f"{upstream}/?token={served.server.token}"
                async with client.get(login, allow_redirects=False) as reply:
                    assert reply.status == 303
                    assert reply.headers["Location"] == "/lab7/"
                secret = served.server.cookie_secret
                headers = {"Cookie": f"labrunner_session={secret}"}
                async with client.get(upstream + "/", headers=headers) as page:
                    text = await page.text()
                    assert "wss://class.example.org/lab7/ws" in text
                    assert "https://class.example.org/lab7/static/" in text

    run(scenario)
