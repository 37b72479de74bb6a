"""A ``command`` check's ``run`` gets the lab's variables in its environment, never pasted in.

Real bash runs both the lab's commands and the checks. Before, ``${VAR}`` in
a check's ``run`` was substituted as text: an exported value could run as
code, a value with quotes broke the command, and a loop's own variable was
overwritten by the lab's. Other verifiers' parameters still expand as before.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from labrunner.engine import events as ev
from labrunner.engine.events import StepStatus
from labrunner.verify.outcome import Status

from .conftest import assert_clean, run_cli
from .test_engine import Runner

LAB = r"""
apiVersion: labrunner/v1
id: check-vars
title: Checks read variables, they are not pasted into
env:
  NS: lab-ns
steps:
  - id: values
    title: Values that look like shell code, or carry quotes
    run:
      - export EVIL='x"; touch PWNED; echo "'
      - export QUOTED="it's \"quoted\" \$HOME"
      - printf %s "$EVIL" > evil.txt; printf %s "$QUOTED" > quoted.txt
    exports: [EVIL, QUOTED]
    check:
      - command: {run: 'printf %s "${EVIL}" | cmp - evil.txt'}
      - command: {run: 'printf %s "${QUOTED}" | cmp - quoted.txt'}
      - command: {run: 'test ! -e PWNED'}
  - id: loop
    title: A loop's own variable is the loop's
    run: ['true']
    check:
      - command:
          run: 'for NS in a b; do printf %s "${NS}"; done'
          stdout: {equals: ab}
      - command:
          run: 'printf %s "${NS}"'
          stdout: {equals: lab-ns}
  - id: others
    title: Other verifiers' parameters still expand
    run: ['touch "${NS}.txt"']
    check:
      - file: {path: "${NS}.txt"}
      - env: {name: NS, equals: "${NS}"}
"""

Make = Callable[[str, str], Path]


def test_checks_get_variables_not_pasted_text(lab_file: Make) -> None:
    path = lab_file("check-vars.yaml", LAB)
    run = Runner(path.parent).run()
    summary, events = run.summary, run.events
    failures = [
        (e.step_id, e.label, e.message)
        for e in events
        if isinstance(e, ev.CheckResult) and e.status is not Status.PASSED
    ]
    assert summary.ok, failures
    assert [r.status for r in summary.labs["check-vars"]] == [StepStatus.PASSED] * 3
    root = run.root
    assert not (root / "PWNED").exists(), "an exported value ran as shell code"
    labels = [e.label for e in events if isinstance(e, ev.CheckResult)]
    assert '$ printf %s "${EVIL}" | cmp - evil.txt' in labels, "labels show the check as written"


def test_validate_does_not_warn_about_a_loop_variable(lab_file: Make) -> None:
    text = LAB.replace("for NS in a b", "for item in a b").replace(
        '"${NS}"; done', '"${item}"; done'
    )
    path = lab_file("check-vars.yaml", text)
    proc = run_cli("validate", path)
    assert_clean(proc, 0)
    assert "0 warnings" in proc.stderr, proc.stdout
