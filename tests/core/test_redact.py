"""The redaction rule set: every kind masked, ordinary output untouched, blocks bounded."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from labrunner.redact import KINDS, MASK, LineRedactor, mask_values, redact, split_point
from labrunner.shell import Shell
from labrunner.shell.session import MAX_LINE

from .secret_cases import CASES, SAFE, Case, certificate_yaml_line, rand

README = Path(__file__).resolve().parents[2] / "README.md"
_B64_OR_HEX = re.compile(r"^\s*(?:[A-Za-z0-9+/=]+|[0-9a-f]{2}(?::[0-9a-f]{2})*:?)\s*$")


def _stream(text: str) -> list[str]:
    redactor = LineRedactor()
    return [redactor(line) for line in text.split("\n")]


@pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])
def test_every_kind_is_masked_whole_and_streamed(case: Case) -> None:
    text, hidden = case.make()
    text += "\nthe next line: still here"
    for where, out in (("redact", redact(text)), ("stream", "\n".join(_stream(text)))):
        leaked = [piece for piece in hidden if piece in out]
        assert not leaked, f"{case.kind} leaked through {where}: {out}"
        assert MASK in out, where
        # no over-masking: the next line comes through as it was
        assert out.endswith("\nthe next line: still here"), out


@pytest.mark.parametrize("case", [c for c in CASES if c.tails], ids=lambda c: c.kind)
def test_every_tail_of_a_key_is_masked(case: Case) -> None:
    """An output tail may start anywhere inside a key or a dump, its header cut off."""
    text, hidden = case.make()
    lines = text.split("\n")
    for start in range(1, len(lines)):
        tail = lines[start:]
        if all(_B64_OR_HEX.match(line) for line in tail):
            continue  # nothing left that says what these lines are (see the README)
        out = redact("\n".join(tail))
        leaked = [piece for piece in hidden if piece in out]
        assert not leaked, (start, out)


@pytest.mark.parametrize("line", SAFE)
def test_ordinary_lab_output_is_left_alone(line: str) -> None:
    assert redact(line) == line
    assert _stream(line) == [line]


def test_a_certificate_stays_readable_while_its_key_is_masked() -> None:
    crt = certificate_yaml_line()
    assert redact(crt) == crt
    key_case = next(c for c in CASES if c.kind == "tls.key in a Secret")
    key, _ = key_case.make()
    assert redact(f"data:\n{crt}\n{key}") == f"data:\n{crt}\n  tls.key: {MASK}"


def test_a_begin_without_end_masks_only_to_the_end_of_its_command() -> None:
    redactor = LineRedactor()
    first = [redactor(line) for line in ["-----BEGIN PRIVATE KEY-----", "MIIEvQIBADANBgkqhkiG"]]
    assert first == ["-----BEGIN PRIVATE KEY-----", MASK]
    redactor.reset()  # the next command
    assert redactor("kubectl get pods") == "kubectl get pods"
    # a whole text: masked to its end, and no further
    assert redact("-----BEGIN PRIVATE KEY-----") == "-----BEGIN PRIVATE KEY-----"
    assert redact("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG\nmore") == (
        f"-----BEGIN PRIVATE KEY-----\n{MASK}"
    )


def test_a_key_cut_by_an_output_tail_is_masked_up_to_its_end() -> None:
    body = [rand(64) for _ in range(4)]
    tail = "\n".join([*body, "-----END PRIVATE KEY-----", "done"])
    assert redact(tail) == f"{MASK}\n-----END PRIVATE KEY-----\ndone"


def test_a_prompt_does_not_swallow_the_rest_of_its_line() -> None:
    assert redact("API token: ") == "API token: "
    assert redact("Proceed? (y/N) y") == "Proceed? (y/N) y"
    assert redact("Token: 8") == "Token: 8"


def test_masked_block_lines_collapse_in_a_message_but_not_in_a_stream() -> None:
    text = "\n".join(["-----BEGIN PRIVATE KEY-----", *(rand(64) for _ in range(5))])
    assert redact(text).count(MASK) == 1
    assert _stream(text).count(MASK) == 5


def test_known_values_are_masked_but_not_short_ones() -> None:
    assert mask_values("answer=hunter22 again hunter22", ["hunter22"]) == (
        f"answer={MASK} again {MASK}"
    )
    assert mask_values("yes y", ["y"]) == "yes y"


def test_every_kind_is_in_the_readme_table() -> None:
    readme = README.read_text().replace("\\|", "|")  # a pipe in a table cell is escaped
    missing = [kind for kind in KINDS if kind not in readme]
    assert not missing, missing


# --------------------------------------------------------------------------- long lines


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param(lambda: "ghp_" + rand(36), id="token with no space near the cut"),
        pytest.param(lambda: "--password " + rand(20), id="option and value across the cut"),
    ],
)
def test_split_point_never_cuts_a_secret(secret: object) -> None:
    assert callable(secret)
    value = secret()
    for offset in range(-30, 10, 7):
        text = "x" * (1000 + offset) + " " + value + " " + "y" * 200
        cut = split_point(text, 1000 + len(value) // 2)
        assert cut <= 1000 + len(value) // 2
        assert value in text[:cut] or value in text[cut:], (offset, cut)


def test_a_secret_across_the_shells_64k_line_split_is_still_masked(tmp_path: Path) -> None:
    token = rand(40)
    script = tmp_path / "long.py"
    # Lines far longer than one read, so the shell must split them while they
    # arrive; each secret starts a few bytes before the 64 KiB boundary.
    script.write_text(
        f"print('x' * ({MAX_LINE} - 12) + ' --token {token} ' + 'y' * 150000)\n"
        f"print('z' * ({MAX_LINE} - 5) + '=ghp_{token[:36]}' + 'w' * 150000)\n"
    )
    lines: list[str] = []
    with Shell(env=dict(os.environ), cwd=tmp_path) as shell:
        result = shell.run(f"python3 {script}", timeout=20, on_line=lines.append)
    assert result.exit_code == 0
    expected = (MAX_LINE - 12 + len(f" --token {token} ") + 150000) + (MAX_LINE - 5 + 41 + 150000)
    assert sum(map(len, lines)) == expected  # nothing lost in the split
    # the cuts fell before the secrets, not inside them
    assert lines[0] == "x" * (MAX_LINE - 12) + " "
    pieces = [line for line in lines if line.startswith("z" * 100)]
    assert pieces[0] == "z" * (MAX_LINE - 5) + "="  # no blank near: cut before the token
    redactor = LineRedactor()
    shown = "\n".join(redactor(line) for line in lines)
    assert token not in shown and token[:36] not in shown
    assert "--token [REDACTED]" in shown


def test_the_rule_set_is_a_library_module_that_imports_nothing_of_labrunner() -> None:
    code = (
        "import sys, labrunner.redact\n"
        "print(sorted(m for m in sys.modules if m.startswith('labrunner')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "['labrunner', 'labrunner.redact']"


def test_the_substring_scan_and_the_gate_regex_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first lines of a process are tested with substring scans, later ones with the
    gate regex: both say the same of every secret and every ordinary line."""
    import labrunner.redact as module

    texts = [case.make()[0] for case in CASES] + list(SAFE)
    texts.append("using context 'kind-x' at https://127.0.0.1:6443 (user: me@example.com)")
    monkeypatch.setattr(module, "_GATE_AFTER", 10**9)  # always the scan
    scanned = [redact(text) for text in texts]
    monkeypatch.setattr(module, "_GATE_AFTER", 0)  # always the regex
    assert [redact(text) for text in texts] == scanned


def test_a_message_with_a_plain_url_compiles_next_to_nothing() -> None:
    """``check`` prints the cluster's URL: no gate regex, no URL credential pattern."""
    code = (
        "import re, labrunner.redact as r\n"
        "made = []\n"
        "compile = re.compile\n"
        "re.compile = lambda p, *a: made.append(p) or compile(p, *a)\n"
        "said = r.redact(\"using context 'kind-x' at https://127.0.0.1:6443\")\n"
        "print(len(made), said)\n"
        "print(r.redact('https://me:hunter2@example.com'))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    count, said = proc.stdout.splitlines()[0].split(" ", 1)
    assert said == "using context 'kind-x' at https://127.0.0.1:6443"
    assert int(count) <= 2  # the dump and base64-value tests, both a fraction of a millisecond
    assert proc.stdout.splitlines()[1] == "https://me:[REDACTED]@example.com"
