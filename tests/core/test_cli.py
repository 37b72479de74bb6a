"""The command line as CI sees it: a fresh process, exit codes, stdout vs stderr, reports."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from labrunner.state import ProgressStore, workshop_key
from labrunner.testing.waiting import wait_for

from .conftest import (
    EXAMPLES,
    assert_clean,
    cli_env,
    pid_alive,
    read_pids,
    run_cli,
    run_on_terminal,
)

REPO = Path(__file__).resolve().parents[2]
Make = Callable[..., Path]


def write_lab(labs: Path, name: str, text: str) -> Path:
    labs.mkdir(parents=True, exist_ok=True)
    path = labs / name
    path.write_text(textwrap.dedent(text))
    return path


# --------------------------------------------------------------------------- start-up


HEADLESS_PROBE = r"""
import sys
from labrunner.cli import main

try:
    main(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
print("LOADED:" + ",".join(sorted(m for m in sys.modules if m.split(".")[0] == "textual")))
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["verify", "--help"],
        ["--labs", "{labs}", "verify", "-q", "carry-over"],
        ["--labs", "{labs}", "validate"],
        ["--labs", "{labs}", "list"],
        ["--labs", "{labs}", "check", "carry-over", "prepare"],
    ],
    ids=["help", "verify-help", "verify", "validate", "list", "check"],
)
def test_headless_commands_do_not_import_textual(workshop: Make, args: list[str]) -> None:
    labs = workshop("carry-over")
    argv = [a.format(labs=labs) for a in args]
    proc = subprocess.run(
        [sys.executable, "-c", HEADLESS_PROBE, *argv],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
        cwd=labs.parent,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "LOADED:", proc.stdout


def test_the_textual_probe_can_see_textual() -> None:
    # control for the test above: the same probe, after the TUI module was imported
    proc = subprocess.run(
        [sys.executable, "-c", "import labrunner.tui.app\n" + HEADLESS_PROBE, "--help"],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
    )
    assert proc.stdout.strip().splitlines()[-1].startswith("LOADED:textual")


def test_version_and_help() -> None:
    proc = run_cli("--version")
    assert_clean(proc, 0)
    assert proc.stdout.startswith("labrunner, version ")
    proc = run_cli("--help")
    assert_clean(proc, 0)
    for command in ("verify", "validate", "list", "check", "reset", "schema", "doctor"):
        assert command in proc.stdout


def test_unknown_command_and_option_are_usage_errors() -> None:
    proc = run_cli("frobnicate")
    assert_clean(proc, 2)
    assert "No such command 'frobnicate'" in proc.stderr
    proc = run_cli("verify", "--bogus")
    assert_clean(proc, 2)


# --------------------------------------------------------------------------- schema


def test_schema_is_valid_json_schema_and_accepts_every_lab() -> None:
    proc = run_cli("schema")
    assert_clean(proc, 0)
    schema = json.loads(proc.stdout)
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    files = sorted(EXAMPLES.glob("*.yaml")) + sorted((REPO / "labs").glob("*.y*ml"))
    for path in files:
        if path.name == "workshop.yaml":
            continue
        doc = yaml.safe_load(path.read_text())
        errors = [e.message for e in validator.iter_errors(doc)]
        assert not errors, f"{path.name}: {errors}"
    # and it rejects what the loader rejects
    bad = {
        "apiVersion": "labrunner/v1",
        "id": "x",
        "title": "X",
        "steps": [{"id": "a", "title": "A", "check": [{"comand": {"run": "true"}}]}],
    }
    assert list(validator.iter_errors(bad))
    check_params = {
        "apiVersion": "labrunner/v1",
        "id": "x",
        "title": "X",
        "steps": [{"id": "a", "title": "A", "check": [{"file": {"path": "x", "bogus": 1}}]}],
    }
    assert list(validator.iter_errors(check_params))


# --------------------------------------------------------------------------- validate


def test_validate_prints_file_line_message_and_exits_2(tmp_path: Path) -> None:
    labs = tmp_path / "labs"
    bad = write_lab(
        labs,
        "bad.yaml",
        """\
        apiVersion: labrunner/v1
        id: bad
        title: Bad
        steps:
          - id: one
            title: One
            run: [echo]
            check:
              - fille: {path: x}
        """,
    )
    proc = run_cli("validate", bad)
    assert_clean(proc, 2)
    assert proc.stdout.splitlines() == [
        f"{bad.resolve()}:9: step one: unknown verifier 'fille' (did you mean 'file'?)"
    ]
    assert proc.stderr.strip() == "1 lab file checked: 1 error, 0 warnings"


def test_validate_warns_when_the_context_guard_would_accept_any_cluster(tmp_path: Path) -> None:
    labs = tmp_path / "labs"
    write_lab(
        labs,
        "one.yaml",
        """\
        apiVersion: labrunner/v1
        id: one
        title: One
        steps:
          - id: a
            title: A
            run: [echo]
            check:
              - command: {run: "true"}
        """,
    )
    workshop = labs / "workshop.yaml"
    workshop.write_text(
        textwrap.dedent(
            """\
            apiVersion: labrunner/v1
            kind: Workshop
            title: Anywhere
            labs: [one.yaml]
            contexts:
              - kind-*
              - "*"
            """
        )
    )
    proc = run_cli("--labs", labs, "validate")
    assert_clean(proc, 0)
    assert proc.stdout.splitlines() == [
        f"{workshop.resolve()}:7: warning: contexts: '*' matches every context name, so the "
        "context guard would act on any cluster, production included; name your workshop "
        "clusters instead (e.g. '*istio-workshop*')"
    ]
    assert_clean(run_cli("--labs", labs, "validate", "--strict"), 2)


def test_validate_warnings_only_exit_0_unless_strict(tmp_path: Path) -> None:
    labs = tmp_path / "labs"
    path = write_lab(
        labs,
        "warn.yaml",
        """\
        apiVersion: labrunner/v1
        id: warn
        title: Warn
        steps:
          - id: one
            title: One
            run: [echo]
        """,
    )
    expected = [
        f"{path.resolve()}:5: warning: step one: step has no checks, so it cannot tell "
        "whether the learner succeeded"
    ]
    proc = run_cli("--labs", labs, "validate")
    assert_clean(proc, 0)
    assert proc.stdout.splitlines() == expected
    strict = run_cli("--labs", labs, "validate", "--strict")
    assert_clean(strict, 2)
    assert strict.stdout.splitlines() == expected


def test_validate_a_missing_file(tmp_path: Path) -> None:
    proc = run_cli("validate", tmp_path / "missing.yaml")
    assert_clean(proc, 2)
    assert proc.stdout.splitlines() == [f"{tmp_path / 'missing.yaml'}: no such file"]


def test_validate_malformed_yaml_and_cycles(tmp_path: Path) -> None:
    labs = tmp_path / "labs"
    broken = write_lab(labs, "broken.yaml", "apiVersion: labrunner/v1\nid: [unclosed\n")
    a = write_lab(
        labs,
        "a.yaml",
        "apiVersion: labrunner/v1\nid: lab-a\ntitle: A\nrequires: [lab-b]\nsteps:\n"
        "  - id: one\n    title: One\n    run: [echo]\n    check: [{env: {name: HOME}}]\n",
    )
    write_lab(
        labs,
        "b.yaml",
        "apiVersion: labrunner/v1\nid: lab-b\ntitle: B\nrequires: [lab-a]\nsteps:\n"
        "  - id: one\n    title: One\n    run: [echo]\n    check: [{env: {name: HOME}}]\n",
    )
    proc = run_cli("--labs", labs, "validate")
    assert_clean(proc, 2)
    lines = proc.stdout.splitlines()
    assert f"{a.resolve()}:4: requires form a cycle: lab-a → lab-b → lab-a" in lines
    assert any(line.startswith(f"{broken.resolve()}:2: invalid YAML: ") for line in lines)
    assert proc.stderr.strip() == "3 lab files checked: 2 errors, 0 warnings"


# --------------------------------------------------------------------------- verify


def test_verify_exit_0_and_reports(workshop: Make, tmp_path: Path) -> None:
    labs = workshop("carry-over", "hints", "needs")
    junit, report = tmp_path / "out" / "junit.xml", tmp_path / "out" / "report.json"
    proc = run_cli(
        "--labs",
        labs,
        "verify",
        "carry-over",
        "--junit",
        junit,
        "--json",
        report,
        cwd=labs.parent,
    )
    assert_clean(proc, 0)
    assert "✔ carry-over: PASS" in proc.stdout
    assert proc.stdout.splitlines()[-1] == "2 steps: 2 passed"
    root = ET.parse(junit).getroot()
    assert root.get("tests") == "2" and root.get("failures") == "0"
    data = json.loads(report.read_text())
    assert data["status"] == "passed"
    assert [s["status"] for s in data["labs"][0]["steps"]] == ["passed", "passed"]


def test_verify_exit_1_with_hints_in_output_and_junit(
    workshop: Make, tmp_path: Path, restricted_path: str
) -> None:
    labs = workshop("hints", "check-hint", "needs")
    junit, report = tmp_path / "junit.xml", tmp_path / "report.json"
    env = cli_env(PATH=restricted_path)
    proc = run_cli(
        "--labs",
        labs,
        "verify",
        "--junit",
        junit,
        "--json",
        report,
        "--skip-needs",
        "traffic",
        env=env,
        cwd=labs.parent,
    )
    assert_clean(proc, 1)
    out = proc.stdout
    assert (
        "✘ FAIL needs-config (1.0s): not done after 1.0s: "
        "config.yaml does not contain 'mode: strict'" in out
    )
    assert "  hint: Strict mode is spelled `mode: strict`, in config.yaml." in out
    assert "  hint: Export COLOUR=blue, not red." in out
    assert "↷ SKIP with-kind" in out and "needs kind, which is not on the lab shell's PATH" in out

    root = ET.parse(junit).getroot()
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"hints", "check-hint", "needs"}
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == (
        "7",
        "2",
        "0",
        "3",
    )
    cases = {c.get("name"): c for c in suites["hints"].findall("testcase")}
    failure = cases["needs-config"].find("failure")
    assert failure is not None
    assert (
        failure.get("message") == "not done after 1.0s: config.yaml does not contain 'mode: strict'"
    )
    assert "hint: Strict mode is spelled `mode: strict`, in config.yaml." in (failure.text or "")
    assert "[failed] config.yaml asks for strict mode: config.yaml does not contain" in (
        failure.text or ""
    )
    skipped = cases["after"].find("skipped")
    assert (
        skipped is not None and skipped.get("message") == "not run: step needs-config did not pass"
    )
    colour = suites["check-hint"].find("testcase/failure")
    assert colour is not None and "hint: Export COLOUR=blue, not red." in (colour.text or "")
    needs = {c.get("name"): c for c in suites["needs"].findall("testcase")}
    assert needs["with-kind"].find("skipped").get("message") == (  # type: ignore[union-attr]
        "needs kind, which is not on the lab shell's PATH"
    )
    assert needs["with-traffic"].find("skipped").get("message") == (  # type: ignore[union-attr]
        "needs traffic, skipped with --skip-needs"
    )

    data = json.loads(report.read_text())
    assert data["status"] == "failed"
    assert data["totals"] == {"steps": 7, "passed": 2, "failed": 2, "skipped": 3}
    by_lab = {lab["id"]: lab for lab in data["labs"]}
    step = by_lab["hints"]["steps"][1]
    assert step["id"] == "needs-config" and step["status"] == "failed"
    assert step["hints"][0].startswith("Strict mode is spelled")
    assert step["checks"][0]["label"] == "config.yaml asks for strict mode"
    assert step["commands"][0]["exit_code"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no-such-lab"], "labrunner: no lab 'no-such-lab' in "),
        (["missing.yaml"], "labrunner: no such lab file: missing.yaml"),
        (["sequence", "--from", "nope"], "labrunner: --from nope: lab sequence has no such step"),
        (
            ["sequence", "base", "--only", "one"],
            "labrunner: --from and --only need exactly one lab",
        ),
        (
            ["sequence", "--from", "one", "--only", "two"],
            "labrunner: use --from or --only, not both",
        ),
    ],
)
def test_verify_usage_errors_exit_2(workshop: Make, args: list[str], message: str) -> None:
    labs = workshop("sequence", "base")
    proc = run_cli("--labs", labs, "verify", *args, cwd=labs.parent)
    assert_clean(proc, 2)
    assert proc.stderr.startswith(message), proc.stderr
    assert proc.stdout == ""


def test_verify_an_invalid_lab_file_exits_2(tmp_path: Path) -> None:
    labs = tmp_path / "labs"
    path = write_lab(labs, "bad.yaml", "apiVersion: labrunner/v1\nid: bad\ntitle: Bad\nsteps: 3\n")
    proc = run_cli("verify", path)
    assert_clean(proc, 2)
    assert proc.stderr.splitlines() == [
        f"{path.resolve()}:4: steps must be a list, not a whole number",
        "labrunner: 1 problem in lab files; see above",
    ]


def test_verify_exit_3_when_a_tool_is_missing(workshop: Make) -> None:
    labs = workshop("broken-tool")
    proc = run_cli("--labs", labs, "verify", cwd=labs.parent)
    assert_clean(proc, 3)
    assert "! ERROR missing-tool" in proc.stdout
    assert "labrunner-test-no-such-tool: command not found" in proc.stdout


def test_verify_exit_3_without_a_cluster(tmp_path: Path) -> None:
    labs = tmp_path / "labs"
    write_lab(
        labs,
        "k8s.yaml",
        "apiVersion: labrunner/v1\nid: k8s\ntitle: K\nneeds: [cluster]\nsteps:\n"
        "  - id: one\n    title: One\n    run: [kubectl get pods]\n"
        "    check: [{env: {name: HOME}}]\n",
    )
    proc = run_cli("--labs", labs, "verify")
    assert_clean(proc, 3)
    assert proc.stderr.startswith("labrunner: no kubeconfig: KUBECONFIG=")
    assert "create a workshop cluster" in proc.stderr


def test_verify_refuses_a_context_that_does_not_look_disposable(tmp_path: Path) -> None:
    labs = tmp_path / "labs"
    write_lab(
        labs,
        "k8s.yaml",
        "apiVersion: labrunner/v1\nid: k8s\ntitle: K\nneeds: [cluster]\nsteps:\n"
        "  - id: one\n    title: One\n    run: [kubectl get pods]\n"
        "    check: [{env: {name: HOME}}]\n",
    )
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\ncurrent-context: prod-eu-1\n")
    proc = run_cli("--labs", labs, "verify", env=cli_env(KUBECONFIG=str(kubeconfig)))
    assert_clean(proc, 3)
    assert "refusing to act on kube context 'prod-eu-1'" in proc.stderr


def test_report_that_cannot_be_written_exits_3(workshop: Make, tmp_path: Path) -> None:
    labs = workshop("base")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = run_cli("--labs", labs, "verify", "--junit", blocker / "r.xml", cwd=labs.parent)
    assert_clean(proc, 3)
    assert proc.stderr.startswith("labrunner: cannot write report: ")


def test_unanswered_prompt_via_cli(workshop: Make) -> None:
    labs = workshop("prompt-unanswered")
    started = time.monotonic()
    proc = run_cli("--labs", labs, "verify", cwd=labs.parent)
    assert time.monotonic() - started < 15
    assert_clean(proc, 1)
    assert "? waiting for input at: Delete the cluster? [yes/no]" in proc.stdout
    assert "nobody can type in a headless run" in proc.stdout
    assert (
        "(it was waiting for input at the prompt 'Delete the cluster? [yes/no]'; "
        "add an `expect` answer for it)" in proc.stdout
    )


def test_timed_out_command_via_cli_leaves_nothing_running(
    workshop: Make, reaper: list[int]
) -> None:
    labs = workshop("hang")
    proc = run_cli("--labs", labs, "verify", cwd=labs.parent)
    assert_clean(proc, 1)
    assert "⏱ timed out after 1." in proc.stdout
    pids = read_pids(labs.parent / "pids") + read_pids(labs.parent / "shell.pid")
    reaper.extend(pids)
    assert len(pids) == 3
    assert wait_for(lambda: not any(pid_alive(p) for p in pids), 5)


def test_no_orphans_after_verify_exits(workshop: Make, reaper: list[int]) -> None:
    labs = workshop("orphans")
    proc = run_cli("--labs", labs, "verify", cwd=labs.parent)
    assert_clean(proc, 0)
    pids = read_pids(labs.parent / "bg.pids")
    reaper.extend(pids)
    assert len(pids) == 2
    # the CLI has exited; nothing it started may still run
    assert not [p for p in pids if pid_alive(p)]


def test_secrets_are_redacted_everywhere(workshop: Make, tmp_path: Path) -> None:
    labs = workshop("secrets")
    junit, report = tmp_path / "junit.xml", tmp_path / "report.json"
    proc = run_cli("--labs", labs, "verify", "--junit", junit, "--json", report, cwd=labs.parent)
    assert_clean(proc, 1)
    secrets = (
        "abc123SECRETtokenVALUE987",
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw",
        "SECRETKEYMATERIAL",
    )
    for where, text in (
        ("junit", junit.read_text()),
        ("json", report.read_text()),
        ("stdout", proc.stdout),
        ("stderr", proc.stderr),
    ):
        for secret in secrets:
            assert secret not in text, f"{secret} leaked into {where}"
    root = ET.parse(junit).getroot()
    failure = root.find("testsuite/testcase/failure")
    assert failure is not None
    assert failure.get("message") == (
        "not done after 500ms: exit code 1, expected 0: token: [REDACTED]"
    )
    lines = (root.findtext("testsuite/testcase/system-out") or "").splitlines()
    assert lines[:2] == ["Authorization: Bearer [REDACTED]", "-----BEGIN PRIVATE KEY-----"]
    assert lines[-2:] == ["-----END PRIVATE KEY-----", "after the key"]
    assert set(lines[2:-2]) == {"[REDACTED]"}
    data = json.loads(report.read_text())
    assert data["labs"][0]["steps"][0]["output"][0] == "Authorization: Bearer [REDACTED]"


@pytest.mark.slow
def test_flood_of_output_completes_with_bounded_memory_and_reports(
    workshop: Make, tmp_path: Path
) -> None:
    labs = workshop("flood", "base")
    probe = tmp_path / "probe.py"
    probe.write_text(
        textwrap.dedent(
            """\
            import resource, sys
            from labrunner.cli import main
            try:
                main(sys.argv[2:])
            finally:
                with open(sys.argv[1], "w") as fh:
                    fh.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
            """
        )
    )

    def peak_kib(*args: str | Path, out: Path) -> tuple[int, int]:
        rss = tmp_path / f"{out.name}.rss"
        with out.open("w") as stdout:
            proc = subprocess.run(
                [
                    sys.executable,
                    str(probe),
                    str(rss),
                    "--labs",
                    str(labs),
                    "verify",
                    *map(str, args),
                ],
                stdout=stdout,
                stderr=subprocess.PIPE,
                text=True,
                env=cli_env(),
                cwd=labs.parent,
                timeout=120,
            )
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc.returncode, int(rss.read_text())

    base_code, base_peak = peak_kib("base", out=tmp_path / "base.out")
    assert base_code == 0
    junit, report = tmp_path / "junit.xml", tmp_path / "report.json"
    code, peak = peak_kib("flood", "--junit", junit, "--json", report, out=tmp_path / "flood.out")
    assert code == 0, (tmp_path / "flood.out").read_text()[-2000:]
    # 100 MB went through the process; it may hold a bounded tail, not the flood
    assert peak - base_peak < 40 * 1024, f"peak RSS grew by {(peak - base_peak) // 1024} MiB"
    assert junit.stat().st_size < 2 * 1024 * 1024
    assert report.stat().st_size < 2 * 1024 * 1024
    steps = json.loads(report.read_text())["labs"][0]["steps"]
    assert [s["status"] for s in steps] == ["passed", "passed"]
    assert steps[0]["output"][-1] == "lines-done"
    assert steps[1]["output"][-1] == "one-line-done"
    ET.parse(junit)


# --------------------------------------------------------------------------- progress and state


def test_list_shows_progress(workshop: Make) -> None:
    labs = workshop("sequence", "base", "dependent")
    assert_clean(run_cli("--labs", labs, "verify", "-q", "sequence", cwd=labs.parent), 0)
    proc = run_cli("--labs", labs, "list", cwd=labs.parent)
    assert_clean(proc, 0)
    lines = proc.stdout.splitlines()
    assert lines[0] == f"{labs.name}  ({labs.resolve()}; context: none)"
    sequence = next(line for line in lines if line.strip().startswith("sequence"))
    assert "3/3 steps" in sequence
    dependent = next(line for line in lines if line.strip().startswith("dependent"))
    assert "0/1 steps" in dependent and "locked (needs base)" in dependent
    assert "      ✔ one" in proc.stdout and "      · foundation" in proc.stdout
    data = json.loads(run_cli("--labs", labs, "list", "--json", cwd=labs.parent).stdout)
    by_id = {lab["id"]: lab for lab in data["labs"]}
    assert [s["status"] for s in by_id["sequence"]["steps"]] == ["passed"] * 3
    assert by_id["dependent"]["locked"] is True
    assert by_id["base"]["steps"][0]["status"] is None


def test_reset(workshop: Make) -> None:
    labs = workshop("sequence", "base")
    assert_clean(run_cli("--labs", labs, "verify", "-q", cwd=labs.parent), 0)
    refused = run_cli("--labs", labs, "reset", "sequence", cwd=labs.parent)
    assert_clean(refused, 2)
    assert "refusing to forget lab sequence without --yes" in refused.stderr
    one = run_cli("--labs", labs, "reset", "sequence", "--step", "two", "--yes", cwd=labs.parent)
    assert_clean(one, 0)
    assert one.stdout.strip() == "forgot 1 step (step two of sequence, context none)"
    assert ProgressStore.for_root(labs.parent, context=None).completed("sequence") == {
        "one",
        "three",
    }
    bad_step = run_cli("--labs", labs, "reset", "sequence", "--step", "nope", "--yes")
    assert_clean(bad_step, 2)
    everything = run_cli("--labs", labs, "reset", "--yes", cwd=labs.parent)
    assert_clean(everything, 0)
    assert everything.stdout.strip() == "forgot 3 steps (all progress, context none)"
    assert ProgressStore.for_root(labs.parent, context=None).completed("base") == set()


def test_check_runs_only_the_checks(workshop: Make) -> None:
    labs = workshop("hints")
    missing = run_cli("--labs", labs, "check", "hints", "fine", cwd=labs.parent)
    assert_clean(missing, 1)
    assert "✘ FAIL fine" in missing.stdout
    assert not (labs.parent / "fine.txt").exists(), "check must not run the step's commands"
    (labs.parent / "fine.txt").touch()
    passed = run_cli("--labs", labs, "check", "hints", "fine", cwd=labs.parent)
    assert_clean(passed, 0)
    assert "✔ PASS fine" in passed.stdout
    unknown = run_cli("--labs", labs, "check", "hints", "nope", cwd=labs.parent)
    assert_clean(unknown, 2)
    assert "--only nope: lab hints has no such step" in unknown.stderr


def test_check_exit_3_on_an_environment_error(workshop: Make) -> None:
    labs = workshop("broken-tool")
    proc = run_cli("--labs", labs, "check", "broken-tool", cwd=labs.parent)
    assert_clean(proc, 3)


def test_a_progress_file_cut_short_keeps_every_earlier_record(workshop: Make) -> None:
    labs = workshop("sequence")
    assert_clean(run_cli("--labs", labs, "verify", "-q", cwd=labs.parent), 0)
    path = ProgressStore.for_root(labs.parent, context=None).local.path
    assert path is not None
    content = path.read_bytes()
    lines = content.splitlines(keepends=True)
    # the header, the first two steps, and half of the third step's record
    path.write_bytes(b"".join(lines[:3]) + lines[3][: len(lines[3]) // 2])
    proc = run_cli("--labs", labs, "list", cwd=labs.parent)
    assert_clean(proc, 0)
    assert f"labrunner: warning: progress file {path}: its last record was cut short" in (
        proc.stderr
    )
    assert "2/3 steps" in proc.stdout
    again = run_cli("--labs", labs, "verify", "-q", "--from", "three", cwd=labs.parent)
    assert_clean(again, 0)
    assert ProgressStore.for_root(labs.parent, context=None).completed("sequence") == {
        "one",
        "two",
        "three",
    }
    assert not list(path.parent.glob("*.corrupt-*"))


def test_an_unreadable_progress_file_is_moved_aside_and_the_cli_works(workshop: Make) -> None:
    labs = workshop("sequence")
    assert_clean(run_cli("--labs", labs, "verify", "-q", cwd=labs.parent), 0)
    path = ProgressStore.for_root(labs.parent, context=None).local.path
    assert path is not None
    path.write_bytes(b"\xff\xfe not a journal\n")
    proc = run_cli("--labs", labs, "list", cwd=labs.parent)
    assert_clean(proc, 0)
    assert f"labrunner: warning: progress file {path} was unreadable" in proc.stderr
    assert "moved it to" in proc.stderr
    assert "0/3 steps" in proc.stdout
    asides = list(path.parent.glob(f"{path.name}.corrupt-*"))
    assert len(asides) == 1 and asides[0].read_bytes() == b"\xff\xfe not a journal\n"
    again = run_cli("--labs", labs, "verify", "-q", cwd=labs.parent)
    assert_clean(again, 0)
    assert ProgressStore.for_root(labs.parent, context=None).completed("sequence") == {
        "one",
        "two",
        "three",
    }


@pytest.fixture
def read_only() -> Iterator[Callable[[Path], None]]:
    """Make directories read-only, even for root (via the immutable attribute)."""
    done: list[tuple[Path, bool]] = []

    def writable(directory: Path) -> bool:
        probe = directory / ".write-probe"
        try:
            probe.touch()
        except OSError:
            return False
        probe.unlink()
        return True

    def make(directory: Path) -> None:
        directory.chmod(0o555)
        immutable = False
        if writable(directory) and shutil.which("chattr"):
            immutable = (
                subprocess.run(["chattr", "+i", str(directory)], capture_output=True).returncode
                == 0
            )
        done.append((directory, immutable))
        if writable(directory):
            pytest.skip("cannot make a directory read-only here")

    yield make
    for directory, immutable in reversed(done):
        if immutable:
            subprocess.run(["chattr", "-i", str(directory)], check=False)
        directory.chmod(0o755)


def test_read_only_state_directory(
    workshop: Make, isolated_env: Path, read_only: Callable[[Path], None], tmp_path: Path
) -> None:
    labs = workshop("sequence", "hints")
    state = isolated_env / "state"
    (state / "progress").mkdir(parents=True)
    read_only(state / "progress")
    read_only(state)

    passed = run_cli("--labs", labs, "verify", "-q", "sequence", "--json", tmp_path / "r.json")
    assert_clean(passed, 0)
    warnings = [line for line in passed.stderr.splitlines() if "progress not saved" in line]
    assert len(warnings) == 1, passed.stderr
    assert warnings[0].startswith("labrunner: warning: progress not saved: cannot save progress")
    assert json.loads((tmp_path / "r.json").read_text())["status"] == "passed"

    failed = run_cli("--labs", labs, "verify", "-q", "hints", cwd=labs.parent)
    assert_clean(failed, 1)
    assert "progress not saved" in failed.stderr

    with_context = run_cli(
        "--labs", labs, "verify", "-q", "sequence", "--context", "kind-x", cwd=labs.parent
    )
    assert_clean(with_context, 0)

    # list still works, and nothing was written anywhere
    listing = run_cli("--labs", labs, "list", cwd=labs.parent)
    assert_clean(listing, 0)
    assert "0/3 steps" in listing.stdout
    assert list((state / "progress").iterdir()) == []


def test_context_overlay_does_not_litter_the_state_directory(
    workshop: Make, isolated_env: Path
) -> None:
    labs = workshop("base")
    proc = run_cli("--labs", labs, "verify", "-q", "--context", "kind-x", cwd=labs.parent)
    assert_clean(proc, 0)
    state = isolated_env / "state"
    # progress, and the start-up caches (dataclass code, entry points, the modules of a
    # verify, compiled labs); nothing else
    assert sorted(p.name for p in state.iterdir()) == ["cache", "progress"]
    assert sorted(p.name for p in (state / "cache").iterdir()) == [
        f"dataclass-code-verify-{sys.implementation.cache_tag}.marshal",
        "entry-points.json",
        f"module-code-verify-{sys.implementation.cache_tag}.marshal",
        "workshops",
    ]


# --------------------------------------------------------------------------- terminal output


def run_in_terminal(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run the CLI with stdout on a pseudo-terminal; returns (exit code, output)."""
    return run_on_terminal([sys.executable, "-m", "labrunner", *args], env, cwd)


def test_colour_only_on_a_terminal_without_no_color(workshop: Make) -> None:
    labs = workshop("base")
    args = ["--labs", str(labs), "verify", "base"]
    env = cli_env(TERM="xterm-256color")
    env.pop("NO_COLOR", None)
    code, coloured = run_in_terminal(args, env, labs.parent)
    assert code == 0
    assert "\x1b[" in coloured
    code, plain = run_in_terminal(args, {**env, "NO_COLOR": "1"}, labs.parent)
    assert code == 0
    assert "\x1b[" not in plain and "✔ PASS foundation" in plain
    piped = run_cli(*args, env=env, cwd=labs.parent)
    assert_clean(piped, 0)
    assert "\x1b[" not in piped.stdout
    assert "-- foundation: Lay the foundation" in piped.stdout


def test_output_ansi_from_commands_is_stripped_when_not_a_terminal(tmp_path: Path) -> None:
    labs = tmp_path / "labs"
    write_lab(
        labs,
        "colour.yaml",
        "apiVersion: labrunner/v1\nid: colour\ntitle: C\nsteps:\n"
        "  - id: one\n    title: One\n    run: [\"printf '\\\\033[31mred\\\\033[0m\\\\n'\"]\n"
        "    check: [{env: {name: HOME}}]\n",
    )
    proc = run_cli("--labs", labs, "verify", cwd=tmp_path)
    assert_clean(proc, 0)
    assert "  | red" in proc.stdout.splitlines()
    assert "\x1b" not in proc.stdout


# --------------------------------------------------------------------------- doctor


def test_doctor_lists_tools(workshop: Make) -> None:
    labs = workshop("base")
    proc = run_cli("--labs", labs, "doctor", cwd=labs.parent)
    assert_clean(proc, 0)
    names = [line[2:].split()[0] for line in proc.stdout.splitlines() if line[:1] in "✔✘·"]
    for tool in ("python", "bash", "kubectl", "istioctl", "curl", "openssl", "labs"):
        assert tool in names, proc.stdout
    assert "✔ bash" in proc.stdout
    data = json.loads(run_cli("--labs", labs, "doctor", "--json", cwd=labs.parent).stdout)
    bash = next(f for f in data if f["name"] == "bash")
    assert bash["ok"] is True and bash["required"] is True


def test_doctor_exit_3_when_the_labs_are_broken(tmp_path: Path) -> None:
    labs = tmp_path / "labs"
    write_lab(labs, "bad.yaml", "nonsense: true\n")
    proc = run_cli("--labs", labs, "doctor")
    assert_clean(proc, 3)
    assert "✘ labs" in proc.stdout
    assert "labrunner: 1 problem stops the workshop from running" in proc.stderr


# --------------------------------------------------------------------------- invalid labs

INVALID = EXAMPLES / "invalid"


def expected_lines(directory: Path) -> list[str]:
    """``file:line: message`` lines from the ``# expect:`` comments of the lab files."""
    lines = []
    for path in sorted(directory.glob("*.yaml")):
        for line in path.read_text().splitlines():
            if line.startswith("# expect: "):
                lines.append(f"{path.resolve()}:{line.removeprefix('# expect: ')}")
    return lines


@pytest.mark.parametrize(
    "case",
    sorted(p.name for p in INVALID.iterdir()),
)
def test_invalid_labs_fail_cleanly_with_exact_lines(tmp_path: Path, case: str) -> None:
    labs = tmp_path / "labs"
    source = INVALID / case
    if source.is_dir():
        shutil.copytree(source, labs)
        target: list[str | Path] = ["--labs", labs]
    else:
        labs.mkdir()
        shutil.copy(source, labs / case)
        target = [labs / case]
    expected = expected_lines(labs)
    assert expected, f"{case} has no '# expect:' lines"
    count = len(expected)
    summary = f"labrunner: {count} problem{'s' if count != 1 else ''} in lab files; see above"

    validate = run_cli(*target[:2], "validate") if source.is_dir() else run_cli("validate", *target)
    assert_clean(validate, 2)
    assert validate.stdout.splitlines() == expected

    verify = run_cli(*target[:2], "verify") if source.is_dir() else run_cli("verify", *target)
    assert_clean(verify, 2)
    assert verify.stdout == ""
    assert verify.stderr.splitlines() == [*expected, summary]


# --------------------------------------------------------------------------- flags


def test_only_from_setup_and_cleanup_flags(workshop: Make) -> None:
    labs = workshop("sequence", "base", "dependent")
    root = labs.parent
    assert_clean(run_cli("--labs", labs, "verify", "-q", "sequence", "--only", "two", cwd=root), 1)
    assert (root / "ran.log").read_text().split() == ["two"]
    assert_clean(run_cli("--labs", labs, "verify", "-q", "sequence", cwd=root), 0)
    assert_clean(run_cli("--labs", labs, "verify", "-q", "sequence", "--from", "two", cwd=root), 0)
    assert (root / "ran.log").read_text().split() == ["two", "one", "two", "three", "two", "three"]

    proc = run_cli("--labs", labs, "verify", "dependent", "--cleanup", cwd=root)
    assert_clean(proc, 0)
    assert "-- setup" in proc.stdout and "-- cleanup" in proc.stdout
    assert (root / "setup.log").read_text().split() == ["dependent-setup"]
    assert (root / "cleanup.log").read_text().split() == ["dependent-cleanup"]
    no_setup = run_cli("--labs", labs, "verify", "-q", "dependent", "--no-setup", cwd=root)
    assert_clean(no_setup, 0)
    assert (root / "setup.log").read_text().split() == ["dependent-setup"]


def test_unreadable_progress_file_does_not_stop_verify_or_check(
    workshop: Make, isolated_env: Path
) -> None:
    labs = workshop("sequence")
    # a directory where the progress file should be: it can be neither read nor replaced
    folder = isolated_env / "state" / "progress" / workshop_key(labs.parent)
    (folder / "local.jsonl").mkdir(parents=True)
    proc = run_cli("--labs", labs, "verify", "-q", "sequence", "--from", "two", cwd=labs.parent)
    assert_clean(proc, 1)
    assert "labrunner: warning: saved exports not restored: cannot read progress file" in (
        proc.stderr
    )
    check = run_cli("--labs", labs, "check", "sequence", "one", cwd=labs.parent)
    assert_clean(check, 1)
    full = run_cli("--labs", labs, "verify", "-q", "sequence", cwd=labs.parent)
    assert_clean(full, 0)
    assert "progress not saved" in full.stderr


def test_context_option_pins_the_context_for_commands_and_checks(tmp_path: Path) -> None:
    labs = tmp_path / "labs"
    write_lab(
        labs,
        "ctx.yaml",
        """\
        apiVersion: labrunner/v1
        id: ctx
        title: Which context do commands see?
        needs: [cluster]
        steps:
          - id: one
            title: One
            run: ['cat "$KUBECONFIG" > seen-by-run']
            check:
              - file: {path: seen-by-run, contains: '"current-context": "kind-chosen"'}
              - file: {path: seen-by-run, not_contains: kind-other}
              - command:
                  run: cat "$KUBECONFIG"
                  stdout: {contains: '"current-context": "kind-chosen"', not_contains: kind-other}
        """,
    )
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "kind-other",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {}}],
                "contexts": [
                    {"name": n, "context": {"cluster": "c", "user": "u"}}
                    for n in ("kind-chosen", "kind-other")
                ],
            }
        )
    )
    before = kubeconfig.read_bytes()
    env = cli_env(KUBECONFIG=str(kubeconfig))
    verify = run_cli("--labs", labs, "verify", "--context", "kind-chosen", env=env, cwd=tmp_path)
    assert_clean(verify, 0)
    check = run_cli("--labs", labs, "check", "ctx", "--context", "kind-chosen", env=env)
    assert_clean(check, 0)
    assert "✔ PASS one" in check.stdout
    assert kubeconfig.read_bytes() == before


def test_the_tui_refuses_to_start_without_a_terminal() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "labrunner", "run"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "needs a terminal" in proc.stderr
    assert "labrunner verify" in proc.stderr
    assert proc.stdout == ""


TIMED_OUT_LAB = """\
apiVersion: labrunner/v1
id: slow
title: Slow
steps:
  - id: never
    title: Never converges
    run: ["true"]
    within: 0.5s
    check:
      - file: {path: never-there.txt}
      - command: {run: "true"}
"""


def test_reports_of_a_timed_out_check_say_failed_never_pending(tmp_path: Path) -> None:
    labs = tmp_path / "labs"
    write_lab(labs, "slow.yaml", TIMED_OUT_LAB)
    report, junit = tmp_path / "report.json", tmp_path / "report.xml"
    proc = run_cli("--labs", labs, "verify", "--json", report, "--junit", junit, cwd=tmp_path)
    assert_clean(proc, 1)
    data = json.loads(report.read_text())
    (step,) = data["labs"][0]["steps"]
    assert step["status"] == "failed"
    first, second = step["checks"]
    assert first["status"] == "failed", "the engine closes a check the budget ran out on"
    assert first["message"] == "never-there.txt does not exist yet", "its last message"
    assert second["status"] == "passed"
    assert "pending" not in report.read_text()
    failure = ET.parse(junit).getroot().find(".//failure")
    assert failure is not None and "[failed] " in (failure.text or "")
    assert "pending" not in junit.read_text()
    assert "✘ " in proc.stdout and "… " not in proc.stdout


@pytest.mark.parametrize("command", ["verify", "check"])
def test_sigint_exits_130(
    lab_file: Callable[[str, str], Path], tmp_path: Path, command: str
) -> None:
    path = lab_file(
        "waits.yaml",
        "apiVersion: labrunner/v1\nid: waits\ntitle: Waits\nsteps:\n"
        "  - id: wait\n    title: Wait for a file that never comes\n"
        "    run: ['echo started']\n    check:\n      - file: {path: never}\n"
        "    within: 300s\n",
    )
    args = ["verify", "waits"] if command == "verify" else ["check", "waits", "--wait"]
    out = tmp_path / "out.log"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "labrunner", "--labs", str(path.parent), *args],
            cwd=path.parent.parent,
            env=cli_env(),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        assert wait_for(lambda: "-- wait: Wait" in out.read_text(), 30), out.read_text()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130, out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in out.read_text()


def test_doctor_says_which_labs_run_without_a_cluster() -> None:
    """No kubeconfig at all: the cluster-free lab can still run, and the fix is README's."""
    proc = run_cli("--labs", REPO / "labs", "doctor")
    assert proc.returncode == 3, proc.stderr
    assert "mesh-security-basics (no cluster needed)" in proc.stdout
    assert "the other 18 need the cluster fixed first" in proc.stdout
    from labrunner.doctor.cluster import CREATE_CLUSTER

    assert f"create a cluster: see Bring a cluster in the README (`{CREATE_CLUSTER}`)" in (
        proc.stdout
    )
    assert "labrunner: 1 problem stops the workshop from running" in proc.stderr


def test_the_create_cluster_command_is_the_readme_one() -> None:
    from labrunner.doctor.cluster import CREATE_CLUSTER

    readme = (REPO / "README.md").read_text()
    section = readme.split("## Bring a cluster", 1)[1]
    assert CREATE_CLUSTER in section.replace(" \\\n  ", " ")
