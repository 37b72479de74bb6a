"""A hostile API server ends in ``error`` (exit 3) within budget, with the cause named.

An untrusted, expired or wrong-name certificate on the API server, a
connection cut mid-response, a server that never answers and one that
trickles its answer a byte a second: through the real CLI, ``verify``,
``check`` and ``doctor`` each exit 3, name the cause, print no traceback,
and stay within the step's budget (a whole-request deadline, not a
per-read timeout). Jaeger gets the same deadline. A TLS problem in the
*service under test* (``http``, ``certificate``) is the lab's: ``failed``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from labrunner.testing.fakecluster import FakeCluster
from labrunner.testing.fixtures import cli_environ

pytestmark = pytest.mark.timeout(180)

BUDGET = 2.0
STARTUP = 5.0
"""Allowance for the interpreter, imports, the shell and teardown on a busy machine."""

NAMESPACE_LAB = """\
apiVersion: labrunner/v1
id: ns
title: Namespace
needs: [cluster]
steps:
  - id: default
    title: The default namespace
    run: ['true']
    check: [{namespace: {name: default}}]
    within: {within}
"""

TLS_CAUSES = {
    "untrusted": "its certificate is signed by a certificate authority the kubeconfig does not",
    "expired": "its certificate has expired",
    "wrong-name": "its certificate is for another name",
}


@pytest.fixture(scope="module")
def tls_servers() -> Iterator[dict[str, FakeCluster]]:
    """One HTTPS server per certificate fault (kubeconfigs trust the proper CA)."""
    servers = {fault: FakeCluster(tls_fault=fault, token="t0ken-" + fault) for fault in TLS_CAUSES}
    for server in servers.values():
        server.start()
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="module")
def hostile() -> Iterator[FakeCluster]:
    """A plain server whose transport faults each test arms (and clears)."""
    with FakeCluster() as server:
        yield server


@dataclass
class Setup:
    """A workshop with one lab, a kubeconfig for ``server`` and the CLI."""

    root: Path
    env: dict[str, str]

    def cli(
        self, *args: str, timeout: float = 120
    ) -> tuple[subprocess.CompletedProcess[str], float]:
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "labrunner", "--labs", str(self.root / "labs"), *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        elapsed = time.monotonic() - started
        assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
        return proc, elapsed


@pytest.fixture
def setup(tmp_path: Path, isolated_env: Path) -> Callable[..., Setup]:
    def make(server: FakeCluster, lab: str = NAMESPACE_LAB, within: float = BUDGET) -> Setup:
        root = tmp_path / "ws"
        (root / "labs").mkdir(parents=True, exist_ok=True)
        (root / "labs" / "lab.yaml").write_text(
            textwrap.dedent(lab).replace("{within}", f"{within:g}s")
        )
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        env = cli_environ(
            isolated_env, KUBECONFIG=str(kubeconfig), KUBECACHEDIR=str(tmp_path / "kc")
        )
        return Setup(root, env)

    return make


def during(
    server: FakeCluster, rule: Any, run: Setup, *args: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run the CLI while ``rule`` is armed on ``server``, then disarm it."""
    try:
        return run.cli(*args)
    finally:
        server.faults.remove(rule)


@pytest.mark.parametrize("fault", sorted(TLS_CAUSES))
def test_bad_tls_on_the_api_server(
    fault: str, tls_servers: dict[str, FakeCluster], setup: Callable[..., Setup]
) -> None:
    run = setup(tls_servers[fault])
    cause = TLS_CAUSES[fault]
    verify, took = run.cli("verify", "--no-save")
    assert verify.returncode == 3, verify.stdout + verify.stderr
    assert f"cannot trust the API server at {tls_servers[fault].url}: {cause}" in verify.stdout
    assert took < BUDGET + STARTUP
    check, _ = run.cli("check", "ns")
    assert check.returncode == 3, check.stdout + check.stderr
    assert cause in check.stdout
    doctor, _ = run.cli("doctor")
    assert doctor.returncode == 3, doctor.stdout + doctor.stderr
    line = next(x for x in doctor.stdout.splitlines() if x.startswith("✘ cluster"))
    assert cause in line
    assert "re-export the kubeconfig" in doctor.stdout or "check the server" in line


TRANSPORT = {
    "trickle": (lambda s: s.faults.trickle(1.0), "did not answer within", "timeout"),
    "hang": (lambda s: s.faults.hang(), "did not answer within", "timeout"),
    "cut-headers": (
        lambda s: s.faults.cut(after="headers"),
        "connection to the API server",
        "broke",
    ),
    "cut-body": (lambda s: s.faults.cut(after="body"), "connection to the API server", "broke"),
}


@pytest.mark.parametrize("fault", sorted(TRANSPORT))
def test_transport_faults_end_in_error_within_budget(
    fault: str, hostile: FakeCluster, setup: Callable[..., Setup]
) -> None:
    arm, said, cause = TRANSPORT[fault]
    run = setup(hostile)
    rule = arm(hostile)
    try:
        verify, took = run.cli("verify", "--no-save")
        assert verify.returncode == 3, verify.stdout + verify.stderr
        assert said in verify.stdout and cause in verify.stdout
        assert took < BUDGET + STARTUP, f"verify took {took:.1f}s with a {BUDGET:g}s budget"
        check, took = run.cli("check", "ns", "--wait")
        assert check.returncode == 3, check.stdout + check.stderr
        assert said in check.stdout
        assert took < BUDGET + STARTUP
        doctor, _ = run.cli("doctor")
        assert doctor.returncode == 3, doctor.stdout + doctor.stderr
        line = next(x for x in doctor.stdout.splitlines() if x.startswith("✘ cluster"))
        assert cause in line
    finally:
        hostile.faults.remove(rule)


def test_a_5s_step_against_a_trickling_server_ends_in_under_10s(
    hostile: FakeCluster, setup: Callable[..., Setup]
) -> None:
    run = setup(hostile, within=5.0)
    rule = hostile.faults.trickle(1.0)
    verify, took = during(hostile, rule, run, "verify", "--no-save")
    assert verify.returncode == 3, verify.stdout + verify.stderr
    assert "did not answer within" in verify.stdout and "(timeout" in verify.stdout
    assert took < 10.0, f"{took:.1f}s"


def test_a_single_check_against_a_server_that_never_answers(
    hostile: FakeCluster, setup: Callable[..., Setup]
) -> None:
    """``check`` without ``--wait`` gives one round its own bound (10 s), then exit 3."""
    run = setup(hostile)
    rule = hostile.faults.hang()
    check, took = during(hostile, rule, run, "check", "ns")
    assert check.returncode == 3, check.stdout + check.stderr
    assert "did not answer within" in check.stdout
    assert took < 10.0 + STARTUP


JAEGER_LAB = """\
apiVersion: labrunner/v1
id: jaeger
title: Traces
needs: [cluster]
steps:
  - id: traced
    title: Traced
    run: ['true']
    check:
      - traces: {{{where}, services: [frontend]}}
    within: {{within}}
"""


@pytest.mark.parametrize("where", ["url", "service"])
def test_a_trickling_jaeger_ends_in_error_within_budget(
    where: str, hostile: FakeCluster, setup: Callable[..., Setup]
) -> None:
    if where == "url":
        target = f"url: '{hostile.url}'"
        rule = hostile.faults.trickle(1.0, path="/jaeger/")
    else:
        target = "service: {namespace: istio-system, name: tracing}"
        rule = hostile.faults.trickle(1.0, path="/api/v1/namespaces/istio-system/services/")
    run = setup(hostile, lab=JAEGER_LAB.format(where=target))
    verify, took = during(hostile, rule, run, "verify", "--no-save")
    assert verify.returncode == 3, verify.stdout + verify.stderr
    assert "timeout" in verify.stdout or "timed out" in verify.stdout
    assert took < BUDGET + STARTUP, f"{took:.1f}s"


SERVICE_TLS_LAB = """\
apiVersion: labrunner/v1
id: svc
title: The service under test
steps:
  - id: https
    title: HTTPS answers
    run: ['true']
    check:
      - http: {{url: '{url}/version', expect: {{status: 200}}}}
    within: 1s
"""

CERT_LAB = """\
apiVersion: labrunner/v1
id: cert
title: The service's certificate
steps:
  - id: valid
    title: Valid now
    run: ['true']
    check:
      - certificate:
          command: >-
            openssl s_client -connect {address} -servername localhost </dev/null 2>/dev/null
            | openssl x509
          not_expired: true
    within: 1s
"""


def test_a_tls_problem_in_the_service_under_test_is_failed(
    tls_servers: dict[str, FakeCluster], setup: Callable[..., Setup]
) -> None:
    expired = tls_servers["expired"]
    run = setup(expired, lab=SERVICE_TLS_LAB.format(url=expired.url))
    http, _ = run.cli("verify", "--no-save")
    assert http.returncode == 1, http.stdout + http.stderr
    assert "TLS handshake failed" in http.stdout
    cert = setup(expired, lab=CERT_LAB.format(address=f"127.0.0.1:{expired.port}"))
    done, _ = cert.cli("verify", "--no-save")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "expired" in done.stdout
