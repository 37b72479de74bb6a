"""The one road from a verifier to the cluster, and the tools it may run besides.

Every verifier that reads Kubernetes objects does it here, through the run's
shared client (``labrunner.cluster``): ``connect(ctx)`` gives a ``Reader``
bounded by the check's deadline and cancel flag, so Secrets, Pods and every
other object are read the same way, and a pending outcome can carry a
watch-based ``wait``. ``read_secret`` is the one way to read a Secret: the
``secret`` verifier and the ``certificate`` verifier's ``secret:`` source
both use it, so a missing Secret is *pending, waited on with a watch*
wherever a lab meets it, in the same words.

The cluster layer returns data or raises ``ClusterError`` kinds; this module
alone turns them into outcomes (``outcome_for``): transient problems
(throttling, a timeout, a type whose CRD is not established yet, no ready pod
yet) are pending, a missing object is failed, anything else is an error that
says what to fix. ``cluster_check`` applies that to a whole verifier, and
``CheckAbort`` lets deep helpers end a check early with an outcome.

Subprocesses remain only for what has no API: ``istioctl`` and
``kubectl exec``. ``run_tool`` runs them with the lab's environment, bounded
by the deadline (whole process group killed on timeout or cancel), and
``tool_problem`` reads their failures.
"""

from __future__ import annotations

import binascii
import functools
from collections.abc import Callable, Mapping, Sequence

from labrunner import procs
from labrunner.cluster.client import Kube, kubeconfig_stamp, resolve_context
from labrunner.cluster.errors import ClusterError, ErrorKind, NotFound
from labrunner.cluster.objects import Reader
from labrunner.cluster.resources import SECRETS
from labrunner.verify.context import CheckContext
from labrunner.verify.outcome import Outcome, Waiter

TYPE_CHECKING = False  # as typing's, without importing typing (a start-up cost)
if TYPE_CHECKING:
    from typing import Any

    from labrunner.cluster.portforward import ServiceForward

    VerifierFunc = Callable[[CheckContext, dict[str, Any]], Outcome]

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


ENVIRONMENT_KINDS = frozenset({ErrorKind.TIMEOUT, ErrorKind.RESET, ErrorKind.SERVER})
"""Transient cluster problems that are the environment's: worth another try while the
budget lasts, an ``error`` when it runs out on them."""


class CheckAbort(Exception):
    """End the check now with ``outcome`` (raised by helpers, caught by the verifier)."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


# --------------------------------------------------------------------------- the cluster


def connection(ctx: CheckContext) -> Kube:
    """The run's shared connection for ``ctx``'s kubeconfig and context (raises ClusterError).

    Keyed by the kubeconfig files and their modification times: a step that
    recreates the cluster (``kind create cluster`` rewrites the kubeconfig)
    gets a new connection, every other check reuses the first one without
    parsing the kubeconfig again.
    """
    env = ctx.env
    stamp = kubeconfig_stamp(env, ctx.cwd)
    explicit = ctx.kube_context
    context = ctx.resources.get(
        f"kube-context:{stamp}:{explicit or ''}",
        lambda: resolve_context(env, explicit, cwd=ctx.cwd),
    )

    def build() -> Kube:
        kube = Kube.connect(env, context, cwd=ctx.cwd)
        ctx.resources.on_close(kube.close)
        return kube

    return ctx.resources.get(f"kube:{stamp}:{context}", build)


def connect(ctx: CheckContext) -> Reader:
    """The cluster as this check sees it: reads bounded by its deadline and cancel flag."""
    return Reader(connection(ctx), deadline=ctx.deadline, cancel=ctx.cancel)


def outcome_for(exc: ClusterError, ctx: CheckContext) -> Outcome:
    """The outcome for a cluster problem: pending when waiting may help, failed for a
    missing object, else error.

    A server that said when to ask again (Retry-After) is honoured by the
    pending outcome's ``wait`` instead of the engine's backoff.
    """
    if isinstance(exc, NotFound):
        return Outcome.failed(exc.message, exc.details)
    if not exc.transient:
        return Outcome.error(exc.message, exc.details)
    broken = exc.kind in ENVIRONMENT_KINDS
    wait: Waiter | None = None
    delay = exc.retry_after
    if delay:

        def wait_retry_after(timeout: float) -> bool:
            ctx.cancel.wait(min(delay, timeout))
            return False

        wait = wait_retry_after
    return Outcome.pending(exc.message, exc.details, wait=wait, environment=broken)


def cluster_check(func: VerifierFunc) -> VerifierFunc:
    """Decorator: a cluster problem or a ``CheckAbort`` inside a verifier becomes its outcome."""

    @functools.wraps(func)
    def wrapper(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
        try:
            return func(ctx, params)
        except CheckAbort as stop:
            return stop.outcome
        except ClusterError as exc:
            return outcome_for(exc, ctx)

    return wrapper


def abort_for(exc: ClusterError, ctx: CheckContext) -> CheckAbort:
    """``CheckAbort`` carrying the outcome for ``exc``."""
    return CheckAbort(outcome_for(exc, ctx))


def read_secret(ctx: CheckContext, *, namespace: str, name: str) -> tuple[dict[str, Any], Waiter]:
    """The Secret ``namespace/name`` and a ``wait`` on it.

    A Secret that does not exist (yet) ends the check as pending, waited on
    with a watch: the learner may be about to create it.
    """
    reader = connect(ctx)
    try:
        listed = reader.named(SECRETS, name, namespace=namespace)
    except ClusterError as exc:
        raise abort_for(exc, ctx) from None
    wait = reader.waiter(listed)
    if not listed.items:
        raise CheckAbort(Outcome.pending(f"secret {name} not found in {namespace}", wait=wait))
    return listed.items[0], wait


def secret_keys(secret: Mapping[str, Any]) -> dict[str, Any]:
    """A Secret's data keys (``stringData`` too, as the API server would merge it)."""
    return {**(secret.get("stringData") or {}), **(secret.get("data") or {})}


def missing_key(*, namespace: str, name: str, key: str, keys: Mapping[str, Any]) -> Outcome:
    """Failed: the Secret has no ``key`` (its keys are named, their values never)."""
    shown = ", ".join(sorted(keys)) or "none"
    return Outcome.failed(f"secret {name} in {namespace} has no key {key} (keys: {shown})")


def secret_value(ctx: CheckContext, *, namespace: str, name: str, key: str) -> bytes:
    """One decoded value of a Secret; a missing Secret is pending, a missing key failed."""
    secret, _ = read_secret(ctx, namespace=namespace, name=name)
    data = secret.get("data") or {}
    if key not in data:
        raise CheckAbort(
            missing_key(namespace=namespace, name=name, key=key, keys=secret_keys(secret))
        )
    import base64  # only checks of a secret's value decode one (start-up speed)

    try:
        return base64.b64decode(data[key], validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise CheckAbort(
            Outcome.failed(f"secret {name} in {namespace}: key {key} is not valid base64")
        ) from None


def service_endpoint(
    ctx: CheckContext, *, namespace: str, service: str, port: int | str
) -> tuple[str, int]:
    """127.0.0.1 and a local port that reach ``service:port``; cached for the run.

    Raises ClusterError when the Service, its port or a ready pod is missing.
    """
    key = f"port-forward:{ctx.env.get('KUBECONFIG', '')}:{ctx.kube_context or ''}"
    key += f":{namespace}/{service}:{port}"
    # Connected before resources.get: its factory runs under the cache's lock,
    # and connection() uses the same cache.
    kube = connection(ctx)

    def start() -> ServiceForward:
        # lazy: only checks that reach a Service load the port-forward's module
        from labrunner.cluster.portforward import ServiceForward

        return ServiceForward(kube, namespace=namespace, service=service, port=port)

    forward = ctx.resources.get(key, start)
    # Registered outside the factory, which runs under the cache's lock.
    if forward.claim_closer():
        ctx.resources.on_close(forward.close)
    return forward.address


# --------------------------------------------------------------------------- tools


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
        raise CheckAbort(missing_tool(exc.program)) from None
    if result.cancelled:
        raise CheckAbort(Outcome.error("the check was cancelled"))
    return result


def tool_argv(ctx: CheckContext, tool: str, *args: str) -> list[str]:
    """A kubectl or istioctl command line for the lab's kube context."""
    argv = [tool]
    if ctx.kube_context:
        argv += ["--context", ctx.kube_context]
    return [*argv, *args]


def tool_problem(result: procs.ProcResult, *, what: str) -> Outcome | None:
    """The outcome for a failed kubectl exec or istioctl run, if its stderr is recognisable.

    ``what`` names the object the command was about ("istio-system/deploy/x").
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
