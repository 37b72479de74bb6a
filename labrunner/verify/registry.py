"""Verifiers are plain functions registered by name into a registry object.

The registry is an object, not module state, so a test can build its own
(``Registry()``), or copy the built-in one and add to it, and hand it to the
loader and engine. Built-in verifier modules register into
``default_registry`` through the ``@verifier`` decorator when imported;
``builtin_registry()`` imports them all once, then loads outside verifiers
from the ``labrunner.verifiers`` entry-point group.

Each verifier declares its parameters as a JSON Schema object. The loader
validates a lab's check parameters against it, so ``labrunner validate``
catches a misspelt parameter long before a learner reaches the step, and
``labrunner schema`` hands the same schemas to editors for completion.
Verifier modules must import heavy libraries (the Kubernetes client,
cryptography) inside the function, so that loading a lab stays fast.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from labrunner.verify.context import CheckContext
    from labrunner.verify.outcome import Outcome

VerifierFunc = Callable[["CheckContext", dict[str, Any]], "Outcome"]
F = TypeVar("F", bound=VerifierFunc)

ENTRY_POINT_GROUP = "labrunner.verifiers"

BUILTIN_MODULES = (
    "labrunner.verify.generic",
    "labrunner.verify.kubernetes",
    "labrunner.verify.istio",
    "labrunner.verify.tls",
    "labrunner.verify.http",
)


@dataclass(frozen=True)
class ParamProblem:
    """A semantic problem in a check's parameters, found at load time."""

    path: tuple[str | int, ...]
    message: str


@dataclass(frozen=True)
class VerifierSpec:
    """A registered verifier: its function and what it accepts."""

    name: str
    func: VerifierFunc
    params: Mapping[str, Any]
    summary: str = ""
    needs: frozenset[str] = frozenset()
    describe: Callable[[Mapping[str, Any]], str] | None = None
    lint: Callable[[Mapping[str, Any]], list[ParamProblem]] | None = None

    def label(self, params: Mapping[str, Any]) -> str:
        """A short human label for one use of this verifier."""
        if self.describe is not None:
            try:
                return self.describe(params)
            except (KeyError, TypeError, ValueError):
                pass
        return self.name


@dataclass
class Registry:
    """A name → verifier table; tests make their own, the app uses the default."""

    _specs: dict[str, VerifierSpec] = field(default_factory=dict)

    def verifier(
        self,
        name: str,
        *,
        params: Mapping[str, Any] | None = None,
        needs: tuple[str, ...] | frozenset[str] = (),
        describe: Callable[[Mapping[str, Any]], str] | None = None,
        lint: Callable[[Mapping[str, Any]], list[ParamProblem]] | None = None,
    ) -> Callable[[F], F]:
        """Decorator: register ``func`` under ``name`` with its parameter schema."""

        def register(func: F) -> F:
            doc = (func.__doc__ or "").strip().splitlines()
            self.add(
                VerifierSpec(
                    name=name,
                    func=func,
                    params=params if params is not None else {"type": "object"},
                    summary=doc[0] if doc else "",
                    needs=frozenset(needs),
                    describe=describe,
                    lint=lint,
                )
            )
            return func

        return register

    def add(self, spec: VerifierSpec) -> None:
        """Register a spec; a later registration under the same name replaces it."""
        self._specs[spec.name] = spec

    def get(self, name: str) -> VerifierSpec | None:
        """The verifier registered as ``name``, if any."""
        return self._specs.get(name)

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self._specs)

    def copy(self) -> Registry:
        """A new registry with the same entries, to extend without side effects."""
        return Registry(dict(self._specs))

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[VerifierSpec]:
        return iter(self._specs[n] for n in self.names())

    def __len__(self) -> int:
        return len(self._specs)


default_registry = Registry()
verifier = default_registry.verifier

_builtins_lock = threading.Lock()
_builtins_loaded = False
entry_point_warnings: list[str] = []


def load_entry_points(registry: Registry, group: str = ENTRY_POINT_GROUP) -> list[str]:
    """Load outside verifiers; returns warnings for entry points that failed.

    An entry point may name a module (importing it registers its verifiers in
    the default registry) or a callable taking the registry to register into.
    """
    warnings: list[str] = []
    for ep in metadata.entry_points(group=group):
        try:
            obj = ep.load()
        except Exception as exc:  # an outside plug-in must not take the CLI down
            warnings.append(f"verifier plug-in {ep.name!r} ({ep.value}) failed to load: {exc}")
            continue
        if callable(obj) and not isinstance(obj, type):
            try:
                obj(registry)
            except Exception as exc:
                warnings.append(f"verifier plug-in {ep.name!r} failed to register: {exc}")
    return warnings


def builtin_registry() -> Registry:
    """The default registry with every built-in verifier and plug-in loaded."""
    global _builtins_loaded
    with _builtins_lock:
        if not _builtins_loaded:
            for module in BUILTIN_MODULES:
                try:
                    importlib.import_module(module)
                except ModuleNotFoundError as exc:
                    if exc.name != module:
                        raise
            entry_point_warnings.extend(load_entry_points(default_registry))
            _builtins_loaded = True
    return default_registry
