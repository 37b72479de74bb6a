"""``labrunner doctor``: find what would break a workshop before step one does.

Each finding says what was checked, what was found, whether the workshop
needs it, and what to do about it (``findings``). ``tools`` asks each program
the labs use for its version; ``cluster`` asks the kube context, the API
server, the Kubernetes and Istio versions and the ingress gateway, read-only
and bounded. The CLI prints the findings; the TUI imports ``Finding`` and
``Topic`` and builds its status line from their fields.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from labrunner.doctor import cluster
from labrunner.doctor.findings import Finding, Topic
from labrunner.doctor.tools import tool_findings, workshop_environment
from labrunner.lab.loader import load_workshop
from labrunner.lab.locate import find_labs_dir

if TYPE_CHECKING:
    from labrunner.lab.catalog import Catalog
    from labrunner.lab.model import Workshop

__all__ = ["Finding", "Topic", "collect", "examine", "runnable_labs"]


def collect(
    *,
    catalog: Catalog,
    labs_option: str | None = None,
    context: str | None = None,
    workshop: Workshop | None = None,
    env: Mapping[str, str] | None = None,
) -> list[Finding]:
    """Every finding: the workshop's lab files, tools, and the cluster.

    Tools are looked up on the PATH the labs' shells get, so a tool a lab puts
    on PATH through the workshop's env (istioctl, say) is found. ``catalog``
    validates check parameters when the labs are loaded here. ``env`` is the
    user's environment (default: this process's).
    """
    return examine(
        catalog=catalog, labs_option=labs_option, context=context, workshop=workshop, env=env
    )[0]


def examine(
    *,
    catalog: Catalog,
    labs_option: str | None = None,
    context: str | None = None,
    workshop: Workshop | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[list[Finding], Workshop | None]:
    """Like :func:`collect`, and the workshop it loaded (None when it did not load)."""
    findings: list[Finding] = []
    if workshop is not None:
        findings.append(_labs_finding(True, f"{len(workshop.labs)} labs in {workshop.labs_dir}"))
    else:
        workshop = _load(labs_option, catalog, findings)
    environ = os.environ if env is None else env
    findings[:0] = tool_findings(workshop_environment(workshop, environ))
    findings.extend(cluster.findings(context=context, workshop=workshop, env=environ))
    return findings, workshop


def runnable_labs(findings: list[Finding], workshop: Workshop) -> list[str]:
    """The ids of the labs that can run now: a missing cluster stops only the labs
    that need one; a missing required tool or broken lab files stop them all."""
    blocking = [f for f in findings if f.blocking]
    if any(f.category != "cluster" for f in blocking):
        return []
    return [lab.id for lab in workshop.labs if not (blocking and lab.needs_cluster)]


def _labs_finding(ok: bool, detail: str, fix: str = "") -> Finding:
    return Finding("labs", ok, detail, fix, required=not ok, topic=Topic.LABS)


def _load(labs_option: str | None, catalog: Catalog, findings: list[Finding]) -> Workshop | None:
    try:
        labs_dir = find_labs_dir(labs_option)
        result = load_workshop(labs_dir, catalog)
    except Exception as exc:  # the doctor reports, it does not crash
        findings.append(_labs_finding(False, f"cannot load labs: {exc}"))
        return None
    if result.workshop is None:
        first = result.errors[0] if result.errors else None
        findings.append(
            _labs_finding(
                False,
                f"{len(result.errors)} problem(s) in {labs_dir}"
                + (f"; first: {first}" if first else ""),
                "run `labrunner validate` for the full list",
            )
        )
        return None
    findings.append(_labs_finding(True, f"{len(result.workshop.labs)} labs in {labs_dir}"))
    return result.workshop
