"""Each lab, rehearsed on the simulated cluster by ``labrunner.rehearse`` (what
``labrunner rehearse`` runs): the real engine and the real kubectl.

For every step whose needs the simulated cluster can meet (no istioctl, no
Helm, no real traffic, no internet), the step's cluster checks must *fail*
before its commands run and *pass* after (Instruqt's fail-check/solve/check
protocol), so no check can pass by accident; the lab's cleanup must then undo
what its steps did. On top of the rehearsal, these tests hold the isolation
rule: before the cleanup runs, no mesh-wide or gateway policy the lab made may
be left unless every lab that can follow it requires it (the fake enforces no
policy, so this tests the cause of the 403s a leftover would give a later lab).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import yaml

from labrunner.engine import Engine, RunOptions
from labrunner.engine.events import StepStatus
from labrunner.lab.model import Step
from labrunner.lab.model import Workshop as LoadedWorkshop
from labrunner.rehearse import NOT_REHEARSABLE, Hooks, Rehearsal, Stage, Verdict
from labrunner.rehearse.harness import PHASES
from labrunner.state import ProgressStore
from labrunner.testing.fixtures import FakeClusterHandle
from labrunner.verify.registry import builtin_registry
from tests.workshop.conftest import (
    RESOURCE_VERIFIERS,
    SKIP_ON_FAKE,
    Workshop,
    lab_data,
    loaded,
    own_lab_files,
)
from tests.workshop.policy import followers, policy_objects, requires_closure

LABS = [lab_data(p)["id"] for p in own_lab_files()]
# Labs whose every step needs istioctl, Helm, the internet or real traffic.
ONLY_ON_A_CLUSTER = frozenset(
    {"install-istio", "install-istio-helm", "observability", "inside-envoy"}
)


def _engine(workshop: Workshop) -> Engine:
    return Engine(
        loaded(workshop.labs),
        registry=builtin_registry(),
        store=ProgressStore.memory("kind-labrunner"),
        emit=lambda event: None,
        options=RunOptions(skip_needs=SKIP_ON_FAKE, save=False),
        base_env=dict(os.environ),
    )


def _has_resource_checks(step: Step) -> bool:
    return any(c.verifier in RESOURCE_VERIFIERS for c in step.check)


def _why(result: object) -> str:
    details = getattr(result, "details", None)
    return f"{getattr(result, 'message', '')}\n{details or ''}"


@dataclass
class PolicyWatch:
    """The isolation rule, checked between the rehearsal's phases."""

    workshop: LoadedWorkshop
    before: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def after_setup(self, stage: Stage) -> None:
        assert stage.cluster is not None
        self.before = policy_objects(stage.cluster)

    def before_cleanup(self, stage: Stage) -> None:
        """Mesh-wide or gateway policy this lab made (or changed) and did not take back must
        be something every lab that can follow it requires, so none of them meets it by
        surprise."""
        assert stage.cluster is not None
        lab = stage.lab
        after = policy_objects(stage.cluster)
        left = sorted(key for key, spec in after.items() if self.before.get(key) != spec)
        if not left:
            return
        unaware = sorted(
            f
            for f in followers(self.workshop, lab.id)
            if lab.id not in requires_closure(self.workshop, f)
        )
        assert not unaware, (
            f"{lab.id} leaves {', '.join('/'.join(k) for k in left)} behind, and "
            f"{', '.join(unaware)} can follow it without requiring it: end the lab with a "
            "checked restore step"
        )


@pytest.mark.parametrize("lab_id", LABS)
def test_lab_rehearses_and_leaves_no_stray_policy(
    lab_id: str, workshop_copy: Workshop, istio_release: Path, tmp_path: Path
) -> None:
    workshop = loaded(workshop_copy.labs)
    watch = PolicyWatch(workshop)
    hooks = Hooks(after_setup=watch.after_setup, before_cleanup=watch.before_cleanup)
    with Rehearsal(
        workshop, registry=builtin_registry(), hooks=hooks, directory=tmp_path / "runs"
    ) as rehearsal:
        assert not rehearsal.plan.warnings, "the release is staged: real CRDs, real samples"
        result = rehearsal.rehearse(workshop.lab(lab_id))
    assert result.ok, result.explain()
    steps = [r for r in result.rows if r.step_id not in PHASES]
    assert [r.step_id for r in steps] == [s.id for s in workshop.lab(lab_id).steps]
    for row in steps:
        if row.verdict is Verdict.NOT_REHEARSABLE:
            assert row.message in NOT_REHEARSABLE.values(), row
    rehearsed = [r for r in steps if r.verdict is Verdict.REHEARSED]
    assert rehearsed or lab_id in ONLY_ON_A_CLUSTER, f"{lab_id}: nothing runs without istioctl"


def test_istio_install_check_fails_until_istio_is_there(
    istio_crds_cluster: FakeClusterHandle, workshop_copy: Workshop
) -> None:
    """The install step's checks (istioctl cannot run here) against a cluster before and after
    the state istioctl leaves, as the rehearsal preloads it."""
    from tests.workshop.conftest import install_istio_on

    engine = _engine(workshop_copy)
    lab = engine.workshop.lab("install-istio")
    with engine.session(lab, restore_exports=False) as session:
        for step_id in ("install", "addons"):
            assert session.check(lab.step(step_id), within=0).status is not StepStatus.PASSED
        install_istio_on(istio_crds_cluster)
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
    istio_crds_cluster: FakeClusterHandle, workshop_copy: Workshop, tmp_path: Path
) -> None:
    """Helm cannot run here, so the Helm lab's resource-level checks meet the states around it:
    only Istio's CRDs (the base chart's part; ``helm status`` is the rest of that check), the
    istioctl layout (no release owns it, so the istiod and gateway checks fail), then the
    layout the charts render with the lab's values."""
    from tests.workshop.conftest import helm_installed_docs, install_istio_on

    engine = _engine(workshop_copy)
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
        install_istio_on(istio_crds_cluster)
        assert passing() == ["base", "confirm"], "istioctl's install is not Helm's"
        helm_file = tmp_path / "helm-installed.yaml"
        helm_file.write_text(yaml.safe_dump_all(helm_installed_docs()))
        istio_crds_cluster.kubectl("apply", "-f", str(helm_file), check=True)
        assert passing() == ["base", "istiod", "gateways", "confirm"]
