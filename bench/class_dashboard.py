"""A class of 100 learners on the fake API server: the instructor's view, and a learner's cost.

Targets (issue: the classroom): with 100 simulated learners publishing a step event every
second, the instructor's view shows each event within 1 s and uses < 20% of one core; a
learner's publish adds < 5 ms to a step.

Four processes, so each figure is its own: the fake API server (HTTPS, RBAC on, as
``fake_class_watch.py`` measures it); the class made with ``labrunner.classroom.admin.init``
(ServiceAccounts, Roles, RoleBindings, TokenRequest join files); the **learners**, one
process holding 100 real ``Publisher`` s, each joined with its own join file, each
publishing one event a second (spread over the second); and the **instructor's view**,
the real ``ClassWatchApp`` (headless Textual, a real watch), reporting when each learner's
row shows which document. The k-th event of a learner is document ``seq`` k, so its
latency is the first time the view shows seq ≥ k minus the time ``publish()`` was called.
The view's CPU is read from ``/proc`` over the publishing window (start-up excluded).

Then the cost to a step, on one learner as on a learner's machine: a 100-step lab through
the real engine, with no class and joined to this class (every step publishes "started"
and its result), five rounds each, alternating; the figure is the difference of the
medians per step, and every ``publish()`` call of the joined runs is timed. (The crowd
process times its calls too, but its 200 threads contend for one GIL, which no learner's
machine does; that figure is in the JSON only.)

    python bench/class_dashboard.py [--learners 100] [--seconds 20]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from _common import REPO, Figure, report

SERVER = r"""
import sys
from pathlib import Path
from labrunner.testing.fakecluster import FakeCluster

server = FakeCluster(https=True, token="bench-admin-token-0123456789", rbac=True).start()
server.write_kubeconfig(Path(sys.argv[1]), context="kind-class")
print("ready", flush=True)
sys.stdin.read()
server.stop()
"""

VIEW = r"""
import json, sys, time
from pathlib import Path
from labrunner.classroom import admin
from labrunner.tui import classwatch
from labrunner.classroom.document import StuckRules
from labrunner.cluster.client import Kube
from labrunner.tui.classwatch import ClassWatchApp

kubeconfig, seconds, log = sys.argv[1], float(sys.argv[2]), sys.argv[3]
kube = Kube.connect({"KUBECONFIG": kubeconfig}, "kind-class")
ref = admin.ClassRef("bench", "labrunner-class-bench")
shown = []


class View(ClassWatchApp):
    CSS_PATH = str(Path(classwatch.__file__).with_name("labrunner.tcss"))

    def on_ready(self):
        self.set_timer(1.0, self.started)

    def started(self):
        sys.__stdout__.write("ready\n")
        sys.__stdout__.flush()
        self.set_timer(seconds, self.exit)


app = View(
    class_name="bench", where="bench",
    follow=lambda **cb: admin.follow(kube, ref, **cb),
    rules=StuckRules(),
    on_shown=lambda learner, seq, at: shown.append((learner, seq, at)),
)
app.run(headless=True, size=(220, 60))
json.dump(shown, open(log, "w"))
kube.close()
"""

LEARNERS = r"""
import json, sys, threading, time
from pathlib import Path
from labrunner.classroom import document, joinfile, learner, publisher

joins, root, seconds, log = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
names = sys.argv[5:]
pubs = {}
for name in names:
    directory = root / name / "class"
    learner.join(directory, joins / f"{name}.yaml")
    pubs[name] = publisher.Publisher(directory, joinfile.read(directory / "join.yaml"))
print("ready", flush=True)
sys.stdin.readline()
start = time.time() + 0.5
sent = {name: [] for name in names}
calls = []
lock = threading.Lock()

def run(index, name):
    pub = pubs[name]
    due = start + (index % 100) / 100.0
    k = 0
    while due < start + seconds:
        time.sleep(max(0.0, due - time.time()))
        k += 1
        kind = ("started", "failed", "hint", "passed")[k % 4]
        event = document.event(kind, "lab", f"step-{k // 4}", at=time.time(), total=99, hint=1)
        began = time.perf_counter()
        at = time.time()
        pub.publish(event)
        took = time.perf_counter() - began
        with lock:
            sent[name].append((k, at))
            calls.append(took)
        due += 1.0

threads = [threading.Thread(target=run, args=(i, n)) for i, n in enumerate(names)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for pub in pubs.values():
    pub.flush(30)
    pub.close(0)
json.dump({"sent": sent, "calls": calls}, open(log, "w"))
"""

STEPS = r"""
import json, os, statistics, sys, tempfile, time
from pathlib import Path
from labrunner.classroom import learner, publisher
from labrunner.engine import Engine, RunOptions
from labrunner.engine.classfeed import class_directory
from labrunner.lab.loader import load_workshop
from labrunner.state import ProgressStore
from labrunner.verify.registry import builtin_registry

join, steps = Path(sys.argv[1]), int(sys.argv[2])
work = Path(tempfile.mkdtemp(prefix="labrunner-bench-steps-", dir=sys.argv[3]))  # the run's
lines = ["apiVersion: labrunner/v1", "id: steps", "title: Steps", "env: {MARK: ok}", "steps:"]
for i in range(steps):
    lines += [f"  - id: s{i}", f"    title: Step {i}", "    run: ['true']", "    check:",
              "      - env: {name: MARK, equals: ok}"]
(work / "steps.yaml").write_text("\n".join(lines) + "\n")
workshop = load_workshop(work, builtin_registry()).workshop
joined_dir = work / "joined"
plain_dir = work / "plain"
os.environ["LABRUNNER_STATE_DIR"] = str(joined_dir)
learner.join(class_directory(), join)

calls = []
_publish = publisher.Publisher.publish


def timed(self, item):
    began = time.perf_counter()
    _publish(self, item)
    calls.append(time.perf_counter() - began)


publisher.Publisher.publish = timed


def run(state):
    os.environ["LABRUNNER_STATE_DIR"] = str(state)
    engine = Engine(workshop, registry=builtin_registry(), store=ProgressStore.memory(),
                    emit=lambda e: None, options=RunOptions(save=True), base_env=dict(os.environ))
    began = time.perf_counter()
    summary = engine.verify(workshop.labs)
    assert summary.ok
    return (time.perf_counter() - began) / steps

run(plain_dir)  # warm: imports, the shell
results = {"plain": [], "joined": []}
for _ in range(5):
    results["plain"].append(run(plain_dir))
    results["joined"].append(run(joined_dir))
pub = publisher.active(joined_dir / "class")
flushed = pub.flush(60) if pub else False
print(json.dumps({**results, "flushed": flushed, "calls": calls}))
"""


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABRUNNER_")}
    env.update(HOME=str(tmp), LABRUNNER_STATE_DIR=str(tmp / "state"), NO_COLOR="1")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _end(proc: subprocess.Popen[str]) -> None:
    """Close a helper's stdin (its cue to stop); kill it if it does not."""
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _wait_line(proc: subprocess.Popen[str], what: str) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        raise RuntimeError(f"{what} did not start: {line!r}")


def measure(learners: int = 100, seconds: float = 20.0, steps: int = 100) -> dict[str, Any]:
    """Run the class load and the step cost once; return the raw figures."""
    from labrunner.classroom import admin
    from labrunner.classroom.names import numbered
    from labrunner.cluster.client import Kube
    from labrunner.cluster.kubeconfig import cluster_entry

    with tempfile.TemporaryDirectory(prefix="labrunner-bench-class-") as name, ExitStack() as stack:
        tmp = Path(name)
        env = _env(tmp)
        kubeconfig = tmp / "kubeconfig"

        def spawn(script: str, *args: str) -> subprocess.Popen[str]:
            proc = subprocess.Popen(
                [sys.executable, "-c", script, *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            stack.callback(_end, proc)
            return proc

        server = spawn(SERVER, str(kubeconfig))
        _wait_line(server, "the fake API server")
        kube_env = {"KUBECONFIG": str(kubeconfig)}
        kube = Kube.connect(kube_env, "kind-class")
        people = numbered(learners + 1)
        cluster = cluster_entry(kube_env, "kind-class") or {}
        began = time.perf_counter()
        admin.init(
            kube,
            admin.ClassRef("bench", "labrunner-class-bench"),
            people,
            admin.Issuing(cluster, 3600, tmp / "joins"),
        )
        init_seconds = time.perf_counter() - began
        kube.close()
        load = [p.name for p in people[:learners]]
        spare = people[learners].name

        crowd = spawn(
            LEARNERS,
            str(tmp / "joins"),
            str(tmp / "learners"),
            str(seconds),
            str(tmp / "learners.json"),
            *load,
        )
        _wait_line(crowd, "the learners")
        view = spawn(VIEW, str(kubeconfig), str(seconds + 5), str(tmp / "view.json"))
        _wait_line(view, "the class view")
        cpu_before, wall_before = _cpu_seconds(view.pid), time.monotonic()
        assert crowd.stdin is not None
        crowd.stdin.write("go\n")
        crowd.stdin.flush()
        crowd.wait(seconds + 120)
        cpu_after, wall_after = _cpu_seconds(view.pid), time.monotonic()
        view.wait(60)
        sent = json.loads((tmp / "learners.json").read_text())
        shown = json.loads((tmp / "view.json").read_text())

        stepping = subprocess.run(
            [sys.executable, "-c", STEPS, str(tmp / "joins" / f"{spare}.yaml"), str(steps), name],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=True,
        )
        step_costs = json.loads(stepping.stdout.strip().splitlines()[-1])

    by_learner: dict[str, list[tuple[int, float]]] = {}
    for learner, seq, at in shown:
        by_learner.setdefault(learner, []).append((seq, at))
    latencies = []
    missing = 0
    for learner, events in sent["sent"].items():
        seen = sorted(by_learner.get(learner, []), key=lambda item: item[1])
        for k, at in events:
            first = next((t for seq, t in seen if seq >= k and t >= at - 0.001), None)
            if first is None:
                missing += 1
            else:
                latencies.append(first - at)
    latencies.sort()
    calls = sorted(sent["calls"])

    def q(values: list[float], fraction: float) -> float:
        return values[min(len(values) - 1, int(fraction * len(values)))] if values else 0.0

    one = sorted(step_costs["calls"])
    plain = statistics.median(step_costs["plain"])
    joined = statistics.median(step_costs["joined"])
    return {
        "learners": learners,
        "seconds": seconds,
        "init_seconds": round(init_seconds, 2),
        "events_sent": sum(len(v) for v in sent["sent"].values()),
        "events_shown": len(latencies),
        "events_never_shown": missing,
        "latency_ms_p50": round(q(latencies, 0.5) * 1000, 1),
        "latency_ms_p99": round(q(latencies, 0.99) * 1000, 1),
        "latency_ms_max": round(latencies[-1] * 1000, 1) if latencies else None,
        "shown_within_1s_percent": round(
            100 * sum(1 for x in latencies if x <= 1.0) / max(len(latencies) + missing, 1), 2
        ),
        "view_cpu_percent_of_one_core": round(
            100 * (cpu_after - cpu_before) / (wall_after - wall_before), 1
        ),
        "publish_call_us_p50": round(q(one, 0.5) * 1e6, 1),
        "publish_call_us_p99": round(q(one, 0.99) * 1e6, 1),
        "publish_call_us_max": round(one[-1] * 1e6, 1) if one else None,
        "publish_calls": len(one),
        "crowd_publish_call_us_p99": round(q(calls, 0.99) * 1e6, 1),
        "step_ms_plain": round(plain * 1000, 2),
        "step_ms_joined": round(joined * 1000, 2),
        "step_ms_added": round((joined - plain) * 1000, 2),
        "step_events_all_sent": step_costs["flushed"],
    }


def run(learners: int = 100, seconds: float = 20.0) -> list[Figure]:
    """The figures for the table (bench/run_all.py)."""
    return figures(measure(learners, seconds))


def figures(m: dict[str, Any]) -> list[Figure]:
    """Table rows from the raw figures."""
    learners, seconds = m["learners"], m["seconds"]
    load = f"{learners} learners × 1 event/s, {seconds:g} s"
    return [
        Figure(
            f"class view: events shown within 1 s ({load})",
            m["shown_within_1s_percent"],
            "%",
            ">= 99 %",
            note=f"{m['events_shown']} of {m['events_sent']} shown",
        ),
        Figure(
            "class view: publish → row shown, p99",
            m["latency_ms_p99"],
            "ms",
            "< 1000 ms",
            note=f"p50 {m['latency_ms_p50']} ms, max {m['latency_ms_max']} ms",
        ),
        Figure(
            "class view: CPU while following the class",
            m["view_cpu_percent_of_one_core"],
            "% of one core",
            "< 20 %",
        ),
        Figure(
            "learner: publish() call during verify, p99",
            m["publish_call_us_p99"] / 1000,
            "ms",
            "< 5 ms",
            note=(
                f"{m['publish_calls']} calls; p50 {m['publish_call_us_p50']} µs, "
                f"max {m['publish_call_us_max']} µs"
            ),
        ),
        Figure(
            "learner: time a joined class adds to a step (100-step verify)",
            m["step_ms_added"],
            "ms/step",
            "< 5 ms/step",
            note=f"{m['step_ms_plain']} → {m['step_ms_joined']} ms/step",
        ),
        Figure("class init: 100 learners (objects, tokens, join files)", m["init_seconds"], "s"),
    ]


def main() -> None:
    """Print the raw figures as JSON, then the table rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    raw = measure(args.learners, args.seconds)
    print(json.dumps(raw, indent=1))
    report(figures(raw))


if __name__ == "__main__":
    main()
