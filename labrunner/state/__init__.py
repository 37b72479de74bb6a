"""Progress: per workshop and cluster, journaled, validated, never silently lost."""

from labrunner.state.journal import NewerFormat, StateError
from labrunner.state.store import (
    ProgressStore,
    StepRecord,
    context_slug,
    state_dir,
    workshop_key,
)

__all__ = [
    "NewerFormat",
    "ProgressStore",
    "StateError",
    "StepRecord",
    "context_slug",
    "state_dir",
    "workshop_key",
]
