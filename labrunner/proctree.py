"""The processes a lab run starts, found and ended wherever they went.

Lab commands detach what they start: ``setsid``, ``nohup``, ``disown``,
``bash -c '… &'``, a daemon's double fork. Killing the lab shell's session and
its descendants misses those, and a labrunner killed with SIGKILL kills
nothing at all. Three mechanisms close the gaps (Linux; elsewhere the
functions find nothing and do no harm):

- **A marker.** Every lab shell exports ``LABRUNNER_SHELL=<id>``; whatever it
  starts inherits it, detached or not, so :func:`marked` finds a shell's
  processes by reading ``/proc/PID/environ`` (this user's processes only).
- **A subreaper.** While a run is on, labrunner is a child subreaper
  (``PR_SET_CHILD_SUBREAPER``): an orphan is re-parented to labrunner rather
  than to init. A background thread reaps the orphans it adopted when they
  exit — a zombie still answers ``kill -0``, so a lab checking its own server
  by pid would think it still ran — and never waits on a child labrunner
  started itself (those are claimed with :func:`owned`), whose exit status
  belongs to the code that started it.
- **Owner records.** A private directory records its owner's pid and start
  time (:func:`write_owner`); the next labrunner reaps the directories whose
  owner is dead (:func:`sweep`): it kills the processes marked with the shells
  that lived there, and those left in their sessions, then removes the files.
  A directory whose owner still runs — a TUI beside a ``verify`` — is never
  touched.

Services that must outlive one command but not the run (issue: lab services)
use the same pieces: a marker to find them, :func:`end` to stop them.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

MARKER = "LABRUNNER_SHELL"
"""The environment variable every lab shell exports; its value is the shell's id."""
OWNER_FILE = "owner"
SESSION_FILE = "session"
"""In a shell's private folder: its bash's pid and start time (the session it leads)."""
SHELL_DIR = r"(?:labrunner-)?shell-([0-9a-f]{8,64})"
"""A shell's private folder; its group is the shell's id (compiled when first used)."""
PRIVATE_PREFIXES = ("labrunner-run-", "labrunner-shell-")
REAP_INTERVAL = 0.25
END_ROUNDS = 50

_PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True, slots=True)
class ProcInfo:
    """One line of the process table (from ``/proc/PID/stat``)."""

    pid: int
    state: str
    ppid: int
    pgrp: int
    sid: int
    tty: int
    start: int
    """Start time in clock ticks since boot: with the pid, it names a process for good."""

    @property
    def zombie(self) -> bool:
        """True for a process that has exited and waits to be reaped."""
        return self.state in ("Z", "X")


def default_signals() -> None:
    """In a child about to exec: give it the signal dispositions a terminal's shell has.

    A labrunner started as a background job of a script (``labrunner verify &``) or
    under ``nohup`` inherits SIGINT, SIGQUIT or SIGHUP ignored, and ignored signals
    stay ignored across ``exec``: the lab shell's commands could then neither trap
    Ctrl-C nor be interrupted by it, so cancelling a step would always escalate to
    SIGKILL. Blocked signals are unblocked for the same reason. Python itself
    ignores SIGPIPE and SIGXFSZ (as ``subprocess``'s ``restore_signals`` undoes):
    left so, ``yes | head -1`` in a lab would say "Broken pipe" and exit 1 rather
    than end quietly with 141, as it does in a terminal.
    """
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGTERM, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())


def _read_proc(path: str, *, whole: bool = True) -> bytes | None:
    """A /proc file's bytes (without ``whole``, only its first 4 KiB, which hold all of a
    ``stat`` line), or None when it is gone. Raw descriptors: a sweep reads one file
    per process, and a file object per read cost the sweep twice the time."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunks = [os.read(fd, 4096)]
        while whole and chunks[-1]:
            chunks.append(os.read(fd, 65536))
    except OSError:
        return None
    finally:
        os.close(fd)
    return b"".join(chunks)


def read_stat(pid: int) -> ProcInfo | None:
    """The process table entry of ``pid``, or None when it is gone."""
    data = _read_proc(f"/proc/{pid}/stat", whole=False)
    if data is None:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    if len(fields) < 20:
        return None
    return ProcInfo(
        pid=pid,
        state=fields[0].decode("ascii", "replace"),
        ppid=int(fields[1]),
        pgrp=int(fields[2]),
        sid=int(fields[3]),
        tty=int(fields[4]),
        start=int(fields[19]),
    )


def table(below: int | None = None) -> dict[int, ProcInfo]:
    """Every process, by pid; with ``below``, only that process and its descendants.

    The part below a process is found from the kernel's children lists, a few
    reads for a lab's handful of processes where the whole table is three per
    process on the machine (hundreds on a desktop). Where the kernel keeps no
    children lists, it is the whole table.
    """
    if below is not None:
        tree = _subtree(below)
        if tree is not None:
            return tree
    out: dict[int, ProcInfo] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    for entry in entries:
        if entry.isdigit():
            info = read_stat(int(entry))
            if info is not None:
                out[info.pid] = info
    return out


def own_table() -> dict[int, ProcInfo]:
    """The part of the process table that holds what this process started, directly or not.

    While this process is a subreaper, everything it started is below it, detached
    or not (an orphan is re-parented to it), so that part is read; otherwise the
    whole table, where a detached process may be anywhere.
    """
    return table(below=os.getpid() if _subreaper else None)


def _subtree(root: int) -> dict[int, ProcInfo] | None:
    """``root`` and its descendants, or None where the kernel keeps no children lists."""
    if not _has_children_lists():
        return None
    out: dict[int, ProcInfo] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        info = read_stat(pid)
        if info is None or pid in out:
            continue
        out[pid] = info
        todo.extend(child for child in _children(pid) if child not in out)
    return out


_children_lists: bool | None = None


def _has_children_lists() -> bool:
    """True where ``/proc/PID/task/TID/children`` exists (Linux with CONFIG_PROC_CHILDREN)."""
    global _children_lists
    if _children_lists is None:
        pid = os.getpid()
        _children_lists = os.path.exists(f"/proc/{pid}/task/{pid}/children")
    return _children_lists


def start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), or None when it is gone."""
    info = read_stat(pid)
    return info.start if info is not None else None


def is_running(pid: int, start: int | None = None) -> bool:
    """True while ``pid`` runs (not a zombie) and, if given, started at ``start``."""
    info = read_stat(pid)
    if info is None or info.zombie:
        return False
    return start is None or info.start == start


def descendants(procs: dict[int, ProcInfo], roots: Iterable[int]) -> set[int]:
    """Every process below ``roots`` in the parent tree (the roots excluded)."""
    children: dict[int, list[int]] = {}
    for info in procs.values():
        children.setdefault(info.ppid, []).append(info.pid)
    out: set[int] = set()
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def in_session(procs: dict[int, ProcInfo], sid: int, *, since: int = 0) -> set[int]:
    """Live processes of session ``sid`` started at or after ``since`` (clock ticks)."""
    return {p.pid for p in procs.values() if p.sid == sid and not p.zombie and p.start >= since}


def session_pids(sid: int, *, mine: bool = False) -> list[int]:
    """Every live process whose session id is ``sid``; ``mine`` says this process started
    the session (only :func:`own_table` is read)."""
    return sorted(in_session(own_table() if mine else table(), sid))


def _environ_has(pid: int, needles: Collection[bytes]) -> bool:
    data = _read_proc(f"/proc/{pid}/environ")
    if data is None:
        return False
    data = b"\0" + data
    return any(needle in data for needle in needles)


def _needles(marks: Iterable[str]) -> list[bytes]:
    return [f"\0{MARKER}={mark}\0".encode() for mark in marks]


def marked(
    marks: Collection[str], procs: dict[int, ProcInfo] | None = None, *, mine: bool = False
) -> set[int]:
    """Live processes of this user whose environment carries one of ``marks``.

    With ``mine`` (the marks of this process's own shells) and while this
    process is a subreaper, whatever those shells started is below it in the
    process tree, detached or not, so only that part of the table is read;
    otherwise every process of this user is (a dead run's leftovers were
    re-parented elsewhere).
    """
    if not marks:
        return set()
    needles = _needles(marks)
    uid = os.getuid()
    me = os.getpid()
    procs = procs if procs is not None else table()
    below = descendants(procs, [me]) if mine and _subreaper else None
    out = set()
    for info in procs.values():
        if info.zombie or info.pid == me or (below is not None and info.pid not in below):
            continue
        try:
            if os.stat(f"/proc/{info.pid}").st_uid != uid:
                continue
        except OSError:
            continue
        if _environ_has(info.pid, needles):
            out.add(info.pid)
    return out


def kill(pids: Iterable[int], sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to each of ``pids``; ignore the ones that are gone."""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def end(
    find: Callable[[dict[int, ProcInfo]], set[int]],
    *,
    rounds: int = END_ROUNDS,
    mine: bool = False,
) -> int:
    """SIGKILL what ``find`` names in the process table until it names nothing alive.

    ``find`` is asked again after each round, so a child forked while its parent
    was being killed is found in the next one. Returns how many were killed.
    Orphans this process adopted are reaped before it returns. With ``mine``
    (``find`` looks for what this process's own shells started), ``find`` gets
    :func:`own_table` rather than the whole table.
    """
    me = os.getpid()
    killed: set[int] = set()
    adopted: dict[int, int] = {}
    for _ in range(rounds):
        procs = own_table() if mine else table()
        targets = {pid for pid in find(procs) if pid != me and pid in procs}
        targets = {pid for pid in targets if not procs[pid].zombie}
        if not targets:
            break
        kill(targets)
        killed |= targets
        adopted.update({pid: procs[pid].start for pid in targets if procs[pid].ppid == me})
        _wait_gone(targets)
    _reap(adopted)
    return len(killed)


def _reap(children: dict[int, int]) -> None:
    """Wait on exited children of this process that no code here has claimed."""
    me = os.getpid()
    for pid, start in children.items():
        with _lock:
            if pid in _owned:
                continue
        info = read_stat(pid)
        if info is None or info.start != start or info.ppid != me or not info.zombie:
            continue
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        with _lock:
            _adopted.pop(pid, None)


def _wait_gone(pids: set[int], limit: float = 1.0) -> None:
    """Until each of ``pids`` is dead (a zombie counts), at most ``limit`` seconds.

    Waits on pidfds, which become readable when their process exits, where
    the kernel has them; else polls ``/proc``.
    """
    end_at = time.monotonic() + limit
    fds: list[int] = []
    pending = set(pids)
    if hasattr(os, "pidfd_open"):
        for pid in pids:
            try:
                fds.append(os.pidfd_open(pid))
            except OSError:  # gone already, or no pidfds here
                pass
        pending = {pid for pid in pending if is_running(pid)}
    try:
        if fds and pending:
            import select  # lazy: only a kill waits here

            poller = select.poll()
            for fd in fds:
                poller.register(fd, select.POLLIN)
            open_fds = set(fds)
            while open_fds and time.monotonic() < end_at:
                left = max(end_at - time.monotonic(), 0.0)
                for fd, _ in poller.poll(left * 1000):
                    poller.unregister(fd)
                    open_fds.discard(fd)
            return
        pause = threading.Event()
        while pending and time.monotonic() < end_at:
            pending = {pid for pid in pending if is_running(pid)}
            if pending:
                pause.wait(0.002)
    finally:
        for fd in fds:
            os.close(fd)


# --------------------------------------------------------------------------- terminal reads

_READ_SYSCALLS = {
    # read, pread64, readv, preadv, preadv2
    "x86_64": frozenset({0, 17, 19, 295, 327}),
    # the generic table (arm64, riscv64, loongarch64)
    "aarch64": frozenset({63, 67, 65, 69, 286}),
    "arm64": frozenset({63, 67, 65, 69, 286}),
    "riscv64": frozenset({63, 67, 65, 69, 286}),
    "loongarch64": frozenset({63, 67, 65, 69, 286}),
}.get(os.uname().machine, frozenset())


def reading_terminal(pid: int, tty_path: str, tty_number: int) -> bool:
    """True when a thread of ``pid`` is blocked reading the terminal ``tty_path``.

    Read from ``/proc/PID/task/TID/syscall`` (the system call a thread sleeps
    in, and its arguments) and the file its descriptor names: ``tty_path``
    itself, or ``/dev/tty`` in a process whose controlling terminal is
    ``tty_number``. False where ``/proc`` does not say (another user's
    process, an unknown architecture).
    """
    if not _READ_SYSCALLS:
        return False
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/syscall", "rb") as fh:
                fields = fh.read().split()
        except OSError:
            continue
        if len(fields) < 2 or not fields[0].isdigit() or int(fields[0]) not in _READ_SYSCALLS:
            continue
        try:
            fd = int(fields[1], 16)
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except (OSError, ValueError):
            continue
        if target == tty_path:
            return True
        if target == "/dev/tty":
            info = read_stat(pid)
            if info is not None and info.tty == tty_number:
                return True
    return False


# --------------------------------------------------------------------------- subreaper

_lock = threading.Lock()
_owned: set[int] = set()
_adopted: dict[int, int] = {}
"""Adopted orphans: pid → start time (a pid number is reused; the pair is not)."""
_sessions: set[int] = set()
"""Sessions of live lab shells: nothing in them is a child labrunner started itself."""
_reaper: threading.Thread | None = None
_subreaper = False


@contextlib.contextmanager
def owned(pid: int) -> Iterator[None]:
    """Mark ``pid`` as a child this process waits on itself while the block runs."""
    with _lock:
        _owned.add(pid)
    try:
        yield
    finally:
        with _lock:
            _owned.discard(pid)


def claim(pid: int) -> None:
    """Mark ``pid`` as a child this process waits on itself (until :func:`release`)."""
    with _lock:
        _owned.add(pid)


def lab_session(sid: int, *, open: bool = True) -> None:
    """Note (or, with ``open=False``, forget) a lab shell's session: a zombie child of
    this process in it is an orphan from the lab, safe to reap even if it was never
    seen alive."""
    with _lock:
        if open:
            _sessions.add(sid)
        else:
            _sessions.discard(sid)


def release(pid: int) -> None:
    """Undo :func:`claim`."""
    with _lock:
        _owned.discard(pid)


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux); idempotent.

    Returns False where the kernel does not offer it. Starts the thread that
    reaps adopted orphans when they exit.
    """
    global _subreaper, _reaper
    with _lock:
        if _subreaper:
            return True
        import ctypes  # lazy: only a run that starts lab shells needs prctl

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            ok = libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
        except (OSError, AttributeError):
            ok = False
        if not ok:
            return False
        _subreaper = True
        _reaper = threading.Thread(target=_reap_loop, name="labrunner-reaper", daemon=True)
        _reaper.start()
    return True


def is_subreaper() -> bool:
    """True once :func:`become_subreaper` succeeded in this process."""
    return _subreaper


def _children(pid: int | None = None) -> set[int]:
    """The children of ``pid`` (this process), from the children lists of its threads
    (a child is listed under the thread that forked it, an orphan under the one the
    kernel re-parented it to)."""
    where = f"/proc/{'self' if pid is None else pid}/task"
    out: set[int] = set()
    try:
        tasks = os.listdir(where)
    except OSError:
        return out
    for tid in tasks:
        data = _read_proc(f"{where}/{tid}/children")
        if data:
            out.update(int(p) for p in data.split())
    return out


def reap_adopted() -> None:
    """One pass: note new children that carry a lab marker; reap adopted ones that exited.

    A child counts as adopted when it was seen alive with a lab shell's marker
    in its environment, or is a zombie in a lab shell's session, and this
    process has not claimed it (see :func:`owned`); only those are waited on,
    so no exit status is taken from the code that started a child itself. An
    orphan that left the lab's session and exited before a pass (a quarter of
    a second apart) saw it stays a zombie until the lab closes.
    """
    children = _children()
    needle = f"\0{MARKER}=".encode()
    me = os.getpid()
    for pid in children:
        with _lock:
            if pid in _owned or pid in _adopted:
                continue
        # asked again on every pass, not remembered: a child caught in the middle of
        # an exec shows no environment for a moment (a handful of children, cheap)
        info = read_stat(pid)
        if info is None or info.ppid != me:
            continue
        if info.zombie:
            with _lock:
                from_lab = info.sid in _sessions
            if from_lab:  # it died before a pass saw it alive, in a lab shell's session
                _reap({pid: info.start})
        elif _environ_has(pid, [needle]):
            with _lock:
                _adopted[pid] = info.start
    with _lock:
        candidates = [(pid, start) for pid, start in _adopted.items() if pid not in _owned]
    for pid, start in candidates:
        info = read_stat(pid)
        if info is None or info.start != start or info.ppid != me:
            with _lock:  # gone, or the number now names another process
                _adopted.pop(pid, None)
            continue
        if info.zombie:
            _reap({pid: start})


def _reap_loop() -> None:
    pause = threading.Event()
    while True:
        pause.wait(REAP_INTERVAL)
        try:
            reap_adopted()
        except Exception:  # noqa: S112 - the reaper must outlive any one odd /proc entry
            continue


# --------------------------------------------------------------------------- owner records


def write_owner(directory: Path) -> None:
    """Record this process (pid and start time) as the owner of ``directory``."""
    pid = os.getpid()
    start = start_time(pid)
    path = directory / OWNER_FILE
    tmp = directory / f".{OWNER_FILE}.tmp"
    tmp.write_text(f"{pid} {start if start is not None else 0}\n", encoding="ascii")
    os.replace(tmp, path)


def write_session(directory: Path, pid: int) -> None:
    """Record ``pid`` (a bash that leads its own session) and its start time in ``directory``."""
    start = start_time(pid)
    (directory / SESSION_FILE).write_text(f"{pid} {start or 0}\n", encoding="ascii")


def _pid_record(path: Path) -> tuple[int, int] | None:
    try:
        pid, start = path.read_text(encoding="ascii").split()
        return int(pid), int(start)
    except (OSError, ValueError):
        return None


def owner_alive(directory: Path) -> bool | None:
    """Whether the owner recorded in ``directory`` still runs; None when there is no record."""
    record = _pid_record(directory / OWNER_FILE)
    if record is None:
        return None
    return is_running(*record)


def _leftovers(directory: Path) -> tuple[set[str], list[tuple[int, int]]]:
    """The shell markers and bash sessions recorded in a private directory."""
    marks: set[str] = set()
    sessions: list[tuple[int, int]] = []
    folders = [directory]
    try:
        folders += [p for p in directory.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        pass
    for folder in folders:
        match = re.fullmatch(SHELL_DIR, folder.name)
        if match:
            marks.add(match.group(1))
        record = _pid_record(folder / SESSION_FILE)
        if record is not None:
            sessions.append(record)
    return marks, sessions


def end_leftovers(directory: Path, *, mine: bool = False) -> int:
    """Kill every process the shells recorded in ``directory`` left behind; ``mine``
    says the shells were this process's own (see :func:`end`)."""
    marks, sessions = _leftovers(directory)

    def find(procs: dict[int, ProcInfo]) -> set[int]:
        found = marked(marks, procs, mine=mine)
        for sid, since in sessions:
            found |= in_session(procs, sid, since=since)
        return found | descendants(procs, found)

    if not marks and not sessions:
        return 0
    return end(find, mine=mine)


def sweep(parent: Path | None = None) -> list[Path]:
    """Reap the private directories in ``parent`` (the temp folder) whose owner is dead.

    Their processes are killed and the directories removed. Directories
    without an owner record (being created right now, or not ours) and those
    whose owner runs are left alone. Returns the directories removed.
    """
    if parent is None:
        import tempfile  # lazy: a caller that knows the folder spares its start-up tempfile

        parent = Path(tempfile.gettempdir())
    uid = os.getuid()
    removed: list[Path] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(PRIVATE_PREFIXES):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat().st_uid != uid:
                continue
        except OSError:
            continue
        directory = Path(entry.path)
        if owner_alive(directory) is not False:
            continue
        end_leftovers(directory)
        import shutil  # lazy: only a dead run's leftovers need it

        shutil.rmtree(directory, ignore_errors=True)
        removed.append(directory)
    return removed
