"""Run a short-lived process with a hard deadline, and kill all it started.

Verifiers and the doctor shell out to kubectl, istioctl, curl and openssl.
Each such process gets its own session, so a timeout or a cancel can kill the
whole process group (a ``kubectl port-forward`` a script left behind, say),
not just the direct child. Output is captured up to a cap so a runaway tool
cannot exhaust memory.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from labrunner import proctree

DEFAULT_CAP = 4 * 1024 * 1024


@dataclass(frozen=True)
class ProcResult:
    """What a finished (or killed) process left behind."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False
    cancelled: bool = False
    truncated: bool = False

    @property
    def ok(self) -> bool:
        """True when the process exited 0 on its own."""
        return self.returncode == 0 and not self.timed_out and not self.cancelled


class CannotStart(Exception):
    """The program exists but the kernel would not start it (its environment is too big)."""


class ToolNotFound(Exception):
    """The program to run is not installed (not on PATH)."""

    def __init__(self, program: str) -> None:
        super().__init__(f"{program} not found on PATH")
        self.program = program


ARG_STRING_MAX = 128 * 1024
"""The kernel's limit on one argument or ``NAME=value`` string (MAX_ARG_STRLEN)."""


def _too_big(argv: Sequence[str], env: Mapping[str, str] | None) -> CannotStart:
    names = [
        name
        for name, value in (env or os.environ).items()
        if len(os.fsencode(name)) + len(os.fsencode(value)) + 1 >= ARG_STRING_MAX
    ]
    what = (
        f"the variable{'s' if len(names) != 1 else ''} {', '.join('$' + n for n in names)} "
        f"{'are' if len(names) != 1 else 'is'} over the kernel's 128 KiB limit for one value"
        if names
        else "its arguments and environment are over the kernel's limit"
    )
    return CannotStart(f"cannot start {argv[0]}: {what}; keep large data in a file instead")


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the process group led by ``pid``; ignore if it is gone."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    stdin: bytes | None = None,
    cancel: threading.Event | None = None,
    cap: int = DEFAULT_CAP,
) -> ProcResult:
    """Run ``argv`` to completion or until ``timeout`` seconds or ``cancel``.

    On timeout or cancel the process group gets SIGTERM, then SIGKILL after a
    short grace. Raises ToolNotFound when the program does not exist, and
    CannotStart when the kernel refuses its environment (a value over 128 KiB).
    """
    # imported here: a command that runs no process (a `labrunner check` of cluster
    # steps) should not pay for subprocess and selectors at start-up
    import selectors
    import subprocess

    proctree.become_subreaper()  # what the process leaves behind comes back to us
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise ToolNotFound(argv[0]) from exc
    except PermissionError as exc:
        raise ToolNotFound(argv[0]) from exc
    except OSError as exc:
        if exc.errno == errno.E2BIG:
            raise _too_big(argv, env) from None
        raise
    proctree.claim(proc.pid)  # its exit status is ours to read, not the orphan reaper's
    out = bytearray()
    err = bytearray()
    truncated = False
    timed_out = cancelled = False
    assert proc.stdout is not None and proc.stderr is not None
    if stdin is not None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(stdin)
            proc.stdin.close()
        except BrokenPipeError:
            pass
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, out)
    sel.register(proc.stderr, selectors.EVENT_READ, err)
    deadline = start + timeout
    try:
        while sel.get_map():
            now = time.monotonic()
            if cancel is not None and cancel.is_set():
                cancelled = True
                break
            if now >= deadline:
                timed_out = True
                break
            wait = min(deadline - now, 0.1 if cancel is not None else deadline - now)
            for key, _ in sel.select(wait):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                buf: bytearray = key.data
                room = cap - len(buf)
                if room > 0:
                    buf += chunk[:room]
                if len(chunk) > room:
                    truncated = True
        if timed_out or cancelled:
            kill_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(0.5)
            except subprocess.TimeoutExpired:
                pass
            kill_group(proc.pid, signal.SIGKILL)
        else:
            # The direct child closed its pipes; reap it within what is left.
            try:
                proc.wait(max(deadline - time.monotonic(), 0.05))
            except subprocess.TimeoutExpired:
                timed_out = True
            kill_group(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        proctree.release(proc.pid)
        sel.close()
        proc.stdout.close()
        proc.stderr.close()
    return ProcResult(
        argv=tuple(argv),
        returncode=proc.returncode if proc.returncode is not None else -1,
        stdout=out.decode("utf-8", "replace"),
        stderr=err.decode("utf-8", "replace"),
        duration=time.monotonic() - start,
        timed_out=timed_out,
        cancelled=cancelled,
        truncated=truncated,
    )
