"""Verifiers are plain functions registered by name into a registry object.

The registry is an object, not module state, so a test can build its own
(``Registry()``), or copy one and add to it, and hand it to the loader and
engine. ``@verifier(name, params=...)`` marks a function as a verifier
(its ``VerifierSpec`` rides on the function); ``Registry.verifier`` does the
same and registers it at once.

Every verifier labrunner knows, its own and outside ones, comes from the
entry-point group ``labrunner.verifiers``: one entry point per verifier name
(``pods_ready = labrunner.verify.kubernetes:pods_ready``), so a verifier's
module is imported only when a lab names it (``Registry.get``). Outside
packages may also list a module (its marked functions are registered) or a
callable that receives the registry. An entry that fails to import or to
register is an error naming it (``VerifierUnavailable``), never a silent
gap. Adding a built-in verifier is one module plus one line in
pyproject.toml.

Each verifier declares its parameters as a JSON Schema object. The loader
validates a lab's check parameters against it (the registry satisfies
``labrunner.lab.catalog.Catalog``), so ``labrunner validate`` catches a
misspelt parameter long before a learner reaches the step, and
``labrunner schema`` hands the same schemas to editors.
"""

from __future__ import annotations

import threading
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any, TypeVar

from labrunner.lab.catalog import ParamProblem, VerifierUnavailable

if TYPE_CHECKING:
    from labrunner.verify.context import CheckContext
    from labrunner.verify.outcome import Outcome

VerifierFunc = Callable[["CheckContext", dict[str, Any]], "Outcome"]
F = TypeVar("F", bound=VerifierFunc)

ENTRY_POINT_GROUP = "labrunner.verifiers"
SPEC_ATTRIBUTE = "__labrunner_verifier__"
"""The attribute ``@verifier`` sets on a function: its ``VerifierSpec``."""

__all__ = ["ENTRY_POINT_GROUP", "ParamProblem", "Registry", "VerifierSpec", "verifier"]


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
    shell_params: frozenset[str] = frozenset()
    """Parameters that are bash code (``command``'s ``run``): never expanded by labrunner;
    the check's process gets the lab's variables in its environment and bash expands
    them, so a value is always data, never code."""

    def label(self, params: Mapping[str, Any]) -> str:
        """A short human label for one use of this verifier."""
        if self.describe is not None:
            try:
                return self.describe(params)
            except (KeyError, TypeError, ValueError):
                pass
        return self.name


def verifier(
    name: str,
    *,
    params: Mapping[str, Any] | None = None,
    needs: Iterable[str] = (),
    describe: Callable[[Mapping[str, Any]], str] | None = None,
    lint: Callable[[Mapping[str, Any]], list[ParamProblem]] | None = None,
    shell_params: Iterable[str] = (),
) -> Callable[[F], F]:
    """Decorator: mark ``func`` as the verifier ``name`` with its parameter schema."""

    def mark(func: F) -> F:
        doc = (func.__doc__ or "").strip().splitlines()
        spec = VerifierSpec(
            name=name,
            func=func,
            params=params if params is not None else {"type": "object"},
            summary=doc[0] if doc else "",
            needs=frozenset(needs),
            describe=describe,
            lint=lint,
            shell_params=frozenset(shell_params),
        )
        setattr(func, SPEC_ATTRIBUTE, spec)
        return func

    return mark


def spec_of(obj: object) -> VerifierSpec | None:
    """The ``VerifierSpec`` a ``@verifier`` function carries, if ``obj`` is one."""
    spec = getattr(obj, SPEC_ATTRIBUTE, None)
    return spec if isinstance(spec, VerifierSpec) else None


@dataclass
class Registry:
    """A name → verifier table; entries from entry points are loaded on first use."""

    _specs: dict[str, VerifierSpec] = field(default_factory=dict)
    _pending: dict[str, list[metadata.EntryPoint]] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @classmethod
    def from_entry_points(cls, group: str = ENTRY_POINT_GROUP) -> Registry:
        """A registry of every entry point in ``group``, none of them imported yet."""
        registry = cls()
        for ep in metadata.entry_points(group=group):
            registry._pending.setdefault(ep.name, []).append(ep)
        return registry

    def verifier(
        self,
        name: str,
        *,
        params: Mapping[str, Any] | None = None,
        needs: Iterable[str] = (),
        describe: Callable[[Mapping[str, Any]], str] | None = None,
        lint: Callable[[Mapping[str, Any]], list[ParamProblem]] | None = None,
        shell_params: Iterable[str] = (),
    ) -> Callable[[F], F]:
        """Decorator: mark ``func`` as a verifier and register it here."""
        mark = verifier(
            name,
            params=params,
            needs=needs,
            describe=describe,
            lint=lint,
            shell_params=shell_params,
        )

        def register(func: F) -> F:
            marked = mark(func)
            spec = spec_of(marked)
            assert spec is not None
            self.add(spec)
            return marked

        return register

    def add(self, spec: VerifierSpec) -> None:
        """Register a spec; a later registration under the same name replaces it."""
        with self._lock:
            self._specs[spec.name] = spec
            self._pending.pop(spec.name, None)

    # ------------------------------------------------------------------ loading

    def _load(self, ep: metadata.EntryPoint) -> None:
        """Import one entry point and register what it offers; raise naming it on failure."""
        label = f"verifier plug-in {ep.name!r} ({ep.value})"
        try:
            obj = ep.load()
        except Exception as exc:
            raise VerifierUnavailable(f"{label} failed to load: {exc}") from exc
        spec = spec_of(obj)
        if spec is not None:
            if spec.name != ep.name:
                raise VerifierUnavailable(f"{label} is the verifier {spec.name!r}, not {ep.name!r}")
            self._specs[spec.name] = spec
        elif isinstance(obj, types.ModuleType):
            for value in vars(obj).values():
                found = spec_of(value)
                if found is not None:
                    self._specs.setdefault(found.name, found)
        elif callable(obj) and not isinstance(obj, type):
            try:
                obj(self)
            except Exception as exc:
                raise VerifierUnavailable(
                    f"verifier plug-in {ep.name!r} failed to register: {exc}"
                ) from exc
        else:
            raise VerifierUnavailable(f"{label} is neither a verifier, a module nor a callable")

    def _load_named(self, name: str) -> None:
        entries = self._pending.pop(name, [])
        for ep in entries:
            self._load(ep)

    def load_all(self) -> None:
        """Import every entry point not loaded yet; raise one error naming every failure."""
        with self._lock:
            failures = []
            for name in list(self._pending):
                try:
                    self._load_named(name)
                except VerifierUnavailable as exc:
                    failures.append(str(exc))
            if failures:
                raise VerifierUnavailable("; ".join(failures))

    # ------------------------------------------------------------------ lookup

    def get(self, name: str) -> VerifierSpec | None:
        """The verifier registered as ``name``, loading its entry point if needed.

        A name that no entry point carries may come from an outside module or
        registrar entry, so those are all loaded before giving up. Raises
        ``VerifierUnavailable`` when an entry that had to be loaded is broken.
        """
        with self._lock:
            if name in self._specs:
                return self._specs[name]
            if name in self._pending:
                self._load_named(name)
                if name in self._specs:
                    return self._specs[name]
            if self._pending:
                self.load_all()
            return self._specs.get(name)

    def names(self) -> list[str]:
        """All names, sorted (every entry point is loaded to know them)."""
        self.load_all()
        return sorted(self._specs)

    def copy(self) -> Registry:
        """A new registry with the same entries, to extend without side effects."""
        with self._lock:
            return Registry(dict(self._specs), {k: list(v) for k, v in self._pending.items()})

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[VerifierSpec]:
        return iter([self._specs[n] for n in self.names()])

    def __len__(self) -> int:
        return len(self.names())


_installed: Registry | None = None
_installed_lock = threading.Lock()


def builtin_registry() -> Registry:
    """Every verifier installed in the ``labrunner.verifiers`` group, loaded on first use.

    One registry per process, so a verifier module is imported at most once.
    Raises ``VerifierUnavailable`` when labrunner's own entry points are
    missing (an install whose metadata predates them: reinstall labrunner).
    """
    global _installed
    with _installed_lock:
        if _installed is None:
            registry = Registry.from_entry_points()
            if "command" not in registry._pending:
                raise VerifierUnavailable(
                    "labrunner's installed metadata lists none of its own verifiers in the "
                    f"{ENTRY_POINT_GROUP!r} entry-point group; reinstall labrunner "
                    "(`pip install -e .` in a checkout)"
                )
            _installed = registry
        return _installed
