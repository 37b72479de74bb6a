"""The cluster-free lab ``mesh-security-basics``, run for real: bash, openssl, curl, mTLS.

The lab is copied into a throwaway workshop so its work directory and the
payments server never touch the checkout; a free port replaces the default
18443 (the lab reads ``PAYMENTS_PORT`` from the environment when it is set),
and a ``labrunner`` shim on PATH runs this checkout's code.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labrunner.certs import mtls_server
from labrunner.lab.loader import check_lab_file, load_workshop
from labrunner.verify.registry import builtin_registry

REPO = Path(__file__).resolve().parents[2]
LAB_FILE = REPO / "labs" / "00-mesh-security-basics.yaml"
STEPS = [
    "mesh-ca",
    "workload-certs",
    "start-payments",
    "no-client-cert",
    "wrong-ca",
    "frontend-calls",
    "inspect-san",
    "expiry",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def workshop(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A one-lab workshop and the environment to run it with."""
    root = tmp_path / "ws"
    (root / "labs").mkdir(parents=True)
    shutil.copy(LAB_FILE, root / "labs" / LAB_FILE.name)
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "labrunner").write_text(
        f'#!/bin/sh\nPYTHONPATH="{REPO}${{PYTHONPATH:+:$PYTHONPATH}}" exec "{sys.executable}"'
        ' -m labrunner "$@"\n'
    )
    (shim / "labrunner").chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{shim}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(REPO)
    env["PAYMENTS_PORT"] = str(free_port())
    env.pop("LAB_WORK", None)
    yield root, env
    mtls_server.stop(root / ".lab-work" / "mesh-security" / "payments.pid")


def test_lab_file_is_clean() -> None:
    lab, problems = check_lab_file(LAB_FILE, builtin_registry())
    assert problems == []
    assert lab is not None
    assert lab.id == "mesh-security-basics" and lab.requires == ()
    assert "cluster" not in lab.needs
    assert [s.id for s in lab.steps] == STEPS
    for step in lab.steps:
        assert step.body.strip() and step.check and step.hints, step.id


def run_engine(root: Path, env: dict[str, str], **options: Any) -> tuple[Any, list[Any]]:
    from labrunner.engine import events as ev
    from labrunner.engine.runner import Engine, RunOptions
    from labrunner.state import ProgressStore
    from labrunner.verify.registry import builtin_registry

    registry = builtin_registry()
    loaded = load_workshop(root / "labs", registry)
    assert loaded.workshop is not None, loaded.problems
    seen: list[Any] = []
    engine = Engine(
        loaded.workshop,
        registry=registry,
        store=ProgressStore.memory(),
        emit=seen.append,
        options=RunOptions(save=False, **options),
        base_env=env,
    )
    summary = engine.verify(loaded.workshop.labs)
    checks = [e for e in seen if isinstance(e, ev.CheckResult)]
    return summary, checks


def test_the_whole_lab_passes_and_cleans_up(workshop: tuple[Path, dict[str, str]]) -> None:
    root, env = workshop
    summary, checks = run_engine(root, env, cleanup=True)
    results = summary.labs["mesh-security-basics"]
    assert [(r.step_id, r.status.value) for r in results] == [(s, "passed") for s in STEPS], [
        (r.step_id, r.message) for r in results
    ]
    assert all(c.status.value == "passed" for c in checks)
    messages = " | ".join(c.message for c in checks)
    assert "the TLS handshake failed (tlsv13 alert certificate required)" in messages
    assert "client.spiffe_id = spiffe://cluster.local/ns/shop/sa/frontend" in messages
    # cleanup stopped the server and removed the work directory
    assert not (root / ".lab-work" / "mesh-security").exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(env["PAYMENTS_PORT"])), timeout=2).close()


def test_a_skipped_step_fails_with_what_is_missing(workshop: tuple[Path, dict[str, str]]) -> None:
    root, env = workshop
    summary, _checks = run_engine(root, env, only_step="no-client-cert")
    (result,) = summary.labs["mesh-security-basics"]
    assert result.status.value == "failed"
    assert "ca.crt does not exist" in result.message


def test_labrunner_verify_end_to_end(workshop: tuple[Path, dict[str, str]]) -> None:
    root, env = workshop
    lab = root / "labs" / LAB_FILE.name
    done = subprocess.run(
        [sys.executable, "-m", "labrunner", "verify", str(lab), "--cleanup"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "8 passed" in done.stdout or "8 steps: 8 passed" in done.stdout, done.stdout


def test_labrunner_verify_names_what_a_skipped_step_left_missing(
    workshop: tuple[Path, dict[str, str]],
) -> None:
    root, env = workshop
    lab = root / "labs" / LAB_FILE.name
    skipped = subprocess.run(
        [sys.executable, "-m", "labrunner", "verify", str(lab), "--only", "no-client-cert"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert skipped.returncode == 1, skipped.stdout + skipped.stderr
    assert "CA file .lab-work/mesh-security/ca.crt does not exist" in skipped.stdout


def test_verify_then_from_frontend_calls_in_a_new_process(
    workshop: tuple[Path, dict[str, str]],
) -> None:
    """The payments server died with the first run's shell; the second brings it back."""
    root, env = workshop
    lab = root / "labs" / LAB_FILE.name
    port = int(env["PAYMENTS_PORT"])
    pidfile = root / ".lab-work" / "mesh-security" / "payments.pid"

    def verify(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "labrunner", "verify", str(lab), *args],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )

    first = verify()
    assert first.returncode == 0, first.stdout + first.stderr
    assert mtls_server.running_pid(pidfile) is None, "the step's server outlived its run"
    second = verify("--from", "frontend-calls")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "3 steps: 3 passed" in second.stdout
    assert "~ service payments (mTLS server): running (started by labrunner)" in second.stdout
    assert "Traceback" not in second.stderr
    assert mtls_server.running_pid(pidfile) is None, "the service outlived the run"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
