"""A lab step whose helpers detach from the lab shell five ways, for leftover-process tests.

Each helper writes its own pid to ``pids`` in the workshop root and sleeps:
``setsid … &``, ``setsid -f``, ``nohup … &``, ``… & disown`` and a double
fork (``bash -c '… &'``) — every way a command can put a process out of reach
of its shell's session. Tests run the step through the real CLI or TUI, end
labrunner one way or another, and check that none of the pids is left.
"""

from __future__ import annotations

from pathlib import Path

START_STEP = """\
  - id: start
    title: Start five helpers five ways
    run:
      - |
        setsid bash -c 'echo $$ >> pids; exec sleep 1001' &
      - |
        setsid -f bash -c 'echo $$ >> pids; exec sleep 1002'
      - |
        nohup bash -c 'echo $$ >> pids; exec sleep 1003' >/dev/null 2>&1 &
      - |
        bash -c 'echo $$ >> pids; exec sleep 1004' & disown
      - |
        bash -c "bash -c 'echo \\$\\$ >> pids; exec sleep 1005' &"
    check:
      - command: {run: 'test "$(wc -l < pids)" -ge 5'}
    within: 60s
"""
"""The step, as YAML list items under ``steps:``."""

LAB = f"""\
apiVersion: labrunner/v1
id: detach
title: Helpers that detach from the lab shell
steps:
{START_STEP}"""
"""A lab of just that step."""


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :][:1] not in (b"Z", b"X")


def pids_in(path: Path) -> list[int]:
    """The pids the helpers wrote to ``path`` so far."""
    return [int(x) for x in path.read_text().split()] if path.exists() else []
