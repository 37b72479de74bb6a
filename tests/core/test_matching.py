"""Text expectations, and "like": output that differs only in run-to-run noise."""

from __future__ import annotations

import pytest

from labrunner.verify.matching import check_text, like, lint_text, tokens_alike

EXPECTED_PODS = """
NAME                       READY   STATUS    RESTARTS   AGE   IP           NODE
web-api-7d5c8b9f6-abcde    2/2     Running   0          5s    10.244.0.7   kind-control-plane
catalog-5f6d7c8b9-x2xkq    2/2     Running   0          3m2s  10.244.0.9   kind-control-plane
"""

ACTUAL_PODS = """\x1b[1mNAME                       READY   STATUS    RESTARTS   AGE    IP     \
       NODE\x1b[0m
web-api-6b8c9d7f5-qwrtz    2/2     Running   0          2d1h   10.244.1.23   kind-control-plane
catalog-7d9f5c6b8-b4m2n    2/2     Running   0          12s    10.244.2.4    kind-control-plane

"""


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        ("5s", "3m2s"),
        ("25s", "2d"),
        ("90m", "<invalid>"),
        ("10.96.0.1", "10.96.12.7"),
        ("10.96.0.1", "<none>"),
        ("<pending>", "172.18.255.200"),
        ("<none>", "<pending>"),
        ("10.0.0.1:8080", "192.168.1.1:9090"),
        ("fd00::1", "2001:db8::7"),
        ("web-api-7d5c8b9f6-abcde", "web-api-5f6d7c8b9-xyz12"),
        ("web-api-7d5c8b9f6", "web-api-6b8c9d7f5"),
        ("kube-proxy-x7b2k", "kube-proxy-q9zmp"),
        ("...", "anything-at-all"),
        ("Running", "Running"),
    ],
)
def test_tokens_alike(expected: str, actual: str) -> None:
    assert tokens_alike(expected, actual)


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        ("Running", "Pending"),
        ("1/1", "0/1"),
        ("5s", "5"),
        ("5s", "Running"),
        ("10.0.0.1", "localhost"),
        ("<none>", "none"),
        ("80/TCP", "443/TCP"),
        ("web-api-7d5c8b9f6-abcde", "catalog-7d5c8b9f6-abcde"),
        ("web-api-7d5c8b9f6-abcde", "web-api"),
        ("kube-system", "kube-public"),
        ("istio-system", "istio-config"),
        ("my-app-config", "my-app-secret"),
        ("web-api-admin", "web-api-users"),
        ("v1", "v2"),
    ],
)
def test_tokens_not_alike(expected: str, actual: str) -> None:
    assert not tokens_alike(expected, actual)


def test_kubectl_output_is_like_the_documented_output() -> None:
    assert like(EXPECTED_PODS, ACTUAL_PODS) is None


def test_a_real_difference_is_reported_with_its_line() -> None:
    broken = ACTUAL_PODS.replace(
        "2/2     Running   0          12s", "1/2     Running   3          12s"
    )
    assert like(EXPECTED_PODS, broken) == (
        "line 3: expected like 'catalog-5f6d7c8b9-x2xkq    2/2     Running   0          3m2s  "
        "10.244.0.9   kind-control-plane', got 'catalog-7d9f5c6b8-b4m2n    1/2     Running   3"
        "          12s    10.244.2.4    kind-control-plane'"
    )


def test_ellipsis_lines_and_tokens() -> None:
    actual = "header\na 1\nb 2\nc 3\nfooter x\n"
    assert like("header\n...\nfooter ...", actual) is None
    assert like("header\n...", actual) is None
    assert like("...\nc 3\nfooter x", actual) is None
    assert like("header\n...\nc 3\n...\n", actual) is None
    assert like("header\n...\nmissing\n...", actual) is not None
    assert like("header\na 1", actual) == "unexpected extra line 'b 2'"
    assert like("header\na 1\nb 2\nc 3\nfooter x\nmore", actual) == (
        "line 6: expected like 'more', got '<end of output>'"
    )


def test_column_count_matters() -> None:
    assert like("a b c", "a b") is not None
    assert like("a b", "a b c") is not None


def text(expect: dict[str, object], value: str) -> str | None:
    found = check_text("stdout", value, expect)
    return None if found is None else found.message


def test_check_text_each_expectation() -> None:
    out = "alpha\nbeta 42\n\x1b[32mgamma\x1b[0m\n"
    assert text({"contains": ["alpha", "gamma"]}, out) is None
    assert text({"contains": "delta"}, out) == "stdout does not contain 'delta'"
    assert text({"not_contains": "beta"}, out) == "stdout contains 'beta', which it should not"
    assert text({"regex": r"^beta \d+$"}, out) is None
    assert text({"regex": [r"^alpha$", r"^zeta"]}, out) == "stdout does not match /^zeta/"
    assert text({"not_regex": r"\d"}, out) == r"stdout matches /\d/, which it should not"
    assert text({"equals": "alpha\nbeta 42\ngamma"}, out) is None
    assert text({"equals": "alpha"}, out) == (
        "stdout is 'alpha\\nbeta 42\\ngamma', expected 'alpha'"
    )
    assert text({"lines": ["+ beta", "- delta"]}, out) is None
    assert text({"lines": ["+ delta"]}, out) == "stdout has no line with 'delta'"
    assert text({"lines": ["- gamma"]}, out) == (
        "stdout has a line with 'gamma', which it should not"
    )
    assert text({"empty": True}, " \n") is None
    assert text({"empty": True}, out) == "stdout is not empty"
    assert text({"empty": False}, "") == "stdout is empty"
    assert text({"like": "alpha\nbeta 7\ngamma"}, out) == (
        "stdout differs: line 2: expected like 'beta 7', got 'beta 42'"
    )


def test_lint_finds_bad_regexes() -> None:
    assert lint_text({"regex": ["ok", "(bad"]}, ("stdout",)) == [
        (
            ("stdout", "regex", 1),
            "'(bad' is not a valid regular expression: missing ), unterminated subpattern "
            "at position 0",
        )
    ]
    assert lint_text({"not_regex": "[x"}, ())[0][0] == ("not_regex",)
