"""The persistent lab shell.

``Shell`` and ``ShellState`` load the session module (terminal handling) on
first use, so code that only names a command's result or the
shell's error does not pay for it: a check that starts no shell starts faster.
"""

from __future__ import annotations

from labrunner.shell.result import CommandResult, ShellError

TYPE_CHECKING = False  # as typing's, without importing typing (a start-up cost)
if TYPE_CHECKING:
    from typing import Any

    from labrunner.shell.session import Shell, ShellState

__all__ = ["CommandResult", "Shell", "ShellError", "ShellState"]


def __getattr__(name: str) -> Any:
    """``Shell`` and ``ShellState``, imported from the session module when first asked for."""
    if name in ("Shell", "ShellState"):
        # lazy: the session module loads only when a shell starts
        from labrunner.shell import session

        return getattr(session, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
