"""The ``labrunner`` console script: answers ``--help`` from a cache, hands the rest to the CLI.

``labrunner --help`` is the first thing a new user types and what scripts run
to probe for labrunner, so it should cost little more than starting Python.
Rendering it needs click and every command module (their docstrings and
options are the help), which costs more than the interpreter itself. The text
click renders is therefore kept in the state directory's cache, with a key line
naming everything it depends on: labrunner's version, the program name, the
terminal width click wraps to, and the size and modification time of the
modules that define the commands (so an edited checkout never shows stale
help). While the key stands, the cached text is written as it is, byte for
byte what click printed; otherwise click renders it, and the result is kept.
A cache that cannot be read or written is ignored.

A plain ``labrunner check LAB [STEP]`` (what CI jobs and other platforms'
check scripts run, once per step), a plain ``labrunner verify`` (the CI smoke
test), a plain ``labrunner list`` and a plain ``labrunner validate`` (an
author's edit-and-lint loop, a CI lint job) skip click too (click and the
``inspect`` module it loads cost some 20 ms): :mod:`labrunner.headless` parses
them and runs the same functions click's ``check``, ``verify``, ``list`` and
``validate`` run. Every other command line goes to :func:`labrunner.cli.main`
untouched.

This module imports only ``os`` and ``sys`` on the ``--help`` path: a test holds it to it.
Every other command line first pauses the cyclic garbage collector for the start-up
(:mod:`labrunner.startup`; the command resumes it when its work begins) and installs
:mod:`labrunner.codecache`, so the modules the command imports and the dataclasses it
defines reuse the code an earlier run of the same command kept (one table per command,
``_road``).
"""

from __future__ import annotations

import os
import sys

HELP_ARGS = (["--help"], ["-h"])
HELP_FILE = "help.txt"
_COMMAND_MODULES = ("cli.py", "classcmd.py", os.path.join("certs", "cli.py"))
"""The modules whose commands and docstrings make up the top-level help."""


def _columns() -> int:
    """The terminal width click wraps help to (as ``shutil.get_terminal_size`` finds it)."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def _cache_dir() -> str:
    """The state directory's cache (as ``labrunner.headless.cache_dir``)."""
    from labrunner.statedir import state_root

    return os.path.join(state_root(), "cache")


def _cache_file() -> str:
    """Where the rendered help is kept (the state directory's cache)."""
    return os.path.join(_cache_dir(), HELP_FILE)


def help_key() -> str:
    """One line naming everything the rendered help depends on."""
    from labrunner import __version__

    here = os.path.dirname(os.path.abspath(__file__))
    stamps = []
    for name in _COMMAND_MODULES:
        try:
            info = os.stat(os.path.join(here, name))
        except OSError:
            stamps.append("-")
            continue
        stamps.append(f"{info.st_size}:{info.st_mtime_ns}")
    return f"labrunner-help {__version__} {sys.argv[0]!r} {_columns()} {' '.join(stamps)}\n"


def cached_help(key: str) -> str | None:
    """The cached help text when its key is ``key``, else None."""
    try:
        with open(_cache_file(), encoding="utf-8") as handle:
            if handle.readline() != key:
                return None
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return None


def _keep_help(key: str, text: str) -> None:
    """Store ``text`` under ``key`` (atomically; a failure only costs the next start)."""
    path = _cache_file()
    temp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w", encoding="utf-8") as handle:
            handle.write(key + text)
        os.replace(temp, path)
    except OSError:
        try:
            os.unlink(temp)
        except OSError:
            pass


def _render_help() -> str:
    """Click's own ``--help`` output, captured."""
    import contextlib
    import io

    from labrunner.cli import main as group

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        group.main(["--help"], standalone_mode=False)
    return out.getvalue()


PLAIN_COMMANDS = ("check", "list", "validate", "verify")
ROADS = (*PLAIN_COMMANDS, "run", "served", "serve", "rehearse", "doctor", "class")
"""Commands whose imports have a module table of their own (the rest share one)."""
TUI_ROADS = ("run", "served")
"""Commands that open the TUI, which resumes the collector once its first screen is up."""


def _road(args: list[str]) -> str:
    """Which module table the command line's imports are kept in: the command's name
    (``check``, ``run``, ``class``...; see labrunner.codecache)."""
    if args[:1] == ["--labs"]:
        args = args[2:]
    elif args[:1] and args[0].startswith("--labs="):
        args = args[1:]
    if not args:
        return "run"  # the TUI
    return args[0] if args[0] in ROADS else "other"


def main() -> None:
    """The console script's entry point."""
    if sys.argv[1:] in HELP_ARGS:
        key = help_key()
        text = cached_help(key)
        if text is None:
            text = _render_help()
            _keep_help(key, text)
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from labrunner import codecache, startup

    startup.pause()
    args = sys.argv[1:]
    road = _road(args)
    codecache.install(_cache_dir(), road=road)
    if args and (args[0] in (*PLAIN_COMMANDS, "--labs") or args[0].startswith("--labs=")):
        # a plain `labrunner check …`, `list …` or `validate …` runs without click (see
        # labrunner.headless, which keeps the code cache on the way out); these return only
        # for other command lines
        from labrunner import headless

        headless.run_plain(args)
    from labrunner.cli import main as cli_main

    if road not in TUI_ROADS:
        startup.resume()  # a class view, a server: long-lived, so collect from here on
    try:
        cli_main()
    finally:
        codecache.save()
