"""Helpers for the core suite: example labs, the CLI in a subprocess, waiting on things.

Tests here use real bash and real processes. They never sleep to wait for
something: they wait on events, on process exit, or poll a condition with a
bounded helper (``wait_for``) that returns as soon as it holds.
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from labrunner.shell import Shell
from labrunner.testing.detaching import alive as pid_alive

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE / "labs"


def read_pids(path: Path) -> list[int]:
    """PIDs written one per line into ``path``."""
    return [int(x) for x in path.read_text().split()]


def kill_quietly(pids: list[int]) -> None:
    """Clean-up for a failed test: kill PIDs this test's lab started."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a CLI subprocess: the test's isolated one, plus ``extra``."""
    env = dict(os.environ)
    env.pop("COLUMNS", None)
    env.update(extra)
    return env


def run_cli(
    *args: str | os.PathLike[str],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """``labrunner ARGS`` in a fresh interpreter, output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "labrunner", *map(str, args)],
        cwd=cwd,
        env=env if env is not None else cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


RUN_MAIN = """
import sys
sys.argv = ["labrunner", *sys.argv[1:]]
from labrunner.launch import main  # the console script's entry point

try:
    main()
except SystemExit:
    pass
"""
"""The head of a probe: the console script's ``main`` on the probe's arguments, in-process."""


def run_probe(code: str, argv: Sequence[str], cwd: Path, tag: str, **env: str) -> tuple[Any, str]:
    """Run the probe ``code`` with ``argv`` in a fresh interpreter: the JSON it printed after
    ``tag`` on its last line, and everything it printed before that."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        env=cli_env(**env),
        timeout=120,
        cwd=cwd,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    before, found, data = proc.stdout.rpartition(tag)
    assert found and "\n" not in data.strip(), proc.stdout + proc.stderr
    return json.loads(data), before


def run_on_terminal(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run ``argv`` with stdout and stderr on a pseudo-terminal; (exit code, all it wrote)."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        argv, stdout=terminal, stderr=terminal, stdin=subprocess.DEVNULL, env=env, cwd=cwd
    )
    os.close(terminal)
    chunks = []
    while True:
        try:
            data = os.read(controller, 65536)
        except OSError:  # EIO once the child side is closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(controller)
    return proc.wait(60), b"".join(chunks).decode("utf-8", "replace")


def assert_clean(proc: subprocess.CompletedProcess[str], code: int) -> None:
    """The CLI exited with ``code`` and without a traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout, proc.stdout
    assert proc.returncode == code, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


def install_labs(dest: Path, *names: str) -> Path:
    """Copy example labs (``tests/core/labs/<name>.yaml``) into ``dest/labs``; returns it.

    Commands of a workshop in ``X/labs`` run in ``X``, so every test gets its
    own scratch workshop and the checkout stays clean.
    """
    labs = dest / "labs"
    labs.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(EXAMPLES / f"{name}.yaml", labs / f"{name}.yaml")
    return labs


@pytest.fixture
def workshop(tmp_path: Path) -> Callable[..., Path]:
    """``workshop("lab-a", "lab-b")`` → a scratch labs directory holding those example labs."""

    def make(*names: str) -> Path:
        return install_labs(tmp_path / "ws", *names)

    return make


@pytest.fixture
def lab_file(tmp_path: Path) -> Callable[[str, str], Path]:
    """``lab_file("name.yaml", text)`` → a lab file in a scratch ``labs/`` directory."""
    labs = tmp_path / "ws" / "labs"

    def make(name: str, text: str) -> Path:
        labs.mkdir(parents=True, exist_ok=True)
        path = labs / name
        path.write_text(text, encoding="utf-8")
        return path

    return make


@pytest.fixture
def restricted_path(tmp_path: Path) -> str:
    """A PATH with only the basic tools the example labs use (no kind, helm, kubectl...)."""
    bin_dir = tmp_path / "restricted-bin"
    bin_dir.mkdir()
    for tool in ("bash", "env", "cat", "touch", "mkdir", "rm", "sleep", "ls", "head", "tr"):
        found = shutil.which(tool)
        assert found, f"{tool} is needed by the suite"
        (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Shell]:
    """A started lab shell in ``tmp_path``, closed after the test."""
    sh = Shell(env=dict(os.environ), cwd=tmp_path)
    sh.start()
    yield sh
    sh.close()


@pytest.fixture
def reaper() -> Iterator[list[int]]:
    """PIDs a test records here are killed afterwards if they are still alive."""
    pids: list[int] = []
    yield pids
    kill_quietly([p for p in pids if pid_alive(p)])
