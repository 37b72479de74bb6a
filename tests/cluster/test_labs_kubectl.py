"""Whole labs: the real kubectl changes the fake cluster, the verifiers check it.

These are the closest the suite gets to a learner's run: ``kubectl apply``,
``label``, ``rollout restart``, ``rollout status``, ``wait``, ``exec`` and
``delete -f`` from the lab shell, then every Kubernetes and Istio verifier
through the engine, and finally ``labrunner verify`` as CI runs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from labrunner.engine.events import StepStatus
from labrunner.verify.outcome import Status

from .conftest import LABS, Harness, needs_kubectl


def test_shop_lab_passes_every_step(harness: Harness) -> None:
    needs_kubectl()
    summary = harness.verify("shop")
    results = summary.labs["shop"]
    assert [r.status for r in results] == [StepStatus.PASSED] * 5, [
        (r.step_id, r.message) for r in results
    ]
    messages = [c.message for c in harness.checks("deploy")]
    assert "2 of 2 web pods ready in shop" in messages
    assert "available in shop: web (2/2), api (1/1)" in messages
    # every check passed on its first evaluation: kubectl had already settled the cluster
    assert all(c.attempt == 1 and c.status is Status.PASSED for c in harness.checks())


def test_istio_lab_after_shop(istio_harness: Harness) -> None:
    needs_kubectl()
    summary = istio_harness.verify("shop", "istio")
    assert summary.ok, [(r.step_id, r.status, r.message) for r in summary.labs["istio"]]
    install = istio_harness.checks("install")[0]
    assert install.message.startswith("Istio 1.30.3 installed in istio-system")
    inject = {c.verifier: c.message for c in istio_harness.checks("inject")}
    assert inject["sidecar_injected"] == "2 of 2 web pods in shop have the sidecar"
    strict = istio_harness.checks("strict")[0]
    assert strict.message == "mTLS STRICT mesh-wide (PeerAuthentication istio-system/default)"


def test_labrunner_verify_cli_writes_a_passing_report(harness: Harness, tmp_path: Path) -> None:
    needs_kubectl()
    report = tmp_path / "report.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "labrunner",
            "--labs",
            str(LABS),
            "verify",
            "shop",
            "--json",
            report,
        ],
        env=harness.cluster.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "using context 'kind-labrunner'" in done.stderr
    data = json.loads(report.read_text(encoding="utf-8"))
    text = json.dumps(data)
    assert "2 of 2 web pods ready in shop" in text
