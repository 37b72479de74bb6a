"""What a run needs before its first command: the environment, the context, a private folder.

Both front ends start a run the same way, so they share ``prepare_run``: it
takes the user's environment and the ``--context`` they gave (if any),
decides the kube context the run acts on (the one named, else the current
one), and makes a private per-run directory (mode 0700) for files no one
else should read. With ``--context``, the run's ``KUBECONFIG`` is pinned to
that context with a small overlay kubeconfig in that directory, so every
shell, setup, cleanup and check of the run uses it whatever the ambient
current-context says. The directory is removed when the run is closed, and
at interpreter exit at the latest, so nothing is left behind.

The directory is a fresh ``mkdtemp`` rather than a folder in the state
directory: the state directory may be read-only, and a temporary directory
is private from its first moment.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Mapping
from pathlib import Path

from labrunner.cluster.kubeconfig import current_context, pin_context


class PreparedRun:
    """A run's environment, its kube context and its private directory (close to remove)."""

    def __init__(
        self, *, env: dict[str, str], context: str | None, explicit: bool, directory: Path
    ):
        self.env = env
        self.context = context
        self.explicit = explicit
        self.directory = directory
        self._remove = weakref.finalize(self, shutil.rmtree, str(directory), ignore_errors=True)

    def close(self) -> None:
        """Remove the run's directory (safe to call twice)."""
        self._remove()

    @property
    def closed(self) -> bool:
        """True once the directory is gone."""
        return not self._remove.alive

    def __enter__(self) -> PreparedRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def prepare_run(
    context_option: str | None, *, base_env: Mapping[str, str] | None = None
) -> PreparedRun:
    """The environment and context for a run, with KUBECONFIG pinned when ``--context`` is given."""
    env = dict(base_env if base_env is not None else os.environ)
    directory = Path(tempfile.mkdtemp(prefix="labrunner-run-"))
    os.chmod(directory, 0o700)
    if context_option:
        env = pin_context(env, context_option, directory)
    return PreparedRun(
        env=env,
        context=context_option or current_context(env),
        explicit=bool(context_option),
        directory=directory,
    )
