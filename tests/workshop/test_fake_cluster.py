"""Each lab's kubectl steps, run by the real engine and kubectl against the fake API server.

For every step whose needs the fake can meet (no istioctl, no Helm, no real
traffic, no internet), the step's resource-level checks must *fail* before
its commands run and *pass* after (Instruqt's fail-check/solve/check
protocol), so no check can pass by accident. Before the cleanup runs, no
mesh-wide or gateway policy the lab made may be left unless every lab that
can follow it requires it (the isolation rule: the fake enforces no policy,
so this tests the cause of the 403s a leftover would give a later lab).
Then the lab's cleanup must undo what its steps did. Steps the fake cannot
honestly run are skipped with a reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from labrunner.engine import Engine, LabSession, RunOptions
from labrunner.engine.events import Phase, StepStatus
from labrunner.lab.loader import load_workshop
from labrunner.lab.model import Lab, Step
from labrunner.state import ProgressStore
from labrunner.testing.fixtures import FakeClusterHandle
from labrunner.verify.registry import builtin_registry
from tests.workshop.conftest import (
    RESOURCE_VERIFIERS,
    SKIP_ON_FAKE,
    Workshop,
    lab_data,
    own_lab_files,
)
from tests.workshop.policy import followers, policy_objects, requires_closure

INSTALL_LABS = frozenset({"install-istio", "install-istio-helm"})
CLUSTER_LABS = [lab_data(p)["id"] for p in own_lab_files() if lab_data(p)["id"] not in INSTALL_LABS]
# Labs whose every step needs istioctl or real traffic.
ONLY_ON_A_CLUSTER = frozenset({"observability", "inside-envoy"})
# Steps whose effect outlives the lab's cleanup on purpose, and why.
KEPT_AFTER_CLEANUP = {
    # Kubernetes keeps a Service's node port when an update leaves it out, so the pin
    # cannot be undone without choosing other ports; 30080/30443 harm nothing.
    ("ingress-gateway", "node-port"),
}


def _engine(workshop: Workshop) -> tuple[Engine, list[object]]:
    loaded = load_workshop(workshop.labs, builtin_registry())
    assert loaded.workshop is not None, "\n".join(map(str, loaded.problems))
    events: list[object] = []
    engine = Engine(
        loaded.workshop,
        registry=builtin_registry(),
        store=ProgressStore.memory("kind-labrunner"),
        emit=events.append,
        options=RunOptions(skip_needs=SKIP_ON_FAKE, save=False),
        base_env=dict(os.environ),
    )
    return engine, events


def _has_resource_checks(step: Step) -> bool:
    return any(c.verifier in RESOURCE_VERIFIERS for c in step.check)


def _removes_things(step: Step) -> bool:
    """A restore/roll-back step: it checks that something is gone, which cleanup keeps true."""
    return any(
        c.verifier in ("resource", "namespace")
        and (c.params.get("exists") is False or c.params.get("absent") is True)
        for c in step.check
    )


def _why(result: object) -> str:
    details = getattr(result, "details", None)
    return f"{getattr(result, 'message', '')}\n{details or ''}"


def _phase(session: LabSession, phase: Phase) -> None:
    status, why, details = session.run_phase(phase)
    assert status is StepStatus.PASSED, f"{phase.value} failed: {why}\n{details}"


def _run_lab(session: LabSession, lab: Lab) -> list[Step]:
    """Fail-check, solve, check every step the fake can run; returns the resource steps."""
    checked: list[Step] = []
    for step in lab.steps:
        skip = session.missing_needs(step)
        if skip:
            assert set(step.needs) & SKIP_ON_FAKE, f"{lab.id}/{step.id} skipped for {skip}"
            continue
        if _has_resource_checks(step):
            before = session.check(step, within=0)
            assert before.status is not StepStatus.PASSED, (
                f"{lab.id}/{step.id}: its checks pass before the step ran, so they prove nothing"
            )
            checked.append(step)
        result = session.run_step(step, solution=True)
        assert result.status is StepStatus.PASSED, f"{lab.id}/{step.id}: {_why(result)}"
        after = session.check(step, within=0)
        assert after.status is StepStatus.PASSED, f"{lab.id}/{step.id} (re-check): {_why(after)}"
    return checked


def _assert_no_leftover_policy(
    lab: Lab, engine: Engine, before: dict[tuple[str, str, str], object], cluster: FakeClusterHandle
) -> None:
    """Mesh-wide or gateway policy this lab made (or changed) and did not take back must be
    something every lab that can follow it requires, so none of them meets it by surprise."""
    after = policy_objects(cluster)
    left = sorted(key for key, spec in after.items() if before.get(key) != spec)
    if not left:
        return
    unaware = sorted(
        f
        for f in followers(engine.workshop, lab.id)
        if lab.id not in requires_closure(engine.workshop, f)
    )
    assert not unaware, (
        f"{lab.id} leaves {', '.join('/'.join(k) for k in left)} behind, and {', '.join(unaware)}"
        " can follow it without requiring it: end the lab with a checked restore step"
    )


@pytest.mark.parametrize("lab_id", CLUSTER_LABS)
def test_lab_steps_fail_first_pass_after_leave_no_stray_policy_and_clean_up(
    lab_id: str, workshop_copy: Workshop, istio_cluster: FakeClusterHandle
) -> None:
    engine, _events = _engine(workshop_copy)
    lab = engine.workshop.lab(lab_id)
    with engine.session(lab, restore_exports=False) as session:
        _phase(session, Phase.SETUP)
        before = policy_objects(istio_cluster)
        checked = _run_lab(session, lab)
        ran = [s for s in lab.steps if not session.missing_needs(s)]
        assert ran or lab_id in ONLY_ON_A_CLUSTER, f"{lab_id}: nothing runs without istioctl"
        _assert_no_leftover_policy(lab, engine, before, istio_cluster)
        _phase(session, Phase.CLEANUP)
        if lab_id == "clean-up":
            return  # its steps remove things; its cleanup only tidies local files
        for step in checked:
            if _removes_things(step) or (lab_id, step.id) in KEPT_AFTER_CLEANUP:
                continue
            after = session.check(step, within=0)
            assert after.status is not StepStatus.PASSED, (
                f"{lab_id}: cleanup left what step {step.id} created"
            )


def test_istio_install_check_fails_until_istio_is_there(
    fake_cluster_istio: FakeClusterHandle, workshop_copy: Workshop
) -> None:
    """The install step's checks (istioctl cannot run here) against a cluster before and after
    the state istioctl leaves, loaded from the fixture."""
    from tests.workshop.conftest import install_istio_on

    engine, _ = _engine(workshop_copy)
    lab = engine.workshop.lab("install-istio")
    with engine.session(lab, restore_exports=False) as session:
        for step_id in ("install", "addons"):
            assert session.check(lab.step(step_id), within=0).status is not StepStatus.PASSED
        install_istio_on(fake_cluster_istio)
        for step_id in ("install", "addons"):
            result = session.check(lab.step(step_id), within=0)
            assert result.status is StepStatus.PASSED, f"{step_id}: {_why(result)}"


def _labrunner(
    workshop: Workshop, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labrunner", "--labs", str(workshop.labs), *args],
        cwd=workshop.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_check_command_fails_before_and_passes_after_a_step(
    workshop_copy: Workshop, istio_cluster: FakeClusterHandle
) -> None:
    """The same protocol through the CLI a learner (or CI) uses: check, solve, check."""
    env = istio_cluster.env
    before = _labrunner(workshop_copy, env, "check", "strict-mtls", "strict-policy")
    assert before.returncode == 1, before.stdout + before.stderr
    solve = _labrunner(
        workshop_copy, env, "verify", "strict-mtls", "--only", "strict-policy", "--no-save"
    )
    assert solve.returncode == 0, solve.stdout + solve.stderr
    after = _labrunner(workshop_copy, env, "check", "strict-mtls", "strict-policy")
    assert after.returncode == 0, after.stdout + after.stderr
    assert "mTLS STRICT mesh-wide" in after.stdout + after.stderr


def test_whole_workshop_in_one_verify_run(
    workshop_copy: Workshop, istio_cluster: FakeClusterHandle, tmp_path: Path
) -> None:
    """``labrunner verify`` over every lab, chained as CI runs it, with a JUnit report in which
    every step the fake cannot run is skipped with its reason (and nothing is faked)."""
    junit, report = tmp_path / "report.xml", tmp_path / "report.json"
    done = _labrunner(
        workshop_copy,
        istio_cluster.env,
        "verify",
        "--skip-needs",
        ",".join(sorted(SKIP_ON_FAKE)),
        "--junit",
        str(junit),
        "--json",
        str(report),
        "--no-save",
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    cases = ET.parse(junit).getroot().iter("testcase")
    statuses: dict[str, str] = {}
    for case in cases:
        skipped = case.find("skipped")
        failed = case.find("failure") if case.find("failure") is not None else case.find("error")
        assert failed is None, ET.tostring(case, encoding="unicode")
        if skipped is not None:
            reason = (skipped.get("message") or "") + (skipped.text or "")
            assert "skipped with --skip-needs" in reason, reason
            statuses[case.get("name", "")] = "skipped"
        else:
            statuses[case.get("name", "")] = "passed"
    assert list(statuses.values()).count("passed") >= 30
    assert list(statuses.values()).count("skipped") >= 30
    data = json.loads(report.read_text())
    assert "traffic" in json.dumps(data)


# --------------------------------------------------------------------------- the Helm path


def test_helm_lab_checks_tell_a_helm_install_from_an_istioctl_one(
    fake_cluster_istio: FakeClusterHandle, workshop_copy: Workshop, tmp_path: Path
) -> None:
    """Helm cannot run here, so the Helm lab's resource-level checks meet the states around it:
    only Istio's CRDs (the base chart's part; ``helm status`` is the rest of that check), the
    istioctl layout (no release owns it, so the istiod and gateway checks fail), then the
    layout the charts render with the lab's values."""
    from tests.workshop.conftest import helm_installed_docs, install_istio_on

    engine, _ = _engine(workshop_copy)
    lab = engine.workshop.lab("install-istio-helm")
    steps = [
        replace(s, check=tuple(c for c in s.check if c.verifier in RESOURCE_VERIFIERS), needs=())
        for s in lab.steps
        if _has_resource_checks(s)
    ]
    assert [s.id for s in steps] == ["add-repo", "base", "istiod", "gateways", "confirm"]
    with engine.session(lab, restore_exports=False) as session:

        def passing() -> list[str]:
            return [s.id for s in steps if session.check(s, within=0).status is StepStatus.PASSED]

        assert passing() == ["add-repo", "base"]
        install_istio_on(fake_cluster_istio)
        assert passing() == ["base", "confirm"], "istioctl's install is not Helm's"
        helm_file = tmp_path / "helm-installed.yaml"
        helm_file.write_text(yaml.safe_dump_all(helm_installed_docs()))
        fake_cluster_istio.kubectl("apply", "-f", str(helm_file), check=True)
        assert passing() == ["base", "istiod", "gateways", "confirm"]
