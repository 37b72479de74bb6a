"""``verify`` on GitHub Actions: groups, annotations on the failing step's line, a summary table.

The real CLI runs a real lab in a subprocess with the variables a runner sets;
the annotation must point at the step's line in the lab file (relative to the
workspace), and ``$GITHUB_STEP_SUMMARY`` must hold a Markdown table.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from labrunner.engine import events as ev
from labrunner.engine.events import StepStatus
from labrunner.lab.loader import load_workshop
from labrunner.reports.github import GitHubActions, command, escape_data, escape_property, wanted
from labrunner.verify.registry import builtin_registry

LAB = """\
apiVersion: labrunner/v1
kind: Lab
id: demo
title: "Demo, with a comma: and a colon"
steps:
  - id: fine
    title: Works
    run: ["true"]
    check:
      - command: {run: "true"}
  - id: far-away
    title: Needs traffic
    needs: [traffic]
    run: ["true"]
    check:
      - command: {run: "true"}
  - id: broken
    title: Fails
    run:
      - echo 'half the work is 50% done'
    check:
      - command:
          run: echo "token=ghp_abcdefghijklmnopqrstuvwxyz0123456789"; exit 1
    within: 1s
    hints:
      - Look again.
  - id: after
    title: Never runs
    run: ["true"]
    check:
      - command: {run: "true"}
"""


def _workshop(root: Path) -> Path:
    labs = root / "labs"
    labs.mkdir(parents=True)
    (labs / "10-demo.yaml").write_text(LAB)
    return labs


def _verify(labs: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labrunner", "--labs", str(labs), "verify", "--no-save", *args],
        cwd=labs.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_escaping_follows_the_workflow_command_format() -> None:
    assert escape_data("50% done\r\nnext") == "50%25 done%0D%0Anext"
    assert escape_property("a,b: c%\n") == "a%2Cb%3A c%25%0A"
    line = command("error", "x:y,z\nw", file="labs/a,b.yaml", line=7, title="lab/step: one")
    assert line == "::error file=labs/a%2Cb.yaml,line=7,title=lab/step%3A one::x:y,z%0Aw"


def test_annotations_are_on_only_on_actions_or_when_asked() -> None:
    assert wanted("auto", {"GITHUB_ACTIONS": "true"})
    assert not wanted("auto", {"GITHUB_ACTIONS": "false"})
    assert not wanted("auto", {})
    assert wanted("github", {})
    assert not wanted("none", {"GITHUB_ACTIONS": "true"})


def test_the_suite_runs_without_github_variables() -> None:
    assert not [name for name in os.environ if name.startswith("GITHUB_")]


def test_verify_on_actions_annotates_the_failing_step_and_writes_a_summary(tmp_path: Path) -> None:
    labs = _workshop(tmp_path / "repo")
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step's summary\n")
    env = {
        **os.environ,
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(tmp_path / "repo"),
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    done = _verify(labs, env, "--skip-needs", "traffic")
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout.splitlines()
    line = LAB.splitlines().index("  - id: broken") + 1
    errors = [x for x in out if x.startswith("::error ")]
    assert len(errors) == 1, out
    props, _, message = errors[0][len("::error ") :].partition("::")
    assert props == f"file=labs/10-demo.yaml,line={line},title=demo/broken"
    assert "ghp_" not in message, "redacted like every report"
    assert "%0A" in message and "\n" not in message
    assert "hint: Look again." in message.replace("%0A", "\n")
    warnings = [x for x in out if x.startswith("::warning ")]
    far = LAB.splitlines().index("  - id: far-away") + 1
    assert warnings == [
        f"::warning file=labs/10-demo.yaml,line={far},title=demo/far-away::"
        "skipped: needs traffic, skipped with --skip-needs"
    ]
    # one group per lab, closed before its annotations
    assert out.index("::group::demo: Demo, with a comma: and a colon") < out.index("::endgroup::")
    assert out.index("::endgroup::") < out.index(errors[0])
    text = summary.read_text()
    assert text.startswith("earlier step's summary\n"), "appended, never overwritten"
    table = [x for x in text.splitlines() if x.startswith("|")]
    assert table[0] == "| lab | step | outcome | time | message |"
    assert re.fullmatch(r"\|(---:?\|)+", table[1].replace("---:", "---"))
    rows = [[c.strip() for c in x.strip("|").split("|")] for x in table[2:]]
    assert [r[1] for r in rows] == ["fine", "far-away", "broken", "after"]
    assert [r[2] for r in rows] == ["✔ passed", "↷ skipped", "✘ failed", "↷ skipped"]
    assert all(len(r) == 5 for r in rows)
    assert "ghp_" not in text


def test_without_actions_the_log_has_no_workflow_commands(tmp_path: Path) -> None:
    labs = _workshop(tmp_path / "repo")
    done = _verify(labs, dict(os.environ), "--skip-needs", "traffic")
    assert done.returncode == 1
    assert "::error" not in done.stdout and "::group::" not in done.stdout


def test_a_lab_whose_setup_fails_is_annotated_at_its_setup(tmp_path: Path) -> None:
    labs = tmp_path / "labs"
    labs.mkdir()
    (labs / "10-demo.yaml").write_text(LAB.replace("steps:\n", "setup:\n  - exit 3\nsteps:\n", 1))
    result = load_workshop(labs, builtin_registry())
    assert result.workshop is not None
    lines: list[str] = []

    class Stream:
        def write(self, text: str) -> None:
            lines.extend(text.splitlines())

        def flush(self) -> None:
            pass

    sink = GitHubActions(result.workshop, inner=lambda e: None, stream=Stream(), workspace=None)  # type: ignore[arg-type]
    sink(ev.LabStarted("demo", "Demo", ("fine",)))
    sink(ev.StepFinished("demo", "fine", StepStatus.SKIPPED, "setup failed: exit 3"))
    sink(ev.LabFinished("demo", StepStatus.ERROR, {}, 0.1, "setup failed: command failed"))
    (error,) = [x for x in lines if x.startswith("::error")]
    assert f"line={LAB.splitlines().index('steps:') + 2}" in error  # the setup command's line
    assert error.endswith("::setup failed: command failed")
    assert not [x for x in lines if x.startswith("::warning")], "not the echo of the failure"


@pytest.mark.parametrize("workspace", [None, "elsewhere"])
def test_paths_outside_the_workspace_stay_absolute(tmp_path: Path, workspace: str | None) -> None:
    labs = _workshop(tmp_path / "repo")
    result = load_workshop(labs, builtin_registry())
    assert result.workshop is not None
    sink = GitHubActions(
        result.workshop,
        inner=lambda e: None,
        stream=open(os.devnull, "w"),  # noqa: SIM115
        workspace=str(tmp_path / workspace) if workspace else None,
    )
    lab = result.workshop.lab("demo")
    assert sink._file(lab) == str((labs / "10-demo.yaml").resolve())
