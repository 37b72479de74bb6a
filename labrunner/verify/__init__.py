"""Verifiers: the registry, the outcome model and the built-in checks."""

from labrunner.verify.context import CheckContext, RunResources
from labrunner.verify.outcome import Outcome, Status
from labrunner.verify.registry import (
    ParamProblem,
    Registry,
    VerifierSpec,
    builtin_registry,
    default_registry,
    verifier,
)

__all__ = [
    "CheckContext",
    "Outcome",
    "ParamProblem",
    "Registry",
    "RunResources",
    "Status",
    "VerifierSpec",
    "builtin_registry",
    "default_registry",
    "verifier",
]
