"""The four outcomes a verifier can return, and what each one carries.

A check answers one question about the learner's environment. ``passed`` and
``failed`` are verdicts; ``pending`` means "not yet, ask again" and is what lets
a step wait for a cluster to converge; ``error`` means the environment itself is
broken (no cluster, a missing tool, RBAC), which no amount of waiting fixes, so
the step stops and the message says what to repair.

A pending outcome may carry a ``wait`` callable: a blocking function that
returns when something the verifier watches has changed (a Kubernetes watch
event, say) or when its timeout runs out. The engine calls it instead of
sleeping, which is how a step passes within milliseconds of convergence without
spinning the CPU. A pending outcome marked ``environment`` waits on something
outside the lab (an API server that timed out or cut the connection): the
engine keeps asking while the budget lasts, but a budget spent on it ends the
step in ``error`` (exit 3), not ``failed``: CI must blame the environment.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from labrunner.cluster.watch import Waiter

__all__ = ["Outcome", "Status", "Waiter"]


class Status(enum.Enum):
    """Verdict of one check evaluation."""

    PASSED = "passed"
    PENDING = "pending"
    FAILED = "failed"
    ERROR = "error"

    @property
    def final(self) -> bool:
        """True for outcomes that end a step's attempt (failed, error)."""
        return self in (Status.FAILED, Status.ERROR)


@dataclass(frozen=True)
class Outcome:
    """The result of evaluating one check once."""

    status: Status
    message: str
    details: str | None = None
    wait: Waiter | None = field(default=None, compare=False, repr=False)
    environment: bool = False
    """For ``pending``: the reason is the environment (an API server that times out or cuts
    the connection), so a budget that runs out on it ends in ``error``, not ``failed``."""

    @classmethod
    def passed(cls, message: str, details: str | None = None) -> Outcome:
        """The condition holds."""
        return cls(Status.PASSED, message, details)

    @classmethod
    def pending(
        cls,
        message: str,
        details: str | None = None,
        *,
        wait: Waiter | None = None,
        environment: bool = False,
    ) -> Outcome:
        """Not yet; the engine asks again until the step's budget is spent (then the step
        fails, or errs when ``environment`` says the wait was on a broken environment)."""
        return cls(Status.PENDING, message, details, wait, environment)

    @classmethod
    def failed(cls, message: str, details: str | None = None) -> Outcome:
        """Definitely wrong; waiting will not help."""
        return cls(Status.FAILED, message, details)

    @classmethod
    def error(cls, message: str, details: str | None = None) -> Outcome:
        """The environment is broken; the message says what to fix."""
        return cls(Status.ERROR, message, details)

    @property
    def ok(self) -> bool:
        """True when the check passed."""
        return self.status is Status.PASSED
