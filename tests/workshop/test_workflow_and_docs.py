"""The CI example and the "Bring a cluster" guide: they cannot run here, so read them closely."""

from __future__ import annotations

import re
import shlex

import yaml

from tests.workshop.conftest import LABS_DIR, REPO

WORKFLOW = REPO / ".github" / "workflows" / "workshop.yml"
GUIDE = REPO / "README.md"


def _workflow() -> dict[object, object]:
    data = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(data, dict)
    return data


def _steps() -> list[dict[str, object]]:
    jobs = _workflow()["jobs"]
    assert isinstance(jobs, dict) and len(jobs) == 1
    (job,) = jobs.values()
    assert job["runs-on"].startswith("ubuntu-")
    assert job["timeout-minutes"] <= 90
    return list(job["steps"])


def test_workflow_triggers_and_permissions() -> None:
    data = _workflow()
    triggers = data.get("on", data.get(True))  # YAML 1.1 reads a bare `on` as true
    assert isinstance(triggers, dict)
    assert {"workflow_dispatch", "pull_request"} <= set(triggers)
    assert data["permissions"] == {"contents": "read"}


def test_workflow_pins_every_action() -> None:
    uses = [str(s["uses"]) for s in _steps() if "uses" in s]
    assert uses, "the workflow uses no actions"
    for action in uses:
        _, _, ref = action.partition("@")
        assert re.fullmatch(r"v\d+(\.\d+){0,2}|[0-9a-f]{40}", ref), f"{action}: pin a version"
    names = {u.partition("@")[0] for u in uses}
    assert {"actions/checkout", "actions/setup-python", "helm/kind-action"} <= names
    assert "actions/upload-artifact" in names


def test_workflow_creates_kind_with_the_shipped_config() -> None:
    kind = next(s for s in _steps() if str(s.get("uses", "")).startswith("helm/kind-action@"))
    with_ = kind["with"]
    assert isinstance(with_, dict)
    assert (REPO / str(with_["config"])).is_file()
    assert re.fullmatch(r"v\d+\.\d+\.\d+", str(with_["version"]))
    assert re.fullmatch(r"kindest/node:v1\.(3[2-9])\.\d+", str(with_["node_image"]))
    context = f"kind-{with_['cluster_name']}"
    assert context.startswith("kind-"), "labrunner accepts kind-* contexts as disposable"


def test_workflow_runs_the_workshop_and_keeps_the_report() -> None:
    steps = _steps()
    runs = [str(s.get("run", "")) for s in steps]
    joined = "\n".join(runs)
    assert "pip install" in joined
    assert "--only download" in joined, "istioctl comes from the lab's own pinned download step"
    verify = next(r for r in runs if " verify " in r and "--junit" in r)
    argv = shlex.split(verify)
    assert argv[0] == "labrunner"
    assert argv[argv.index("--junit") + 1] == "report.xml"
    assert "--skip-needs" not in argv, "CI on kind runs every step, traffic included"
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["if"] == "always()"
    assert "report.xml" in str(upload["with"]["path"])
    kind_index = next(i for i, s in enumerate(steps) if "kind-action" in str(s.get("uses", "")))
    verify_index = next(i for i, s in enumerate(steps) if str(s.get("run", "")) == verify)
    assert kind_index < verify_index


def test_workflow_finds_the_labs_it_runs() -> None:
    for run in (str(s.get("run", "")) for s in _steps()):
        if run.startswith("labrunner"):
            argv = shlex.split(run)
            if "--labs" in argv:
                assert (REPO / argv[argv.index("--labs") + 1]).resolve() == LABS_DIR


def test_bring_a_cluster_covers_every_platform() -> None:
    text = GUIDE.read_text()
    for platform in ("kind", "k3d", "minikube", "GKE", "EKS"):
        assert re.search(rf"^#{{2,3}} {platform}\b", text, re.MULTILINE), (
            f"no section for {platform}"
        )
    assert "manifests/kind/cluster.yaml" in text
    assert (REPO / "manifests" / "kind" / "cluster.yaml").is_file()
    assert "1.32" in text, "say which Kubernetes version Istio needs"
    assert "--disable=traefik" in text
    for version in re.findall(r"v1\.(\d+)\.\d+", text):
        assert int(version) >= 32, "every suggested Kubernetes version must run Istio 1.30"


def test_cluster_names_in_the_guide_are_accepted_by_the_context_guard() -> None:
    from labrunner.cluster.guard import looks_disposable

    meta = yaml.safe_load((LABS_DIR / "workshop.yaml").read_text())
    extra = meta.get("contexts") or []
    for context in (
        "kind-istio-workshop",
        "k3d-istio-workshop",
        "istio-workshop",
        "gke_my-project_europe-west1-b_istio-workshop",
        "me@istio-workshop.eu-west-1.eksctl.io",
    ):
        assert looks_disposable(context, extra), context
    assert not looks_disposable("gke_prod_europe-west1_payments", extra)
