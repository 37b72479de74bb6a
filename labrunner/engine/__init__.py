"""The engine: runs lab steps in a shell, checks them, and emits events."""

from labrunner.engine.runner import (
    Engine,
    LabSession,
    RunOptions,
    RunSummary,
    StepResult,
    UsageError,
    select_steps,
)

__all__ = [
    "Engine",
    "LabSession",
    "RunOptions",
    "RunSummary",
    "StepResult",
    "UsageError",
    "select_steps",
]
