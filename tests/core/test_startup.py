"""The cyclic collector waits for the start-up to end (labrunner.startup).

Each probe runs in a fresh interpreter: turning the collector off in the
test process itself would change every test that runs after this one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import RUN_MAIN, cli_env, run_probe

UNIT = r"""
import gc, json
from labrunner import startup
seen = {}
startup.resume()  # never paused: nothing to do
seen["resume alone"] = [gc.isenabled(), gc.get_freeze_count()]
startup.pause()
seen["paused"] = [gc.isenabled(), gc.get_freeze_count()]
kept = [[i] for i in range(1000)]  # start-up's objects, alive for the process's life
startup.resume()
seen["resumed"] = [gc.isenabled(), gc.get_freeze_count()]
startup.resume()
seen["again"] = [gc.isenabled(), gc.get_freeze_count()]
gc.disable()  # a host that keeps the collector off
startup.pause()
startup.resume()
seen["host off"] = [gc.isenabled()]
print(json.dumps(seen))
"""

PROBE = (
    r"""
import gc, sys
from labrunner import startup

at_resume = []
real = startup.resume


def resume():
    at_resume.append([gc.isenabled(), len(sys.modules)])
    real()


startup.resume = resume
"""
    + RUN_MAIN
    + r"""
import json

print("GC:" + json.dumps({
    "at_resume": at_resume,
    "enabled": gc.isenabled(),
    "frozen": gc.get_freeze_count(),
}))
"""
)


def probe(argv: list[str], cwd: Path) -> dict[str, object]:
    """Run the console script's ``main`` with ``argv``; the collector's state around it."""
    found, output = run_probe(PROBE, argv, cwd, "GC:")
    return {**found, "output": output}


def test_pause_then_resume_freezes_start_up_and_turns_the_collector_on() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", UNIT], capture_output=True, text=True, env=cli_env(), check=True
    )
    seen = json.loads(proc.stdout)
    assert seen["resume alone"] == [True, 0]  # nothing paused it: left alone, nothing frozen
    assert seen["paused"] == [False, 0]
    enabled, frozen = seen["resumed"]
    assert enabled is True and frozen >= 1000  # what start-up built is out of the collections
    assert seen["again"] == seen["resumed"]  # a second resume does nothing more
    assert seen["host off"] == [False]  # a collector the host turned off stays off


@pytest.mark.parametrize(
    ("args", "said"),
    [
        # a check before the step ran: its checks answer (and fail), no command runs
        (["check", "carry-over", "prepare"], "$COLOUR is not set"),
        (["verify", "carry-over", "--no-save"], "carry-over: PASS"),
        (["verify", "carry-over", "--no-save", "--repeat", "1"], "carry-over: PASS"),  # click
    ],
    ids=["check", "verify", "click"],
)
def test_commands_resume_the_collector_once_loaded(
    workshop: Callable[..., Path], args: list[str], said: str
) -> None:
    labs = workshop("carry-over")
    found = probe(["--labs", str(labs), *args], labs.parent)
    assert said in str(found["output"]), found
    at_resume = found["at_resume"]
    assert isinstance(at_resume, list) and at_resume, found
    # the collector was off until then, while the command's modules loaded
    assert at_resume[0][0] is False, found
    assert at_resume[0][1] > 100, found
    # and it runs for the command's work, with the start-up's objects frozen
    assert found["enabled"] is True, found
    assert isinstance(found["frozen"], int) and found["frozen"] > 10_000, found


def test_a_listing_ends_without_ever_collecting(workshop: Callable[..., Path]) -> None:
    # list loads, prints and ends: the collector is never needed (its own bounded work)
    labs = workshop("carry-over")
    found = probe(["--labs", str(labs), "list"], labs.parent)
    assert "carry-over" in str(found["output"]), found
    assert found["at_resume"] == [] and found["enabled"] is False, found
