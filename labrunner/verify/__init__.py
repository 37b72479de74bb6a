"""Verifiers: the registry, the outcome model, the road to the cluster and the built-in checks.

- ``registry``: verifiers by name, loaded from the ``labrunner.verifiers`` entry points;
- ``outcome``, ``context``: what a verifier returns, and what it may see and use;
- ``kube``: the one road from a verifier to the cluster, and the tools it may run;
- ``params``: builders for parameter schemas;
- the families: ``generic``, ``kubernetes``, ``istio``, ``tls``, ``http``, with
  ``requests``/``transport`` (HTTP) and ``certificates`` (X.509) shared among them.

Importing this package loads no verifier module, and nothing else either: the
names below are imported on first use, so a command that only needs the
registry (``labrunner list``) does not pay for the outcome model and the
cluster errors behind it.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # as typing's, without importing typing (a start-up cost)
if TYPE_CHECKING:
    from typing import Any

    from labrunner.verify.context import CheckContext, RunResources
    from labrunner.verify.outcome import Outcome, Status
    from labrunner.verify.registry import (
        ParamProblem,
        Registry,
        VerifierSpec,
        builtin_registry,
        verifier,
    )

_HOMES = {
    "CheckContext": "labrunner.verify.context",
    "RunResources": "labrunner.verify.context",
    "Outcome": "labrunner.verify.outcome",
    "Status": "labrunner.verify.outcome",
    "ParamProblem": "labrunner.verify.registry",
    "Registry": "labrunner.verify.registry",
    "VerifierSpec": "labrunner.verify.registry",
    "builtin_registry": "labrunner.verify.registry",
    "verifier": "labrunner.verify.registry",
}

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


def __getattr__(name: str) -> Any:
    # lazy for start-up speed: each name is imported from its module on first use
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
