"""The CI example and the "Bring a cluster" guide: they cannot run here, so read them closely."""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest
import yaml

from tests.workshop.conftest import LABS_DIR, REPO

WORKFLOW = REPO / ".github" / "workflows" / "workshop.yml"
GUIDE = REPO / "README.md"


def _workflow() -> dict[object, object]:
    data = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(data, dict)
    return data


NIGHTLY = "23 2 * * *"


def _all_jobs() -> dict[str, dict[str, Any]]:
    jobs = _workflow()["jobs"]
    assert isinstance(jobs, dict)
    assert set(jobs) == {"rehearse", "workshop", "workshop-helm", "nightly"}
    for job in jobs.values():
        assert job["runs-on"].startswith("ubuntu-")
    return jobs


def _jobs() -> dict[str, dict[str, Any]]:
    """The jobs that run the workshop once on a cluster."""
    jobs = {k: v for k, v in _all_jobs().items() if k in ("workshop", "workshop-helm")}
    for job in jobs.values():
        assert job["timeout-minutes"] <= 90
        assert job["if"] == f"github.event.schedule != '{NIGHTLY}'"
    return jobs


def _steps(job: str = "workshop") -> list[dict[str, object]]:
    return list(_jobs()[job]["steps"])


def _all_steps() -> list[dict[str, object]]:
    return [step for job in _all_jobs().values() for step in job["steps"]]


def test_workflow_triggers_and_permissions() -> None:
    data = _workflow()
    triggers = data.get("on", data.get(True))  # YAML 1.1 reads a bare `on` as true
    assert isinstance(triggers, dict)
    assert {"workflow_dispatch", "pull_request"} <= set(triggers)
    assert data["permissions"] == {"contents": "read"}


def test_workflow_pins_every_action() -> None:
    uses = [str(s["uses"]) for s in _all_steps() if "uses" in s]
    assert uses, "the workflow uses no actions"
    for action in uses:
        _, _, ref = action.partition("@")
        assert re.fullmatch(r"v\d+(\.\d+){0,2}|[0-9a-f]{40}", ref), f"{action}: pin a version"
    names = {u.partition("@")[0] for u in uses}
    assert {"actions/checkout", "actions/setup-python", "helm/kind-action"} <= names
    assert "actions/upload-artifact" in names
    assert "azure/setup-helm" in names


@pytest.mark.parametrize("job", ["workshop", "workshop-helm"])
def test_workflow_creates_kind_with_the_shipped_config(job: str) -> None:
    kind = next(s for s in _steps(job) if str(s.get("uses", "")).startswith("helm/kind-action@"))
    with_ = kind["with"]
    assert isinstance(with_, dict)
    assert (REPO / str(with_["config"])).is_file()
    assert re.fullmatch(r"v\d+\.\d+\.\d+", str(with_["version"]))
    assert re.fullmatch(r"kindest/node:v1\.(3[2-9])\.\d+", str(with_["node_image"]))
    context = f"kind-{with_['cluster_name']}"
    assert context.startswith("kind-"), "labrunner accepts kind-* contexts as disposable"


def _verify_argv(job: str) -> tuple[list[str], list[dict[str, object]], int]:
    steps = _steps(job)
    runs = [str(s.get("run", "")) for s in steps]
    joined = "\n".join(runs)
    assert "pip install" in joined
    assert "--only download" in joined, "istioctl comes from the lab's own pinned download step"
    index = next(i for i, r in enumerate(runs) if " verify " in r and "--junit" in r)
    argv = shlex.split(runs[index])
    assert argv[0] == "labrunner"
    kind_index = next(i for i, s in enumerate(steps) if "kind-action" in str(s.get("uses", "")))
    assert kind_index < index
    return argv, steps, index


@pytest.mark.parametrize(
    ("job", "report"), [("workshop", "report.xml"), ("workshop-helm", "report-helm.xml")]
)
def test_workflow_runs_the_workshop_and_keeps_the_report(job: str, report: str) -> None:
    argv, steps, _ = _verify_argv(job)
    assert argv[argv.index("--junit") + 1] == report
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["if"] == "always()"
    assert report in str(upload["with"]["path"])


def _workshop_order() -> list[str]:
    meta = yaml.safe_load((LABS_DIR / "workshop.yaml").read_text())
    ids = [yaml.safe_load((LABS_DIR / name).read_text())["id"] for name in meta["labs"]]
    return [i for i in ids if i != "mesh-security-basics"]


def _labs_named(argv: list[str]) -> list[str]:
    """The positional arguments of ``labrunner ... verify``: the labs to run."""
    rest = argv[argv.index("verify") + 1 :]
    labs, skip = [], False
    for arg in rest:
        if skip:
            skip = False
        elif arg in (
            "--junit",
            "--json",
            "--skip-needs",
            "--from",
            "--only",
            "--context",
            "--forensics",
            "--repeat",
        ):
            skip = True
        elif not arg.startswith("-"):
            labs.append(arg)
    return labs


def test_the_nightly_job_repeats_every_lab_and_keeps_forensics() -> None:
    data = _workflow()
    triggers = data.get("on", data.get(True))
    crons = [entry["cron"] for entry in triggers["schedule"]]
    assert NIGHTLY in crons and len(crons) == 2
    job = _all_jobs()["nightly"]
    assert job["if"] == f"github.event.schedule == '{NIGHTLY}'"
    runs = [str(s.get("run", "")) for s in job["steps"]]
    (line,) = [r for r in runs if " verify " in r and "--repeat" in r]
    argv = shlex.split(line)
    assert argv[argv.index("--repeat") + 1] == "3"
    assert argv[argv.index("--skip-needs") + 1] == "helm"
    assert "--forensics" in argv and "--junit" in argv
    upload = next(s for s in job["steps"] if "upload-artifact" in str(s.get("uses", "")))
    assert upload["if"] == "always()"
    assert "forensics/" in str(upload["with"]["path"])
    kind = next(s for s in job["steps"] if "kind-action" in str(s.get("uses", "")))
    assert (REPO / str(kind["with"]["config"])).is_file()


def test_the_rehearse_job_needs_no_cluster() -> None:
    job = _all_jobs()["rehearse"]
    uses = [str(s.get("uses", "")) for s in job["steps"]]
    assert not any("kind-action" in u for u in uses), "a rehearsal needs no cluster"
    runs = [str(s.get("run", "")) for s in job["steps"]]
    assert any("pip install '.[rehearse]'" in r for r in runs)
    assert "labrunner --labs labs rehearse" in runs


def test_the_workshop_job_keeps_forensics_of_failed_steps() -> None:
    argv, steps, _ = _verify_argv("workshop")
    assert argv[argv.index("--forensics") + 1] == "forensics"
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert "forensics/" in str(upload["with"]["path"])


def test_the_two_jobs_cover_every_lab() -> None:
    """The istioctl job runs every lab; only Helm's steps are left to the Helm job, which
    installs with Helm and runs the labs that lean on the install's names on top."""
    argv, _, _ = _verify_argv("workshop")
    assert argv[argv.index("--skip-needs") + 1] == "helm", "CI on kind runs every other step"
    assert _labs_named(argv) == [], "no lab list: the job runs the whole workshop"
    helm_argv, _, _ = _verify_argv("workshop-helm")
    assert "--skip-needs" not in helm_argv
    labs = _labs_named(helm_argv)
    order = _workshop_order()
    assert labs[0] == "install-istio-helm" and labs[-1] == "clean-up"
    assert "install-istio" not in labs
    assert labs == [lab for lab in order if lab in labs], "in workshop order"
    assert {"ingress-gateway", "authorization", "egress"} <= set(labs)


def test_workflow_tries_the_previous_minor_without_blocking() -> None:
    job = _jobs()["workshop"]
    entries = job["strategy"]["matrix"]["include"]
    pinned = [e for e in entries if not e["version"]]
    previous = [e for e in entries if e["version"]]
    assert len(pinned) == 1 and pinned[0]["experimental"] is False
    (entry,) = previous
    assert re.fullmatch(r"1\.29\.\d+", entry["version"]) and entry["experimental"] is True
    assert job["continue-on-error"] == "${{ matrix.experimental }}"
    pin = next(s for s in job["steps"] if "matrix.version" in str(s.get("if", "")))
    assert "labs/workshop.yaml" in str(pin["run"]) and "ISTIO_VERSION" in str(pin["run"])
    assert "what differs" in WORKFLOW.read_text(), "say what differs for the older release"


def test_workflow_finds_the_labs_it_runs() -> None:
    for run in (str(s.get("run", "")) for s in _all_steps()):
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


def _lab_table() -> dict[str, tuple[str, str, str]]:
    section = GUIDE.read_text().split("## The workshop", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = (cells[1], cells[2], cells[3])
    return rows


def test_readme_lists_every_lab_with_what_it_needs_and_its_topic() -> None:
    rows = _lab_table()
    meta = yaml.safe_load((LABS_DIR / "workshop.yaml").read_text())
    labs = [yaml.safe_load((LABS_DIR / name).read_text()) for name in meta["labs"]]
    assert list(rows) == [lab["id"] for lab in labs], "every lab, in workshop order"
    assert f"is {len(labs)} labs" in GUIDE.read_text()
    for lab in labs:
        requires, needs, topic = rows[lab["id"]]
        assert requires == (", ".join(lab.get("requires") or []) or "–"), lab["id"]
        wanted = set(lab.get("needs") or [])
        for step in lab["steps"]:
            wanted |= set(step.get("needs") or [])
        listed = {n.strip() for n in needs.split(",")} if wanted else set()
        assert listed == wanted, f"{lab['id']}: README says {needs!r}, the lab needs {wanted}"
        assert len(topic) > 20, lab["id"]
