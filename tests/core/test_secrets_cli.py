"""Every kind of secret stays out of everything the real CLI writes, and nothing more is masked.

One ``labrunner verify`` runs a workshop generated from the table in
``secret_cases.py``: per kind, a lab whose command prints the secret (in the
command itself too, as a heredoc) and whose failing check prints it again, so
it turns up in output lines, commands, check messages and details, step
messages and the progress file. More labs answer a prompt marked secret (its
echo on, then off), print the first line of a key and then carry on, print
ordinary kubectl output, dump real keys with ``openssl … -text``, and fail an
``env`` check on a value. ``labrunner check`` then prints every failing check.
The test looks for every piece of every secret in stdout, stderr (the run
log), the JUnit and JSON reports and the messages of the progress file.
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from labrunner.redact import MASK
from labrunner.testing.fixtures import cli_environ

from .conftest import run_cli
from .secret_cases import CASES, SAFE, Case, certificate_yaml_line, rand

pytestmark = pytest.mark.timeout(240)

HAS_OPENSSL = shutil.which("openssl") is not None


def _heredoc(text: str, then: str) -> str:
    return f"cat <<'LABEOF'\n{text}\nLABEOF\n{then}"


def _write(labs: Path, lab: dict[str, Any]) -> None:
    (labs / f"{lab['id']}.yaml").write_text(
        yaml.safe_dump({"apiVersion": "labrunner/v1", **lab}, sort_keys=False)
    )


@dataclass
class Run:
    """One verify and one check of the generated workshop, and what they must not reveal."""

    places: dict[str, str]
    hidden: dict[str, list[str]]
    report: dict[str, Any]
    junit: Path
    json_path: Path
    progress: dict[str, list[dict[str, Any]]]
    token: str
    openssl_private: list[str]

    def leaks(self, pieces: list[str]) -> list[str]:
        """Where any of ``pieces`` shows up."""
        return [
            f"{piece[:16]}… in {where}"
            for piece in pieces
            for where, text in self.places.items()
            if piece in text
        ]

    def outputs(self, lab_id: str) -> list[str]:
        """Every output line the JSON report kept for ``lab_id``."""
        (lab,) = [lab for lab in self.report["labs"] if lab["id"] == lab_id]
        return [line for step in lab["steps"] for line in step["output"]]


def _messages(data: Any) -> list[str]:
    """Every ``message`` in the progress file (export values are not messages)."""
    if isinstance(data, dict):
        found = [str(v) for k, v in data.items() if k == "message"]
        for key, value in data.items():
            if key != "exports":
                found += _messages(value)
        return found
    if isinstance(data, list):
        return [m for item in data for m in _messages(item)]
    return []


def _kind_id(index: int) -> str:
    return f"kind-{index:02d}"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("secrets-cli")
    labs = tmp / "ws" / "labs"
    labs.mkdir(parents=True)
    hidden: dict[str, list[str]] = {}
    all_checks = []
    for index, case in enumerate(CASES):
        text, pieces = case.make()
        hidden[case.kind] = pieces
        lab_id = _kind_id(index)
        _write(
            labs,
            {
                "id": lab_id,
                "title": case.kind,
                "steps": [
                    {
                        "id": "print",
                        "title": "Print it",
                        "run": [_heredoc(text, f"echo after-{lab_id}")],
                        "check": [{"command": {"run": "true"}}],
                    },
                    {
                        "id": "fail",
                        "title": "A check prints it and fails",
                        "run": ["true"],
                        "check": [
                            {"command": {"run": _heredoc(text, "exit 1"), "fail_fast": True}}
                        ],
                    },
                ],
            },
        )
        all_checks.append({"command": {"run": _heredoc(text, "exit 1")}})
    _write(
        labs,
        {
            "id": "all-checks",
            "title": "Every kind in a failing check",
            "steps": [{"id": "checks", "title": "All of them", "check": all_checks, "within": 0}],
        },
    )
    token = rand(32)
    _write(
        labs,
        {
            "id": "secret-prompt",
            "title": "A prompt whose answer is secret",
            "steps": [
                {
                    "id": "answer",
                    "title": "Answer two prompts",
                    "run": [
                        {
                            "cmd": 'read -r -p "API token: " t; echo "got ${#t} characters"\n'
                            'stty echo; read -r -p "Again: " u; stty -echo\n'
                            'echo "the answer was $u"; export LAB_TOKEN="$t"',
                            "timeout": "10s",
                            "expect": [
                                {"prompt": "API token:", "send": token, "secret": True},
                                {"prompt": "Again:", "send": token, "secret": True},
                            ],
                        }
                    ],
                    "exports": ["LAB_TOKEN"],
                    "check": [{"env": {"name": "LAB_TOKEN", "not_empty": True}}],
                }
            ],
        },
    )
    safe = [*SAFE, certificate_yaml_line()]
    (tmp / "ws" / "safe.txt").write_text("\n".join(safe) + "\n")
    _write(
        labs,
        {
            "id": "bounded",
            "title": "Masking ends where it should",
            "steps": [
                {
                    "id": "begin-only",
                    "title": "The first line of a key, then more",
                    "run": [
                        "printf '%s\\n' '-----BEGIN PRIVATE KEY-----'",
                        "echo visible-after-begin",
                        "cat safe.txt",
                    ],
                    "check": [{"command": {"run": "true"}}],
                }
            ],
        },
    )
    if HAS_OPENSSL:
        _write(
            labs,
            {
                "id": "openssl-text",
                "title": "Private keys as openssl prints them",
                "steps": [
                    {
                        "id": "dump",
                        "title": "Dump an EC and an RSA key",
                        "run": [
                            "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256"
                            " -out ec.key",
                            "openssl pkey -in ec.key -text -noout",
                            "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024"
                            " -out rsa.key",
                            "openssl rsa -in rsa.key -text",
                            "echo visible-after-dump",
                        ],
                        "check": [{"command": {"run": "true"}}],
                    }
                ],
            },
        )
    colour = rand(20)
    _write(
        labs,
        {
            "id": "env-value",
            "title": "An env check never shows the value",
            "env": {"COLOUR_CODE": colour},
            "steps": [
                {
                    "id": "compare",
                    "title": "Compare",
                    "run": ["true"],
                    "check": [{"env": {"name": "COLOUR_CODE", "equals": "blue"}}],
                }
            ],
        },
    )
    home = tmp / "home"
    # Some of the printed lines name kubectl or helm, so the lab is taken to need a
    # cluster: a disposable-looking context that nothing ever talks to.
    kubeconfig = tmp / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {}}],
                "contexts": [{"name": "kind-secrets", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "kind-secrets",
            }
        )
    )
    env = cli_environ(home, KUBECONFIG=str(kubeconfig))
    junit, report = tmp / "out" / "junit.xml", tmp / "out" / "report.json"
    proc = run_cli(
        "--labs", labs, "verify", "--junit", junit, "--json", report,
        cwd=labs.parent, env=env, timeout=180,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 1, proc.stdout + proc.stderr
    check = run_cli("--labs", labs, "check", "all-checks", cwd=labs.parent, env=env, timeout=120)
    assert check.returncode == 1, check.stdout + check.stderr
    progress_files = list((home / "state").rglob("*.jsonl"))
    assert progress_files, "no progress was saved"
    progress = {
        str(p): [json.loads(line) for line in p.read_text().splitlines()] for p in progress_files
    }
    openssl_private: list[str] = []
    if HAS_OPENSSL:
        for key in ("ec.key", "rsa.key"):
            dump = subprocess.run(
                ["openssl", "pkey", "-in", str(labs.parent / key), "-text", "-noout"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            private = False
            for line in dump.splitlines():
                if not line.startswith(" "):
                    private = line.rstrip(":") in (
                        "priv", "privateExponent", "prime1", "prime2",
                        "exponent1", "exponent2", "coefficient",
                    )  # fmt: skip
                elif private:
                    openssl_private.append(line.strip())
        hidden["openssl -text (real keys)"] = openssl_private
        hidden["generated private keys"] = [
            line
            for key in ("ec.key", "rsa.key")
            for line in (labs.parent / key).read_text().splitlines()
            if "-----" not in line
        ]
    hidden["secret prompt answer"] = [token]
    hidden["env check value"] = [colour]
    yield Run(
        places={
            "stdout": proc.stdout,
            "stderr": proc.stderr,
            "the JUnit report": junit.read_text(),
            "the JSON report": report.read_text(),
            "progress messages": "\n".join(_messages(progress)),
            "check stdout": check.stdout,
            "check stderr": check.stderr,
        },
        hidden=hidden,
        report=json.loads(report.read_text()),
        junit=junit,
        json_path=report,
        progress=progress,
        token=token,
        openssl_private=openssl_private,
    )


@pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])
def test_each_kind_is_masked_everywhere(run: Run, case: Case) -> None:
    leaks = run.leaks(run.hidden[case.kind])
    assert not leaks, "\n".join(leaks)
    lab_id = _kind_id(CASES.index(case))
    # not vacuous: the lab ran, its output and its failure were recorded, masked
    (lab,) = [lab for lab in run.report["labs"] if lab["id"] == lab_id]
    assert lab["status"] == "failed"
    assert any(MASK in line for line in run.outputs(lab_id)), run.outputs(lab_id)
    failing = lab["steps"][1]["checks"][0]
    assert MASK in (failing["details"] or "") + failing["message"], failing
    # no over-masking: the line after the secret came through
    assert f"after-{lab_id}" in run.outputs(lab_id)
    assert f"  | after-{lab_id}" in run.places["stdout"]


def test_the_progress_file_holds_masked_messages_for_every_kind(run: Run) -> None:
    messages = _messages(run.progress)
    for index in range(len(CASES)):
        assert any(MASK in m for m in messages), messages
        assert f"kind-{index:02d}" in json.dumps(run.progress)


def test_a_secret_answer_and_its_echo_never_show(run: Run) -> None:
    assert not run.leaks([run.token])
    lines = run.outputs("secret-prompt")
    # the prompt ends where the answer was typed: what follows is not swallowed
    assert "API token: " in lines
    assert "got 32 characters" in lines
    assert MASK in lines  # the echo of the second answer (the terminal echoed it)
    assert f"the answer was {MASK}" in lines
    # the export value stays real in the 0600 progress file, for the next session
    exports = [record.get("exports", {}) for data in run.progress.values() for record in data]
    assert {"LAB_TOKEN": run.token} in exports
    for path in run.progress:
        assert stat.S_IMODE(Path(path).stat().st_mode) == 0o600


def test_a_begin_without_end_does_not_mask_the_next_command(run: Run) -> None:
    lines = run.outputs("bounded")
    assert lines[:2] == ["-----BEGIN PRIVATE KEY-----", "visible-after-begin"]
    assert "  | visible-after-begin" in run.places["stdout"]
    junit = ET.parse(run.junit).getroot()
    case = junit.find("testsuite[@name='bounded']/testcase")
    assert case is not None
    assert "visible-after-begin" in (case.findtext("system-out") or "")


def test_ordinary_output_is_not_masked(run: Run) -> None:
    lines = run.outputs("bounded")
    for line in [*SAFE]:
        assert line in lines, line
        assert f"  | {line}".rstrip() in run.places["stdout"], line
    assert any(line.startswith("  tls.crt: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS") for line in lines)


@pytest.mark.skipif(not HAS_OPENSSL, reason="needs openssl")
def test_openssl_text_dumps_of_real_keys_are_masked(run: Run) -> None:
    assert len(run.openssl_private) > 20
    leaks = run.leaks(run.openssl_private + run.hidden["generated private keys"])
    assert not leaks, "\n".join(leaks)
    lines = run.outputs("openssl-text")
    assert "visible-after-dump" in lines
    assert "publicExponent: 65537 (0x10001)" in lines


def test_the_env_check_says_it_differs_without_the_value(run: Run) -> None:
    assert not run.leaks(run.hidden["env check value"])
    (lab,) = [lab for lab in run.report["labs"] if lab["id"] == "env-value"]
    assert lab["steps"][0]["message"] == (
        "$COLOUR_CODE differs from the expected value (20 characters, expected 4 characters)"
    )


def test_reports_are_written_0600(run: Run) -> None:
    for path in (run.junit, run.json_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_check_prints_every_failing_check_masked(run: Run) -> None:
    out = run.places["check stdout"]
    assert out.count("✘") + out.count("…") >= len(CASES), out
    assert MASK in out


def test_output_after_an_unanswered_prompt_is_not_taken_for_its_answer(
    tmp_path: Path,
) -> None:
    # headless, `read -p "API token: "` gets end-of-file: the next output lands on the
    # prompt's line, and is not the token
    labs = tmp_path / "ws" / "labs"
    labs.mkdir(parents=True)
    (labs / "ask.yaml").write_text(
        "apiVersion: labrunner/v1\nid: ask\ntitle: Ask\nsteps:\n  - id: ask\n    title: Ask\n"
        '    run: [\'read -r -p "API token: " t; echo "got=${#t} characters"\']\n'
        "    check: [{file: {path: ask.yaml}}]\n",
        encoding="utf-8",
    )
    junit = tmp_path / "report.xml"
    done = run_cli("--labs", labs, "verify", "--no-save", "--junit", junit, cwd=tmp_path)
    assert "Traceback" not in done.stdout + done.stderr
    assert "API token: got=0 characters" in done.stdout, done.stdout
    assert "API token: got=0 characters" in junit.read_text(encoding="utf-8")
