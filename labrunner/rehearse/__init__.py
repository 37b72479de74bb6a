"""``labrunner rehearse``: run a workshop's labs against a simulated cluster.

An author's proof, before any cluster exists, that every lab holds together:
setup reaches the lab's starting point, each step's cluster checks fail before
its solution and pass after, and cleanup undoes the lab. ``harness`` is the
protocol (the project's workshop tests use it too), ``cluster`` the simulated
cluster and what it starts with, ``table`` the report.

This package is the one product face allowed to import ``labrunner.testing``
(the fake API server), and only lazily, inside the functions that start a
cluster: see the import-linter contracts in ``pyproject.toml``.
"""

from labrunner.rehearse.cluster import (
    CONTEXT,
    ClusterPlan,
    RehearsalSetupError,
    SimulatedCluster,
    resolve_plan,
)
from labrunner.rehearse.harness import (
    NOT_REHEARSABLE,
    Hooks,
    LabRehearsal,
    Rehearsal,
    RehearsalReport,
    Row,
    Stage,
    Verdict,
    copy_workshop,
)

__all__ = [
    "CONTEXT",
    "NOT_REHEARSABLE",
    "ClusterPlan",
    "Hooks",
    "LabRehearsal",
    "Rehearsal",
    "RehearsalReport",
    "RehearsalSetupError",
    "Row",
    "SimulatedCluster",
    "Stage",
    "Verdict",
    "copy_workshop",
    "resolve_plan",
]
