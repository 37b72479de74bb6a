"""Code compiled by earlier runs: the methods ``dataclasses`` writes, the modules a command imports.

Every ``@dataclass`` writes the source of its ``__init__``, ``__repr__``,
``__eq__``, ``__hash__`` (and, frozen, ``__setattr__``/``__delattr__``) and
compiles it with ``exec``. Compiling is most of what a dataclass costs to
create: about half a millisecond each, and a ``labrunner check`` defines about
fifty of them before it sends its first request. Python's bytecode cache keeps
the compiled modules, but not code made at run time.

:func:`install` gives the ``dataclasses`` module an ``exec`` that looks the
source text up in a table of code objects compiled by an earlier run, and
compiles (and remembers) only what is not there. The source text is the key, so
a changed dataclass simply misses; the code run is what ``compile`` makes of
that very text, so the methods are the same as without the table. The table is
one ``marshal`` file in the state directory's cache, headed by the
interpreter's bytecode magic number: another Python's file is ignored, as is
one that cannot be read. It is written (atomically, private to the user, as
Python writes ``__pycache__``) only by a run that compiled something new, so
the common run only reads it.

The same table keeps the expressions :func:`compiled` compiles: the string
annotations the compiled-lab cache evaluates to decode the lab model.

Imports nothing but built-in modules: it runs before everything else.

It also spares the start-up the ``inspect`` module when it can. ``dataclasses``
imports ``inspect`` (with ``ast``, ``dis`` and ``tokenize``, some ten modules,
the largest single share of a ``labrunner check``'s imports) only to write a
``__doc__`` for a dataclass that has none, and labrunner's dataclasses all have
one. When :func:`install` is the first to import ``dataclasses``, the module
gets a stand-in for ``inspect`` that imports the real one the first time an
attribute is asked for, and then hands the real one to ``dataclasses``; nothing
else ever sees the stand-in.

And it keeps the code of the modules a command imports, so that importing them
skips the search of ``sys.path`` and the reading of one ``__pycache__`` file per
module (some tens of microseconds each, and a ``check`` imports about a hundred
and fifty): a finder first in ``sys.meta_path`` (:class:`KeptModules`) serves a
source module from a second table when the source file's size and modification
time are still those its code was compiled from, which is how Python itself
trusts a ``__pycache__`` file, and when the usual search would find that very
file (see the finder); anything else goes to the usual finders. The module it
makes is the usual one: a ``SourceFileLoader`` (a subclass whose ``get_code``
looks in the table first) with the usual ``__file__``, ``__cached__``,
``__path__`` and resources. A module that was imported the usual way (new, or
its source changed) is kept when the command ends, as the dataclass code is.
Each road (``check``, ``verify``, ``list``, ``validate``, the rest) has its own
module table, so a ``check`` reads only the code of what a ``check`` imports.
"""

from __future__ import annotations

import _imp
import marshal
import os
import sys

TYPE_CHECKING = False  # typing itself is one of the modules served from the table
if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec, SourceFileLoader
    from typing import Any
else:
    try:  # the very classes importlib.machinery names (it imports importlib and warnings)
        ModuleSpec = sys.modules["_frozen_importlib"].ModuleSpec
        SourceFileLoader = sys.modules["_frozen_importlib_external"].SourceFileLoader
    except (KeyError, AttributeError):  # pragma: no cover - an interpreter without them
        from importlib.machinery import ModuleSpec, SourceFileLoader

FILE_PREFIX = "dataclass-code"
HEADER = b"labrunner dataclass code 1\n"
MODULE_FILE_PREFIX = "module-code"
MODULE_HEADER = b"labrunner module code 2\n"
EVAL_PREFIX = "\0eval\0"
"""Heads the key of an expression compiled by :func:`compiled` (no Python source starts so)."""
MAX_ENTRIES = 2000
"""A table grown past this (old labrunner versions' methods) starts again from this run's."""
MAX_MODULES = 1000
"""Likewise for the module table (modules since renamed or removed)."""

_table: dict[str, Any] = {}
_used: set[str] = set()
_path: str | None = None
_dirty = False
_modules: dict[str, Any] = {}
"""The module table's index: module name → (source path, size, mtime_ns, ``__cached__``
path, is a package, offset and length of its marshalled code, the ``sys.path`` entry of a
top-level module or None)."""
_modules_path: str | None = None
_modules_fd: int | None = None
"""The module table file, open: each module's code is read from it when imported."""
_code_start = 0
"""Where the code follows the index in that file."""
_new_code: dict[str, bytes] = {}
"""Marshalled code of the modules kept by this run, not yet written."""
_record: tuple[tuple[str, str, int], ...] = ()
"""``sys.path`` as :func:`install` found it (see ``SYS_PATH_KEY``)."""
_fresh_roots: frozenset[str] = frozenset()
"""The ``sys.path`` entries whose modules the table may serve (see :class:`KeptModules`)."""
misses = 0
"""Sources compiled in this process (none in a run after a run of the same code)."""


def _magic() -> bytes:
    external = sys.modules.get("_frozen_importlib_external")
    magic = getattr(external, "MAGIC_NUMBER", None)
    if isinstance(magic, bytes):
        return magic
    from importlib.util import MAGIC_NUMBER

    return MAGIC_NUMBER


def _write(path: str, *chunks: bytes) -> None:
    """Write ``chunks`` to ``path`` atomically, private to the user (a failure is ignored)."""
    temp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
        os.replace(temp, path)
    except (OSError, ValueError):
        try:
            os.unlink(temp)
        except OSError:
            pass


def _load(path: str) -> dict[str, Any]:
    """The dataclass code table in ``path`` (after ``HEADER`` and the bytecode magic), or {}."""
    try:
        with open(path, "rb") as handle:
            if handle.read(len(HEADER)) != HEADER or handle.read(4) != _magic():
                return {}
            data = handle.read()
        # trusted as Python trusts __pycache__: a private file in the user's own state
        table = marshal.loads(data)  # noqa: S302 (one read: marshal.load reads in pieces)
    except (OSError, EOFError, ValueError, TypeError):
        return {}
    if not isinstance(table, dict):
        return {}
    code_type = type(_load.__code__)
    return {k: v for k, v in table.items() if type(k) is str and type(v) is code_type}


def _code(key: str, source: str, mode: str) -> Any:
    """The code ``compile`` makes of ``source`` in ``mode``: kept under ``key`` in the table."""
    global _dirty, misses
    code = _table.get(key)
    if code is None:
        # as exec compiles it in dataclasses, which has no __future__ imports (inheriting
        # this module's would turn the methods' annotations into strings)
        code = compile(source, "<string>", mode, dont_inherit=True)
        _table[key] = code
        _dirty = True
        misses += 1
    _used.add(key)
    return code


def _exec(source: Any, globals: Any = None, locals: Any = None, /) -> None:
    """``exec`` for the ``dataclasses`` module: source text runs from the table."""
    if type(source) is str:
        source = _code(source, source, "exec")
    exec(source, globals, locals)  # noqa: S102 - it stands in for exec in dataclasses


def compiled(expression: str) -> Any:
    """``compile(expression, "<string>", "eval")``, from the table when an earlier run made it.

    For the compiled-lab cache, which evaluates the string annotations of the lab
    model's fields on every start (``typing.get_type_hints`` compiles each anew).
    Kept under a key no ``exec`` source can have.
    """
    return _code(EVAL_PREFIX + expression, expression, "eval")


class _InspectOnDemand(type(sys)):  # type: ignore[misc]
    """``inspect`` for the ``dataclasses`` module until it is used (see the module's notes)."""

    def __getattr__(self, name: str) -> Any:
        import inspect

        dataclasses = sys.modules.get("dataclasses")
        if dataclasses is not None and vars(dataclasses).get("inspect") is self:
            dataclasses.inspect = inspect  # type: ignore[attr-defined]
        return getattr(inspect, name)


def _import_dataclasses() -> Any:
    """``dataclasses``, imported (when nothing has yet) with ``inspect`` left for later."""
    if "dataclasses" in sys.modules or "inspect" in sys.modules:
        import dataclasses

        return dataclasses
    stand_in = _InspectOnDemand("inspect")
    sys.modules["inspect"] = stand_in
    try:
        import dataclasses
    finally:
        if sys.modules.get("inspect") is stand_in:
            del sys.modules["inspect"]
    return dataclasses


# --------------------------------------------------------------------------- modules

SYS_PATH_KEY = "\0sys.path"
"""The module table's record of ``sys.path``: (entry, its folder, the folder's mtime_ns)."""


class KeptLoader(SourceFileLoader):
    """The usual loader of a source module, whose code comes from the module table."""

    def get_code(self, fullname: str) -> Any:
        entry = _modules.get(fullname)
        if entry is not None and entry[0] == self.path:
            data = _module_code(fullname, entry)
            try:
                code = marshal.loads(data) if data is not None else None  # noqa: S302 (see _load)
            except (EOFError, ValueError, TypeError):
                code = None
            if type(code) is type(_load.__code__):
                return code
        return super().get_code(fullname)


class KeptModules:
    """A ``sys.meta_path`` finder: source modules from the module table.

    A module inside a package is served when its file is in the folder the
    package looks in (``path``, the package's ``__path__``); a top-level one
    when the ``sys.path`` entry it was found under, and every entry before it,
    are what they were (same folders, same modification times: no file came or
    went there, so the usual search would find the same file first). Either way
    the source file must still have the size and modification time its code was
    compiled from. Anything else is left to the usual finders.
    """

    @staticmethod
    def find_spec(name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        entry = _modules.get(name)
        if entry is None or _imp.is_builtin(name) or _imp.is_frozen(name):
            return None  # those finders come before the path's (and -X frozen_modules=off)
        try:
            origin, size, mtime_ns, cached, package, _, _, root = entry
            folder = os.path.dirname(origin)
            if path is None:
                if root not in _fresh_roots:
                    return None
            elif (os.path.dirname(folder) if package else folder) not in path:
                return None  # not where the parent package looks for it
            info = os.stat(origin)
        except (OSError, TypeError, ValueError):
            return None
        if info.st_size != size or info.st_mtime_ns != mtime_ns:
            return None  # the source changed: the usual import, and kept again at the end
        spec = ModuleSpec(name, KeptLoader(name, origin), origin=origin, is_package=package)
        spec.has_location = True
        spec.cached = cached
        if package:
            spec.submodule_search_locations = [folder]
        return spec


def _sys_path_record() -> tuple[tuple[str, str, int], ...]:
    """Each ``sys.path`` entry with its folder and the folder's mtime_ns (-1: none)."""
    record = []
    for entry in sys.path:
        if type(entry) is not str:
            continue
        folder = os.path.abspath(entry or os.curdir)
        try:
            mtime_ns = os.stat(folder).st_mtime_ns
        except OSError:
            mtime_ns = -1
        record.append((entry, folder, mtime_ns))
    return tuple(record)


def _fresh(saved: Any, now: tuple[tuple[str, str, int], ...]) -> frozenset[str]:
    """The ``sys.path`` entries that, with every entry before them, are as ``saved`` says."""
    fresh = []
    if isinstance(saved, tuple):
        for old, new in zip(saved, now, strict=False):  # a longer sys.path: its head counts
            if old != new:
                break
            fresh.append(new[0])
    return frozenset(fresh)


def _root(name: str, origin: str, package: bool) -> str | None:
    """The ``sys.path`` entry a top-level module's file was found under (None for others)."""
    if "." in name:
        return None
    folder = os.path.dirname(os.path.dirname(origin) if package else origin)
    for entry, where, _ in _record:
        if where == folder:
            return entry
    return None


def _module_file(cache_dir: str, road: str) -> str:
    optimized = f".opt-{sys.flags.optimize}" if sys.flags.optimize else ""
    tag = sys.implementation.cache_tag
    return os.path.join(cache_dir, f"{MODULE_FILE_PREFIX}-{road}-{tag}{optimized}.marshal")


def _keep_modules() -> bool:
    """Put the code of source modules imported the usual way into the table."""
    changed = False
    if _modules.get(SYS_PATH_KEY) != _record:
        # sys.path is no longer what the table's top-level modules were found on: keep
        # those whose entry (and all before it) did not change, and what this run imports
        for name in [k for k, v in _modules.items() if k != SYS_PATH_KEY and "." not in k]:
            if _modules[name][7] not in _fresh_roots:
                del _modules[name]
        _modules[SYS_PATH_KEY] = _record
        changed = True
    for name, module in list(sys.modules.items()):
        spec: Any = getattr(module, "__spec__", None)
        loader = getattr(spec, "loader", None)
        origin = getattr(spec, "origin", None)
        if type(loader) is not SourceFileLoader or type(origin) is not str:
            continue  # served from the table already, or not a source module
        package = spec.submodule_search_locations is not None
        root = _root(name, origin, package)
        if "." not in name and root is None:
            continue  # a top-level module from outside sys.path (a script, a finder's)
        try:
            before = os.stat(origin)
            known = _modules.get(name)
            if known is not None and known[:3] == (origin, before.st_size, before.st_mtime_ns):
                continue  # imported before the table was read (the launcher's own modules)
            code = loader.get_code(name)
            after = os.stat(origin)
        except (OSError, ImportError, SyntaxError, ValueError):
            continue
        if code is None or (before.st_size, before.st_mtime_ns) != (
            after.st_size,
            after.st_mtime_ns,
        ):
            continue
        data = marshal.dumps(code)
        _modules[name] = (
            origin,
            after.st_size,
            after.st_mtime_ns,
            spec.cached,
            package,
            0,
            len(data),
            root,
        )
        _new_code[name] = data
        changed = True
    return changed


def _read_modules(path: str) -> tuple[dict[str, Any], int | None, int]:
    """The module table at ``path``: its index, the file open, where the code starts.

    The file is the header, the bytecode magic number, the index's length (8 bytes),
    the marshalled index, then every module's marshalled code one after the other:
    a command reads the index, then only the code of the modules it imports (a whole
    table read and copied at once costs a ``check`` some thousand fresh memory pages).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return {}, None, 0
    try:
        size = os.fstat(fd).st_size
        head = os.pread(fd, len(MODULE_HEADER) + 12, 0)
        if head[: len(MODULE_HEADER)] != MODULE_HEADER or head[-12:-8] != _magic():
            raise ValueError("not a module table")
        length = int.from_bytes(head[-8:], "little")
        if len(head) + length > size:
            raise ValueError("an index longer than the file")
        raw = os.pread(fd, length, len(head))
        # trusted as Python trusts __pycache__: a private file in the user's own state
        index = marshal.loads(raw)  # noqa: S302
        if len(raw) != length or not isinstance(index, dict):
            raise ValueError("a short or strange module table")
        record = index.pop(SYS_PATH_KEY, None)
        if not all(type(k) is str and _entry_shape(e) for k, e in index.items()):
            raise ValueError("an entry of another shape")
        if size != len(head) + length + sum(e[6] for e in index.values()):
            raise ValueError("a module table cut short (or grown)")
    except (OSError, EOFError, ValueError, TypeError):
        os.close(fd)
        return {}, None, 0
    if record is not None:
        index[SYS_PATH_KEY] = record
    return index, fd, len(head) + length


def _entry_shape(entry: Any) -> bool:
    """Whether ``entry`` is an index entry as :func:`_write_modules` writes them."""
    return (
        type(entry) is tuple
        and len(entry) == 8
        and type(entry[0]) is str
        and type(entry[1]) is int
        and type(entry[2]) is int
        and type(entry[5]) is int
        and type(entry[6]) is int
        and entry[5] >= 0
        and entry[6] >= 0
    )


def _module_code(name: str, entry: Any) -> bytes | None:
    """The marshalled code of ``name`` (its ``entry`` in the index), or None."""
    fresh = _new_code.get(name)
    if fresh is not None:
        return fresh
    if _modules_fd is None:
        return None
    try:
        offset, length = entry[5], entry[6]
        data = os.pread(_modules_fd, length, _code_start + offset)
    except (OSError, TypeError, ValueError, OverflowError):
        return None
    return data if len(data) == length else None


def _write_modules(path: str) -> None:
    """Write the module table (the index, then the code of every module in it)."""
    index: dict[str, Any] = {}
    code: list[bytes] = []
    offset = 0
    for name, entry in _modules.items():
        if name == SYS_PATH_KEY:
            index[name] = entry
            continue
        data = _module_code(name, entry)
        if data is None:
            continue  # unreadable: left out, and kept again when next imported
        index[name] = (*entry[:5], offset, len(data), entry[7])
        code.append(data)
        offset += len(data)
    raw = marshal.dumps(index)
    _write(path, MODULE_HEADER, _magic(), len(raw).to_bytes(8, "little"), raw, *code)


def install(cache_dir: str, *, road: str = "other") -> None:
    """Use (and keep) the tables in ``cache_dir``; call before modules define dataclasses.

    From here on, source modules are served from the module table of ``road``
    (a name for what the command imports: ``check``, ``verify``, ...; each road
    has its own tables, so a ``check`` never reads the code of the TUI's modules
    nor of its dataclasses).
    """
    global _path, _table, _modules, _modules_path, _modules_fd, _code_start, _record
    global _fresh_roots
    _modules_path = _module_file(cache_dir, road)
    if _modules_fd is not None:  # installed again (tests): the table read before is done with
        os.close(_modules_fd)
    _new_code.clear()
    _modules, _modules_fd, _code_start = _read_modules(_modules_path)
    _record = _sys_path_record()
    _fresh_roots = _fresh(_modules.get(SYS_PATH_KEY), _record)
    if KeptModules not in sys.meta_path:
        sys.meta_path.insert(0, KeptModules)  # first: dataclasses and what it imports too

    dataclasses = _import_dataclasses()
    _path = os.path.join(cache_dir, f"{FILE_PREFIX}-{road}-{sys.implementation.cache_tag}.marshal")
    _table = _load(_path)
    dataclasses.exec = _exec


def uninstall() -> None:
    """Give ``dataclasses`` the built-in ``exec`` back and forget the tables (tests)."""
    global _path, _dirty, _modules_path, _modules_fd
    import dataclasses

    dataclasses.__dict__.pop("exec", None)
    _table.clear()
    _used.clear()
    _path, _dirty = None, False
    _modules.clear()
    _new_code.clear()
    _modules_path = None
    if _modules_fd is not None:
        os.close(_modules_fd)
        _modules_fd = None
    if KeptModules in sys.meta_path:
        sys.meta_path.remove(KeptModules)


def save() -> None:
    """Write the tables if this run compiled or imported something new (a failure costs
    the next run only)."""
    global _dirty
    if _modules_path is not None and _keep_modules():
        if len(_modules) > MAX_MODULES:
            kept = {k: _modules[k] for k in _modules if k in sys.modules or k == SYS_PATH_KEY}
            _modules.clear()
            _modules.update(kept)
        _write_modules(_modules_path)
    if not _dirty or _path is None:
        return
    _dirty = False
    table = _table if len(_table) <= MAX_ENTRIES else {k: _table[k] for k in _used}
    _write(_path, HEADER, _magic(), marshal.dumps(table))
