"""Running kubectl and istioctl for the TLS and HTTP verifiers, and reading their failures.

Verifiers shell out to the same tools a learner types, so a check sees what
the learner would see. What matters is turning a failed run into the right
outcome: a missing tool or an unreachable cluster is an ``error`` (waiting
will not fix it), "not found" is ``failed``, a slow answer is ``pending``.
``Abort`` lets deep helpers stop a check with such an outcome without every
caller threading it back by hand.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from labrunner import procs
from labrunner.verify.context import CheckContext
from labrunner.verify.outcome import Outcome

INSTALL_HINTS = {
    "kubectl": "install kubectl or add it to PATH",
    "istioctl": "install it in lab 1 or add it to PATH",
    "curl": "install curl or add it to PATH",
    "openssl": "install openssl or add it to PATH",
}

_UNREACHABLE = (
    "unable to connect to the server",
    "connection refused",
    "no such host",
    "i/o timeout",
    "tls handshake timeout",
    "couldn't get current server api group list",
    "was refused",
    "context deadline exceeded",
    "no configuration has been provided",
    "current-context is not set",
)
_UNAUTHORIZED = ("you must be logged in", "unauthorized", "x509: certificate")
_FORBIDDEN = ("forbidden",)
_NOT_FOUND = ("notfound", "not found")


class Abort(Exception):
    """Stop evaluating a check and return ``outcome``."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


def last_line(text: str, *, limit: int = 200) -> str:
    """The last non-empty line of ``text``, shortened to ``limit`` characters."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[-1] if lines else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def missing_tool(program: str) -> Outcome:
    """The error outcome for a tool that is not installed."""
    hint = INSTALL_HINTS.get(program, "install it or add it to PATH")
    return Outcome.error(f"{program} not found on PATH; {hint}")


def run_tool(
    ctx: CheckContext,
    argv: Sequence[str],
    *,
    timeout: float | None = None,
    stdin: bytes | None = None,
) -> procs.ProcResult:
    """Run ``argv`` in the lab's environment; a missing program aborts with ``error``."""
    try:
        result = ctx.run(argv, timeout=timeout, stdin=stdin)
    except procs.ToolNotFound as exc:
        raise Abort(missing_tool(exc.program)) from None
    if result.cancelled:
        raise Abort(Outcome.error("the check was cancelled"))
    return result


def kubectl_argv(ctx: CheckContext, *args: str) -> list[str]:
    """A kubectl command line for the lab's kube context."""
    argv = ["kubectl"]
    if ctx.kube_context:
        argv += ["--context", ctx.kube_context]
    return [*argv, *args]


def istioctl_argv(ctx: CheckContext, *args: str) -> list[str]:
    """An istioctl command line for the lab's kube context."""
    argv = ["istioctl"]
    if ctx.kube_context:
        argv += ["--context", ctx.kube_context]
    return [*argv, *args]


def kube_problem(result: procs.ProcResult, *, what: str) -> Outcome | None:
    """The outcome for a failed kubectl/istioctl run, if its stderr is recognisable.

    ``what`` names the object the command was about ("secret istio-system/x").
    """
    tool = result.argv[0] if result.argv else "the command"
    if result.timed_out:
        return Outcome.pending(
            f"{tool} did not answer in {result.duration:.0f}s while reading {what}"
        )
    text = result.stderr.lower()
    detail = last_line(result.stderr)
    if any(p in text for p in _UNREACHABLE):
        return Outcome.error(f"cannot reach the Kubernetes API: {detail}", result.stderr or None)
    if any(p in text for p in _UNAUTHORIZED):
        return Outcome.error(f"the cluster rejected the credentials: {detail}", result.stderr)
    if any(p in text for p in _FORBIDDEN):
        return Outcome.error(f"not allowed to read {what}: {detail}", result.stderr)
    if any(p in text for p in _NOT_FOUND):
        return Outcome.failed(f"{what} not found", result.stderr)
    return None


def kubectl_json(
    ctx: CheckContext, args: Sequence[str], *, what: str, timeout: float = 15.0
) -> Any:
    """Run ``kubectl <args> -o json`` and parse it; failures abort with an outcome."""
    result = run_tool(ctx, kubectl_argv(ctx, *args, "-o", "json"), timeout=timeout)
    if not result.ok:
        outcome = kube_problem(result, what=what)
        if outcome is None:
            outcome = Outcome.error(
                f"kubectl failed reading {what}: {last_line(result.stderr) or 'no message'}",
                result.stderr or None,
            )
        raise Abort(outcome)
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        raise Abort(
            Outcome.error(f"kubectl printed something that is not JSON while reading {what}")
        ) from None
