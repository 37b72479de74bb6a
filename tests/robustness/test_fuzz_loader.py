"""Property-based attacks on the lab loader: hostile files get a clear error, never a crash.

Thousands of malformed and adversarial lab files — wrong types, huge strings,
deep nesting, YAML alias bombs, bytes that are not UTF-8 — must all end in
either a loaded lab or a list of ``file:line: message`` problems, quickly.
A handful of the nastiest are also pushed through the real CLI to check the
exit code and that no traceback escapes.

Two limits stop deep nesting. labrunner's own (``MAX_DEPTH``, 64 levels) applies
to whatever the YAML parser hands over; PyYAML 6.0.4's parser (libyaml 0.2.6) also
refuses more than 1000 levels by itself, and for such input its error is the
loader's answer. Both are tested, each where it is the one that speaks.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labrunner.lab.loader import Problem, check_lab_file
from labrunner.lab.yamlsrc import MAX_DEPTH
from labrunner.verify.registry import builtin_registry

PROBLEM_LINE = re.compile(r"^.+:\d+: (warning: )?(step [^:]+: )?.+$|^.+: .+$")

KEYS = [
    "apiVersion",
    "id",
    "title",
    "steps",
    "run",
    "check",
    "within",
    "env",
    "requires",
    "hints",
    "exports",
    "solution",
    "needs",
    "timeout",
    "cmd",
    "expect",
    "command",
    "file",
    "path",
    "contains",
    "stdout",
    "bogus",
    "<<",
    "summary",
    "setup",
    "cleanup",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["labrunner/v1", "90s", "2m", "-1s", "${X}", "${", "$${Y}", "", "a" * 5000]),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), children, max_size=6),
    ),
    max_leaves=40,
)


def lab_like() -> st.SearchStrategy[dict[str, Any]]:
    """Documents that look like labs, with any part replaced by junk."""
    step = st.fixed_dictionaries(
        {"id": st.one_of(st.sampled_from(["a", "b", "a"]), values), "title": values},
        optional={
            "run": values,
            "check": st.one_of(
                values,
                st.lists(
                    st.dictionaries(
                        st.sampled_from(["command", "file", "env", "nope", "title", "hint"]),
                        values,
                        max_size=3,
                    ),
                    max_size=3,
                ),
            ),
            "within": values,
            "exports": values,
            "hints": values,
            "timeout": values,
        },
    )
    return st.fixed_dictionaries(
        {
            "apiVersion": st.one_of(st.just("labrunner/v1"), values),
            "id": st.one_of(st.just("lab"), values),
            "title": st.one_of(st.just("A lab"), values),
            "steps": st.one_of(st.lists(step, max_size=4), values),
        },
        optional={"requires": values, "env": values, "setup": values, "junk": values},
    )


def _assert_clean(path: Path, problems: list[Problem]) -> None:
    for problem in problems:
        text = str(problem)
        assert text.startswith(str(path)), text
        assert PROBLEM_LINE.match(text.splitlines()[0]), text
        assert "Traceback" not in text


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(doc=lab_like())
def test_structured_junk_gives_problems_not_crashes(
    tmp_path_factory: pytest.TempPathFactory, doc: dict[str, Any]
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "lab.yaml"
    try:
        text = yaml.safe_dump(doc, allow_unicode=True)
    except (yaml.YAMLError, ValueError, OverflowError):
        return
    path.write_text(text, encoding="utf-8")
    start = time.monotonic()
    lab, problems = check_lab_file(path, builtin_registry())
    assert time.monotonic() - start < 5
    assert lab is not None or any(p.is_error for p in problems)
    _assert_clean(path, problems)


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    raw=st.binary(max_size=400)
    | st.text(max_size=400).map(lambda s: s.encode("utf-8", "surrogatepass"))
)
def test_arbitrary_bytes_give_problems_not_crashes(
    tmp_path_factory: pytest.TempPathFactory, raw: bytes
) -> None:
    path = tmp_path_factory.mktemp("bytes") / "lab.yaml"
    path.write_bytes(raw)
    lab, problems = check_lab_file(path, builtin_registry())
    assert lab is None
    assert problems
    _assert_clean(path, problems)


def _bomb(levels: int, width: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * width)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


def _flow(levels: int) -> str:
    """A document nesting ``levels`` collections deep (its top mapping included)."""
    return "x: " + "[" * (levels - 1) + "]" * (levels - 1) + "\n"


def _block(levels: int) -> str:
    """Block mappings nested ``levels`` deep; the first too deep one is on line ``levels``."""
    return "".join("  " * i + f"k{i}:\n" for i in range(levels))


def _parser_nesting_limit(ceiling: int = 5000) -> int | None:
    """The deepest nesting PyYAML's parser accepts by itself (None: no limit up to ``ceiling``)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    def accepted(levels: int) -> bool:
        try:
            for _ in yaml.parse(_flow(levels), Loader=loader):
                pass
        except yaml.YAMLError as exc:
            assert "exceeded maximum nesting depth" in str(exc), exc
            return False
        return True

    if accepted(ceiling):
        return None
    low, high = 1, ceiling  # accepted(low), not accepted(high)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if accepted(middle) else (low, middle)
    return low


PARSER_LIMIT = _parser_nesting_limit()
OURS = f"nesting deeper than {MAX_DEPTH} levels"
PARSERS = "invalid YAML: exceeded maximum nesting depth"


def _first_problem(tmp_path: Path, text: str) -> str:
    path = tmp_path / "deep.yaml"
    path.write_text(text, encoding="utf-8")
    lab, problems = check_lab_file(path, builtin_registry())
    assert lab is None and problems
    _assert_clean(path, problems)
    return str(problems[0]).removeprefix(f"{path}:")


def test_labrunner_limits_nesting_below_what_the_parser_allows(tmp_path: Path) -> None:
    assert "nesting" not in _first_problem(tmp_path, _flow(MAX_DEPTH))
    assert _first_problem(tmp_path, _flow(MAX_DEPTH + 1)) == f"1: {OURS}"
    assert _first_problem(tmp_path, _block(MAX_DEPTH + 1)) == f"{MAX_DEPTH + 1}: {OURS}"
    assert _first_problem(tmp_path, _block(200)) == f"{MAX_DEPTH + 1}: {OURS}"
    if PARSER_LIMIT is not None:
        # the deepest input the parser lets through still meets labrunner's own limit
        assert PARSER_LIMIT > MAX_DEPTH
        assert _first_problem(tmp_path, _flow(PARSER_LIMIT)) == f"1: {OURS}"


def test_past_the_parsers_own_limit_its_error_is_the_answer(tmp_path: Path) -> None:
    if PARSER_LIMIT is None:  # PyYAML before 6.0.4: labrunner's limit is the only one
        assert _first_problem(tmp_path, _flow(20000)) == f"1: {OURS}"
        return
    assert _first_problem(tmp_path, _flow(PARSER_LIMIT + 1)) == f"1: {PARSERS}"
    assert _first_problem(tmp_path, _flow(20000)) == f"1: {PARSERS}"


ADVERSARIAL = {
    "alias-bomb": _bomb(9),
    "deep-flow": _flow(20001),
    "deep-flow-under-parser-limit": _flow(500),
    "deep-block": _block(200),
    "huge-string": "apiVersion: labrunner/v1\nid: x\ntitle: " + "y" * 2_000_000 + "\nsteps: []\n",
    "not-utf8": "apiVersion: labrunner/v1\nid: x\ntitle: caf\xe9\n",
    "python-tag": "!!python/object/apply:os.system ['echo pwned']\n",
    "tab-indent": "apiVersion: labrunner/v1\n\tid: x\n",
    "many-docs": "a: 1\n---\nb: 2\n",
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_files_through_the_cli(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.yaml"
    content = ADVERSARIAL[name]
    if name == "not-utf8":
        path.write_bytes(content.encode("latin-1"))
    else:
        path.write_text(content, encoding="utf-8")
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "labrunner", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.monotonic() - start < 30
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith(str(path) + ":"), first
    if name == "python-tag":
        assert "unsupported YAML tag" in first
    if name == "alias-bomb":
        assert "alias bomb" in first
    if name == "deep-flow":
        # past PyYAML's own limit its parser speaks first; without one, labrunner's does
        assert first == f"{path}:1: {PARSERS if PARSER_LIMIT is not None else OURS}"
    if name == "deep-flow-under-parser-limit":
        assert first == f"{path}:1: {OURS}"
    if name == "deep-block":
        assert first == f"{path}:{MAX_DEPTH + 1}: {OURS}"
    if name == "not-utf8":
        assert ":3: not valid UTF-8" in first
