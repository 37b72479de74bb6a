"""The tools the labs use: is each on the labs' PATH, and which version is it.

Every tool answers ``--version`` (or its own spelling of it) in parallel, each
bounded by a timeout, so a hung binary costs seconds, not the doctor. The
PATH searched is the one lab shells get (the workshop's ``env`` applied), so a
tool a lab installs into the workshop's own folder is found.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from labrunner import procs
from labrunner.doctor.findings import Finding
from labrunner.lab.expand import with_env

if TYPE_CHECKING:
    from labrunner.lab.model import Workshop


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

    def missing(detail: str, found: bool) -> Finding:
        return Finding(tool.name, False, detail, tool.fix, tool.required, found=found)

    path = shutil.which(tool.name, path=env.get("PATH", os.defpath))
    if path is None:
        return missing("not found on PATH", False)
    try:
        result = procs.run(tool.argv, timeout=10.0, env=env)
    except procs.ToolNotFound:
        return missing("not found on PATH", False)
    if result.timed_out:
        return missing(f"{path} did not answer within 10s", True)
    version = tool.parse(result.stdout or result.stderr)
    return Finding(tool.name, True, f"{version} ({path})", "", tool.required, version=version)


def tool_findings(
    env: Mapping[str, str] | None = None, tools: Sequence[Tool] = TOOLS
) -> list[Finding]:
    """Findings for every tool, checked in parallel."""
    environ = dict(env if env is not None else os.environ)
    version = platform.python_version()
    where = shutil.which("python3") or "python"
    python = Finding("python", True, f"{version} ({where})", version=version)
    with ThreadPoolExecutor(max_workers=len(tools)) as pool:
        found = list(pool.map(lambda t: check_tool(t, environ), tools))
    return [python, *found]


def workshop_environment(workshop: Workshop | None, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` with the workshop's env applied, as lab shells see it (its PATH included)."""
    return with_env(base, workshop.env) if workshop is not None else dict(base)
