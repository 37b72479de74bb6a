"""SIGKILL at hundreds of random points never costs a learner a completed step.

``tests/core/test_store.py`` kills a single writer 50 times, each time right
after it confirmed a write. This goes further: 200 kills of two writers that
share one progress journal, at random moments calibrated to the length of one
write, so kills land inside ``record`` (while a line is appended, before its
sync, while the other writer holds the lock) as well as between writes. The
work happens in ``sigkill_driver.py``, in a fresh single-threaded
interpreter, because forking the pytest process is unsafe.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

DRIVER = Path(__file__).resolve().parent / "sigkill_driver.py"
ROUNDS = 100  # two kills per round


@pytest.mark.timeout(60)
def test_two_hundred_random_sigkills_lose_no_completed_step(tmp_path: Path) -> None:
    state = tmp_path / "state" / "progress" / "ws-sigkill"
    proc = subprocess.run(
        [sys.executable, str(DRIVER), str(state), str(ROUNDS), "20261123"],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["kills"] >= 200
    assert result["lost"] == [], f"completed steps lost: {result['lost'][:20]}"
    # A kill can cut a write short (at a page boundary): the next start may say that the
    # last, unconfirmed record was cut short. Anything else means damage it had to repair.
    damage = [w for w in result["warnings"] if "its last record was cut short" not in w]
    assert damage == [], "the store had to recover from a damaged file"
    assert result["corrupt"] == []
    assert result["valid_lines"]
    assert result["confirmed"] > ROUNDS, "too few writes completed to mean anything"
