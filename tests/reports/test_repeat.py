"""``verify --repeat N``: a flaky step shows as passes/N with its failure messages.

A real lab whose second step passes on odd runs only (a counter file outside
the workshop tells runs apart) runs three times through the real CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

LAB = """\
apiVersion: labrunner/v1
kind: Lab
id: flaky
title: A flaky lab
cleanup:
  - echo cleaned >> "$OUT/cleanups"
steps:
  - id: steady
    title: Always fine
    run: ["true"]
    check:
      - command: {{run: "true"}}
  - id: coin
    title: Passes on odd runs
    run:
      - n=$(( $(cat "$OUT/count" 2>/dev/null || echo 0) + 1 )); echo "$n" > "$OUT/count"
    check:
      - command:
          run: >-
            test $(( $(cat "$OUT/count") % 2 )) -eq 1
            || {{ echo "even run $(cat "$OUT/count")"; exit 1; }}
    within: {within}
"""


def _run(tmp_path: Path, *args: str, within: str = "0.5s") -> subprocess.CompletedProcess[str]:
    labs = tmp_path / "labs"
    labs.mkdir(exist_ok=True)
    (labs / "10-flaky.yaml").write_text(LAB.format(within=within))
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "labrunner", "--labs", str(labs), "verify", "--no-save", *args],
        cwd=tmp_path,
        env={**os.environ, "OUT": str(out)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_flaky_step_is_told_from_a_steady_one(tmp_path: Path) -> None:
    report, junit = tmp_path / "report.json", tmp_path / "report.xml"
    done = _run(tmp_path, "--repeat", "3", "--json", str(report), "--junit", str(junit))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "#### run 1/3" in done.stdout and "#### run 3/3" in done.stdout
    table = done.stdout.split("repeated 3 times: 1 run(s) failed", 1)[1].splitlines()
    steady = next(line for line in table if line.startswith("flaky") and " steady " in line)
    coin = next(line for line in table if line.startswith("flaky") and " coin " in line)
    assert steady.split()[2] == "3/3" and coin.split()[2] == "2/3"
    notes = table[table.index(coin) + 1 :]
    assert notes[0].strip().startswith("1× ") and "even run 2" in notes[0]
    # cleanup ran between runs (where declared), not after the last one without --cleanup
    assert (tmp_path / "out" / "cleanups").read_text().splitlines() == ["cleaned", "cleaned"]

    data = json.loads(report.read_text())
    assert data["status"] == "failed", "any failed run fails the report"
    repeat = data["repeat"]
    assert repeat["runs"] == 3 and repeat["failed_runs"] == [2]
    by_step = {s["step"]: s for s in repeat["steps"]}
    assert by_step["coin"]["passed"] == 2 and by_step["coin"]["failed"] == 1
    assert by_step["steady"]["passed"] == 3 and by_step["steady"]["failures"] == []
    timing = by_step["coin"]["time_to_pass"]
    assert 0 < timing["median"] <= timing["max"]
    (failure,) = by_step["coin"]["failures"]
    assert failure["runs"] == 1 and "even run 2" in failure["message"]
    assert [lab["run"] for lab in data["labs"]] == [1, 2, 3]

    suites = [s.get("name") for s in ET.parse(junit).getroot().iter("testsuite")]
    assert suites == ["flaky (run 1/3)", "flaky (run 2/3)", "flaky (run 3/3)"]


def test_one_run_is_a_plain_verify(tmp_path: Path) -> None:
    done = _run(tmp_path, "--repeat", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "repeated" not in done.stdout and "#### run" not in done.stdout


def test_repeat_on_actions_writes_the_tallies_to_the_summary(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    labs = tmp_path / "labs"
    labs.mkdir()
    (labs / "10-flaky.yaml").write_text(LAB.format(within="0.5s"))
    (tmp_path / "out").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "labrunner", "--labs", str(labs), "verify", "--repeat", "2"],
        cwd=tmp_path,
        env={
            **os.environ,
            "OUT": str(tmp_path / "out"),
            "GITHUB_ACTIONS": "true",
            "GITHUB_STEP_SUMMARY": str(summary),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "::group::run 2/2 · flaky: A flaky lab" in done.stdout
    rows = [x for x in summary.read_text().splitlines() if x.startswith("| flaky")]
    assert rows[0].split("|")[3].strip() == "2/2 passed"
    assert rows[1].split("|")[3].strip() == "1/2 passed"
    assert "1× " in rows[1] and "even run 2" in rows[1]
