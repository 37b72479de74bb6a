"""Exit codes are an API: CI scripts branch on them, so they live in one place."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """What ``labrunner`` returns to the shell."""

    OK = 0
    FAILED = 1
    USAGE = 2
    ENVIRONMENT = 3
    INTERRUPTED = 130


class LabrunnerError(Exception):
    """An error with a message for the user and the exit code it maps to."""

    exit_code = ExitCode.FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageProblem(LabrunnerError):
    """Bad arguments, an unknown lab or step, an invalid lab file."""

    exit_code = ExitCode.USAGE


class EnvironmentProblem(LabrunnerError):
    """Something outside labrunner is missing or broken (no cluster, a missing tool)."""

    exit_code = ExitCode.ENVIRONMENT
