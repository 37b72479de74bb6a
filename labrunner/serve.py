"""``labrunner serve``: one learner's labrunner in their browser, behind a token.

For a learner on a Chromebook, a cloud VM or a Codespace: textual-serve runs
the TUI as a child process per browser session and relays its screen over a
WebSocket to xterm.js in the page. What it lacks for a tool that hands out a
shell, this module adds (on ``Server._make_app``, a private hook, which is
why pyproject pins textual-serve to one minor release):

- **A token, always**, on localhost too: generated when not given, printed
  once on stdout as the URL to open. ``/?token=T`` is exchanged for an
  ``HttpOnly``, ``SameSite=Strict`` cookie holding a separate random secret,
  and the browser is redirected to ``/`` so the token leaves the address bar
  and history. Every other request (the page, ``/ws``, ``/static``, downloads)
  needs the cookie; comparisons are constant-time (``hmac.compare_digest``).
  A token in the WebSocket URL would not work anyway: the page appends its
  own ``?width=…`` to the URL it is given.
- **Origin.** A ``/ws`` whose ``Origin`` is not the server's public URL is
  refused, so another site open in the same browser cannot drive the shell.
- **One session at a time.** A second tab gets 409 while the first is open;
  a reload waits for the previous session to end.
- **The child** is ``labrunner served`` (a hidden command: ``run`` refuses
  without a terminal), started in its own session, with an environment that
  never holds the token (it is not in ours either, unless it came in
  ``LABRUNNER_SERVE_TOKEN``, which is removed). Closing the tab asks the app to
  quit; after ``GRACE`` seconds it is killed, then every process it left
  behind is found and killed (its process group, its descendants, and, since
  the server is a child subreaper, orphans that were re-parented to it).
- **TLS** belongs to a reverse proxy in front: ``--public-url https://…``
  makes the page use ``wss:`` and the cookie ``Secure``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hmac
import json
import os
import secrets
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server

TOKEN_ENV = "LABRUNNER_SERVE_TOKEN"  # noqa: S105 - the variable's name
COOKIE = "labrunner_session"
GRACE = 5.0
KILL_WAIT = 2.0
MIN_TOKEN = 16
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
}
_PR_SET_CHILD_SUBREAPER = 36
WILDCARDS = ("0.0.0.0", "::", "")  # noqa: S104 - named to refuse them without --public-url


class ServeProblem(ValueError):
    """Options ``serve`` cannot work with (the message says why)."""


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` as a browser sends it in ``Origin`` (default ports left out)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or (scheme, port) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def same(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented secret with the real one."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def choose_token(given: str | None) -> str:
    """The token: ``given`` when long enough, else a new random one."""
    if given is None or given == "":
        return secrets.token_urlsafe(24)
    if len(given) < MIN_TOKEN:
        raise ServeProblem(f"--token: use at least {MIN_TOKEN} characters (it guards a shell)")
    return given


# --------------------------------------------------------------------------- processes


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux), so a served app's leftovers come back to us."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _table() -> dict[int, tuple[int, int]]:
    """pid → (parent pid, process group) of every process we can see."""
    out: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        out[int(entry)] = (int(fields[1]), int(fields[2]))
    return out


def _descendants(table: Mapping[int, tuple[int, int]], root: int) -> set[int]:
    found: set[int] = set()
    todo = [root]
    while todo:
        parent = todo.pop()
        for pid, (ppid, _pgrp) in table.items():
            if ppid == parent and pid not in found:
                found.add(pid)
                todo.append(pid)
    return found


def _kill(pids: set[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _reap_adopted(exclude: set[int]) -> int:
    """Kill and reap processes re-parented to us (we are a subreaper); how many there were."""
    me = os.getpid()
    total = 0
    for _ in range(20):
        table = _table()
        adopted = {pid for pid, (ppid, _) in table.items() if ppid == me} - exclude
        if not adopted:
            break
        doomed = set(adopted)
        for pid in adopted:
            doomed |= _descendants(table, pid)
        _kill(doomed, signal.SIGKILL)
        for pid in adopted:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        total += len(adopted)
    return total


# --------------------------------------------------------------------------- one session


class Session(AppService):
    """One browser session: the served labrunner and everything it starts."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        grace: float,
        reap_adopted: bool,
        **kwargs: Any,
    ) -> None:
        super().__init__(" ".join(argv), **kwargs)
        self.argv = list(argv)
        self.base_env = dict(env)
        self.grace = grace
        self.reap_adopted = reap_adopted
        self.pid: int | None = None
        self.ended = asyncio.Event()

    def _build_environment(self, width: int = 80, height: int = 24) -> dict[str, str]:
        """Our environment (never the token) plus what textual-serve sets for its driver."""
        driver: dict[str, str] = super()._build_environment(width, height)
        environment = dict(self.base_env)
        environment.update({k: v for k, v in driver.items() if os.environ.get(k) != v})
        environment.pop(TOKEN_ENV, None)
        return environment

    async def _open_app_process(self, width: int = 80, height: int = 24) -> Any:
        environment = self._build_environment(width=width, height=height)
        process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=environment,
            start_new_session=True,
        )
        self._process = process
        self._stdin = process.stdin
        self.pid = process.pid
        return process

    async def run(self) -> None:
        """Relay the app's packets to the browser until it exits; its stderr to ours."""
        process = self._process
        assert process is not None and process.stdout is not None
        stderr_task = asyncio.create_task(self._relay_stderr())
        stdout = process.stdout
        try:
            while True:  # the driver's prelude says the app is up
                line = await stdout.readline()
                if not line or line == b"__GANGLION__\n":
                    break
            while True:
                kind = await stdout.readexactly(1)
                size = int.from_bytes(await stdout.readexactly(4), "big")
                payload = await stdout.readexactly(size)
                if kind == b"D":
                    await self.on_data(payload)
                elif kind == b"M":
                    await self._meta(payload)
        except (asyncio.IncompleteReadError, ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            await stderr_task
            self.ended.set()
            with contextlib.suppress(Exception):
                await self.remote_close()

    async def _meta(self, payload: bytes) -> None:
        try:
            meta = json.loads(payload)
        except ValueError:
            return
        if meta.get("type") == "exit":
            await self.remote_close()
        elif meta.get("type") == "open_url":
            await self.remote_write_str(
                json.dumps(["open_url", {"url": meta.get("url"), "new_tab": meta.get("new_tab")}])
            )

    async def _relay_stderr(self) -> None:
        process = self._process
        if process is None or process.stderr is None:
            return
        while True:
            data = await process.stderr.read(4096)
            if not data:
                return
            sys.stderr.buffer.write(data)
            sys.stderr.flush()

    async def stop(self) -> None:
        """Ask the app to quit; kill it after the grace period; kill and reap what it left."""
        process = self._process
        task, self._task = self._task, None
        if process is None:
            return
        pid = process.pid
        family = _descendants(_table(), pid)
        if process.returncode is None:
            with contextlib.suppress(Exception):
                await self.send_meta({"type": "quit"})
            if not await _exited(process, self.grace):
                family |= _descendants(_table(), pid)
                _kill_group(pid, signal.SIGTERM)
                if not await _exited(process, KILL_WAIT):
                    _kill_group(pid, signal.SIGKILL)
                    await _exited(process, KILL_WAIT)
        _kill_group(pid, signal.SIGKILL)
        _kill(family, signal.SIGKILL)
        if self.reap_adopted:
            await asyncio.get_running_loop().run_in_executor(None, _reap_adopted, {pid})
        # (the pipes close once everything holding them is gone)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(process.wait(), KILL_WAIT)
        if task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, KILL_WAIT)


async def _exited(process: Any, seconds: float) -> bool:
    """Wait up to ``seconds`` for the process itself to exit (not for its pipes to close,
    which a leftover grandchild may hold open)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while process.returncode is None:
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


# --------------------------------------------------------------------------- the server


class TokenServer(Server):
    """textual-serve with a token, a cookie, an Origin check and one session at a time."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        host: str = "localhost",
        port: int = 0,
        public_url: str | None = None,
        token: str | None = None,
        env: Mapping[str, str] | None = None,
        grace: float = GRACE,
        reap_adopted: bool = False,
        title: str = "labrunner",
    ) -> None:
        if host in WILDCARDS and not public_url:
            raise ServeProblem(
                f"--host {host or WILDCARDS[0]} listens everywhere: also pass --public-url with "
                "the address the browser uses (https:// behind a TLS proxy)"
            )
        if public_url:  # the page appends /ws and /static/ to it: no trailing slash
            public_url = public_url.rstrip("/")
        super().__init__(" ".join(argv), host=host, port=port, title=title, public_url=public_url)
        self.argv = list(argv)
        self.token = choose_token(token)
        self.cookie_secret = secrets.token_urlsafe(32)
        self.fixed_public_url = public_url
        self.env = dict(env if env is not None else os.environ)
        self.env.pop(TOKEN_ENV, None)
        self.grace = grace
        self.reap_adopted = reap_adopted
        self.session: Session | None = None
        self._socket_open = False
        self._session_lock = asyncio.Lock()
        self._runner: web.AppRunner | None = None
        self.stopped = asyncio.Event()

    # ------------------------------------------------------------------ addresses

    @property
    def origin(self) -> str:
        """The one Origin a ``/ws`` may come from."""
        return origin_of(self.public_url)

    @property
    def url(self) -> str:
        """The URL to open, token included (print it once; it is the key)."""
        return f"{self.public_url.rstrip('/')}/?token={self.token}"

    # ------------------------------------------------------------------ the guard

    async def _make_app(self) -> web.Application:
        app: web.Application = await super()._make_app()
        app.middlewares.append(self._guard)
        return app

    @web.middleware
    async def _guard(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        if request.path == "/" and "token" in request.query:
            if not same(request.query.get("token"), self.token):
                return self._refuse(403, "That token is not this server's.")
            moved = web.HTTPSeeOther(urlsplit(self.public_url).path + "/")  # a proxy's prefix
            moved.set_cookie(
                COOKIE,
                self.cookie_secret,
                httponly=True,
                samesite="Strict",
                secure=self.public_url.startswith("https:"),
                path="/",
            )
            moved.headers.update(SECURITY_HEADERS)
            raise moved
        if not same(request.cookies.get(COOKIE), self.cookie_secret):
            return self._refuse(
                403, "Open the URL that `labrunner serve` printed: it carries the token."
            )
        if request.path == "/ws" and request.headers.get("Origin", "") != self.origin:
            return self._refuse(403, "This page may only be opened from its own address.")
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers.update(SECURITY_HEADERS)
            raise
        if not response.prepared:
            response.headers.update(SECURITY_HEADERS)
        return response

    @staticmethod
    def _refuse(status: int, text: str) -> web.Response:
        response = web.Response(status=status, text=f"labrunner: {text}\n")
        response.headers.update(SECURITY_HEADERS)
        return response

    # ------------------------------------------------------------------ sessions

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """One browser session: refuse a second tab; a reload waits for the last one's end."""
        if self._socket_open:
            raise web.HTTPConflict(
                text="labrunner: labrunner is open in another tab; close that one first.\n"
            )
        self._socket_open = True
        try:
            async with self._session_lock:
                return await self._serve_session(request)
        finally:
            self._socket_open = False  # (when the session could not even start)

    async def _serve_session(self, request: web.Request) -> web.WebSocketResponse:
        websocket = web.WebSocketResponse(heartbeat=15)
        width = _number(request.query.get("width"), 80)
        height = _number(request.query.get("height"), 24)
        await websocket.prepare(request)
        session = Session(
            self.argv,
            env=self.env,
            grace=self.grace,
            reap_adopted=self.reap_adopted,
            write_bytes=websocket.send_bytes,
            write_str=websocket.send_str,
            close=websocket.close,
            download_manager=self.download_manager,
        )
        self.session = session
        try:
            await session.start(width, height)
            await self._process_messages(websocket, session)
        except asyncio.CancelledError:
            pass
        finally:
            self._socket_open = False  # the tab is gone: a reload may queue up behind us
            await session.stop()
            with contextlib.suppress(Exception):
                await websocket.close()
        return websocket

    async def on_startup(self, app: web.Application) -> None:
        """Quiet: the command prints the URL itself."""

    # ------------------------------------------------------------------ running

    async def start(self) -> str:
        """Listen; returns the public URL (with the real port when asked for port 0)."""
        runner = web.AppRunner(await self._make_app(), handle_signals=False, access_log=None)
        await runner.setup()
        # Port 0 on "localhost" would give IPv4 and IPv6 two different free ports.
        bind = "127.0.0.1" if self.port == 0 and self.host == "localhost" else self.host
        site = web.TCPSite(runner, bind, self.port)
        await site.start()
        self._runner = runner
        if self.fixed_public_url is None:
            address = runner.addresses[0]
            port = int(address[1])
            self.port = port
            self.public_url = f"http://{self.host}:{port}"
        return self.public_url

    async def close(self) -> None:
        """End the open session (as a closed tab would) and stop listening."""
        session = self.session
        if session is not None:
            await session.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _number(value: str | None, default: int) -> int:
    try:
        return max(int(value or default), 1)
    except ValueError:
        return default


def child_command(
    *, labs: str | None, context: str | None, lab: str | None, python: str = sys.executable
) -> list[str]:
    """The hidden entry point a session runs: the TUI, told it is served."""
    argv = [python, "-m", "labrunner"]
    if labs:
        argv += ["--labs", str(Path(labs).resolve())]
    argv.append("served")
    if context:
        argv += ["--context", context]
    if lab:
        argv.append(lab)
    return argv


def serve(
    argv: Sequence[str],
    *,
    host: str,
    port: int,
    public_url: str | None,
    token: str | None,
    announce: Callable[[str], None],
) -> None:
    """Run the server until SIGINT or SIGTERM; ``announce`` gets the URL (token included)."""
    server = TokenServer(
        argv, host=host, port=port, public_url=public_url, token=token, reap_adopted=True
    )
    become_subreaper()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(signum, stop.set)
        await server.start()
        announce(server.url)
        try:
            await stop.wait()
        finally:
            await server.close()

    asyncio.run(main())
