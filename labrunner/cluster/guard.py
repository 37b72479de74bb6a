"""The context guard: labs change clusters, so only act on ones that look disposable.

A learner with a production cluster in their kubeconfig must not have a lab's
``kubectl delete`` land there because it happened to be the current context.
labrunner acts only on contexts whose names look like throwaway workshop
clusters (kind, k3d, minikube, Docker Desktop, ...), or that the workshop
declares, unless the user names the context explicitly with ``--context``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

DISPOSABLE = (
    "kind-*",
    "k3d-*",
    "minikube",
    "minikube-*",
    "microk8s",
    "docker-desktop",
    "rancher-desktop",
    "orbstack",
    "colima",
    "colima-*",
)


@dataclass(frozen=True)
class GuardDecision:
    """Whether labrunner may act on a context, and what to tell the user."""

    context: str | None
    allowed: bool
    reason: str


def looks_disposable(context: str, extra: Iterable[str] = ()) -> bool:
    """True when ``context`` matches a known throwaway-cluster pattern or a workshop one."""
    return any(fnmatch.fnmatchcase(context, p) for p in (*DISPOSABLE, *extra))


def decide(
    context: str | None,
    *,
    explicit: bool,
    extra: Iterable[str] = (),
    server: str | None = None,
) -> GuardDecision:
    """Decide whether the labs may act on ``context`` (``server`` only makes messages clearer)."""
    patterns = tuple(p for p in extra if p)
    if context is None:
        return GuardDecision(
            None,
            False,
            "no kube context is configured; create a workshop cluster first "
            "(for example `kind create cluster --name istio-workshop`) or point KUBECONFIG at one",
        )
    if explicit:
        return GuardDecision(context, True, f"using context {context!r} (chosen with --context)")
    if looks_disposable(context, patterns):
        return GuardDecision(context, True, f"using context {context!r}")
    allowed = ", ".join((*DISPOSABLE, *patterns))
    at = f" at {server}" if server else ""
    return GuardDecision(
        context,
        False,
        f"refusing to act on kube context {context!r}{at}: it does not look like a disposable "
        f"workshop cluster ({allowed}). If you are sure, pass --context {context}",
    )
