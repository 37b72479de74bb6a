"""Kill progress writers with SIGKILL at random points, hundreds of times; report what survived.

Run by ``test_progress_sigkill.py`` in a fresh, single-threaded interpreter
(forking the pytest process, which may hold threads, would be unsafe).

Each round forks two writers that record steps into the same progress journal
as fast as they can (each confirms a step on a pipe only after ``record``
returned, i.e. after the append and its fdatasync), lets them run for a
random number of confirmed writes plus a random sliver of time calibrated to
one write's duration, and SIGKILLs both, one after the other at independent
random moments. So kills land before the first write, inside ``record``
(while the line is written, before the sync, while the other writer holds
the lock) and between writes. After every round the journal is opened by a
fresh store, as the next ``labrunner`` would (which compacts it when
worthwhile), and every confirmed step must be there. Every ``ROUNDS_PER_JOURNAL``
rounds the writers move on to a fresh journal, so that the work of a round
(each writer and the check replay the journal) stays the same from the first
round to the last instead of growing with every step confirmed before it.

Prints one JSON object: kills, rounds, confirmed steps, lost steps, store
warnings, corrupt copies, and whether every line of the journal is a record.

    python sigkill_driver.py STATE_DIR ROUNDS SEED
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from pathlib import Path

ROUNDS_PER_JOURNAL = 10


def writer(path: Path, name: str, confirm_fd: int) -> None:
    """Record steps for ever, confirming each one on ``confirm_fd`` (runs in a forked child)."""
    from labrunner.state import ProgressStore

    store = ProgressStore(path, context="kind-sigkill")
    i = 0
    while True:
        step = f"{name}-{i:04d}"
        store.record(f"lab-{name[-1]}", step, "passed", exports={"STEP": step})
        os.write(confirm_fd, f"lab-{name[-1]} {step}\n".encode())
        i += 1


def spin(seconds: float) -> None:
    """Busy-wait: a random point in time to strike at, not a wait for anything."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def main() -> None:
    path, rounds, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    from labrunner.state import ProgressStore

    path.mkdir(parents=True, exist_ok=True)
    calibrate = ProgressStore(path, context="kind-sigkill")
    started = time.perf_counter()
    for i in range(10):
        calibrate.record("lab-calibrate", f"c-{i}", "passed")
    write_time = (time.perf_counter() - started) / 10

    confirmed: dict[str, set[str]] = {"lab-calibrate": {f"c-{i}" for i in range(10)}}
    lost: list[str] = []
    warnings: list[str] = []
    kills = 0
    total = 0
    parts = [path]
    for round_no in range(rounds):
        if round_no and round_no % ROUNDS_PER_JOURNAL == 0:
            total += sum(len(s) for s in confirmed.values())
            confirmed = {}
            parts.append(path / f"part-{round_no // ROUNDS_PER_JOURNAL:03d}")
        journal_dir = parts[-1]
        children: list[tuple[int, int]] = []
        for side in "ab":
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read_fd)
                try:
                    writer(journal_dir, f"r{round_no:03d}{side}", write_fd)
                finally:
                    os._exit(0)
            os.close(write_fd)
            children.append((pid, read_fd))
        # Let one writer get a random number of writes done, then strike at random moments.
        _, lead_fd = children[rng.randrange(2)]
        with os.fdopen(os.dup(lead_fd), "rb", buffering=0) as lead:
            for _ in range(rng.randint(0, 3)):
                lead.readline()
        for pid, _ in rng.sample(children, 2):
            spin(rng.uniform(0, 1.5 * write_time))
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            kills += 1
        for _, read_fd in children:
            with os.fdopen(read_fd, "rb") as pipe:
                for line in pipe.read().decode().splitlines():
                    lab, step = line.split()
                    confirmed.setdefault(lab, set()).add(step)
        store = ProgressStore(journal_dir, context="kind-sigkill")
        store.load()
        warnings += store.warnings
        for lab, steps in confirmed.items():
            missing = steps - store.completed(lab)
            lost += sorted(f"{lab}/{s}" for s in missing)
    total += sum(len(s) for s in confirmed.values())
    corrupt = sorted(p.name for part in parts for p in part.glob("*.corrupt-*"))
    lines = [
        line
        for part in parts
        if (part / "local.jsonl").exists()
        for line in (part / "local.jsonl").read_text().splitlines()
    ]
    print(
        json.dumps(
            {
                "rounds": rounds,
                "kills": kills,
                "write_ms": round(write_time * 1000, 3),
                "confirmed": total,
                "journals": len(parts),
                "lost": lost,
                "warnings": warnings,
                "corrupt": corrupt,
                "valid_lines": all(isinstance(json.loads(line), dict) for line in lines),
            }
        )
    )


if __name__ == "__main__":
    main()
