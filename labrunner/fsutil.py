"""Writing files so they are never seen half-written, and secrets never seen at all.

Progress, reports, certificates and keys all go through ``write_atomic``: the
data goes to a temporary file in the same directory (created 0600 by
``mkstemp``, so a private key is never readable by others even for a moment),
is flushed to disk, gets its final mode, and replaces the target in one
rename; the directory is synced so the rename survives a crash.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
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
