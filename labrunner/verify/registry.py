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

Finding the entry points means importing ``importlib.metadata`` and reading
every installed distribution's metadata, which costs a command more than the
rest of its start-up. ``builtin_registry(cache_dir=...)`` therefore keeps the
list it found (plain JSON) keyed by the import path and the modification times
of its directories (installing or removing a distribution changes them), and
reads it back while they stand. ``Registry.fingerprint()`` names what the
installed verifiers are, so a cache of loaded labs can tell when it is stale.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import threading
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from labrunner import __version__
from labrunner.fsutil import sha256_hex, source_stamp, write_atomic
from labrunner.lab.catalog import ParamProblem, VerifierUnavailable

TYPE_CHECKING = False  # as typing's, without importing typing (a start-up cost)
if TYPE_CHECKING:
    from importlib import metadata
    from typing import Any, TypeVar

    from labrunner.verify.context import CheckContext
    from labrunner.verify.outcome import Outcome

    VerifierFunc = Callable[[CheckContext, dict[str, Any]], Outcome]
    F = TypeVar("F", bound=VerifierFunc)

ENTRY_POINT_GROUP = "labrunner.verifiers"
SPEC_ATTRIBUTE = "__labrunner_verifier__"
"""The attribute ``@verifier`` sets on a function: its ``VerifierSpec``."""

ENTRY_POINTS_FILE = "entry-points.json"
# a pattern's text: `re` compiles (and caches) it when first used, not at import
_ENTRY_VALUE = r"^(?P<module>[\w.]+)\s*(?::\s*(?P<attr>[\w.]+)\s*)?(?:\[.*\]\s*)?$"

__all__ = [
    "ENTRY_POINT_GROUP",
    "EntrySource",
    "ParamProblem",
    "Registry",
    "VerifierSpec",
    "installed_entries",
    "verifier",
]


def __getattr__(name: str) -> Any:
    # ``registry.metadata`` stays reachable (tests patch its lookup) without
    # importing importlib.metadata at start-up: that costs ~25 ms a command
    if name == "metadata":
        return importlib.import_module("importlib.metadata")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class EntrySource:
    """One entry point of the group as plain data: what to load, and who declared it."""

    name: str
    value: str
    dist: str = ""
    """``name version`` of the distribution that declares it ("" when unknown)."""

    def load(self) -> Any:
        """Import the module and fetch the attribute, as ``EntryPoint.load`` does."""
        match = re.match(_ENTRY_VALUE, self.value)
        if match is None:
            raise ValueError(f"{self.value!r} is not an entry point reference (module:attr)")
        obj: Any = importlib.import_module(match.group("module"))
        for part in (match.group("attr") or "").split("."):
            if part:
                obj = getattr(obj, part)
        return obj

    @classmethod
    def of(cls, ep: metadata.EntryPoint) -> EntrySource:
        """The plain data of an ``importlib.metadata`` entry point."""
        dist = getattr(ep, "dist", None)
        return cls(ep.name, ep.value, _dist_label(dist) if dist is not None else "")


def _dist_label(dist: metadata.Distribution) -> str:
    """``name version`` of a distribution, read without the email parser.

    ``Distribution.name`` and ``.version`` parse the whole METADATA file as
    an email message, which costs more than scanning every entry point.
    """
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    fields = dict(re.findall(r"^(Name|Version):[ \t]*(.*?)[ \t]*$", text[:4096], re.MULTILINE))
    return f"{fields.get('Name', '?')} {fields.get('Version', '?')}"


def _path_stamp() -> list[list[Any]]:
    """The import path and each entry's modification time: an install changes one."""
    stamp: list[list[Any]] = []
    for entry in sys.path:
        try:
            stamp.append([entry, os.stat(entry or ".").st_mtime_ns])
        except OSError:
            stamp.append([entry, None])
    return stamp


def _scan(group: str) -> tuple[EntrySource, ...]:
    # importlib.metadata is imported only here, when no cached list can be trusted
    from importlib import metadata

    return tuple(EntrySource.of(ep) for ep in metadata.entry_points(group=group))


ENTRY_RECORDS = 8
"""Import paths remembered at once: ``labrunner`` and ``python -m labrunner`` (run from
different folders) see different paths, and each would otherwise replace the other's list."""


def installed_entries(
    group: str = ENTRY_POINT_GROUP, *, cache_dir: Path | None = None
) -> tuple[EntrySource, ...]:
    """Every entry point in ``group``; from ``cache_dir`` while the import path is unchanged.

    The cache keeps the lists of the last few import paths it saw. A cache
    that is missing, unreadable or stale is ignored and replaced; one that
    cannot be written is simply not kept.
    """
    if cache_dir is None:
        return _scan(group)
    path = cache_dir / ENTRY_POINTS_FILE
    key = {"labrunner": __version__, "group": group, "path": _path_stamp()}
    records: list[Any] = []
    try:
        data = json.loads(path.read_bytes())
        if data["format"] == 2:
            records = [r for r in data["records"] if isinstance(r, dict)]
        for record in records:
            if record["key"] == key:
                return tuple(
                    EntrySource(*(str(part) for part in item)) for item in record["entries"]
                )
    except (OSError, ValueError, KeyError, TypeError):
        records = []
    entries = _scan(group)
    mine = {"key": key, "entries": [[e.name, e.value, e.dist] for e in entries]}
    text = json.dumps({"format": 2, "records": [mine, *records[: ENTRY_RECORDS - 1]]})
    try:
        cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(path, text.encode(), mode=0o600)  # it names modules to import
    except OSError:
        pass
    return entries


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
    _pending: dict[str, list[EntrySource]] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _sources: tuple[EntrySource, ...] | None = field(default=None, repr=False)
    """The entry points this registry started from (None: built by hand)."""
    _by_hand: bool = field(default=False, repr=False)
    """True once a verifier was added other than by loading an entry point."""
    _loading: int = field(default=0, repr=False)

    @classmethod
    def from_entry_points(
        cls, group: str = ENTRY_POINT_GROUP, *, cache_dir: Path | None = None
    ) -> Registry:
        """A registry of every entry point in ``group``, none of them imported yet."""
        return cls.from_sources(installed_entries(group, cache_dir=cache_dir))

    @classmethod
    def from_sources(cls, sources: Iterable[EntrySource]) -> Registry:
        """A registry of these entry points, none of them imported yet."""
        registry = cls()
        registry._sources = tuple(sources)
        for source in registry._sources:
            registry._pending.setdefault(source.name, []).append(source)
        return registry

    def fingerprint(self) -> str | None:
        """A digest of what decides this registry's verifiers, or None when unknown.

        The entry points (with their distributions' versions) and labrunner's own
        verifier modules; a registry with verifiers added by hand has none, as
        nothing outside the process can vouch for them.
        """
        with self._lock:
            if self._sources is None or self._by_hand:
                return None
            basis = {
                "labrunner": __version__,
                "entries": sorted([s.name, s.value, s.dist] for s in self._sources),
                # labrunner's own verifier modules: a source checkout changes them (and
                # so which labs are valid) without changing the version
                "code": source_stamp(Path(__file__).parent),
            }
        return sha256_hex(json.dumps(basis, sort_keys=True).encode())

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
            if not self._loading:
                self._by_hand = True

    # ------------------------------------------------------------------ loading

    def _load(self, ep: EntrySource) -> None:
        """Import one entry point and register what it offers; raise naming it on failure."""
        self._loading += 1
        try:
            self._load_entry(ep)
        finally:
            self._loading -= 1

    def _load_entry(self, ep: EntrySource) -> None:
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
            return Registry(
                dict(self._specs), {k: list(v) for k, v in self._pending.items()}, _sources=None
            )

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[VerifierSpec]:
        return iter([self._specs[n] for n in self.names()])

    def __len__(self) -> int:
        return len(self.names())


_installed: Registry | None = None
_installed_lock = threading.Lock()


def builtin_registry(*, cache_dir: Path | None = None) -> Registry:
    """Every verifier installed in the ``labrunner.verifiers`` group, loaded on first use.

    One registry per process, so a verifier module is imported at most once.
    ``cache_dir`` keeps the list of entry points between runs (see
    ``installed_entries``). Raises ``VerifierUnavailable`` when labrunner's own
    entry points are missing (an install whose metadata predates them:
    reinstall labrunner).
    """
    global _installed
    with _installed_lock:
        if _installed is None:
            registry = Registry.from_entry_points(cache_dir=cache_dir)
            if "command" not in registry._pending:
                raise VerifierUnavailable(
                    "labrunner's installed metadata lists none of its own verifiers in the "
                    f"{ENTRY_POINT_GROUP!r} entry-point group; reinstall labrunner "
                    "(`pip install -e .` in a checkout)"
                )
            _installed = registry
        return _installed
