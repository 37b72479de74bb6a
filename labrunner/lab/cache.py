"""The compiled-lab cache: a loaded workshop kept as JSON between runs.

Every command starts by loading the whole workshop: parsing each YAML file
with line marks, checking it against the schemas, linting every check. The
files rarely change between two runs, so the result — the frozen ``Workshop``
and the problems found on the way (``validate`` prints its warnings) — is kept
in the state directory and read back while nothing it depends on changed:

- the bytes of every file the load read (each lab file and ``workshop.yaml``)
  and the list of lab files in the directory (a new file is a change);
- labrunner's version and the modification times of the lab model's own
  modules (a source checkout changes them without changing the version);
- the caller's ``catalog_key``: what the installed verifiers are (their entry
  points), since their parameter schemas decide which labs are valid.

Any change re-reads the files and replaces the cache. The file is JSON, never
pickle: reading it back runs no code, and one that is corrupt, truncated or
from another version is ignored (and replaced), never trusted. Only loads
without errors are kept; a broken lab is reported fresh every time. Writes
are atomic (``fsutil.write_atomic``), so two commands racing never read half
a file.

The (de)serialisation is generic over the model's frozen dataclasses: it reads
their fields and type hints, so a field added to ``Lab`` or ``Step`` is kept
without touching this module. A type it cannot represent exactly (a YAML
timestamp in a check's parameters, say) makes it skip writing the cache for
that workshop, never write something that would read back different.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import sys
import types
from collections.abc import Callable, Mapping
from pathlib import Path

import labrunner
from labrunner import codecache
from labrunner.fsutil import sha256_hex, source_stamp, write_atomic
from labrunner.lab.locate import WORKSHOP_FILE, lab_files
from labrunner.lab.model import Workshop
from labrunner.lab.problems import LoadResult, Problem

FORMAT = 1
SUBDIR = "workshops"

TYPE_CHECKING = False  # as typing's, without importing typing (a start-up cost)
if TYPE_CHECKING:
    from typing import Any

    from labrunner.lab.catalog import Catalog

    Encoder = Callable[[Any], Any]
    Decoder = Callable[[Any], Any]


class Unrepresentable(TypeError):
    """A value the cache cannot write so that it reads back the same."""


# --------------------------------------------------------------------------- the codec
#
# The codec reads the model's annotations without importing ``typing`` (some
# milliseconds of every ``check``): the model names ``Any`` for the type checker
# only, and a hint can be one of typing's own constructs (``Any``, ``Literal``,
# ``Union``, ``Annotated``, a forward reference) only if something imported
# ``typing`` first, so typing's functions are used only when it is loaded.


class AnyValue:
    """What the model's ``Any`` stands for while ``typing`` is not loaded: any JSON value."""


def _typing() -> Any:
    """The ``typing`` module if this process imported it, else None."""
    return sys.modules.get("typing")


def _any() -> Any:
    """The object ``Any`` in an annotation means (``typing.Any`` once typing is loaded)."""
    typing = _typing()
    return AnyValue if typing is None else typing.Any


def _is_any(hint: Any) -> bool:
    return hint is AnyValue or hint is _any()


def _origin(hint: Any) -> Any:
    """``typing.get_origin(hint)``."""
    typing = _typing()
    if typing is not None:
        return typing.get_origin(hint)
    if isinstance(hint, types.UnionType):
        return types.UnionType
    return hint.__origin__ if isinstance(hint, types.GenericAlias) else None


def _args(hint: Any) -> tuple[Any, ...]:
    """``typing.get_args(hint)``."""
    typing = _typing()
    if typing is not None:
        return typing.get_args(hint)  # type: ignore[no-any-return]
    if isinstance(hint, (types.UnionType, types.GenericAlias)):
        return hint.__args__
    return ()


def _is_typing(origin: Any, name: str) -> bool:
    """``origin is typing.<name>`` (never, while typing is not loaded)."""
    typing = _typing()
    return typing is not None and origin is getattr(typing, name)


def _is_union(origin: Any) -> bool:
    return origin is types.UnionType or _is_typing(origin, "Union")


def _hints(cls: type) -> dict[str, Any]:
    """``typing.get_type_hints(cls, <cls's module>)``, without compiling the annotations.

    The model's annotations are strings (PEP 563), and ``get_type_hints``
    compiles each of them on every start (some 70 for the lab model, about a
    millisecond and a half of a ``labrunner check``). Here each is evaluated
    from the code an earlier run compiled (:func:`labrunner.codecache.compiled`)
    in the same namespaces ``get_type_hints`` uses. Anything that is not a plain
    type expression once evaluated (a string or forward reference inside it,
    ``Annotated``) is left to ``get_type_hints`` itself.
    """
    module = sys.modules.get(cls.__module__)
    globalns = vars(module) if module else None
    hints: dict[str, Any] = {}
    try:
        for base in reversed(cls.__mro__):
            if "__annotations__" not in vars(base):
                continue  # object, a base without fields: nothing to copy its namespace for
            localns = {"Any": _any(), **vars(base)}
            for name, annotation in localns["__annotations__"].items():
                hint = annotation
                if isinstance(annotation, str):
                    # the annotations are the model's own source text, as get_type_hints trusts
                    hint = eval(codecache.compiled(annotation), globalns, localns)  # noqa: S307
                if hint is None:
                    hint = type(None)
                if not _plain_hint(hint):
                    raise TypeError(name)
                hints[name] = hint
    except (NameError, SyntaxError, TypeError):
        import typing

        return typing.get_type_hints(cls, {"Any": typing.Any, **(globalns or {})})
    return hints


def _plain_hint(hint: Any) -> bool:
    """True for a type expression with nothing left to resolve (no string, forward
    reference or ``Annotated`` anywhere in it)."""
    if isinstance(hint, str) or _is_typing(type(hint), "ForwardRef"):
        return False
    origin = _origin(hint)
    if _is_typing(origin, "Literal"):
        return True  # its arguments are values, strings among them
    if _is_typing(origin, "Annotated"):
        return False
    return all(_plain_hint(arg) for arg in getattr(hint, "__args__", ()))


def _plain_json(value: Any) -> Any:
    """``value`` itself when it is JSON data all the way down, else Unrepresentable."""
    kind = type(value)
    if value is None or kind in (str, int, float, bool):
        return value
    if kind is list:
        return [_plain_json(v) for v in value]
    if kind is dict:
        for key in value:
            if type(key) is not str:
                raise Unrepresentable(f"mapping key {key!r} is not text")
        return {k: _plain_json(v) for k, v in value.items()}
    raise Unrepresentable(f"{kind.__name__} value {value!r}")


def _same(value: Any) -> Any:
    return value


def _enum_value(value: enum.Enum) -> Any:
    kind: Any = type(value.value)
    return encoder(kind)(value.value)


@functools.cache
def encoder(hint: Any) -> Encoder:
    """A function turning a value of type ``hint`` into JSON data."""
    origin = _origin(hint)
    args = _args(hint)
    if _is_any(hint):
        return _plain_json
    if hint in (str, int, bool, type(None)):
        kind = hint

        def scalar(value: Any) -> Any:
            if type(value) is not kind:
                raise Unrepresentable(f"{value!r} is not {kind.__name__}")
            return value

        return scalar
    if hint is float:
        return float
    if isinstance(hint, type) and issubclass(hint, Path):
        return str
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum_value
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _dataclass_encoder(hint)
    if _is_typing(origin, "Literal"):
        return _plain_json
    if _is_union(origin):
        others = [a for a in args if a is not type(None)]
        if len(others) == 1 and len(args) == 2 and not _is_any(others[0]):
            inner = encoder(others[0])  # an optional value: null, or the value itself
            return lambda value: None if value is None else inner(value)
        return _union_encoder(args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = encoder(args[0])
            return lambda value: [item(v) for v in value]
        parts = [encoder(a) for a in args]
        return lambda value: [enc(v) for enc, v in zip(parts, value, strict=True)]
    if origin in (frozenset, set, list):
        item = encoder(args[0] if args else AnyValue)
        return lambda value: [item(v) for v in value]
    if origin in (dict, Mapping, types.MappingProxyType) or hint in (dict, Mapping):
        key_hint, value_hint = args if args else (str, AnyValue)
        if key_hint is not str:
            raise Unrepresentable(f"mapping keys of type {key_hint!r}")
        item = encoder(value_hint)

        def mapping(value: Any) -> Any:
            out = {}
            for k, v in value.items():
                if type(k) is not str:
                    raise Unrepresentable(f"mapping key {k!r} is not text")
                out[k] = item(v)
            return out

        return mapping
    raise Unrepresentable(f"type {hint!r}")


@functools.cache
def decoder(hint: Any) -> Decoder:
    """A function turning JSON data written by ``encoder(hint)`` back into a value."""
    origin = _origin(hint)
    args = _args(hint)
    if _is_any(hint) or _is_typing(origin, "Literal") or hint in (str, int, bool, type(None)):
        return _same
    if hint is float:
        return float
    if isinstance(hint, type) and issubclass(hint, Path):
        return _path
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _dataclass_decoder(hint)
    if _is_union(origin):
        others = [a for a in args if a is not type(None)]
        if len(others) == 1 and len(args) == 2 and not _is_any(others[0]):
            inner = decoder(others[0])
            return lambda data: None if data is None else inner(data)
        members = [decoder(a) for a in args]
        return lambda data: None if data is None else members[data[0]](data[1])
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = decoder(args[0])
            return lambda data: tuple(item(v) for v in data)
        parts = [decoder(a) for a in args]
        return lambda data: tuple(dec(v) for dec, v in zip(parts, data, strict=True))
    if origin in (frozenset, set, list):
        item = decoder(args[0] if args else AnyValue)
        build: Callable[[Any], Any] = origin
        return lambda data: build(item(v) for v in data)
    if origin in (dict, Mapping, types.MappingProxyType) or hint in (dict, Mapping):
        item = decoder(args[1] if args else AnyValue)
        if origin is dict or hint is dict:
            return lambda data: {k: item(v) for k, v in data.items()}
        return lambda data: types.MappingProxyType({k: item(v) for k, v in data.items()})
    raise Unrepresentable(f"type {hint!r}")


@functools.lru_cache(maxsize=4096)
def _path(text: str) -> Path:
    # one Path per file: every Where of a lab names the same one
    return Path(text)


def _runtime_type(hint: Any) -> type | tuple[type, ...]:
    """What ``isinstance`` needs to tell a union's members apart."""
    origin = _origin(hint)
    if _is_any(hint):
        return object
    if _is_typing(origin, "Literal"):
        return tuple({type(a) for a in _args(hint)})
    if origin in (Mapping, types.MappingProxyType) or hint is Mapping:
        return Mapping
    if origin is not None:
        return origin  # type: ignore[no-any-return]
    return hint  # type: ignore[no-any-return]


def _union_encoder(args: tuple[Any, ...]) -> Encoder:
    # [index of the member, its encoding]: decoding needs no guessing
    members = [(i, a, _runtime_type(a), encoder(a)) for i, a in enumerate(args)]

    def union(value: Any) -> Any:
        if value is None and type(None) in args:
            return None
        for index, hint, runtime, enc in members:
            if hint is type(None):
                continue
            if isinstance(value, runtime) and not (
                isinstance(value, bool) and runtime in (int, float)
            ):
                return [index, enc(value)]
        raise Unrepresentable(f"{value!r} is none of {args!r}")

    return union


def _dataclass_encoder(cls: type) -> Encoder:
    hints = _hints(cls)
    fields = [(f.name, encoder(hints[f.name])) for f in dataclasses.fields(cls)]

    def encode(value: Any) -> Any:
        if type(value) is not cls:
            raise Unrepresentable(f"{type(value).__name__} where {cls.__name__} belongs")
        return {name: enc(getattr(value, name)) for name, enc in fields}

    return encode


def _dataclass_decoder(cls: type) -> Decoder:
    hints = _hints(cls)
    fields = dataclasses.fields(cls)
    # fields whose JSON form is their value are copied as they are (most of them)
    as_is = [f.name for f in fields if f.init and decoder(hints[f.name]) is _same]
    init = [(f.name, decoder(hints[f.name])) for f in fields if f.init and f.name not in as_is]
    late = [(f.name, decoder(hints[f.name])) for f in fields if not f.init]

    def decode(data: Any) -> Any:
        kwargs = {name: data[name] for name in as_is}
        for name, dec in init:
            kwargs[name] = dec(data[name])
        value = cls(**kwargs)
        for name, dec in late:
            object.__setattr__(value, name, dec(data[name]))
        return value

    return decode


# --------------------------------------------------------------------------- the key


def _digest(path: Path) -> str | None:
    try:
        return sha256_hex(path.read_bytes())
    except OSError:
        return None


def _listing(labs_dir: Path) -> list[str]:
    names = [p.name for p in lab_files(labs_dir)]
    if (labs_dir / WORKSHOP_FILE).is_file():
        names.append(WORKSHOP_FILE)
    return names


def _inputs(labs_dir: Path, workshop: Workshop) -> dict[str, str | None]:
    """Every file the load read, with its digest."""
    files = {labs_dir / WORKSHOP_FILE, *lab_files(labs_dir), *(lab.path for lab in workshop.labs)}
    return {str(p): _digest(p) for p in sorted(files)}


@dataclasses.dataclass(frozen=True)
class WorkshopCache:
    """Where loaded workshops are kept, and what the installed verifiers are."""

    directory: Path
    catalog_key: str
    """Names the verifiers the loader checked against (``Registry.fingerprint``)."""

    def file_for(self, labs_dir: Path) -> Path:
        """The cache file of one labs directory."""
        name = sha256_hex(str(labs_dir).encode())[:24]
        return self.directory / SUBDIR / f"{name}.json"

    def _key(self, labs_dir: Path) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "labrunner": labrunner.__version__,
            "code": source_stamp(Path(__file__).parent),
            "catalog": self.catalog_key,
            "labs_dir": str(labs_dir),
            "listing": _listing(labs_dir),
        }

    def read(self, labs_dir: Path) -> LoadResult | None:
        """The kept result for ``labs_dir`` while it is current; None otherwise."""
        try:
            data = json.loads(self.file_for(labs_dir).read_bytes())
            if data["key"] != self._key(labs_dir):
                return None
            inputs = data["inputs"]
            if not isinstance(inputs, dict) or any(
                _digest(Path(p)) != digest for p, digest in inputs.items()
            ):
                return None
            workshop = decoder(Workshop)(data["workshop"])
            problems = decoder(tuple[Problem, ...])(data["problems"])
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
            return None  # missing, corrupt or from another format: load afresh
        return LoadResult(workshop, list(problems))

    def write(self, labs_dir: Path, result: LoadResult) -> bool:
        """Keep a loaded workshop; False when it cannot be kept exactly (or written)."""
        if result.workshop is None:
            return False
        try:
            data = {
                "key": self._key(labs_dir),
                "inputs": _inputs(labs_dir, result.workshop),
                "workshop": encoder(Workshop)(result.workshop),
                "problems": encoder(tuple[Problem, ...])(tuple(result.problems)),
            }
            text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError):  # Unrepresentable, or a field holding the wrong type
            return False
        try:
            # private: the cache holds the labs' commands, which labrunner will run
            for directory in (self.directory, self.directory / SUBDIR):
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(self.file_for(labs_dir), text.encode("utf-8"), mode=0o600)
        except OSError:
            return False
        return True


def load_workshop_cached(
    labs_dir: Path, registry: Catalog, *, cache: WorkshopCache | None
) -> LoadResult:
    """``load_workshop(labs_dir, registry)``, answered from ``cache`` while it is current."""
    labs_dir = labs_dir.resolve()
    kept = cache.read(labs_dir) if cache is not None and labs_dir.is_dir() else None
    if kept is not None:
        return kept
    # lazy: a run answered from the cache never needs the loader (nor the YAML parser)
    from labrunner.lab.loader import load_workshop

    result = load_workshop(labs_dir, registry)
    if cache is None or not labs_dir.is_dir():
        return result
    cache.write(labs_dir, result)
    return result
