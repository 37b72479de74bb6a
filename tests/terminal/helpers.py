"""Shared by the terminal tests: the live shell from labrunner.testing, and its deadline."""

from __future__ import annotations

from labrunner.testing.terminal import DEADLINE, LiveShell, live_shell

__all__ = ["DEADLINE", "LiveShell", "live_shell"]
