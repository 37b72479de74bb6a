"""Verifiers: the registry, the outcome model, the road to the cluster and the built-in checks.

- ``registry``: verifiers by name, loaded from the ``labrunner.verifiers`` entry points;
- ``outcome``, ``context``: what a verifier returns, and what it may see and use;
- ``kube``: the one road from a verifier to the cluster, and the tools it may run;
- ``params``: builders for parameter schemas;
- the families: ``generic``, ``kubernetes``, ``istio``, ``tls``, ``http``, with
  ``requests``/``transport`` (HTTP) and ``certificates`` (X.509) shared among them.

Importing this package loads no verifier module.
"""

from labrunner.verify.context import CheckContext, RunResources
from labrunner.verify.outcome import Outcome, Status
from labrunner.verify.registry import (
    ParamProblem,
    Registry,
    VerifierSpec,
    builtin_registry,
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
    "verifier",
]
