"""``labrunner mtls-server``: a background HTTPS server that requires client certificates."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from labrunner import procs
from labrunner.certs import mtls_server

from .conftest import Certs

REPO = Path(__file__).resolve().parents[2]
# The click commands in a bare group, as the main CLI registers them.
WRAPPER = (
    "import sys, click\n"
    "from labrunner.certs.cli import COMMANDS\n"
    "group = click.Group('labrunner')\n"
    "for command in COMMANDS: group.add_command(command)\n"
    "group(sys.argv[1:])\n"
)


def labrunner(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-c", WRAPPER, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def pidfile(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "work" / "payments.pid"
    yield path
    mtls_server.stop(path)  # never leave a server behind, whatever the test did


def start_args(certs: Certs, pidfile: Path, port: int = 0) -> list[str]:
    return [
        "mtls-server",
        "start",
        "--port",
        str(port),
        "--cert",
        str(certs.crt("payments")),
        "--key",
        str(certs.key("payments")),
        "--client-ca",
        str(certs.crt("mesh-ca")),
        "--pidfile",
        str(pidfile),
    ]


def port_of(output: str) -> int:
    # "payments listening on https://127.0.0.1:PORT (pid N, pidfile F)"
    return int(output.split("https://127.0.0.1:")[1].split(" ", maxsplit=1)[0])


def curl(port: int, certs: Certs, *, client: str | None) -> subprocess.CompletedProcess[str]:
    argv = ["curl", "-sS", "--cacert", str(certs.crt("mesh-ca")), f"https://localhost:{port}/who"]
    if client:
        argv += ["--cert", str(certs.crt(client)), "--key", str(certs.key(client))]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def test_start_serve_stop(tmp_path: Path, certs: Certs, pidfile: Path) -> None:
    started = labrunner(*start_args(certs, pidfile), cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    port = port_of(started.stdout)
    # Ready when start returns: connect at once, no waiting.
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    pid = int(pidfile.read_text())
    # Same session and process group as the caller: a shell teardown can reap it.
    assert os.getsid(pid) == os.getsid(0)
    assert os.getpgid(pid) == os.getpgrp()

    answer = curl(port, certs, client="frontend")
    assert answer.returncode == 0, answer.stderr
    doc = json.loads(answer.stdout)
    assert doc["client"]["spiffe_id"] == "spiffe://cluster.local/ns/shop/sa/frontend"
    assert doc["client"]["issuer"] == "O=cluster.local" and doc["client"]["subject"] == ""
    assert doc["server"] == "payments" and doc["path"] == "/who"
    assert doc["message"] == "hello spiffe://cluster.local/ns/shop/sa/frontend, this is payments"

    refused = curl(port, certs, client=None)
    assert refused.returncode == 56 and "certificate required" in refused.stderr
    forged = curl(port, certs, client="rogue")
    assert forged.returncode != 0 and "unknown ca" in forged.stderr
    log = pidfile.with_suffix(".log").read_text()
    assert "rejected" in log and '"GET /who HTTP/1.1" 200' in log

    status = labrunner("mtls-server", "status", "--pidfile", str(pidfile), cwd=tmp_path)
    assert status.returncode == 0 and f"running (pid {pid})" in status.stdout
    stopped = labrunner("mtls-server", "stop", "--pidfile", str(pidfile), cwd=tmp_path)
    assert stopped.returncode == 0 and stopped.stdout.strip() == f"stopped pid {pid}"
    assert not pidfile.exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    again = labrunner("mtls-server", "stop", "--pidfile", str(pidfile), cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.strip() == "no server was running"
    status = labrunner("mtls-server", "status", "--pidfile", str(pidfile), cwd=tmp_path)
    assert status.returncode == 1 and status.stdout.strip() == "not running"


def test_start_returns_while_the_server_keeps_running_and_pipes_close(
    tmp_path: Path, certs: Certs, pidfile: Path
) -> None:
    # The caller (the lab shell, a `command` check) reads stdout/stderr to the
    # end; the background server must not hold those pipes open.
    proc = subprocess.Popen(
        [sys.executable, "-c", WRAPPER, *start_args(certs, pidfile)],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = proc.communicate(timeout=30)  # returns at EOF on both pipes
    assert proc.returncode == 0, err
    assert b"payments listening on https://127.0.0.1:" in out
    assert mtls_server.running_pid(pidfile) is not None


def test_a_caller_that_kills_its_process_group_takes_the_server_along(
    tmp_path: Path, certs: Certs, pidfile: Path
) -> None:
    # procs.run (what checks use) kills the whole process group of what it
    # started: the server lives in its caller's group, so it goes too.
    result = procs.run(
        [sys.executable, "-c", WRAPPER, *start_args(certs, pidfile)],
        timeout=30,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        cwd=tmp_path,
    )
    assert result.ok, result.stderr
    pid = int(pidfile.read_text())
    assert mtls_server._wait_gone(pid, 10)


def test_restart_replaces_the_running_server(tmp_path: Path, certs: Certs, pidfile: Path) -> None:
    first = labrunner(*start_args(certs, pidfile), cwd=tmp_path)
    old_pid = int(pidfile.read_text())
    second = labrunner(*start_args(certs, pidfile), cwd=tmp_path)
    assert first.returncode == second.returncode == 0
    new_pid = int(pidfile.read_text())
    assert new_pid != old_pid
    assert mtls_server.running_pid(pidfile) == new_pid
    assert not mtls_server._is_our_server(old_pid)


def test_port_in_use_and_missing_files_exit_3(tmp_path: Path, certs: Certs, pidfile: Path) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        port = busy.getsockname()[1]
        taken = labrunner(*start_args(certs, pidfile, port), cwd=tmp_path)
    finally:
        busy.close()
    assert taken.returncode == 3
    assert "the server did not start" in taken.stderr and "in use" in taken.stderr
    assert not pidfile.exists()
    args = start_args(certs, pidfile)
    args[args.index("--cert") + 1] = str(tmp_path / "nope.crt")
    missing = labrunner(*args, cwd=tmp_path)
    assert missing.returncode == 3
    assert f"certificate file {tmp_path / 'nope.crt'} does not exist" in missing.stderr


def test_a_stale_pidfile_is_not_trusted(tmp_path: Path, pidfile: Path) -> None:
    pidfile.parent.mkdir(parents=True)
    pidfile.write_text(f"{os.getpid()}\n")  # alive, but not an mtls server
    assert mtls_server.running_pid(pidfile) is None
    assert mtls_server.stop(pidfile) is None
    assert not pidfile.exists()


def test_caller_identity_from_getpeercert() -> None:
    peer = {
        "subject": ((("organizationName", "shop"),), (("commonName", "frontend"),)),
        "issuer": ((("organizationName", "cluster.local"),),),
        "subjectAltName": (
            ("URI", "spiffe://cluster.local/ns/shop/sa/frontend"),
            ("DNS", "frontend"),
        ),
        "notAfter": "Nov 24 10:00:00 2026 GMT",
    }
    who = mtls_server.caller_identity(peer)
    assert who["spiffe_id"] == "spiffe://cluster.local/ns/shop/sa/frontend"
    assert who["subject"] == "CN=frontend, O=shop" and who["san_dns"] == ["frontend"]
    assert mtls_server.caller_identity(None) == {"spiffe_id": None, "subject": None}
