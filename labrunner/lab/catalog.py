"""What the loader needs to know about verifiers, without importing any.

A lab file names verifiers and their parameters; the loader checks each
name exists and each parameter set against the verifier's schema and lint
rules, so ``labrunner validate`` catches a misspelt parameter long before a
learner reaches the step. The model layer must not import the verifiers
themselves (they sit above it), so it states here what it needs — a
``Catalog`` of ``VerifierInfo`` — and callers pass one in; the verifier
registry (``labrunner.verify.registry``) is one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ParamProblem:
    """A semantic problem in a check's parameters, found at load time."""

    path: tuple[str | int, ...]
    message: str


class VerifierUnavailable(Exception):
    """A verifier is listed but its code cannot be loaded; the message names it."""


TYPE_CHECKING = False  # as typing's, without importing typing (a start-up cost)
if TYPE_CHECKING:
    # protocols for the type checker: nothing checks them at run time
    from typing import Any, Protocol

    class VerifierInfo(Protocol):
        """One verifier as the loader and the schema see it."""

        @property
        def name(self) -> str:
            """The name lab files use."""

        @property
        def params(self) -> Mapping[str, Any]:
            """Its parameters as a JSON Schema object."""

        @property
        def summary(self) -> str:
            """One line on what it checks."""

        @property
        def needs(self) -> frozenset[str]:
            """What a step using it needs (``cluster``, a tool)."""

        @property
        def lint(self) -> Callable[[Mapping[str, Any]], list[ParamProblem]] | None:
            """Checks the schema cannot express, or None."""

        @property
        def shell_params(self) -> frozenset[str]:
            """Parameters that are bash code: bash expands their variables, not labrunner."""

    class Catalog(Protocol):
        """The verifiers a workshop may use.

        ``get`` and iteration may load verifier code on demand and raise
        ``VerifierUnavailable`` when it cannot be loaded.
        """

        def get(self, name: str) -> VerifierInfo | None:
            """The verifier called ``name``, or None when there is none."""

        def names(self) -> list[str]:
            """Every verifier's name, sorted."""

        def __iter__(self) -> Iterator[VerifierInfo]:
            """Every verifier, by name."""


class EmptyCatalog:
    """No verifiers at all (for reading ``workshop.yaml``, which has no checks)."""

    def get(self, name: str) -> VerifierInfo | None:
        """Always None."""
        return None

    def names(self) -> list[str]:
        """No names."""
        return []

    def __iter__(self) -> Iterator[VerifierInfo]:
        """Nothing."""
        return iter(())
