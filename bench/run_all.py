"""Every benchmark in one command, one table: labrunner against the peers' approach.

    python bench/run_all.py [--quick] [--json FILE] [--markdown FILE]

Runs each benchmark script's ``run()`` in a fresh interpreter (so imports,
caches and the TUI of one cannot flatter or burden another), then prints one
table: the figure, labrunner's value, the peer approach's value where there
is one, their ratio, the target and whether it is met.

The peer approach is the same job done the way Killercoda, Instruqt and
istio.io's doc tests do it: bash, kubectl, jq and a ``sleep``-based retry
loop (``bench/peer/``), run against the same fake API server in the same
run. ``--quick`` takes fewer samples (for a smoke run, not for publishing);
``--json`` writes every figure, including the ones the table leaves out;
``--markdown`` writes the table with the date, the machine and the command
(that is how ``bench/RESULTS.md`` is made).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import REPO, Figure

MARKER = "BENCH-RESULT "
CHILD_TIMEOUT = 900


@dataclass(frozen=True)
class Bench:
    """One benchmark: how to run it (full and quick), and which figures go in the table."""

    name: str
    title: str
    call: Callable[[bool], list[Figure]]
    hide: tuple[str, ...] = ()
    """Figure name prefixes left out of the table (still in the JSON)."""


def _check_latency(quick: bool) -> list[Figure]:
    import check_latency

    if quick:
        check_latency.WARM_RUNS, check_latency.SCRIPT_RUNS = 100, 8
    return check_latency.run()


def _convergence(quick: bool) -> list[Figure]:
    import convergence

    if quick:
        convergence.ROUNDS, convergence.SCRIPT_ROUNDS = 4, 3
    return convergence.run()


def _verify_steps(quick: bool) -> list[Figure]:
    import peer_verify

    return peer_verify.run(repeat=1 if quick else 3)


def _shell(quick: bool) -> list[Figure]:
    import spawn_roundtrip

    return spawn_roundtrip.run(n=150 if quick else 500)


def _whole_process(quick: bool) -> list[Figure]:
    import whole_process

    return whole_process.run(runs=5 if quick else 15)


def _first_paint(quick: bool) -> list[Figure]:
    import tui_first_paint

    return tui_first_paint.run(runs=3 if quick else 7)


def _keypress(quick: bool) -> list[Figure]:
    import tui_keypress

    lines = 50_000 if quick else 200_000
    figures = tui_keypress.run(lines=lines, rounds=2 if quick else 5)
    for figure in figures:
        if figure.name.startswith("RSS, peak"):
            figure.name = f"TUI peak RSS (VmHWM) while streaming {lines:,} lines"
    return figures


def _terminal_echo(quick: bool) -> list[Figure]:
    import terminal_echo

    return terminal_echo.run(keys=60 if quick else 200)


def _terminal_flood(quick: bool) -> list[Figure]:
    import terminal_flood

    return terminal_flood.run(lines=50_000 if quick else 200_000, rounds=1 if quick else 3)


def _memory(quick: bool) -> list[Figure]:
    import verify_memory

    return verify_memory.run(repeat=1 if quick else 3)


def _redaction(quick: bool) -> list[Figure]:
    import redaction

    return redaction.run(rounds=300 if quick else 2000)


def _progress_writes(quick: bool) -> list[Figure]:
    import progress_writes

    return progress_writes.run(steps=1000, repeat=1 if quick else 5)


def _class(quick: bool) -> list[Figure]:
    import class_dashboard

    return class_dashboard.run(learners=100, seconds=10.0 if quick else 20.0)


def _poll_cpu(quick: bool) -> list[Figure]:
    import poll_cpu

    return poll_cpu.run()


BENCHES = [
    Bench(
        "check",
        "check latency on a converged state",
        _check_latency,
        hide=("speedup",),
    ),
    Bench("convergence", "convergence to pass", _convergence),
    Bench("verify", "verify per step, and growth", _verify_steps),
    Bench("shell", "shell command round trip", _shell),
    Bench("process", "whole process, start to exit (CLI start-up)", _whole_process),
    Bench(
        "first-paint",
        "TUI first paint",
        _first_paint,
        hide=(
            "in-process: imports",
            "in-process: load",
            "in-process: build",
            "in-process: to on_mount",
        ),
    ),
    Bench(
        "keypress",
        "TUI keypress latency and memory while streaming",
        _keypress,
        hide=("flood duration", "RSS, highest"),
    ),
    Bench(
        "terminal-echo",
        "terminal pane: keypress to echo",
        _terminal_echo,
        hide=("terminal keypress to echo, median",),
    ),
    Bench("terminal-flood", "terminal pane: a flood of output", _terminal_flood),
    Bench("memory", "memory of labrunner verify", _memory),
    Bench(
        "progress-writes",
        "what saving progress costs (journal appends)",
        _progress_writes,
        hide=("labrunner list after",),
    ),
    Bench("poll-cpu", "CPU while a check is pending", _poll_cpu),
    Bench("redaction", "masking secrets: per output line, and at start-up", _redaction),
    Bench("class", "a class of 100 learners: the instructor's view, a learner's cost", _class),
]


# --------------------------------------------------------------------------- targets

_CLAUSE = re.compile(r"(<=|>=|<|>)\s*([0-9.]+)\s*(x|ms/step|ms|MB|s|%)?")


def ratio(figure: Figure) -> float | None:
    """Peer value over labrunner's (above 1: labrunner is faster or smaller)."""
    if figure.peer is None or not figure.value:
        return None
    return figure.peer / figure.value


def target_met(figure: Figure) -> bool | None:
    """Whether every comparison in the target holds (None when there is nothing to compare).

    A clause in ``x`` on a figure measured in another unit compares the ratio
    to the peer (``>= 10x faster``); any other clause compares the value.
    """
    verdicts = []
    for clause in figure.target.split(";"):
        match = _CLAUSE.search(clause)
        if match is None:
            continue
        op, number, unit = match.group(1), float(match.group(2)), match.group(3)
        value: float | None = figure.value
        if unit == "x" and figure.unit != "x":
            value = ratio(figure)
        if value is None:
            continue
        verdicts.append(
            {
                "<": value < number,
                "<=": value <= number,
                ">": value > number,
                ">=": value >= number,
            }[op]
        )
    return all(verdicts) if verdicts else None


# --------------------------------------------------------------------------- running


def run_one(name: str, quick: bool) -> None:
    """In the child: run one benchmark and print its figures as one JSON line."""
    bench = next(b for b in BENCHES if b.name == name)
    figures = bench.call(quick)
    sys.stdout.flush()
    print(MARKER + json.dumps([f.as_dict() for f in figures]), flush=True)


@dataclass
class Outcome:
    """What one benchmark child produced."""

    bench: Bench
    figures: list[Figure]
    seconds: float
    error: str = ""


def run_child(bench: Bench, quick: bool) -> Outcome:
    """Run one benchmark in a fresh interpreter."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--one", bench.name]
    if quick:
        argv.append("--quick")
    started = time.monotonic()
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=CHILD_TIMEOUT, cwd=str(REPO), check=False
        )
    except subprocess.TimeoutExpired:
        return Outcome(bench, [], time.monotonic() - started, f"timed out ({CHILD_TIMEOUT}s)")
    seconds = time.monotonic() - started
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        return Outcome(bench, [], seconds, f"exit {proc.returncode}: {last}")
    figures = [Figure(**item) for item in json.loads(lines[-1][len(MARKER) :])]
    return Outcome(bench, figures, seconds)


# --------------------------------------------------------------------------- output


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2
    text = f"{value:,.{digits}f}"
    return f"{text} {unit}".strip()


def rows(outcomes: list[Outcome]) -> list[dict[str, str]]:
    """The table's rows, in benchmark order."""
    out = []
    for outcome in outcomes:
        if outcome.error:
            out.append(
                {
                    "figure": f"{outcome.bench.title}: did not run",
                    "labrunner": "—",
                    "peer": "—",
                    "ratio": "—",
                    "target": outcome.error,
                    "met": "no",
                }
            )
            continue
        for figure in outcome.figures:
            if figure.name.startswith(outcome.bench.hide):
                continue
            r = ratio(figure)
            met = target_met(figure)
            out.append(
                {
                    "figure": figure.name,
                    "labrunner": _number(figure.value, figure.unit),
                    "peer": _number(figure.peer, figure.unit),
                    "ratio": f"{r:.1f}×" if r is not None else "—",
                    "target": figure.target or "—",
                    "met": {True: "yes", False: "**no**", None: "—"}[met],
                }
            )
    return out


HEADERS = {
    "figure": "Figure",
    "labrunner": "labrunner",
    "peer": "Peer approach",
    "ratio": "Peer ÷ labrunner",
    "target": "Target",
    "met": "Met",
}


def markdown_table(table: list[dict[str, str]]) -> str:
    """The rows as a GitHub-flavoured Markdown table."""
    keys = list(HEADERS)
    lines = [
        "| " + " | ".join(HEADERS[k] for k in keys) + " |",
        "|"
        + "|".join("---:" if k in ("labrunner", "peer", "ratio") else "---" for k in keys)
        + "|",
    ]
    for row in table:
        cells = [row[k].replace("|", "\\|") for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def text_table(table: list[dict[str, str]]) -> str:
    """The rows as a plain-text table for the terminal."""
    keys = list(HEADERS)
    widths = {k: max(len(HEADERS[k]), *(len(r[k]) for r in table)) for k in keys}
    right = {"labrunner", "peer", "ratio"}

    def line(cells: dict[str, str]) -> str:
        return "  ".join(
            cells[k].rjust(widths[k]) if k in right else cells[k].ljust(widths[k]) for k in keys
        ).rstrip()

    return "\n".join(
        [line(HEADERS), line({k: "-" * widths[k] for k in keys}), *(line(r) for r in table)]
    )


def machine() -> dict[str, str]:
    """A description of this machine without names or paths."""
    info = {"cores": str(os.cpu_count())}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
        if model:
            info["cpu"] = re.sub(r"\((R|TM)\)|\s+", " ", model.group(1)).strip()
            info["cpu"] = re.sub(r"\s+", " ", info["cpu"])
        memtotal = re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(), re.M)
        if memtotal:
            info["memory"] = f"{int(memtotal.group(1)) / 1024 / 1024:.0f} GiB RAM"
    except OSError:
        pass
    release = ".".join(platform.release().split("-")[0].split(".")[:2])
    info["os"] = f"{platform.system()} {release}"
    info["python"] = f"Python {platform.python_version()}"
    for tool, args in (("kubectl", ["version", "--client"]), ("bash", ["--version"])):
        if shutil.which(tool):
            out = subprocess.run([tool, *args], capture_output=True, text=True, check=False).stdout
            found = re.search(r"v?\d+\.\d+\.\d+", out)
            if found:
                info[tool] = f"{tool} {found.group(0)}"
    return info


def describe(info: dict[str, str]) -> str:
    """``2 cores (CPU model), 24 GiB RAM, Linux 6.1, Python 3.11.7, ...``."""
    cores = f"{info['cores']} cores" + (f" ({info['cpu']})" if "cpu" in info else "")
    return ", ".join([cores, *(v for k, v in info.items() if k not in ("cores", "cpu"))])


def command_line(argv: list[str]) -> str:
    """How this run was started, naming no path of this machine.

    Paths inside the repository are made relative to it; other absolute paths
    are shortened to their file name.
    """
    parts = ["python", "bench/run_all.py"]
    for arg in argv:
        path = Path(arg)
        if not path.is_absolute():
            parts.append(arg)
        elif path.resolve().is_relative_to(REPO):
            parts.append(str(path.resolve().relative_to(REPO)))
        else:
            parts.append(path.name)
    return shlex.join(parts)


PEERS = """\
How the peer approach is measured, in the same run, against the same fake API server:

- **check latency**: `bash -c 'kubectl get pods -o json | jq -e …'`, a Killercoda/Instruqt
  check script, with a warm kubectl discovery cache;
- **convergence**: `until <that check>; do sleep 1; done`, released at a random phase of its loop;
- **verify per step**: `bench/peer/verify_runner.sh`, istio.io's doc-test style: one bash runs
  each step's commands, then the step's check script in a new process, retried with `sleep`
  until it passes (`bench/peer/pods_ready_check.sh` for cluster steps);
- **shell round trip**: a new `bash -c` per command, as check-script platforms spawn them;
- **memory**: the largest process of the bash runner's tree on the same lab (a kubectl check);
- **whole process**: each `labrunner` command started as a process and timed to its exit,
  alternating run by run with its peer so load on the machine hits both alike: `check` against
  `bench/peer/pods_ready_check.sh`, `verify` of the same one-step lab against
  `bench/peer/verify_runner.sh`, `--help`, `list` and `validate` against `python -c pass` (the
  interpreter's own start-up). Caches are warm (one untimed run first), as from a learner's
  second command on; the notes give each figure's spread and its import-time profile.

"Peer ÷ labrunner" above 1 means labrunner is faster (or smaller) by that factor; below 1, the
peer approach is. TUI and CPU figures have no peer counterpart.

Where the peer approach wins: a lab of only a few trivial steps (`true`, an environment
variable, a file). labrunner pays a fixed cost per lab run — starting the lab's persistent
shell, and at the end finding and killing everything it started, detached processes included —
which is why the 10-step figure is high. Per step it pays one round trip through that shell
(the checks' environment is read from the state the shell saves after each command, with no
extra round trip), while a bash runner pays one `bash` start per check, so from tens of steps
on labrunner is cheaper per trivial step too. As soon as a check asks the cluster, the
in-process, warm-client check wins by the factors above. Memory: one labrunner process holds
about as much as one kubectl process does.
"""


def markdown(
    table: list[dict[str, str]],
    outcomes: list[Outcome],
    *,
    argv: list[str],
    seconds: float,
    load: tuple[float, float] | None = None,
) -> str:
    """The whole RESULTS.md text."""
    notes = [
        f"- **{f.name}**: {f.note}"
        for o in outcomes
        for f in o.figures
        if f.note and not f.name.startswith(o.bench.hide)
    ]
    return "\n".join(
        [
            "# Benchmark results",
            "",
            f"Measured on {datetime.now(UTC):%Y-%m-%d} on {describe(machine())}.",
            f"The whole run took {seconds:.0f} s."
            + (
                f" The machine's load average (1 min) was {load[0]:.1f} at the start and "
                f"{load[1]:.1f} at the end: wall times on a busy machine are higher and noisier, "
                "while paired figures (labrunner and its peer in the same run) stay comparable."
                if load is not None
                else ""
            ),
            "",
            "```",
            command_line(argv),
            "```",
            "",
            markdown_table(table),
            "",
            PEERS,
            "## Notes on single figures",
            "",
            *notes,
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every figure as JSON")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="write RESULTS.md")
    parser.add_argument("--one", metavar="NAME", help=argparse.SUPPRESS)
    parser.add_argument("--only", metavar="NAMES", help="comma-separated benchmark names")
    args = parser.parse_args()
    if args.one:
        run_one(args.one, args.quick)
        return
    chosen = BENCHES
    if args.only:
        wanted = set(args.only.split(","))
        chosen = [b for b in BENCHES if b.name in wanted]
    started = time.monotonic()
    load_start = os.getloadavg()[0]
    outcomes = []
    for bench in chosen:
        print(f"running {bench.title} …", file=sys.stderr, flush=True)
        outcome = run_child(bench, args.quick)
        status = f"failed: {outcome.error}" if outcome.error else "done"
        print(f"  {status} in {outcome.seconds:.1f} s", file=sys.stderr, flush=True)
        outcomes.append(outcome)
    seconds = time.monotonic() - started
    table = rows(outcomes)
    print(text_table(table))
    print(f"\n{len(chosen)} benchmarks in {seconds:.0f} s", file=sys.stderr)
    if args.json:
        data: dict[str, Any] = {
            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": machine(),
            "quick": args.quick,
            "seconds": round(seconds, 1),
            "benchmarks": [
                {
                    "name": o.bench.name,
                    "title": o.bench.title,
                    "seconds": round(o.seconds, 1),
                    "error": o.error or None,
                    "figures": [
                        {**f.as_dict(), "ratio": ratio(f), "target_met": target_met(f)}
                        for f in o.figures
                    ],
                }
                for o in outcomes
            ],
        }
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    if args.markdown:
        load = (load_start, os.getloadavg()[0])
        args.markdown.write_text(
            markdown(table, outcomes, argv=sys.argv[1:], seconds=seconds, load=load)
        )
    if any(o.error for o in outcomes):
        sys.exit(1)


if __name__ == "__main__":
    main()
