"""Reports built from events: JUnit XML and JSON, bounded and redacted."""

from __future__ import annotations

import json
import os
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from labrunner.ansi import MAX_LINE
from labrunner.engine import events as ev
from labrunner.engine.events import Phase, StepStatus
from labrunner.redact import LineRedactor, redact
from labrunner.reports import ReportCollector, clean
from labrunner.reports.collector import OUTPUT_TAIL
from labrunner.verify.outcome import Status

TOKEN = "abc123SECRETtokenVALUE987"
PEM = [
    "-----BEGIN RSA PRIVATE KEY-----",
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun",
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK",
    "-----END RSA PRIVATE KEY-----",
]


def sample_run() -> ReportCollector:
    c = ReportCollector(workshop="Mesh workshop", context="kind-lab")
    c(ev.LabStarted("mesh", "The mesh", ("install", "verify", "later")))
    c(ev.PhaseStarted("mesh", Phase.SETUP))
    c(ev.CommandStarted("mesh", None, Phase.SETUP, 0, "echo setup"))
    c(ev.OutputLine("mesh", None, "setting up"))
    c(ev.CommandFinished("mesh", None, Phase.SETUP, 0, "echo setup", 0, 0.01))
    c(ev.StepStarted("mesh", "install", 0, "Install it"))
    c(ev.CommandStarted("mesh", "install", Phase.SOLUTION, 0, "istioctl install"))
    c(ev.OutputLine("mesh", "install", "\x1b[32m✔ Istio core installed\x1b[0m"))
    c(ev.CommandFinished("mesh", "install", Phase.SOLUTION, 0, "istioctl install", 0, 1.5))
    c(
        ev.CheckResult(
            "mesh", "install", 0, "pods_ready", "pods ready", Status.PASSED, "3 of 3", None, 1, 0.2
        )
    )
    c(ev.StepFinished("mesh", "install", StepStatus.PASSED, "", None, 1.75))
    c(ev.StepStarted("mesh", "verify", 1, "Verify it"))
    c(ev.OutputLine("mesh", "verify", f"Authorization: Bearer {TOKEN}"))
    for line in PEM:
        c(ev.OutputLine("mesh", "verify", line))
    c(
        ev.CheckResult(
            "mesh", "verify", 0, "command", "$ curl", Status.PENDING, "not yet", None, 1, 0.1
        )
    )
    c(
        ev.CheckResult(
            "mesh",
            "verify",
            0,
            "command",
            "$ curl",
            Status.PENDING,
            f"exit code 1, expected 0: token: {TOKEN}",
            f"stdout:\ntoken: {TOKEN}",
            4,
            0.1,
        )
    )
    c(
        ev.StepFinished(
            "mesh",
            "verify",
            StepStatus.FAILED,
            f"not done after 2.0s: exit code 1, expected 0: token: {TOKEN}",
            f"stdout:\ntoken: {TOKEN}",
            2.0,
            ("Look at the gateway <logs>.", "Second hint."),
            4,
        )
    )
    c(ev.StepStarted("mesh", "later", 2, "Later"))
    c(ev.StepFinished("mesh", "later", StepStatus.SKIPPED, "not run: step verify did not pass"))
    c(ev.Notice("mesh", "progress not saved: read-only"))
    c(
        ev.LabFinished(
            "mesh",
            StepStatus.FAILED,
            {"passed": 1, "failed": 1, "skipped": 1},
            3.9,
            "step verify: ...",
        )
    )
    c(ev.LabStarted("broken", "Broken", ("one",)))
    c(ev.StepStarted("broken", "one", 0, "One"))
    c(ev.StepFinished("broken", "one", StepStatus.ERROR, "kubectl not found", None, 0.1))
    c(ev.LabFinished("broken", StepStatus.ERROR, {"error": 1}, 0.1))
    return c


def test_junit_structure() -> None:
    root = sample_run().as_junit()
    root = ET.fromstring(ET.tostring(root))  # what a CI system parses
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == (
        "4",
        "1",
        "1",
        "1",
    )
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["mesh", "broken"]
    mesh = suites[0]
    assert (mesh.get("tests"), mesh.get("failures"), mesh.get("skipped")) == ("3", "1", "1")
    props = {p.get("name"): p.get("value") for p in mesh.iter("property")}
    assert props == {"title": "The mesh", "kube-context": "kind-lab"}
    cases = {c.get("name"): c for c in mesh.findall("testcase")}
    assert list(cases) == ["install", "verify", "later"]
    assert all(c.get("classname") == "mesh" for c in cases.values())
    assert cases["install"].find("failure") is None
    assert cases["install"].findtext("system-out") == "✔ Istio core installed"
    failure = cases["verify"].find("failure")
    assert failure is not None
    assert (
        failure.get("message") == "not done after 2.0s: exit code 1, expected 0: token: [REDACTED]"
    )
    body = failure.text or ""
    assert "[pending] $ curl: exit code 1, expected 0: token: [REDACTED]" in body
    assert "hint: Look at the gateway <logs>." in body
    skipped = cases["later"].find("skipped")
    assert skipped is not None and skipped.get("message") == "not run: step verify did not pass"
    error = suites[1].find("testcase/error")
    assert error is not None and error.get("message") == "kubectl not found"


def test_json_structure() -> None:
    data = json.loads(json.dumps(sample_run().as_dict()))
    assert data["format"] == "labrunner-report/v1"
    assert data["status"] == "failed"
    assert data["context"] == "kind-lab"
    assert data["totals"] == {"steps": 4, "passed": 1, "failed": 1, "skipped": 1, "error": 1}
    mesh = data["labs"][0]
    assert mesh["notices"] == ["progress not saved: read-only"]
    assert mesh["setup_cleanup"]["output"] == ["setting up"]
    assert mesh["setup_cleanup"]["commands"][0]["phase"] == "setup"
    verify = mesh["steps"][1]
    assert verify["status"] == "failed"
    assert verify["hints"] == ["Look at the gateway <logs>.", "Second hint."]
    (check,) = verify["checks"]
    assert check["attempts"] == 4 and check["status"] == "pending"
    assert verify["output"][0] == "Authorization: Bearer [REDACTED]"


def test_secrets_never_reach_a_report(tmp_path: Path) -> None:
    collector = sample_run()
    collector.write_junit(tmp_path / "r.xml")
    collector.write_json(tmp_path / "r.json")
    for name in ("r.xml", "r.json"):
        text = (tmp_path / name).read_text()
        assert TOKEN not in text
        assert "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun" not in text
        assert "BEGIN RSA PRIVATE KEY" in text and "[REDACTED]" in text
    ET.parse(tmp_path / "r.xml")
    json.loads((tmp_path / "r.json").read_text())


def test_reports_are_private_to_their_owner(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "r.json").write_text("an older, world-readable report")
    (out / "r.json").chmod(0o644)
    old = os.umask(0o022)
    try:
        sample_run().write_junit(out / "r.xml")
        sample_run().write_json(out / "r.json")
    finally:
        os.umask(old)
    for name in ("r.xml", "r.json"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name
    assert sorted(p.name for p in out.iterdir()) == ["r.json", "r.xml"]


def test_output_is_bounded_in_lines_and_line_length() -> None:
    c = ReportCollector()
    c(ev.LabStarted("lab", "Lab", ("s",)))
    c(ev.StepStarted("lab", "s", 0, "S"))
    for i in range(5000):
        c(ev.OutputLine("lab", "s", f"line {i}"))
    c(ev.OutputLine("lab", "s", "y" * 1_000_000))
    c(ev.StepFinished("lab", "s", StepStatus.FAILED, "m", "d" * 300_000))
    c(ev.LabFinished("lab", StepStatus.FAILED))
    step = c.as_dict()["labs"][0]["steps"][0]
    assert len(step["output"]) == OUTPUT_TAIL
    assert step["output"][0] == f"line {5000 - OUTPUT_TAIL + 1}"
    last = step["output"][-1]
    assert len(last) <= MAX_LINE
    kept = last.count("y")
    assert last == "y" * kept + f"… [{1_000_000 - kept} more characters]"
    assert len(step["details"]) < MAX_LINE + 100
    assert len(ET.tostring(c.as_junit())) < 200 * 1024


def test_clean_strips_terminal_codes_and_xml_illegal_characters() -> None:
    assert (
        clean("\x1b[1;31mred\x1b[0m \x00nul \x07bell \x1b]0;title\x07done") == "red nul bell done"
    )
    root = ET.Element("x")
    root.text = clean("bad \x01\x02\x0b chars")
    ET.fromstring(ET.tostring(root))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"Authorization: Bearer {TOKEN}", "Authorization: Bearer [REDACTED]"),
        (f"curl -H 'authorization: {TOKEN}'", "curl -H 'authorization: [REDACTED]'"),
        (f'{{"token": "{TOKEN}"}}', '{"token": "[REDACTED]"}'),
        (f"  client-key-data: {TOKEN}", "  client-key-data: [REDACTED]"),
        (f"DB_PASSWORD={TOKEN} next", "DB_PASSWORD=[REDACTED] next"),
        ("jwt eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0xx.c2lnbmF0dXJlMTIz", "jwt [REDACTED]"),
        ("  tls.key: LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCk1JSUV2", "  tls.key: [REDACTED]"),
        ("nothing to hide here: 5 tokens counted", "nothing to hide here: 5 tokens counted"),
        ("Password: \nanswer=y length=7", "Password: \nanswer=y length=7"),
        ("Token:\nnext-line-value", "Token:\nnext-line-value"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_line_redactor_masks_a_streamed_private_key() -> None:
    r = LineRedactor()
    lines = ["before", *PEM, "after", f"Bearer {TOKEN}"]
    assert [r(line) for line in lines] == [
        "before",
        "-----BEGIN RSA PRIVATE KEY-----",
        "[REDACTED]",
        "[REDACTED]",
        "-----END RSA PRIVATE KEY-----",
        "after",
        "Bearer [REDACTED]",
    ]
    assert redact("\n".join(PEM)) == (
        "-----BEGIN RSA PRIVATE KEY-----\n[REDACTED]\n-----END RSA PRIVATE KEY-----"
    )
