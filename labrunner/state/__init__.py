"""Progress: per kube context, atomic, never silently lost."""

from labrunner.state.store import ProgressStore, StateError, StepRecord, context_slug, state_dir

__all__ = ["ProgressStore", "StateError", "StepRecord", "context_slug", "state_dir"]
