"""Lab services the runner starts again: their processes, their output, their end.

A lab's step starts a background helper (a local mTLS server, a
``kubectl port-forward``, ``istioctl dashboard``) in the lab shell, as the
learner would. When that shell is gone (the learner quit and came back, or
``verify --from`` runs in a new process) and a later step needs the helper,
the engine starts it again with the lab's declared ``start`` command. That
process is ours: it runs in its own session, so stopping it reaches whatever
it started, its last lines of output are kept (to say why it failed), and it
is stopped and reaped when the lab run ends, or at interpreter exit at the
latest.

``stop_process_group`` is the one place that ends such a process tree:
SIGTERM to the session, a short grace, SIGKILL to what is left, and a wait
that reaps the leader (and, when labrunner is a child subreaper, any member
that was handed to it).
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import os
import signal
import threading
import time
import weakref
from collections import deque
from collections.abc import Mapping
from pathlib import Path

from labrunner import proctree
from labrunner.ansi import strip_ansi
from labrunner.procs import kill_group
from labrunner.redact import redact

TYPE_CHECKING = False  # as typing's, without importing typing (a start-up cost)
if TYPE_CHECKING:
    import subprocess

TAIL_LINES = 20
STOP_GRACE = 2.0


class ServiceState(enum.Enum):
    """Where a lab service stands."""

    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    FAILED = "failed"


def stop_process_group(proc: subprocess.Popen[bytes], *, grace: float = STOP_GRACE) -> None:
    """End ``proc`` and everything in its session (it was started with a session of its own).

    SIGTERM first, so a server can close cleanly; SIGKILL after ``grace``
    seconds to every process still in the session; then reap.
    """
    import subprocess  # a run that starts no service never needs it (start-up speed)

    sid = proc.pid
    kill_group(sid, signal.SIGTERM)
    end = time.monotonic() + grace
    while time.monotonic() < end:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(0.02)
        if not proctree.session_pids(sid, mine=True):
            break
    kill_group(sid, signal.SIGKILL)
    for pid in proctree.session_pids(sid, mine=True):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()
    # Members handed to us as a child subreaper are our children now: reap them too.
    while True:
        try:
            pid, _ = os.waitpid(-sid, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break


_running: weakref.WeakSet[ServiceProcess] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for service in list(_running):
        service.stop()


class ServiceProcess:
    """One service process the runner started, and the last lines it printed."""

    def __init__(self, command: str, *, env: Mapping[str, str], cwd: Path) -> None:
        self.command = command
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        import subprocess  # here, not at the top: only a run that starts a service needs it

        proctree.become_subreaper()  # what the service leaves behind comes back to us
        self.proc = subprocess.Popen(
            ["bash", "-c", command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
        # it carries the lab shell's marker: keep the orphan reaper off its exit status
        proctree.claim(self.proc.pid)
        self._stopped = False
        self._lock = threading.Lock()
        _running.add(self)
        self._reader = threading.Thread(
            target=self._read, name=f"labrunner-service-{self.proc.pid}", daemon=True
        )
        self._reader.start()

    def _read(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        with stream:
            for raw in iter(stream.readline, b""):
                text = strip_ansi(raw.decode("utf-8", "replace")).rstrip("\r\n")
                self.tail.append(text[:500])

    @property
    def pid(self) -> int:
        """The process id of the start command."""
        return self.proc.pid

    @property
    def exit_code(self) -> int | None:
        """The start command's exit status once it ended (a daemonizing start ends at once)."""
        code = self.proc.poll()
        if code is not None:
            proctree.release(self.proc.pid)
        return code

    def lines(self, count: int = 5) -> tuple[str, ...]:
        """Its last ``count`` lines of output, redacted."""
        return tuple(redact(line) for line in list(self.tail)[-count:])

    def stop(self) -> None:
        """Stop it and everything it started; safe to call twice."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        stop_process_group(self.proc)
        proctree.release(self.proc.pid)
        self._reader.join(1.0)
        _running.discard(self)
