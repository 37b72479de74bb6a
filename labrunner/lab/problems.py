"""What loading lab files produces: problems with their place, and the result.

Kept apart from the loader so that a run answered from the compiled-lab cache
(``labrunner.lab.cache``) can rebuild a ``LoadResult`` without importing the
loader and the YAML parser behind it. ``labrunner.lab.loader`` re-exports
these names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from labrunner.lab.model import Workshop


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a lab file, where it is, and how bad."""

    file: Path
    line: int
    message: str
    step: str | None = None
    severity: str = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        level = "warning: " if self.severity == "warning" else ""
        step = f"step {self.step}: " if self.step else ""
        return f"{where}{level}{step}{self.message}"

    @property
    def is_error(self) -> bool:
        """True for problems that stop the lab from loading."""
        return self.severity == "error"


class LabError(Exception):
    """Raised when lab files have errors; carries every problem found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass
class LoadResult:
    """A workshop (when it loaded) and every problem found on the way."""

    workshop: Workshop | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        """Only the problems that are errors."""
        return [p for p in self.problems if p.is_error]

    @property
    def warnings(self) -> list[Problem]:
        """Only the warnings."""
        return [p for p in self.problems if not p.is_error]
