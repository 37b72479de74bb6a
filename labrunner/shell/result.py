"""How a lab-shell command ended, and the shell's one error: cheap to import.

The engine names these on every path, also where no shell ever starts
(``labrunner check`` of cluster-only steps); the shell itself
(``labrunner.shell.session``, with pexpect and the terminal modules) is
imported only when a shell does start.
"""

from __future__ import annotations

from dataclasses import dataclass


class ShellError(Exception):
    """The shell could not be started or talked to."""


@dataclass(frozen=True)
class CommandResult:
    """How one command ended."""

    exit_code: int | None
    duration: float
    timed_out: bool = False
    cancelled: bool = False
    restarted: bool = False
    prompt: str | None = None
    tail: tuple[str, ...] = ()
    input_wanted: str | None = None
    """Headless only: the prompt shown when the command waited for input ("" for none)."""
    input_stopped: bool = False
    """Headless only: the command read keys one at a time, so it was interrupted."""

    @property
    def ok(self) -> bool:
        """True when the command ran to completion with exit status 0."""
        return self.exit_code == 0
