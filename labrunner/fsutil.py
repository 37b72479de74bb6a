"""Writing files so they are never seen half-written, and secrets never seen at all.

Progress, reports, certificates and keys all go through ``write_atomic``: the
data goes to a temporary file in the same directory (created 0600 by
``mkstemp``, so a private key is never readable by others even for a moment),
is flushed to disk, gets its final mode, and replaces the target in one
rename; the directory is synced so the rename survives a crash.

It also has what ``shutil`` and ``tempfile`` would give a run that starts no
process (``labrunner check`` of cluster steps): ``shutil`` imports its
compression modules (bz2, lzma, zlib) and ``tempfile`` imports ``shutil`` and
``random``, some 6 ms of such a command's start-up for one ``which``, one
``mkdtemp`` and one ``rmtree``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

TYPE_CHECKING = False  # as typing's, without importing typing (a start-up cost)
if TYPE_CHECKING:
    from typing import Any

_SHA256: Any = None


def sha256_hex(data: bytes) -> str:
    """``hashlib.sha256(data).hexdigest()``, without loading ``hashlib``.

    ``hashlib`` starts OpenSSL's digests, about 3 ms of a short command's start-up (a
    ``check`` names its files and caches with SHA-256 and needs nothing else of it);
    CPython's own SHA-256 module loads in a fraction of that and gives the same digest.
    """
    global _SHA256
    if _SHA256 is None:
        for name in ("_sha256", "_sha2"):  # CPython 3.11; 3.12 and later
            try:
                _SHA256 = __import__(name).sha256
                break
            except (ImportError, AttributeError):
                continue
        else:
            from hashlib import sha256

            _SHA256 = sha256
    return str(_SHA256(data).hexdigest())


def current_umask() -> int:
    """The process umask, read without changing it (other threads may be creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` in one rename.

    ``mode`` defaults to what a plain ``open()`` would give (0666 less the umask).
    Raises OSError; the temporary file is removed on any failure.
    """
    import tempfile  # lazy: commands that only read (list, check) start without it

    path.parent.mkdir(parents=True, exist_ok=True)
    final_mode = mode if mode is not None else 0o666 & ~current_umask()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, final_mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def which(program: str, path: str | None = None) -> str | None:
    """The file ``program`` names on ``path`` (default: ``$PATH``), as ``shutil.which``
    finds it on POSIX: the first executable regular file; ``program`` itself when it
    names a directory part. None when there is none."""
    if os.path.dirname(program):
        return program if _is_executable(program) else None
    if path is None:
        path = os.environ.get("PATH", os.defpath)
    if not path:
        return None
    seen: set[str] = set()
    for directory in path.split(os.pathsep):
        if directory in seen:
            continue
        seen.add(directory)
        candidate = os.path.join(directory, program)
        if _is_executable(candidate):
            return candidate
    return None


def _is_executable(path: str) -> bool:
    return os.access(path, os.F_OK | os.X_OK) and not os.path.isdir(path)


def temp_root() -> str:
    """The folder for temporary files, as ``tempfile.gettempdir()`` chooses it: the
    first of ``$TMPDIR``, ``$TEMP``, ``$TMP``, /tmp, /var/tmp, /usr/tmp and the current
    folder that is a folder we may write in (tempfile's own answer once it is loaded)."""
    loaded = sys.modules.get("tempfile")
    if loaded is not None:
        return str(loaded.gettempdir())
    candidates = [os.environ.get(name) for name in ("TMPDIR", "TEMP", "TMP")]
    candidates += ["/tmp", "/var/tmp", "/usr/tmp"]
    for candidate in candidates:
        if candidate and os.path.isdir(candidate) and os.access(candidate, os.W_OK | os.X_OK):
            return os.path.abspath(candidate)
    return os.getcwd()


def private_dir(prefix: str) -> Path:
    """A new folder ``<temp_root>/<prefix><random>``, mode 0700 from its first moment (as
    ``tempfile.mkdtemp``). Raises OSError when none can be made."""
    base = temp_root()
    for _ in range(100):
        path = os.path.join(base, prefix + os.urandom(6).hex())
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        os.chmod(path, 0o700)  # whatever the umask took away, as mkdtemp's callers do
        return Path(path)
    raise FileExistsError(f"no free name for a private folder in {base}")


def remove_tree(path: str | os.PathLike[str]) -> None:
    """Remove the folder ``path`` and all it holds, ignoring errors, never following a
    symbolic link out of it (as ``shutil.rmtree(path, ignore_errors=True)``: every name
    is opened and removed relative to its folder's descriptor)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        _empty(fd)
    finally:
        os.close(fd)
    with contextlib.suppress(OSError):
        os.rmdir(path)


def _empty(fd: int) -> None:
    """Remove everything in the folder open as ``fd``."""
    try:
        with os.scandir(fd) as entries:
            items = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
    except OSError:
        return
    for name, is_dir in items:
        if not is_dir:
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=fd)
            continue
        try:
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        except OSError:
            continue
        try:
            _empty(sub)
        finally:
            os.close(sub)
        with contextlib.suppress(OSError):
            os.rmdir(name, dir_fd=fd)


def source_stamp(directory: Path) -> list[list[Any]]:
    """Name, size and modification time of each ``.py`` file in ``directory``, by name.

    What a cache keys on to notice a source checkout's code changing without
    its version changing.
    """
    stamp: list[list[Any]] = []
    try:
        names = sorted(p for p in os.listdir(directory) if p.endswith(".py"))
    except OSError:
        return stamp
    for name in names:
        try:
            info = os.stat(directory / name)
        except OSError:
            continue
        stamp.append([name, info.st_size, info.st_mtime_ns])
    return stamp
