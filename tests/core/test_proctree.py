"""The process table: the part below this process, read from the kernel's children lists."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from labrunner import proctree
from labrunner.shell import Shell
from labrunner.testing.waiting import wait_for


def _pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text else None


@pytest.fixture
def family(tmp_path: Path) -> Iterator[dict[str, int]]:
    """A lab shell with a background child and a detached orphan this process adopted."""
    assert proctree.become_subreaper()
    os.mkfifo(tmp_path / "gate")
    shell = Shell(env=dict(os.environ), cwd=tmp_path)
    shell.start()
    try:
        shell.run("sleep 300 & echo $! > child.pid", timeout=10)
        shell.run("setsid -f bash -c 'echo $$ > orphan.pid; read < gate'", timeout=10)
        assert wait_for(lambda: _pid(tmp_path / "orphan.pid") is not None, 20)
        orphan = _pid(tmp_path / "orphan.pid")
        child = _pid(tmp_path / "child.pid")
        assert orphan is not None and child is not None

        def adopted() -> bool:
            info = proctree.read_stat(orphan)
            return info is not None and info.ppid == os.getpid()

        assert wait_for(adopted, 20), "the orphan was not re-parented to this process"
        assert shell._child is not None
        yield {"bash": shell._child.pid, "child": child, "orphan": orphan}
    finally:
        shell.close()


def test_the_table_below_this_process_holds_its_shell_and_what_that_left(
    family: dict[str, int],
) -> None:
    me = os.getpid()
    below = proctree.table(below=me)
    assert {me, *family.values()} <= set(below)
    assert os.getppid() not in below and 1 not in below
    assert below[family["orphan"]].ppid == me
    assert below[family["child"]].ppid == family["bash"]


def test_own_table_is_the_part_below_a_subreaper(family: dict[str, int]) -> None:
    own = proctree.own_table()
    assert set(family.values()) <= set(own)
    assert os.getppid() not in own


def test_own_table_is_the_whole_table_for_a_process_that_is_no_subreaper(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # an orphan of a process that is no subreaper goes to init: it may be anywhere
    monkeypatch.setattr(proctree, "_subreaper", False)
    assert os.getppid() in proctree.own_table()


def test_without_children_lists_the_table_below_is_the_whole_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(proctree, "_children_lists", False)
    assert {os.getppid(), os.getpid()} <= set(proctree.table(below=os.getpid()))


def test_ending_what_this_process_started_reaches_the_detached_orphan(
    family: dict[str, int],
) -> None:
    orphan = family["orphan"]
    killed = proctree.end(lambda procs: {orphan} & set(procs), mine=True)
    assert killed == 1
    assert wait_for(lambda: proctree.read_stat(orphan) is None, 20), "killed but not reaped"
    assert proctree.session_pids(orphan, mine=True) == []
