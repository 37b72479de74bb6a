"""The workshop's lab files: valid, honest about what they need, and pinned in one place."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.workshop.conftest import (
    LABS_DIR,
    REPO,
    RESOURCE_VERIFIERS,
    lab_data,
    own_lab_files,
)

LAB_FILES = own_lab_files()
LAB_IDS = [p.stem for p in LAB_FILES]
COMMAND_KEYS = ("setup", "cleanup")
TRAFFIC_VERIFIERS = frozenset({"http", "traffic_split", "traces"})
EXPECTED_ORDER = [
    "install-istio",
    "install-istio-helm",
    "ingress-gateway",
    "https-ingress",
    "sidecar-injection",
    "strict-mtls",
    "mesh-boundaries",
    "spiffe-identities",
    "inside-envoy",
    "distributed-tracing",
    "traffic-shifting",
    "resilience",
    "authorization",
    "end-user-jwt",
    "egress",
    "observability",
    "bookinfo",
    "clean-up",
]
EXTERNAL_HOSTS = re.compile(
    r"https?://(?:www\.)?(?:example\.com|istio\.io|httpbin\.org|github\.com)"
)


def _cmd(item: Any) -> str:
    return item if isinstance(item, str) else str(item["cmd"])


def step_commands(step: dict[str, Any]) -> list[str]:
    """Everything a step runs: its commands, its solution, and its command checks."""
    out = [_cmd(c) for key in ("run", "solution") for c in step.get(key) or []]
    for check in step.get("check") or []:
        if "command" in check:
            out.append(str(check["command"]["run"]))
        if "certificate" in check and "command" in check["certificate"]:
            out.append(str(check["certificate"]["command"]))
    return out


def verifiers(step: dict[str, Any]) -> set[str]:
    return {k for check in step.get("check") or [] for k in check if k not in ("title", "hint")}


def all_steps() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in LAB_FILES:
        data = lab_data(path)
        for step in data["steps"]:
            yield f"{data['id']}/{step['id']}", step


STEPS = list(all_steps())
STEP_IDS = [s[0] for s in STEPS]


def labrunner(*args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "labrunner", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def test_workshop_validates_strictly() -> None:
    result = labrunner("--labs", str(LABS_DIR), "validate", "--strict", *map(str, LAB_FILES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 errors, 0 warnings" in result.stderr


@pytest.fixture(scope="module")
def lab_json_schema() -> Any:
    from jsonschema import Draft202012Validator

    result = labrunner("schema")
    assert result.returncode == 0, result.stderr
    return Draft202012Validator(json.loads(result.stdout))


@pytest.mark.parametrize("path", LAB_FILES, ids=LAB_IDS)
def test_lab_matches_published_json_schema(path: Path, lab_json_schema: Any) -> None:
    errors = [e.message for e in lab_json_schema.iter_errors(lab_data(path))]
    assert errors == []


def test_workshop_order_and_requires() -> None:
    meta = yaml.safe_load((LABS_DIR / "workshop.yaml").read_text())
    assert meta["kind"] == "Workshop"
    own = {p.name for p in LAB_FILES}
    labs = [lab_data(LABS_DIR / name) for name in meta["labs"] if name in own]
    assert [lab["id"] for lab in labs] == EXPECTED_ORDER
    assert len(labs) == len(own), "every lab file is listed in workshop.yaml"
    seen: set[str] = set()
    for lab in labs:
        assert set(lab.get("requires") or []) <= seen, f"{lab['id']} requires a later lab"
        seen.add(lab["id"])


def test_istio_version_is_pinned_in_one_place() -> None:
    meta = yaml.safe_load((LABS_DIR / "workshop.yaml").read_text())
    assert meta["env"]["ISTIO_VERSION"] == "1.30.3"
    pattern = re.compile(r"\b1\.30\.\d+\b")
    for path in LAB_FILES:
        assert not pattern.search(path.read_text()), f"{path.name} hard-codes the Istio version"
    for path in (REPO / "manifests").rglob("*"):
        if path.is_file():
            assert not pattern.search(path.read_text()), f"{path} hard-codes the Istio version"


@pytest.mark.parametrize("path", LAB_FILES, ids=LAB_IDS)
def test_lab_has_setup_cleanup_and_checked_steps(path: Path) -> None:
    data = lab_data(path)
    assert data.get("setup") or data["id"] == "install-istio", "setup brings a fresh cluster here"
    assert data.get("cleanup"), "cleanup undoes the lab"
    for step in data["steps"]:
        where = f"{data['id']}/{step['id']}"
        assert step.get("check"), f"{where} has no checks"
        assert len(step.get("body", "")) > 150, f"{where} explains too little"
        hints = step.get("hints") or []
        assert len(hints) >= 3, f"{where}: hints go nudge → pointer → near-solution"
        assert "Run" in hints[-1] or "`" in hints[-1], f"{where}: the last hint should be concrete"


@pytest.mark.parametrize(("where", "step"), STEPS, ids=STEP_IDS)
def test_needs_are_honest(where: str, step: dict[str, Any]) -> None:
    needs = set(step.get("needs") or [])
    used = verifiers(step)
    commands = step_commands(step)
    if used & TRAFFIC_VERIFIERS:
        assert "traffic" in needs, f"{where} checks real traffic but does not need traffic"
    if used & RESOURCE_VERIFIERS:
        assert "traffic" not in needs, f"{where}: resource-level checks must not need traffic"
    uses_istioctl = any(re.search(r"(?<![\w-])istioctl(?![\w-])", c) for c in commands)
    provides_istioctl = any("downloadIstio" in c for c in commands)
    if (uses_istioctl and not provides_istioctl) or "workload_certificate" in used:
        assert "istioctl" in needs, f"{where} uses istioctl but does not need it"
    if any(EXTERNAL_HOSTS.search(c) for c in commands) or any(
        EXTERNAL_HOSTS.search(json.dumps(check)) for check in step.get("check") or []
    ):
        assert "internet" in needs, f"{where} reaches the internet but does not need internet"
    if "traffic" in needs:
        assert used & TRAFFIC_VERIFIERS or "istioctl" in needs, f"{where} needs traffic for nothing"


def test_lab_commands_reach_the_gateway_without_a_load_balancer() -> None:
    """Only the step that teaches INGRESS_HOST reads a load balancer's address, and it falls
    back to a node port when there is none (kind, minikube)."""
    readers = []
    for where, step in STEPS:
        for command in step_commands(step):
            assert "EXTERNAL-IP" not in command, where
            if "loadBalancer.ingress" in command:
                readers.append(where)
                assert "nodePort" in command and "if [ -z" in command, f"{where}: no fallback"
    assert readers == ["ingress-gateway/node-port"]


def test_kind_maps_the_node_ports_the_lab_pins() -> None:
    config = yaml.safe_load((REPO / "manifests" / "kind" / "cluster.yaml").read_text())
    mapped = {
        (m["containerPort"], m["hostPort"])
        for node in config["nodes"]
        for m in node.get("extraPortMappings") or []
    }
    step = dict(STEPS)["ingress-gateway/node-port"]
    pinned = re.findall(r'"nodePort":(\d+)', step["run"][0])
    assert pinned and {(int(p), int(p)) for p in pinned} == mapped


def test_paths_in_commands_exist() -> None:
    for path in LAB_FILES:
        data = lab_data(path)
        commands = [_cmd(c) for key in COMMAND_KEYS for c in data.get(key) or []] + [
            c for step in data["steps"] for c in step_commands(step)
        ]
        for command in commands:
            for ref in re.findall(r"(?<![\w$/.-])(manifests/[\w./-]+)", command):
                assert (REPO / ref).exists(), f"{data['id']}: {ref} does not exist"


def test_no_machine_specific_paths() -> None:
    pattern = re.compile(r"(?<![\w.])/(?:home|Users|root|work|tmp)/|[A-Z]:\\\\")
    files = [*LAB_FILES, *(REPO / "manifests").rglob("*"), REPO / "README.md"]
    files.append(REPO / ".github" / "workflows" / "workshop.yml")
    for path in files:
        if path.is_file():
            text = path.read_text()
            found = [m.group(0) for m in pattern.finditer(text)]
            assert not found, f"{path.relative_to(REPO)} has machine-specific paths: {found}"


def test_checks_never_reference_workshop_env_unbraced_by_labrunner() -> None:
    """Workshop-level variables reach commands through bash; in check parameters the loader
    only knows the lab's own env, so ``${ISTIO_VERSION}`` there would be a --strict warning."""
    workshop_env = set(yaml.safe_load((LABS_DIR / "workshop.yaml").read_text())["env"])
    for path in LAB_FILES:
        data = lab_data(path)
        own = set(data.get("env") or {})
        for step in data["steps"]:
            text = json.dumps(step.get("check") or [])
            for var in re.findall(r"\$\{([A-Za-z_]\w*)", text):
                assert var not in workshop_env - own, f"{data['id']}/{step['id']}: ${{{var}}}"
