"""What the robustness tests measure: open files, threads, child processes, memory.

A run that "works" but leaves a socket, a thread or a bash behind will, over a
day of CI or a long workshop in the TUI, run out of something. These helpers
take a snapshot of what this process holds and compare two snapshots.

The fake API server runs in the test process, so its own resources would
blur the picture: it starts a thread per connection and keeps the server end
of every connection open until the client goes away (or, for an injected
stall, until its sleep ends). Snapshots therefore leave out the fake's
threads (named ``fakecluster:PORT`` and ``... (process_request_thread)``) and
the sockets whose *local* port is the fake's port. The client end of each
connection, which belongs to labrunner, is counted.

Nothing here sleeps to wait: ``wait_for`` polls a condition and returns as
soon as it holds, within a bound.
"""

from __future__ import annotations

import gc
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from labrunner.testing.waiting import wait_for


def rss_mb() -> float:
    """This process's resident set size now, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def _socket_local_ports() -> dict[str, int]:
    """inode -> local TCP port, for every TCP socket on the machine."""
    ports: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > 9:
                ports[cols[9]] = int(cols[1].rsplit(":", 1)[1], 16)
    return ports


def open_fds(exclude_port: int | None = None) -> dict[int, str]:
    """This process's open file descriptors and what they point at.

    Sockets whose local port is ``exclude_port`` (the fake server's end) are left out.
    """
    fds: dict[int, str] = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the descriptor listdir itself used, already closed
            continue
    ports = _socket_local_ports() if exclude_port else {}
    kept = {}
    for fd, target in fds.items():
        if target.startswith("socket:[") and ports.get(target[8:-1]) == exclude_port:
            continue
        kept[fd] = target
    return kept


def _left_out(thread: threading.Thread, also: tuple[str, ...]) -> bool:
    """The fake server's threads, and threads the caller expects (by name prefix)."""
    name = thread.name
    return name.startswith(("fakecluster:", *also)) or "process_request_thread" in name


def threads(also: tuple[str, ...] = ()) -> list[str]:
    """Names of this process's live Python threads, the fake server's own left out."""
    return sorted(t.name for t in threading.enumerate() if not _left_out(t, also))


def native_threads(also: tuple[str, ...] = ()) -> int:
    """Kernel tasks of this process (every thread, Python or not), minus the left-out ones."""
    skipped = sum(1 for t in threading.enumerate() if _left_out(t, also))
    return len(os.listdir("/proc/self/task")) - skipped


def descendants(root: int | None = None) -> dict[int, str]:
    """Every live process below ``root`` (default: this one): pid -> state and command line."""
    root = os.getpid() if root is None else root
    parents: dict[int, int] = {}
    info: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        parents[int(entry)] = int(fields[1])
        state = fields[0].decode()
        command = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
        info[int(entry)] = f"[{state}] {command or '?'}"
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = info[pid]
                frontier.append(pid)
    return found


@dataclass(frozen=True)
class Usage:
    """What this process holds at one moment."""

    fds: dict[int, str]
    threads: list[str]
    native_threads: int
    children: dict[int, str]

    @classmethod
    def now(cls, exclude_port: int | None = None, also: tuple[str, ...] = ()) -> Usage:
        """A snapshot: the fake server on ``exclude_port`` and threads named ``also*`` left out."""
        gc.collect()  # a dropped urllib3 pool closes its sockets when it is collected
        return cls(open_fds(exclude_port), threads(also), native_threads(also), descendants())

    def growth(self, later: Usage) -> list[str]:
        """What ``later`` holds that this snapshot did not, one line per item."""
        out = [f"fd {fd} -> {t}" for fd, t in later.fds.items() if self.fds.get(fd) != t]
        extra = list(later.threads)
        for name in self.threads:
            if name in extra:
                extra.remove(name)
        out += [f"thread {name}" for name in extra]
        if later.native_threads > self.native_threads:
            out.append(f"native threads {self.native_threads} -> {later.native_threads}")
        out += [
            f"process {pid} {c}" for pid, c in later.children.items() if pid not in self.children
        ]
        return out


def settles(
    baseline: Usage,
    exclude_port: int | None = None,
    *,
    also: tuple[str, ...] = (),
    timeout: float = 5.0,
) -> list[str]:
    """Wait (bounded) until nothing beyond ``baseline`` is held; returns what is still extra.

    Closing is asynchronous in places (a socket is closed when its pool is
    collected, a killed process must be reaped), so a short bounded wait is
    fair; anything still there after ``timeout`` is a leak.
    """
    extra: list[str] = []

    def clean() -> bool:
        nonlocal extra
        extra = baseline.growth(Usage.now(exclude_port, also))
        return not extra

    wait_for(clean, timeout=timeout, interval=0.05)
    return extra
