"""Under CI a missing prerequisite fails the run instead of skipping tests unseen.

A fresh machine without kubectl, or a checkout without ``../shared`` beside it, once
turned 59 tests into quiet skips and CI stayed green. These run a small suite that
uses this repository's own conftest in a separate pytest, with and without
``LABRUNNER_CI=1``, and check what a skip becomes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SUITE_CONFTEST = Path(__file__).resolve().parent / "conftest.py"

SKIPPING_TESTS = """
import shutil

import pytest


@pytest.fixture
def a_tool():
    pytest.skip("no-such-tool is not installed")


def test_skips_in_the_body():
    pytest.skip("../shared is not beside this checkout")


@pytest.mark.skipif(shutil.which("no-such-tool") is None, reason="needs no-such-tool")
def test_skipif_marker():
    pass


def test_skips_in_a_fixture(a_tool):
    pass


@pytest.mark.cluster
def test_needs_a_real_cluster():
    pytest.skip("no cluster configured")


@pytest.mark.xfail(reason="known", strict=True)
def test_expected_failure():
    raise AssertionError


def test_runs():
    pass
"""


@pytest.fixture
def small_suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(SUITE_CONFTEST.read_text(encoding="utf-8"))
    pytester.makeini(
        "[pytest]\naddopts = -ra --strict-markers\nmarkers =\n    cluster: needs a real cluster\n"
    )
    pytester.makepyfile(test_skipping=SKIPPING_TESTS)
    return pytester


def test_without_ci_missing_prerequisites_skip(
    small_suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LABRUNNER_CI", raising=False)
    result = small_suite.runpytest_subprocess()
    result.assert_outcomes(passed=1, skipped=4, xfailed=1)
    assert result.ret == pytest.ExitCode.OK


def test_under_ci_a_skip_fails_and_names_what_is_missing(
    small_suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABRUNNER_CI", "1")
    result = small_suite.runpytest_subprocess()
    # body skip: failed; skipif marker and fixture skip happen at setup: errors
    result.assert_outcomes(passed=1, failed=1, errors=2, skipped=1, xfailed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = result.stdout.str()
    for reason in (
        "../shared is not beside this checkout",
        "needs no-such-tool",
        "no-such-tool is not installed",
    ):
        assert (
            f"skipped under LABRUNNER_CI=1, where every prerequisite must be present: {reason}"
            in out
        ), out
    # only the cluster test may still skip
    assert "SKIPPED [1] test_skipping.py" in out and "no cluster configured" in out


def test_under_ci_a_module_that_skips_itself_is_a_collection_error(
    small_suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_suite.makepyfile(
        test_optional="""
            import pytest

            pytest.importorskip("no_such_module_here")


            def test_x():
                pass
        """
    )
    monkeypatch.setenv("LABRUNNER_CI", "1")
    result = small_suite.runpytest_subprocess("test_optional.py")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert (
        "skipped under LABRUNNER_CI=1, where every prerequisite must be present: "
        "could not import 'no_such_module_here'"
    ) in result.stdout.str(), result.stdout.str()
    monkeypatch.delenv("LABRUNNER_CI")
    assert (
        small_suite.runpytest_subprocess("test_optional.py").ret
        == pytest.ExitCode.NO_TESTS_COLLECTED
    )
