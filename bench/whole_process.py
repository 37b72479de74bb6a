"""labrunner as a process, from start to exit, against the peer in the same run.

People and other systems start labrunner as a command: a lab author re-running
``labrunner check LAB STEP``, a CI job, another platform's check script. So
these figures time whole processes (``subprocess.run`` wall time), alternating
each labrunner command with its peer run after run, so a busy machine slows
both alike:

* ``labrunner --labs L check shop ready`` — one ``pods_ready`` check of 6 pods
  on a converged fake API server — against ``bench/peer/pods_ready_check.sh``
  (``kubectl get pods -o json | jq``, a Killercoda/Instruqt check script) with a
  warm kubectl discovery cache;
* ``labrunner --labs L verify shop`` (the same step: ``true``, then the check)
  against ``bench/peer/verify_runner.sh`` on the same step;
* ``labrunner --help``, ``list`` and ``validate`` of the bundled workshop
  against ``python -c pass``, the interpreter's own start-up.

The children get a private ``HOME`` and no ``LABRUNNER_STATE_DIR``: the state
directory (and its caches) are found the way a user's are.

Every command runs once before timing, so the compiled-lab cache, the cached
entry-point list, the module and dataclass code tables, Python's bytecode cache
and kubectl's discovery cache are warm, as they are from a learner's second
command on. ``PYTHONDONTWRITEBYTECODE`` is removed from the children's
environment: an installed labrunner always has its bytecode (pip compiles it);
one extra figure shows what ``check`` costs when labrunner's own modules have
none, as in a source checkout run with that variable.

The import-time profile of each command (``python -X importtime``, the
fastest of several runs per module) goes in the notes: the biggest packages,
and for ``check`` the total with the ``kubernetes`` client's imports left out.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import REPO, Figure, report
from check_latency import APPS, NAMESPACE, REPLICAS, seed

from labrunner.testing.fakecluster import FakeCluster

LABRUNNER = str(Path(sys.executable).parent / "labrunner")
PODS_CHECK = REPO / "bench" / "peer" / "pods_ready_check.sh"
RUNNER = REPO / "bench" / "peer" / "verify_runner.sh"
PODS = len(APPS) * REPLICAS
RUNS = 15
PROFILE_RUNS = 5

LAB = f"""\
apiVersion: labrunner/v1
id: shop
title: Shop
steps:
  - id: ready
    title: The shop's pods are ready
    run: ['true']
    check:
      - pods_ready: {{namespace: {NAMESPACE}, selector: bench=yes, count: {PODS}}}
"""


@dataclass(frozen=True)
class Command:
    """One command line to time, and the label it goes by."""

    label: str
    argv: tuple[str, ...]


@dataclass(frozen=True)
class Samples:
    """Wall times of one command, in milliseconds."""

    times: tuple[float, ...]

    @property
    def median(self) -> float:
        """The median."""
        return statistics.median(self.times)

    def spread(self) -> str:
        """``IQR a–b, min–max c–d ms``: how noisy the runs were."""
        ordered = sorted(self.times)
        quartiles = statistics.quantiles(ordered, n=4) if len(ordered) > 1 else ordered * 3
        return (
            f"IQR {quartiles[0]:.0f}–{quartiles[2]:.0f}, "
            f"min–max {ordered[0]:.0f}–{ordered[-1]:.0f} ms"
        )


def _environment(home: Path, kubeconfig: Path) -> dict[str, str]:
    """A user's environment in a private ``home``: no ``LABRUNNER_STATE_DIR``, so the state
    directory is found as a user's is (``~/.local/state/labrunner``, the XDG rule)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LABRUNNER_", "PYTHONDONT", "XDG_"))
    }
    env.update(
        HOME=str(home),
        KUBECONFIG=str(kubeconfig),
        KUBECACHEDIR=str(home / "kube-cache"),
        NO_COLOR="1",
    )
    return env


def _run(argv: Sequence[str], env: dict[str, str], cwd: Path) -> float:
    """Milliseconds from start to exit; the command must succeed."""
    started = time.perf_counter()
    proc = subprocess.run(
        list(argv),
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    elapsed = (time.perf_counter() - started) * 1000
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr[-500:]!r}")
    return elapsed


def alternate(
    group: Sequence[Command], env: dict[str, str], cwd: Path, runs: int
) -> dict[str, Samples]:
    """Run each command of ``group`` once to warm up, then ``runs`` rounds, interleaved."""
    for command in group:
        _run(command.argv, env, cwd)
    times: dict[str, list[float]] = {c.label: [] for c in group}
    for _ in range(runs):
        for command in group:
            times[command.label].append(_run(command.argv, env, cwd))
    return {label: Samples(tuple(values)) for label, values in times.items()}


# --------------------------------------------------------------------------- import profile

_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def import_profile(
    argv: Sequence[str], env: dict[str, str], cwd: Path, *, runs: int, exclude: str = ""
) -> tuple[float, list[tuple[str, float]]]:
    """Total import time (ms) and the biggest groups, fastest of ``runs`` per module.

    Groups are top-level packages, and labrunner's own by subpackage. With
    ``exclude``, that package and everything only it imported are left out.
    """
    best: dict[str, int] = {}
    # one untimed run first: a cache another command's run replaced is rebuilt there, and a
    # module imported only to rebuild it would otherwise count
    subprocess.run([sys.executable, *argv], env=env, cwd=cwd, capture_output=True, check=False)
    for _ in range(runs):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", *argv],  # argv: a script or -m, and args
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
        )
        entries = [
            (int(m.group(1)), len(m.group(3)), m.group(4))
            for m in map(_IMPORT_LINE.match, proc.stderr.splitlines())
            if m
        ]
        skip = [False] * len(entries)
        for i, (_, depth, name) in enumerate(entries):
            if exclude and name.split(".")[0] == exclude:
                skip[i] = True
                j = i - 1  # its imports are listed just before it, deeper
                while j >= 0 and entries[j][1] > depth:
                    skip[j] = True
                    j -= 1
        for (own, _, name), skipped in zip(entries, skip, strict=True):
            if not skipped:
                best[name] = min(best.get(name, own), own)
    groups: collections.Counter[str] = collections.Counter()
    for name, own in best.items():
        parts = name.split(".")
        groups[".".join(parts[:2]) if parts[0] == "labrunner" else parts[0]] += own
    top = [(group, us / 1000) for group, us in groups.most_common(8)]
    return sum(groups.values()) / 1000, top


def _describe(total: float, top: list[tuple[str, float]]) -> str:
    return f"imports {total:.0f} ms: " + ", ".join(f"{g} {ms:.1f}" for g, ms in top[:6])


# --------------------------------------------------------------------------- the run


def measure(runs: int = RUNS, profile_runs: int = PROFILE_RUNS) -> dict[str, Any]:
    """Every whole-process figure as plain data (milliseconds)."""
    # the console script, as users start it (its directory heads sys.path, which the
    # cached entry-point list is keyed on); `python -m labrunner` where there is none
    script_path = Path(LABRUNNER)
    launcher = [str(script_path)] if script_path.exists() else ["-m", "labrunner"]
    tools = all(shutil.which(t) for t in ("bash", "kubectl", "jq"))
    load_before = os.getloadavg()[0]
    with FakeCluster() as server, tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        seed(server)
        kubeconfig = server.write_kubeconfig(home / "kubeconfig")
        labs = home / "ws" / "labs"
        labs.mkdir(parents=True)
        (labs / "shop.yaml").write_text(LAB)
        runner_lab = home / "runner"
        runner_lab.mkdir()
        (runner_lab / "0.run").write_text("true\n")
        (runner_lab / "0.check").write_text(
            f"exec bash {PODS_CHECK} {NAMESPACE} bench=yes {PODS}\n"
        )
        env = _environment(home, kubeconfig)
        bundled = str(REPO / "labs")
        commands = {
            "--help": ["--help"],
            "list": ["--labs", bundled, "list"],
            "validate": ["--labs", bundled, "validate"],
            "check": ["--labs", str(labs), "check", "shop", "ready"],
            "verify": ["--labs", str(labs), "verify", "-q", "shop"],
        }
        ours = {
            label: Command(label, (sys.executable, *launcher, *args))
            for label, args in commands.items()
        }
        python = Command("python -c pass", (sys.executable, "-c", "pass"))
        script = Command("script", ("bash", str(PODS_CHECK), NAMESPACE, "bench=yes", str(PODS)))
        runner = Command("runner", ("bash", str(RUNNER), str(runner_lab)))

        started = alternate(
            [python, ours["--help"], ours["list"], ours["validate"]], env, home, runs
        )
        checked = alternate([ours["check"], *([script] if tools else [])], env, home, runs)
        verified = alternate([ours["verify"], *([runner] if tools else [])], env, home, runs)

        # labrunner's modules without bytecode, as in a source checkout run with
        # PYTHONDONTWRITEBYTECODE=1: a copy of the package, first on the path, never compiled
        source = home / "src"
        shutil.copytree(
            REPO / "labrunner", source / "labrunner", ignore=shutil.ignore_patterns("__pycache__")
        )
        bare = dict(env, PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(source))
        uncompiled = alternate(
            [
                Command(
                    "check, no bytecode", (sys.executable, "-m", "labrunner", *commands["check"])
                )
            ],
            bare,
            home,
            max(3, runs // 3),
        )

        profiles = {
            label: import_profile([*launcher, *args], env, home, runs=profile_runs)
            for label, args in commands.items()
        }
        profiles["check, kubernetes excluded"] = import_profile(
            [*launcher, *commands["check"]], env, home, runs=profile_runs, exclude="kubernetes"
        )
    return {
        "runs": runs,
        "load": (load_before, os.getloadavg()[0]),
        "samples": {**started, **checked, **verified},
        "uncompiled_check": uncompiled["check, no bytecode"],
        "profiles": profiles,
    }


def figures(m: dict[str, Any]) -> list[Figure]:
    """The Figures for measured data."""
    s: dict[str, Samples] = m["samples"]
    runs = m["runs"]
    load = f"load average {m['load'][0]:.1f} → {m['load'][1]:.1f}"
    profiles = m["profiles"]

    def note(label: str, extra: str = "") -> str:
        parts = [f"{runs} runs alternating with the peer; {s[label].spread()}"]
        if extra:
            parts.append(extra)
        if label in profiles:
            parts.append(_describe(*profiles[label]))
        return "; ".join(parts)

    python = s["python -c pass"]
    out = [
        Figure(
            "whole process: labrunner check, one pods_ready of 6 pods (median)",
            s["check"].median,
            "ms",
            ">= 1x (median <= the kubectl|jq script's)",
            peer=s["script"].median if "script" in s else None,
            note=note(
                "check",
                f"peer {s['script'].spread()}" if "script" in s else "no kubectl/jq here",
            )
            + "; without kubernetes "
            + _describe(*profiles["check, kubernetes excluded"]),
        ),
        Figure(
            "whole process: labrunner verify of a 1-step cluster lab (median)",
            s["verify"].median,
            "ms",
            peer=s["runner"].median if "runner" in s else None,
            note=note("verify", f"peer {s['runner'].spread()}" if "runner" in s else ""),
        ),
        Figure(
            "whole process: labrunner --help (median)",
            s["--help"].median,
            "ms",
            ">= 0.5x (at most twice bare start-up)",
            peer=python.median,
            note=note("--help", f"peer = python -c pass, {python.spread()}; {load}"),
        ),
        *(
            Figure(
                f"whole process: labrunner {command}, bundled workshop, warm cache (median)",
                s[command].median,
                "ms",
                "<= 150 ms",
                peer=python.median,
                note=note(command, "peer = python -c pass"),
            )
            for command in ("list", "validate")
        ),
        Figure(
            "whole process: labrunner check, its own modules without bytecode (median)",
            m["uncompiled_check"].median,
            "ms",
            note=(
                "labrunner's modules with no bytecode beside them, as in a source checkout run "
                "with PYTHONDONTWRITEBYTECODE=1: compiled by the first start only, later starts "
                "take their code from the state directory's module table (labrunner.codecache); "
                f"{m['uncompiled_check'].spread()}"
            ),
        ),
    ]
    return out


def run(runs: int = RUNS) -> list[Figure]:
    """The figures for the combined benchmark table."""
    return figures(measure(runs, profile_runs=3 if runs < RUNS else PROFILE_RUNS))


def main() -> None:
    """Print the figures."""
    report(run())


if __name__ == "__main__":
    main()
