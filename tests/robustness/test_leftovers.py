"""Nothing a lab starts survives labrunner, however it detached and however labrunner ends.

Every test runs the real ``labrunner verify`` in a subprocess on a lab whose
first step starts five helpers five ways — ``setsid … &``, ``setsid -f``,
``nohup … &``, ``… & disown`` and a double fork (``bash -c '… &'``) — each
writing its own pid, and whose second step holds at a FIFO until the test
releases it. labrunner then ends normally, by a command's timeout, by
SIGINT/SIGTERM/SIGHUP, or by SIGKILL; in the last case the *next* labrunner
start must reap what the dead one left (processes and its private folder,
the shell's saved environment included) without touching a labrunner that
is still running beside it. Each test gets its own TMPDIR, so it sees only
the private folders of the runs it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from labrunner.testing import detaching
from labrunner.testing.detaching import alive, pids_in
from labrunner.testing.waiting import wait_for

BOUND = 60.0
"""Generous: these tests share two cores with other suites."""

DETACH_LAB = (
    detaching.LAB
    + """\
  - id: hold
    title: Hold until the test says so
    run:
      - cmd: touch holding; cat gate.fifo
        timeout: 300s
    check:
      - file: {path: holding}
"""
)

QUICK_LAB = """\
apiVersion: labrunner/v1
id: quick
title: One trivial step
steps:
  - id: only
    title: Nothing to it
    run: ['true']
    check:
      - env: {name: HOME}
"""


@dataclass
class Workshop:
    """A scratch workshop running one lab, with its pids file and FIFO."""

    root: Path
    env: dict[str, str]

    @property
    def pids(self) -> list[int]:
        return pids_in(self.root / "pids")

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        with (self.root / "out.log").open("wb") as out, (self.root / "err.log").open("wb") as err:
            return subprocess.Popen(
                [sys.executable, "-m", "labrunner", "--labs", str(self.root / "labs"), *args],
                cwd=self.root,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )

    def run(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        proc = self.start(*args)
        proc.wait(BOUND)
        return subprocess.CompletedProcess(proc.args, proc.returncode)

    def holding(self) -> bool:
        return len(self.pids) >= 5 and (self.root / "holding").exists()

    def release(self) -> None:
        fd = os.open(self.root / "gate.fifo", os.O_WRONLY)
        os.close(fd)

    def log(self) -> str:
        return (self.root / "out.log").read_text() + (self.root / "err.log").read_text()


MakeWorkshop = Callable[..., Workshop]


def private_dirs(tmpdir: Path) -> list[Path]:
    """labrunner's private folders in ``tmpdir``."""
    return sorted(p for p in tmpdir.iterdir() if p.name.startswith("labrunner-"))


@pytest.fixture
def tmpdir_env(tmp_path: Path) -> dict[str, str]:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = dict(os.environ)
    env.pop("COLUMNS", None)
    env["TMPDIR"] = str(tmpdir)
    return env


@pytest.fixture
def make_workshop(tmp_path: Path, tmpdir_env: dict[str, str]) -> Iterator[MakeWorkshop]:
    made: list[Workshop] = []

    def make(name: str, lab: str = DETACH_LAB) -> Workshop:
        root = tmp_path / name
        (root / "labs").mkdir(parents=True)
        (root / "labs" / "lab.yaml").write_text(lab)
        os.mkfifo(root / "gate.fifo")
        workshop = Workshop(root, dict(tmpdir_env))
        made.append(workshop)
        return workshop

    yield make
    for workshop in made:  # a failed test must not leave its helpers behind
        for pid in workshop.pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def _gone(pids: list[int]) -> bool:
    return not any(alive(p) for p in pids)


def test_nothing_detached_survives_a_normal_end(
    make_workshop: MakeWorkshop, tmp_path: Path
) -> None:
    ws = make_workshop("normal", detaching.LAB)
    assert ws.run("verify").returncode == 0, ws.log()
    assert len(ws.pids) == 5
    assert wait_for(lambda: _gone(ws.pids), BOUND), [p for p in ws.pids if alive(p)]
    assert private_dirs(tmp_path / "tmp") == []


def test_nothing_detached_survives_a_timeout(make_workshop: MakeWorkshop, tmp_path: Path) -> None:
    # the command that times out waits on a helper in a session of its own
    lab = DETACH_LAB.replace("timeout: 300s", "timeout: 1s").replace(
        "touch holding; cat gate.fifo",
        "touch holding; setsid -w bash -c 'echo $$ >> pids; exec sleep 1006'",
    )
    ws = make_workshop("timeout", lab)
    assert ws.run("verify").returncode == 1, ws.log()
    assert "command timed out after 1.0s: touch holding" in ws.log()
    assert len(ws.pids) == 6
    assert wait_for(lambda: _gone(ws.pids), BOUND), [p for p in ws.pids if alive(p)]
    assert private_dirs(tmp_path / "tmp") == []


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
    ids=["SIGINT", "SIGTERM", "SIGHUP"],
)
def test_nothing_detached_survives_a_signal(
    make_workshop: MakeWorkshop, tmp_path: Path, signum: int, code: int
) -> None:
    ws = make_workshop("signal")
    proc = ws.start("verify")
    try:
        assert wait_for(ws.holding, BOUND), ws.log()
        pids = ws.pids
        assert all(alive(p) for p in pids)
        proc.send_signal(signum)
        assert proc.wait(BOUND) == code, ws.log()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert wait_for(lambda: _gone(pids), BOUND), [p for p in pids if alive(p)]
    assert private_dirs(tmp_path / "tmp") == []
    if signum == signal.SIGINT:
        assert "CANCEL" in ws.log()


def test_after_sigkill_the_next_start_reaps_it_and_a_live_run_loses_nothing(
    make_workshop: MakeWorkshop, tmp_path: Path
) -> None:
    tmpdir = tmp_path / "tmp"
    live = make_workshop("live")
    doomed = make_workshop("doomed")
    live_proc = live.start("verify")
    doomed_proc = doomed.start("verify")
    try:
        assert wait_for(live.holding, BOUND), live.log()
        assert wait_for(doomed.holding, BOUND), doomed.log()
        dirs = {p.name: p for p in private_dirs(tmpdir)}
        owners = {int((p / "owner").read_text().split()[0]): p for p in dirs.values()}
        live_dir, doomed_dir = owners[live_proc.pid], owners[doomed_proc.pid]
        shell_files = list(doomed_dir.glob("shell-*/state"))
        assert shell_files, "the doomed run's shell keeps its state in the run's folder"

        doomed_proc.kill()  # SIGKILL: labrunner cannot clean up anything
        doomed_proc.wait(BOUND)
        assert all(alive(p) for p in doomed.pids), "SIGKILL alone should leave them running"
        assert doomed_dir.exists()

        quick = make_workshop("quick", QUICK_LAB)
        assert quick.run("verify").returncode == 0, quick.log()

        assert wait_for(lambda: _gone(doomed.pids), BOUND), [p for p in doomed.pids if alive(p)]
        assert not doomed_dir.exists(), "the dead run's folder (the shell's env file) is left"
        assert all(alive(p) for p in live.pids), "the live run lost a helper"
        assert live_dir.exists() and list(live_dir.glob("shell-*/state"))
        assert live_proc.poll() is None

        live.release()
        assert live_proc.wait(BOUND) == 0, live.log()
    finally:
        for proc in (live_proc, doomed_proc):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert wait_for(lambda: _gone(live.pids), BOUND), [p for p in live.pids if alive(p)]
    assert private_dirs(tmpdir) == []
