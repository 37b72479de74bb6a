"""Compiled code for the methods ``dataclasses`` writes, kept between runs.

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
"""

from __future__ import annotations

import marshal
import os
import sys
from typing import Any

FILE_PREFIX = "dataclass-code"
HEADER = b"labrunner dataclass code 1\n"
EVAL_PREFIX = "\0eval\0"
"""Heads the key of an expression compiled by :func:`compiled` (no Python source starts so)."""
MAX_ENTRIES = 2000
"""A table grown past this (old labrunner versions' methods) starts again from this run's."""

_table: dict[str, Any] = {}
_used: set[str] = set()
_path: str | None = None
_dirty = False
misses = 0
"""Sources compiled in this process (none in a run after a run of the same code)."""


def _magic() -> bytes:
    external = sys.modules.get("_frozen_importlib_external")
    magic = getattr(external, "MAGIC_NUMBER", None)
    if isinstance(magic, bytes):
        return magic
    from importlib.util import MAGIC_NUMBER

    return MAGIC_NUMBER


def _load(path: str) -> dict[str, Any]:
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


def install(cache_dir: str) -> None:
    """Use (and keep) the table in ``cache_dir``; call before modules define dataclasses."""
    global _path, _table
    dataclasses = _import_dataclasses()

    _path = os.path.join(cache_dir, f"{FILE_PREFIX}-{sys.implementation.cache_tag}.marshal")
    _table = _load(_path)
    dataclasses.exec = _exec


def uninstall() -> None:
    """Give ``dataclasses`` the built-in ``exec`` back (tests)."""
    global _path, _dirty
    import dataclasses

    dataclasses.__dict__.pop("exec", None)
    _table.clear()
    _used.clear()
    _path, _dirty = None, False


def save() -> None:
    """Write the table if this run compiled something new (a failure costs the next run only)."""
    global _dirty
    if not _dirty or _path is None:
        return
    _dirty = False
    table = _table if len(_table) <= MAX_ENTRIES else {k: _table[k] for k in _used}
    temp = f"{_path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(_path), mode=0o700, exist_ok=True)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "wb") as handle:
            handle.write(HEADER + _magic())
            marshal.dump(table, handle)
        os.replace(temp, _path)
    except (OSError, ValueError):
        try:
            os.unlink(temp)
        except OSError:
            pass
