"""Text expectations shared by verifiers: contains, regex, lines, and "like".

"Like" is the forgiving comparison that istio.io's doc tests made popular:
the expected text is what a learner sees in the lab body (``kubectl get pods``
output, say), and the actual output matches it line by line and token by
token, where tokens may differ in the ways that differ on every run: ages and
durations (``25s`` vs ``3m2s``), IP addresses (or ``<none>``/``<pending>``),
and the random suffixes Kubernetes puts on pod and ReplicaSet names. A token
``...`` matches any one token, and a line ``...`` matches any number of
lines.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from labrunner.ansi import strip_ansi
from labrunner.verify.params import as_list, obj, one_or_many

_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|y))+$|^<invalid>$")
_POD = re.compile(r"^(?P<base>.+?)-(?P<hash>[a-z0-9]{6,10})-[a-z0-9]{5}$")
_SHORT = re.compile(r"^(?P<base>.+?)-(?P<hash>[a-z0-9]{5})$")
_RS = re.compile(r"^(?P<base>.+?)-(?P<hash>[a-z0-9]{6,10})$")
# Kubernetes draws name suffixes from an alphabet without vowels (rand.SafeEncodeString)
_SAFE_ALPHABET = re.compile(r"^[bcdfghjklmnpqrstvwxz2456789]+$")
_ADDRESS_WORDS = {"<none>", "<pending>", "<unknown>"}

TEXT_EXPECT_SCHEMA = obj(
    {
        "contains": one_or_many({"type": "string"}),
        "not_contains": one_or_many({"type": "string"}),
        "regex": one_or_many({"type": "string"}),
        "not_regex": one_or_many({"type": "string"}),
        "equals": {"type": "string"},
        "like": {
            "type": "string",
            "description": "expected text; ages, IPs and pod-name suffixes may differ",
        },
        "lines": {
            "type": "array",
            "items": {"type": "string", "pattern": r"^[+-] "},
            "description": "'+ text' must appear on some line, '- text' must not",
        },
        "empty": {"type": "boolean"},
    },
    description="expectations on a text",
)


def _is_address(token: str) -> bool:
    if token in _ADDRESS_WORDS:
        return True
    candidate = token.split(":", maxsplit=1)[0] if token.count(":") == 1 else token
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


def _looks_random(segment: str) -> bool:
    """A generated suffix, not a word: ``7d5c8b9f6`` or ``x2xkq``, but not ``system``."""
    return any(c.isdigit() for c in segment) or bool(_SAFE_ALPHABET.match(segment))


def _pod_base(token: str) -> str | None:
    """The name without its generated suffixes (``web-api-7d5c8b9f6-abcde`` → ``web-api``)."""
    for pattern in (_POD, _SHORT, _RS):
        match = pattern.match(token)
        if match and _looks_random(match.group("hash")):
            return match.group("base")
    return None


def tokens_alike(expected: str, actual: str) -> bool:
    """True when two tokens are equal or differ only in run-to-run noise."""
    if expected in (actual, "..."):
        return True
    if _DURATION.match(expected) and _DURATION.match(actual):
        return True
    if _is_address(expected) and _is_address(actual):
        return True
    base_e, base_a = _pod_base(expected), _pod_base(actual)
    return base_e is not None and base_e == base_a


def _clean_lines(text: str) -> list[str]:
    lines = [line.rstrip().rstrip("\r") for line in strip_ansi(text).splitlines()]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _line_alike(expected: str, actual: str) -> bool:
    e_tokens, a_tokens = expected.split(), actual.split()
    return len(e_tokens) == len(a_tokens) and all(
        tokens_alike(e, a) for e, a in zip(e_tokens, a_tokens, strict=True)
    )


def like(expected: str, actual: str) -> str | None:
    """None when ``actual`` is like ``expected``, else the first difference."""
    exp, act = _clean_lines(expected), _clean_lines(actual)

    def match(i: int, j: int) -> int | None:
        # returns None on success, else the index into exp of the first mismatch
        while i < len(exp):
            if exp[i].strip() == "...":
                if i + 1 == len(exp):
                    return None
                for k in range(j, len(act) + 1):
                    if match(i + 1, k) is None:
                        return None
                return i
            if j >= len(act) or not _line_alike(exp[i], act[j]):
                return i
            i += 1
            j += 1
        return None if j == len(act) else len(exp)

    bad = match(0, 0)
    if bad is None:
        return None
    if bad >= len(exp):
        extra = act[len(exp)] if len(act) > len(exp) else ""
        return f"unexpected extra line {extra!r}"
    want = exp[bad]
    got = act[bad] if bad < len(act) else "<end of output>"
    return f"line {bad + 1}: expected like {want!r}, got {got!r}"


@dataclass(frozen=True)
class TextMismatch:
    """Why a text did not meet its expectations."""

    message: str


def check_text(label: str, text: str, expect: Mapping[str, Any]) -> TextMismatch | None:
    """None when ``text`` meets every expectation, else the first failure, worded."""
    plain = strip_ansi(text)
    for needle in as_list(expect.get("contains")):
        if needle not in plain:
            return TextMismatch(f"{label} does not contain {needle!r}")
    for needle in as_list(expect.get("not_contains")):
        if needle in plain:
            return TextMismatch(f"{label} contains {needle!r}, which it should not")
    for pattern in as_list(expect.get("regex")):
        if not re.search(pattern, plain, re.MULTILINE):
            return TextMismatch(f"{label} does not match /{pattern}/")
    for pattern in as_list(expect.get("not_regex")):
        if re.search(pattern, plain, re.MULTILINE):
            return TextMismatch(f"{label} matches /{pattern}/, which it should not")
    if "equals" in expect and plain.strip() != str(expect["equals"]).strip():
        return TextMismatch(f"{label} is {_clip(plain.strip())!r}, expected {expect['equals']!r}")
    if "like" in expect:
        diff = like(str(expect["like"]), plain)
        if diff is not None:
            return TextMismatch(f"{label} differs: {diff}")
    if "lines" in expect:
        lines = _clean_lines(plain)
        for rule in expect["lines"]:
            sign, needle = rule[0], rule[2:]
            present = any(needle in line for line in lines)
            if sign == "+" and not present:
                return TextMismatch(f"{label} has no line with {needle!r}")
            if sign == "-" and present:
                return TextMismatch(f"{label} has a line with {needle!r}, which it should not")
    if "empty" in expect and bool(expect["empty"]) != (plain.strip() == ""):
        return TextMismatch(f"{label} is {'not ' if expect['empty'] else ''}empty")
    return None


def lint_text(
    expect: Mapping[str, Any], path: Sequence[str | int]
) -> list[tuple[tuple[str | int, ...], str]]:
    """Problems with text expectations that the schema cannot see (bad regexes)."""
    problems = []
    for key in ("regex", "not_regex"):
        for index, pattern in enumerate(as_list(expect.get(key))):
            try:
                re.compile(pattern)
            except re.error as exc:
                where = (
                    (*path, key) if not isinstance(expect.get(key), list) else (*path, key, index)
                )
                problems.append((where, f"{pattern!r} is not a valid regular expression: {exc}"))
    return problems


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def tail(text: str, lines: int = 20) -> str:
    """The last ``lines`` lines of ``text``."""
    return "\n".join(strip_ansi(text).splitlines()[-lines:])
