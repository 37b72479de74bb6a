"""The persistent lab shell."""

from labrunner.shell.session import CommandResult, Shell, ShellError, ShellState

__all__ = ["CommandResult", "Shell", "ShellError", "ShellState"]
