"""Reading bash's own quoting back: ``printf %q`` and ``export -p``, against real bash."""

from __future__ import annotations

import os
import subprocess

import pytest

from labrunner.shell.bashquote import parse_exports, unquote

NASTY = {
    "PLAIN": "plain",
    "SPACES": "two  words ",
    "QUOTES": "q\"uote's $HOME `x` \\ back\\\\slash \\n",
    "NEWLINES": "line1\nline2\n",
    "CONTROL": "ctl\x01\x1b[31m\x1e\x1f\x7f",
    "UNICODE": "é ü 日本 🙂",
    "EMPTY": "",
    "TRAILING_BACKSLASH": "trailing\\",
    "BACKSLASH_NEWLINE": "a\\\nb",
    "EQUALS": "=a=b=",
    "PARENS": ")(",
    "DOLLAR_QUOTE": "$'x'",
    "INJECTION": 'x"; touch PWNED; echo "',
    "COLONS": "/a:b::/c",
}


def _bash(script: str, env: dict[str, str]) -> bytes:
    return subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, check=True, timeout=30
    ).stdout


@pytest.mark.parametrize("locale", ["C", "C.UTF-8"])
def test_export_p_parses_back_to_what_env_would_show(locale: str) -> None:
    env = {**os.environ, **NASTY, "LC_ALL": locale}
    out = _bash(
        "export RAW=$'\\xff\\xfe'; declare -ax ARR=(1 '2 3'); export -n NOT_EXPORTED=1;"
        " declare -x DECLARED_ONLY; declare -ix NUMBER=42; export -p; echo TAIL",
        env,
    )
    parsed, end = parse_exports(out)
    assert out[end:] == b"TAIL\n", "the export part must end where export -p ended"
    for name, value in NASTY.items():
        assert parsed[name] == value, name
    assert parsed["NUMBER"] == "42"
    assert parsed["RAW"] == "\ufffd\ufffd"  # not text: replaced, as the old snapshot did
    assert "ARR" not in parsed, "arrays never reach a child's environment"
    assert "DECLARED_ONLY" not in parsed, "exported without a value: not in the environment"
    assert "NOT_EXPORTED" not in parsed


def test_export_p_in_posix_mode() -> None:
    out = _bash("set -o posix; export -p", {**os.environ, **NASTY})
    parsed, end = parse_exports(out)
    assert end == len(out)
    for name, value in NASTY.items():
        assert parsed[name] == value, name


@pytest.mark.parametrize("locale", ["C", "C.UTF-8"])
@pytest.mark.parametrize("value", [*NASTY.values(), "~/x", "-n", "*"])
def test_printf_q_unquotes_to_the_same_bytes(value: str, locale: str) -> None:
    quoted = _bash('printf %q "$V"', {**os.environ, "V": value, "LC_ALL": locale})
    assert unquote(quoted).decode("utf-8") == value


def test_printf_q_of_bytes_that_are_not_text() -> None:
    quoted = _bash('printf %q "$(printf "\\xff\\x01x\\x1e")"', {**os.environ, "LC_ALL": "C"})
    assert b"\x1e" not in quoted and b"\x1f" not in quoted
    assert unquote(quoted) == b"\xff\x01x\x1e"


def test_ansi_c_escapes() -> None:
    assert unquote(b"$'\\a\\b\\e\\f\\n\\r\\t\\v\\\\\\'\\\"\\?'") == b"\a\b\x1b\f\n\r\t\v\\'\"?"
    assert unquote(b"$'\\101\\x41\\u00e9\\cA'") == b"AA\xc3\xa9\x01"
    assert unquote(b"a\\ b'c d'$'\\n'") == b"a bc d\n"
