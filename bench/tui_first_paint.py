"""Time from starting ``labrunner`` to its first screen (target: under 1 s).

Two figures. The first is what a learner feels: a real ``labrunner`` process
in a 100×30 tmux pane, timed from the moment tmux starts it until the
workshop's first lab title is on screen (the pane is polled every few
milliseconds), median of several runs. The second splits the same path up
inside one fresh interpreter: imports, loading the workshop, building the
app, and the app's ``on_ready`` (first screen composed and painted, headless).

Both run the bundled workshop with an isolated HOME, state directory and no
kubeconfig, so the doctor's cluster checks answer quickly and nothing of the
machine's own setup leaks in.

    python bench/tui_first_paint.py [--runs N] [--labs DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _common import REPO, Figure, report

PANE = ("-x", "100", "-y", "30")
POLL = 0.005
TIMEOUT = 20.0

IN_PROCESS = r"""
import asyncio, json, sys, time
t0 = time.perf_counter()
from pathlib import Path
from labrunner.lab.loader import load_workshop
from labrunner.verify.registry import builtin_registry
import labrunner.tui.app as tui
t_import = time.perf_counter()
workshop = load_workshop(Path(sys.argv[1]), builtin_registry()).workshop
t_load = time.perf_counter()
app = tui.make_app(workshop)
t_build = time.perf_counter()
marks = {}
original = tui.LabrunnerApp.on_mount
def on_mount(self):
    marks.setdefault("mount", time.perf_counter())
    original(self)
tui.LabrunnerApp.on_mount = on_mount
async def main():
    async with app.run_test(size=(100, 30)) as pilot:
        while not app.ready.is_set():
            await asyncio.sleep(0.001)
        marks["ready"] = time.perf_counter()
        await pilot.press("q")
asyncio.run(main())
print(json.dumps({
    "import": t_import - t0, "load": t_load - t_import, "build": t_build - t_load,
    "mount": marks["mount"] - t0, "ready": marks["ready"] - t0,
}))
"""


def isolated_env(home: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HOME=home,
        LABRUNNER_STATE_DIR=os.path.join(home, "state"),
        KUBECONFIG=os.path.join(home, "no-kubeconfig"),
        XDG_CONFIG_HOME=os.path.join(home, ".config"),
        XDG_CACHE_HOME=os.path.join(home, ".cache"),
        TERM="xterm-256color",
        LANG="C.UTF-8",
    )
    env.pop("NO_COLOR", None)
    env.pop("LABRUNNER_LABS", None)
    return env


def first_title(labs: str) -> str:
    """The title of the workshop's first lab: the text that proves the home screen is up."""
    from labrunner.lab.loader import load_workshop
    from labrunner.verify.registry import builtin_registry

    workshop = load_workshop(Path(labs), builtin_registry()).workshop
    if workshop is None or not workshop.labs:
        raise SystemExit(f"no labs in {labs}")
    return workshop.labs[0].title[:40]


def tmux_run(labs: str, text: str, env: dict[str, str]) -> float:
    """Seconds from tmux starting labrunner until ``text`` is on screen."""
    socket = f"labrunner-bench-{uuid.uuid4().hex[:10]}"
    tmux = ["tmux", "-L", socket, "-f", os.devnull]
    command = f"{sys.executable} -m labrunner --labs {labs}"
    try:
        started = time.perf_counter()
        subprocess.run([*tmux, "new-session", "-d", *PANE, "-s", "b", command], env=env, check=True)
        while time.perf_counter() - started < TIMEOUT:
            shown = subprocess.run(
                [*tmux, "capture-pane", "-p", "-t", "b"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            if text in shown:
                return time.perf_counter() - started
            time.sleep(POLL)
        raise SystemExit(f"the home screen did not appear within {TIMEOUT:.0f}s")
    finally:
        subprocess.run([*tmux, "kill-server"], env=env, capture_output=True, check=False)


def in_process(labs: str, env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", IN_PROCESS, labs],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=str(REPO),
    ).stdout
    return {k: float(v) for k, v in json.loads(out.strip().splitlines()[-1]).items()}


def run(runs: int = 7, labs: str | None = None) -> list[Figure]:
    """Measure both figures."""
    if shutil.which("tmux") is None:
        raise SystemExit("tmux is needed for the real-terminal figure")
    labs = labs or str(REPO / "labs")
    text = first_title(labs)
    with tempfile.TemporaryDirectory() as home:
        env = isolated_env(home)
        tmux_run(labs, text, env)  # warm the file cache, as a second start would be
        painted = [tmux_run(labs, text, env) for _ in range(runs)]
        inside = [in_process(labs, env) for _ in range(runs)]
    med = statistics.median
    return [
        Figure(
            "first paint in tmux (median)",
            med(painted) * 1000,
            "ms",
            "< 1000 ms",
            note=f"min {min(painted) * 1000:.0f}, max {max(painted) * 1000:.0f}, {runs} runs",
        ),
        Figure("in-process: imports", med(x["import"] for x in inside) * 1000, "ms"),
        Figure("in-process: load workshop", med(x["load"] for x in inside) * 1000, "ms"),
        Figure("in-process: build app", med(x["build"] for x in inside) * 1000, "ms"),
        Figure("in-process: to on_mount", med(x["mount"] for x in inside) * 1000, "ms"),
        Figure(
            "in-process: to on_ready (first screen)",
            med(x["ready"] for x in inside) * 1000,
            "ms",
            "< 1000 ms",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--labs", help="a workshop's labs directory (default: the bundled one)")
    args = parser.parse_args()
    report(run(args.runs, args.labs))


if __name__ == "__main__":
    main()
