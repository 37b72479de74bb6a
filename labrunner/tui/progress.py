"""How progress and the doctor's findings look on screen.

The rules (locked, next, stale) and the glyph and word of each step state
are ``labrunner.state.rules``; this module turns them into what widgets
show: a CSS class per step state (styled in the one stylesheet), the
one-line environment status built from the doctor's typed findings, and a
command shortened for its block.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from labrunner.doctor import Finding, Topic
from labrunner.state.rules import StepState


def css_class(state: StepState) -> str:
    """The CSS class a step in ``state`` gets (``-passed``, ``-stale``, ``-locked``, ...)."""
    return f"-{state.value}"


STATE_CLASSES = tuple(css_class(state) for state in StepState)
ICONS = {state: state.look.glyph for state in StepState}
SERVICE_CLASSES = ("-running", "-starting", "-stopped", "-failed")
SERVICE_ICONS = {"running": "●", "starting": "◌", "stopped": "○", "failed": "✘"}


# --------------------------------------------------------------------------- doctor


@dataclass(frozen=True)
class EnvironmentStatus:
    """The one-line answer to "can I run labs here?", built from doctor findings."""

    context: str | None
    reachable: bool | None = None
    server: str | None = None
    context_problem: str | None = None
    istio: str | None = None
    problems: tuple[str, ...] = ()
    checked: bool = False
    classroom: str = ""
    """How publishing to the learner's class goes ("" when they joined none)."""

    def describe(self) -> str:
        """The status line text."""
        parts = [f"context: {self.context or 'none'}"]
        if not self.checked:
            parts.append("checking the environment…")
            if self.classroom:
                parts.append(self.classroom)
            return "  ·  ".join(parts)
        if self.reachable is True:
            parts.append(
                f"cluster: reachable ({self.server})" if self.server else "cluster: reachable"
            )
        elif self.reachable is False:
            parts.append("cluster: unreachable")
        elif self.context_problem is not None:
            parts.append("cluster: no usable kube context")
        else:
            parts.append("cluster: not checked")
        if self.istio is not None:
            parts.append(f"istio: {self.istio}")
        if self.problems:
            count = len(self.problems)
            parts.append(f"{count} problem{'s' if count != 1 else ''} (d: details)")
        if self.classroom:
            parts.append(self.classroom)
        return "  ·  ".join(parts)


def summarize(findings: Iterable[Finding], context: str | None) -> EnvironmentStatus:
    """Reduce doctor findings to the status line, by their topic, never their wording."""
    reachable: bool | None = None
    server: str | None = None
    context_problem: str | None = None
    istio: str | None = None
    problems: list[str] = []
    for finding in findings:
        if finding.topic is Topic.CONTEXT and not finding.ok and context_problem is None:
            context_problem = finding.detail
        elif finding.topic is Topic.CLUSTER and reachable is None:
            reachable = finding.ok
        elif finding.topic is Topic.KUBERNETES and finding.ok and server is None:
            server = finding.version
        elif finding.topic is Topic.ISTIO and istio is None:
            if finding.ok:
                istio = finding.version or "installed"
            elif not finding.found:
                istio = "not installed"
            else:
                istio = f"{finding.version or 'unknown'} (d: details)"
        if finding.required and not finding.ok:
            problems.append(f"{finding.name}: {finding.detail}")
    return EnvironmentStatus(
        context=context,
        reachable=reachable,
        server=server,
        context_problem=context_problem,
        istio=istio,
        problems=tuple(problems),
        checked=True,
    )


def short_command(cmd: str, *, lines: int = 3) -> str:
    """A command as shown in its block: the first few lines, then an ellipsis."""
    text = cmd.strip("\n")
    parts = text.splitlines() or [""]
    shown = parts[:lines]
    if len(parts) > lines:
        shown.append(f"… ({len(parts) - lines} more lines)")
    return "\n".join(shown)
