"""``labrunner doctor``: find what would break a workshop before step one does.

Each finding says what was checked, what was found, whether the workshop
needs it, and what to do about it. Findings are plain data so the CLI can
print them and the TUI can show them in its status line. Cluster findings are
added by ``labrunner.cluster.doctor`` when that module is present.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import shutil
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from labrunner import procs

if TYPE_CHECKING:
    from labrunner.lab.model import Workshop


@dataclass(frozen=True)
class Finding:
    """One thing the doctor checked."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = False
    category: str = "tools"

    @property
    def blocking(self) -> bool:
        """True when the workshop cannot run because of this finding."""
        return self.required and not self.ok


@dataclass(frozen=True)
class Tool:
    """A program the labs use, and how to ask it its version."""

    name: str
    argv: tuple[str, ...]
    parse: Callable[[str], str]
    fix: str
    required: bool = False


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "unknown version"


def _kubectl_version(text: str) -> str:
    try:
        return str(json.loads(text)["clientVersion"]["gitVersion"])
    except (ValueError, KeyError, TypeError):
        return _first_line(text)


def _istioctl_version(text: str) -> str:
    for line in text.splitlines():
        if "version" in line.lower() or line.strip()[:1].isdigit():
            return line.strip().split(":")[-1].strip()
    return _first_line(text)


TOOLS = (
    Tool(
        "bash",
        ("bash", "--version"),
        lambda t: _first_line(t).replace("GNU bash, version ", ""),
        "install bash",
        required=True,
    ),
    Tool(
        "kubectl",
        ("kubectl", "version", "--client", "-o", "json"),
        _kubectl_version,
        "install kubectl: https://kubernetes.io/docs/tasks/tools/",
    ),
    Tool(
        "istioctl",
        ("istioctl", "version", "--remote=false"),
        _istioctl_version,
        "lab install-istio downloads it; or see https://istio.io/latest/docs/setup/getting-started/",
    ),
    Tool("curl", ("curl", "--version"), lambda t: _first_line(t).split(" (")[0], "install curl"),
    Tool(
        "openssl",
        ("openssl", "version"),
        lambda t: _first_line(t).split(" (")[0],
        "install openssl",
    ),
    Tool("jq", ("jq", "--version"), _first_line, "install jq (optional)"),
)


def check_tool(tool: Tool, env: Mapping[str, str]) -> Finding:
    """Is ``tool`` installed, and which version."""
    path = shutil.which(tool.name, path=env.get("PATH", os.defpath))
    if path is None:
        return Finding(tool.name, False, "not found on PATH", tool.fix, tool.required)
    try:
        result = procs.run(tool.argv, timeout=10.0, env=env)
    except procs.ToolNotFound:
        return Finding(tool.name, False, "not found on PATH", tool.fix, tool.required)
    if result.timed_out:
        return Finding(
            tool.name, False, f"{path} did not answer within 10s", tool.fix, tool.required
        )
    text = result.stdout or result.stderr
    return Finding(tool.name, True, f"{tool.parse(text)} ({path})", "", tool.required)


def tool_findings(
    env: Mapping[str, str] | None = None, tools: Sequence[Tool] = TOOLS
) -> list[Finding]:
    """Findings for every tool, checked in parallel."""
    environ = dict(env if env is not None else os.environ)
    python = Finding(
        "python", True, f"{platform.python_version()} ({shutil.which('python3') or 'python'})"
    )
    with ThreadPoolExecutor(max_workers=len(tools)) as pool:
        found = list(pool.map(lambda t: check_tool(t, environ), tools))
    return [python, *found]


def workshop_environment(workshop: Workshop | None, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` with the workshop's env applied, as lab shells see it (its PATH included)."""
    env = dict(base)
    if workshop is None:
        return env
    from labrunner.lab.expand import UnsetVariable, expand_str

    for key, value in workshop.env.items():
        try:
            env[key] = expand_str(value, env)
        except UnsetVariable:
            env[key] = value
    return env


def collect(
    *,
    labs_option: str | None = None,
    context: str | None = None,
    workshop: Workshop | None = None,
) -> list[Finding]:
    """Every finding: the workshop's lab files, tools, and (when available) the cluster.

    Tools are looked up on the PATH the labs' shells get, so a tool a lab puts
    on PATH through the workshop's env (istioctl, say) is found.
    """
    findings: list[Finding] = []
    if workshop is not None:
        findings.append(
            Finding(
                "labs", True, f"{len(workshop.labs)} labs in {workshop.labs_dir}", category="labs"
            )
        )
    else:
        workshop = _load_for_doctor(labs_option, findings)
    findings[:0] = tool_findings(workshop_environment(workshop, os.environ))
    try:
        cluster_doctor = importlib.import_module("labrunner.cluster.doctor")
    except ImportError:
        return findings
    findings.extend(cluster_doctor.findings(context=context, workshop=workshop))
    return findings


def _load_for_doctor(labs_option: str | None, findings: list[Finding]) -> Workshop | None:
    workshop = None
    try:
        from labrunner.lab.loader import load_workshop
        from labrunner.workshop import find_labs_dir

        labs_dir = find_labs_dir(labs_option)
        result = load_workshop(labs_dir)
        if result.workshop is None:
            first = result.errors[0] if result.errors else None
            findings.append(
                Finding(
                    "labs",
                    False,
                    f"{len(result.errors)} problem(s) in {labs_dir}"
                    + (f"; first: {first}" if first else ""),
                    "run `labrunner validate` for the full list",
                    required=True,
                    category="labs",
                )
            )
        else:
            workshop = result.workshop
            findings.append(
                Finding("labs", True, f"{len(workshop.labs)} labs in {labs_dir}", category="labs")
            )
    except Exception as exc:  # the doctor reports, it does not crash
        findings.append(
            Finding("labs", False, f"cannot load labs: {exc}", required=True, category="labs")
        )
    return workshop
