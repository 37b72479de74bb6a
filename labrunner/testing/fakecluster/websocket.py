"""WebSocket ``exec`` and ``portforward`` in the Kubernetes channel protocols.

kubectl 1.32 runs ``kubectl exec`` over a WebSocket speaking ``v5.channel.k8s.io`` (its SPDY
fallback is impractical in Python); the Python client's ``stream`` offers v5 and v4, and its
``portforward`` expects ``v4.channel.k8s.io`` framing: per requested port a data channel ``2i``
and an error channel ``2i+1``, each opened by a frame carrying the port as two little-endian
bytes. Every binary frame's first byte is the channel. Exec output comes from a test-supplied
handler; port-forward bytes are relayed to a TCP target the test registered.
"""

from __future__ import annotations

import base64
import hashlib
import json
import select
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
PORTFORWARD_PROTOCOLS = ("v4.channel.k8s.io", "v5.channel.k8s.io", "portforward.k8s.io")
OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA


@dataclass(frozen=True)
class ExecResult:
    """What a command "inside a pod" printed and how it exited."""

    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int = 0


ExecHandler = Callable[[str, str, str, list[str]], ExecResult]


def run_on_host(namespace: str, pod: str, container: str, command: list[str]) -> ExecResult:
    """An exec handler that runs the command on this machine (e.g. a real ``curl``)."""
    del namespace, pod, container
    try:
        done = subprocess.run(command, capture_output=True, timeout=120, check=False)
    except FileNotFoundError:
        message = f'exec: "{command[0] if command else ""}": executable file not found in $PATH'
        return ExecResult(stderr=(message + "\n").encode(), exit_code=127)
    except subprocess.TimeoutExpired as exc:
        return ExecResult(stdout=exc.stdout or b"", stderr=exc.stderr or b"", exit_code=124)
    return ExecResult(done.stdout, done.stderr, done.returncode)


def unconfigured_exec(namespace: str, pod: str, container: str, command: list[str]) -> ExecResult:
    """The default handler: fails loudly so a test notices it forgot to configure exec."""
    message = (
        f"fakecluster: no exec handler configured (exec in {namespace}/{pod} [{container}]: "
        f"{' '.join(command)}); set FakeCluster.exec_handler\n"
    )
    return ExecResult(stderr=message.encode(), exit_code=126)


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value for a client key."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()  # noqa: S324


def choose_protocol(offered: str, supported: tuple[str, ...]) -> str | None:
    """The first protocol of ``supported`` the client offered."""
    wanted = [p.strip() for p in offered.split(",") if p.strip()]
    for proto in supported:
        if proto in wanted:
            return proto
    return None


def encode_frame(payload: bytes, opcode: int = OP_BINARY) -> bytes:
    """A single unmasked server frame."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 1 << 16:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    return head + payload


class Connection:
    """A server-side WebSocket over an upgraded HTTP connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._write_lock = threading.Lock()
        self.closed = False

    def send(self, payload: bytes, opcode: int = OP_BINARY) -> None:
        """Send one frame (thread-safe)."""
        with self._write_lock:
            self.sock.sendall(encode_frame(payload, opcode))

    def send_channel(self, channel: int, data: bytes) -> None:
        """Send ``data`` on a channel (first payload byte)."""
        self.send(bytes([channel]) + data)

    def close(self, code: int = 1000) -> None:
        """Send a close frame once."""
        if self.closed:
            return
        self.closed = True
        try:
            self.send(struct.pack("!H", code), OP_CLOSE)
        except OSError:
            pass

    def _exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("websocket peer went away")
            data += chunk
        return data

    def recv(self) -> tuple[int, bytes]:
        """The next complete message ``(opcode, payload)``; control frames are returned as-is."""
        message = b""
        first_opcode = 0
        while True:
            b1, b2 = self._exact(2)
            fin, opcode = b1 & 0x80, b1 & 0x0F
            length = b2 & 0x7F
            if length == 126:
                length = struct.unpack("!H", self._exact(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", self._exact(8))[0]
            mask = self._exact(4) if b2 & 0x80 else b""
            payload = self._exact(length)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode >= 0x8:
                return opcode, payload
            if opcode != 0:
                first_opcode = opcode
            message += payload
            if fin:
                return first_opcode, message

    def readable(self, timeout: float) -> bool:
        """Whether a frame can be read without waiting longer than ``timeout``."""
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True
        ready, _, _ = select.select([self.sock], [], [], timeout)
        return bool(ready)


def exec_status(exit_code: int, command: list[str]) -> bytes:
    """The channel-3 status message (Success, or NonZeroExitCode with the code)."""
    if exit_code == 0:
        return json.dumps({"metadata": {}, "status": "Success"}).encode()
    return json.dumps(
        {
            "metadata": {},
            "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command "
            f"[{' '.join(command)}], exit code {exit_code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]},
        }
    ).encode()


READER_WAIT = 5.0
"""How long ``serve_exec`` waits for the client's reader to answer a ping before it streams."""


def await_reader(conn: Connection, timeout: float = READER_WAIT) -> bool:
    """Ping the client and wait for its pong: proof that its reading loop has started.

    client-go starts the loop that reads the connection and the code that registers
    its stdout/stderr/error streams side by side, right after the handshake; a frame
    that arrives before a stream is registered is dropped with "Unknown stream id N,
    discarding message" (stderr) and the command's output is lost. A real kubelet
    starts a process before it says anything, so this never shows against a real
    cluster; the fake answers at once, so it waits for the round trip instead. The
    reading loop is started after the registering code, which runs first on its own
    goroutine, so by the time the pong comes back the streams are there. A client
    that never answers pings only costs ``timeout``. Frames other than the pong
    (stdin a client sends unasked) are not needed by a finished command and dropped.
    """
    token = b"labrunner-fake-ready"
    try:
        conn.send(token, OP_PING)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0 and conn.readable(left):
            opcode, payload = conn.recv()
            if opcode == OP_PONG and payload == token:
                return True
            if opcode == OP_CLOSE:
                return False
            if opcode == OP_PING:
                conn.send(payload, OP_PONG)
    except (OSError, ConnectionError):
        return False
    return False


def serve_exec(conn: Connection, result: ExecResult, command: list[str]) -> None:
    """Stream a finished command's output and status, then close politely."""
    await_reader(conn)
    chunk = 32 * 1024
    for channel, data in ((1, result.stdout), (2, result.stderr)):
        for start in range(0, len(data), chunk):
            conn.send_channel(channel, data[start : start + chunk])
    conn.send_channel(3, exec_status(result.exit_code, command))
    conn.close()
    _drain_until_close(conn, timeout=2.0)


def _drain_until_close(conn: Connection, timeout: float) -> None:
    try:
        while conn.readable(timeout):
            opcode, _ = conn.recv()
            if opcode == OP_CLOSE:
                return
    except (OSError, ConnectionError):
        return


PortTarget = tuple[str, int] | None


def serve_portforward(
    conn: Connection,
    ports: list[int],
    resolve: Callable[[int], PortTarget],
    describe: Callable[[int], str],
    stop: threading.Event,
) -> None:
    """Relay each forwarded port's data channel to a TCP target until either side closes."""
    targets: dict[int, socket.socket] = {}
    for index, port in enumerate(ports):
        prefix = struct.pack("<H", port)
        conn.send_channel(2 * index, prefix)
        conn.send_channel(2 * index + 1, prefix)
    for index, port in enumerate(ports):
        target = resolve(port)
        error = ""
        if target is None:
            error = f"{describe(port)}: no port-forward target registered for port {port}"
        else:
            try:
                targets[index] = socket.create_connection(target, timeout=5)
                targets[index].settimeout(None)
            except OSError as exc:
                error = f"{describe(port)}: failed to connect to {target[0]}:{target[1]}: {exc}"
        if error:
            conn.send_channel(2 * index + 1, error.encode())
    open_targets = dict(targets)
    try:
        while open_targets and not stop.is_set():
            watched: list[Any] = [conn.sock, *open_targets.values()]
            if isinstance(conn.sock, ssl.SSLSocket) and conn.sock.pending():
                ready = [conn.sock]
            else:
                ready, _, _ = select.select(watched, [], [], 0.5)
            for sock in ready:
                if sock is conn.sock:
                    opcode, payload = conn.recv()
                    if opcode == OP_CLOSE:
                        return
                    if opcode == OP_PING:
                        conn.send(payload, OP_PONG)
                    elif opcode in (OP_BINARY, OP_TEXT) and payload:
                        channel, data = payload[0], payload[1:]
                        target_sock = open_targets.get(channel // 2)
                        if channel % 2 == 0 and target_sock is not None and data:
                            target_sock.sendall(data)
                    continue
                index = next(i for i, s in open_targets.items() if s is sock)
                try:
                    data = sock.recv(64 * 1024)
                except OSError:
                    data = b""
                if data:
                    conn.send_channel(2 * index, data)
                else:
                    del open_targets[index]
    except (OSError, ConnectionError):
        pass
    finally:
        for s in targets.values():
            try:
                s.close()
            except OSError:
                pass
        conn.close()
        _drain_until_close(conn, timeout=1.0)
