"""Resume: after the whole workshop, re-checking completed steps flags nothing stale by accident.

On resume the runner re-checks every completed step whose ``recheck`` is on,
and shows the ones that fail as *stale*. A step must say ``recheck: false``
exactly when a later step replaces its state on purpose (a route swapped for
the next one, a policy a restore step removes, traffic of the last few
minutes), and never otherwise:

- on the fake cluster, the whole workshop runs (its resource-level steps, as
  CI does with ``--skip-needs``), then every completed step is re-checked the
  way the TUI does on resume. Steps with ``recheck`` on must still pass; steps
  with it off must really have been overtaken, or the flag hides nothing;
- steps that need istioctl, Helm or real traffic cannot run here. Their
  decisions are listed below, reviewed one by one, and a ``cluster`` test
  re-checks them after a real run (``LABRUNNER_CLUSTER_TESTS=1``).

The clean-up lab is left out of the run: removing everything is its job, so
after it every earlier step is rightly stale.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labrunner.engine import Engine, RunOptions
from labrunner.engine.events import StepStatus
from labrunner.lab.loader import load_workshop
from labrunner.lab.model import Lab, Workshop
from labrunner.state import ProgressStore
from labrunner.testing.fixtures import FakeClusterHandle
from labrunner.verify.registry import builtin_registry
from tests.workshop.conftest import (
    LABS_DIR,
    RESOURCE_VERIFIERS,
    SKIP_ON_FAKE,
    lab_data,
    own_lab_files,
)
from tests.workshop.conftest import Workshop as WorkshopCopy

# Read before the autouse fixture points KUBECONFIG at an empty file.
REAL_KUBECONFIG = os.environ.get("LABRUNNER_CLUSTER_KUBECONFIG") or os.environ.get(
    "KUBECONFIG", str(Path.home() / ".kube" / "config")
)
CLUSTER_TESTS = os.environ.get("LABRUNNER_CLUSTER_TESTS") == "1"

# Every step that needs istioctl, Helm or real traffic, and whether resume re-checks it.
EXPECTED_RECHECK: dict[str, bool] = {
    "install-istio/precheck": False,  # judges the cluster before the install
    "install-istio/install": True,
    "install-istio/confirm": True,
    "install-istio/addons": True,
    "install-istio/dashboards": True,  # the dashboard is a lab service: started again
    "install-istio-helm/add-repo": False,  # also checks no Istio runs yet
    "install-istio-helm/base": True,
    "install-istio-helm/istiod": True,
    "install-istio-helm/gateways": True,
    "install-istio-helm/confirm": True,
    "ingress-gateway/call-gateway": False,  # https-ingress replaces the port-80 server
    "ingress-gateway/call-from-outside": False,  # same
    "ingress-gateway/inspect-routes": False,  # route http.8080 goes with it
    "https-ingress/inspect-sds": True,
    "https-ingress/call-https": True,
    "sidecar-injection/proxy-status": True,
    "sidecar-injection/manual-injection": True,
    "sidecar-injection/traffic-still-works": True,
    "strict-mtls/permissive-calls": False,  # strict-policy refuses the legacy client
    "strict-mtls/strict-calls": True,
    "mesh-boundaries/mesh-to-plain": False,  # force-mtls breaks it on purpose
    "mesh-boundaries/handshake-fails": False,  # disable-tls mends it
    "mesh-boundaries/plain-again": True,
    "mesh-boundaries/legacy-gets-in": False,  # close-the-port shuts it out again
    "mesh-boundaries/legacy-shut-out": True,
    "spiffe-identities/list-secrets": True,
    "spiffe-identities/read-certificate": True,
    "spiffe-identities/other-identities": True,
    "inside-envoy/config-dump": True,
    "inside-envoy/clusters-and-listeners": True,
    "inside-envoy/envoy-stats": True,
    "inside-envoy/prometheus-port": False,  # a pod IP, gone with the pod
    "distributed-tracing/find-a-trace": False,  # traces of the last minutes only
    "distributed-tracing/trace-headers": True,
    "traffic-shifting/v2-stays-dark": False,  # canary sends v2 traffic
    "traffic-shifting/canary-split": False,  # header-routing replaces the split
    "traffic-shifting/header-routing-works": False,  # roll-back removes v2
    "resilience/see-failures": False,  # retries hide the failures
    "resilience/retries-help": False,  # add-timeout heals the backend
    "resilience/see-timeout": False,  # abort-for-testers removes the delay
    "resilience/see-abort": False,  # restore removes the fault
    "resilience/healthy-again": True,
    "authorization/see-denied": False,  # allow-callers lets curl in
    "authorization/see-allowed": False,  # restore removes the policies
    "authorization/ops-denied": False,  # allow-namespace lets ops in
    "authorization/ops-allowed": False,  # restore removes the policies
    "authorization/open-again": True,
    "end-user-jwt/tokens-checked": False,  # require-token refuses the tokenless call
    "end-user-jwt/token-required": False,  # restore removes require-jwt
    "end-user-jwt/remote-jwks-works": False,  # restore removes the RequestAuthentication
    "end-user-jwt/open-again": True,
    "egress/open-by-default": False,  # registry-only blocks it
    "egress/blocked": False,  # service-entry lets example.com in
    "egress/allowed-again": False,  # restore removes the entry
    "egress/through-egress-gateway-http": False,  # restore removes the route; logs age
    "egress/through-egress-gateway-tls": False,  # same
    "egress/open-again": True,
    "observability/prometheus": True,
    "observability/grafana": True,
    "observability/kiali": False,  # graph of the last ten minutes
    "bookinfo/productpage-in-mesh": True,
    "bookinfo/call-productpage": False,  # hand-back removes the gateway route
    "bookinfo/v1-only": False,  # route-jason changes the routing
    "bookinfo/jason-sees-v2": False,  # route-v3 sends everyone to v3
    "bookinfo/red-stars": True,
    "clean-up/uninstall-istio": True,
}
# Steps that were stale on resume only because a background process ended with the lab
# shell: the process is a declared lab service now (started again on resume, on entering
# a later step and with --from), so they are re-checked like any other step.
SERVED_BY_A_SERVICE = {
    "install-istio/dashboards": "grafana-dashboard",
    "mesh-security-basics/start-payments": "payments",
    "mesh-security-basics/no-client-cert": "payments",
    "mesh-security-basics/wrong-ca": "payments",
    "mesh-security-basics/frontend-calls": "payments",
    "mesh-security-basics/expiry": "payments",
}
NOT_RUN_ON_RESUME = frozenset({"clean-up"})


def _workshop(root: Path) -> Workshop:
    loaded = load_workshop(root, builtin_registry())
    assert loaded.workshop is not None, "\n".join(map(str, loaded.problems))
    return loaded.workshop


def _engine(workshop: Workshop, store: ProgressStore, **options: object) -> Engine:
    return Engine(
        workshop,
        registry=builtin_registry(),
        store=store,
        emit=lambda _event: None,
        options=RunOptions(**options),  # type: ignore[arg-type]
        base_env=dict(os.environ),
    )


def _resume_rechecks(engine: Engine, store: ProgressStore, labs: list[Lab]) -> dict[str, bool]:
    """Re-check every passed step as resume does (exports restored, services brought back,
    stale flags recorded): step → still passes."""
    fresh: dict[str, bool] = {}
    for lab in labs:
        records = store.steps(lab.id)
        with engine.session(lab) as session:
            for step in lab.steps:
                record = records.get(step.id)
                if record is None or record.status != StepStatus.PASSED.value:
                    continue
                result = session.recheck(step)
                fresh[f"{lab.id}/{step.id}"] = result.status is StepStatus.PASSED
    return fresh


def test_resume_after_the_whole_workshop_flags_no_resource_step_by_accident(
    workshop_copy: WorkshopCopy, istio_cluster: FakeClusterHandle
) -> None:
    workshop = _workshop(workshop_copy.labs)
    store = ProgressStore.memory("kind-labrunner")
    engine = _engine(workshop, store, skip_needs=SKIP_ON_FAKE, save=True)
    labs = [lab for lab in workshop.labs if lab.id not in NOT_RUN_ON_RESUME]
    summary = engine.verify(labs)
    failed = {lab: status for lab, status in summary.lab_status.items() if not status.ok}
    assert not failed, failed
    fresh = _resume_rechecks(engine, store, labs)
    steps = {f"{lab.id}/{s.id}": s for lab in labs for s in lab.steps}
    runnable = {k for k, s in steps.items() if not set(s.needs) & SKIP_ON_FAKE}
    assert set(fresh) == runnable, "every step the fake can run passed and was re-checked"
    stale = sorted(k for k, ok in fresh.items() if steps[k].recheck and not ok)
    assert not stale, f"stale on resume although nothing replaced them: {stale}"
    resource_steps = {
        k for k in fresh if any(c.verifier in RESOURCE_VERIFIERS for c in steps[k].check)
    }
    needless = sorted(k for k in resource_steps if not steps[k].recheck and fresh[k])
    assert not needless, f"recheck: false, yet their state is still there: {needless}"


def _needs_a_cluster(step: dict[str, object]) -> bool:
    return bool(set(step.get("needs") or []) & {"traffic", "istioctl", "helm"})  # type: ignore[arg-type]


def test_the_recheck_decisions_for_cluster_steps_are_the_reviewed_ones() -> None:
    """The table above is the reviewed list; a lab file that drifts from it fails here."""
    found = {}
    for path in own_lab_files():
        data = lab_data(path)
        for step in data["steps"]:
            if _needs_a_cluster(step):
                found[f"{data['id']}/{step['id']}"] = bool(step.get("recheck", True))
    assert found == EXPECTED_RECHECK


def test_steps_whose_state_is_a_background_process_rely_on_a_lab_service() -> None:
    """A step that needs a helper process is re-checked, with the service brought back:
    the service is started by that step or an earlier one of the same lab."""
    labs = {lab_data(p)["id"]: lab_data(p) for p in own_lab_files()}
    labs["mesh-security-basics"] = lab_data(LABS_DIR / "00-mesh-security-basics.yaml")
    for key, service_id in SERVED_BY_A_SERVICE.items():
        lab_id, step_id = key.split("/")
        lab = labs[lab_id]
        order = [s["id"] for s in lab["steps"]]
        (step,) = [s for s in lab["steps"] if s["id"] == step_id]
        assert step.get("recheck", True) is True, key
        (service,) = [s for s in lab.get("services", []) if s["id"] == service_id]
        assert order.index(service["step"]) <= order.index(step_id), key


@pytest.mark.cluster
@pytest.mark.skipif(not CLUSTER_TESTS, reason="needs a real cluster (LABRUNNER_CLUSTER_TESTS=1)")
def test_resume_on_a_real_cluster_matches_the_decisions(
    workshop_copy: WorkshopCopy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole istioctl path on a disposable cluster, then resume: every step the table
    says to re-check still passes (traffic and istioctl ones included)."""
    monkeypatch.setenv("KUBECONFIG", REAL_KUBECONFIG)
    workshop = _workshop(workshop_copy.labs)
    store = ProgressStore.memory("cluster")
    engine = _engine(workshop, store, save=True)
    labs = [
        lab
        for lab in workshop.labs
        if lab.id not in NOT_RUN_ON_RESUME and lab.id != "install-istio-helm"
    ]
    summary = engine.verify(labs)
    failed = {lab: status for lab, status in summary.lab_status.items() if not status.ok}
    assert not failed, failed
    fresh = _resume_rechecks(engine, store, labs)
    steps = {f"{lab.id}/{s.id}": s for lab in labs for s in lab.steps}
    stale = sorted(k for k, ok in fresh.items() if steps[k].recheck and not ok)
    assert not stale, f"stale on resume although nothing replaced them: {stale}"
