"""Shared fixtures: keep the developer's own setup out of every test; no silent skips in CI.

Every test gets a private HOME, state directory, kube cache and an empty
KUBECONFIG, so neither a real cluster nor a real progress file can leak in or
be touched.

On a developer's machine a test whose prerequisite is missing (kubectl, the Istio
CRDs in ``../shared``, a test tool) skips and says why. Under CI (``.ci/run``
exports ``LABRUNNER_CI=1``) the same skip is a failure: a green run must mean every
test ran. Only tests marked ``cluster`` (they need a real cluster) may still skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

CI_ENV = "LABRUNNER_CI"

pytest_plugins = ["labrunner.testing.fixtures", "pytester"]

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture(autouse=True)
def isolated_env(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A private HOME, state dir, kube cache and no kubeconfig for each test; no GITHUB_*."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("LABRUNNER_STATE_DIR", str(home / "state"))
    monkeypatch.setenv("KUBECONFIG", str(home / ".kube" / "config"))
    monkeypatch.setenv("KUBECACHEDIR", str(home / ".kube" / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.delenv("LABRUNNER_LABS", raising=False)
    monkeypatch.delenv("LABRUNNER_CONTEXT", raising=False)
    for name in [n for n in os.environ if n.startswith("GITHUB_")]:
        # a run on GitHub Actions must not turn every verify into an annotated one
        monkeypatch.delenv(name)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", os.environ.get("TERM", "xterm-256color"))
    yield home


@pytest.fixture
def repo() -> Path:
    """The repository root (the bundled workshop lives here)."""
    return REPO


@pytest.fixture
def shared_dir() -> Path:
    """``../shared`` beside the checkout; tests that need it skip without it (fail under CI)."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside this checkout")
    return SHARED


def _skip_reason(longrepr: object) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _refuse_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    """Turn a skip into a failure that names the missing prerequisite."""
    reason = _skip_reason(report.longrepr).removeprefix("Skipped: ")
    report.outcome = "failed"
    report.longrepr = (
        f"skipped under {CI_ENV}=1, where every prerequisite must be present: {reason}"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CI, a skipped test (not marked ``cluster``, not an xfail) fails instead."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if (
        report.skipped
        and os.environ.get(CI_ENV) == "1"
        and not hasattr(report, "wasxfail")
        and item.get_closest_marker("cluster") is None
    ):
        _refuse_skip(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    """Under CI, a module that skips itself at import (``importorskip``) is an error."""
    outcome = yield
    report: pytest.CollectReport = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and os.environ.get(CI_ENV) == "1":
        _refuse_skip(report)
