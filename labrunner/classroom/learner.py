"""Joining and leaving a class on the learner's machine (``class join``, ``leave``, ``info``).

Joining checks the join file against the class API before it is kept: a
token the API refuses (expired, revoked) or a progress object that is not
there is an error now, not a silent queue that never drains. An API that
cannot be reached is not an error: the learner may be offline at home
tonight and in class tomorrow, so the file is kept, events queue in the
outbox, and the status line says so.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labrunner.classroom import JOIN_FILE, document, joinfile
from labrunner.classroom.names import PROGRESS_KEY
from labrunner.classroom.publisher import (
    LOCK_FILE,
    OUTBOX_FILE,
    Publisher,
    Status,
    describe_failure,
    forget,
    object_path,
    read_outbox,
    start_outbox,
)
from labrunner.cluster.client import Kube
from labrunner.cluster.errors import ClusterError, ErrorKind

CHECK_TIMEOUT = 5.0
SEND_ON_JOIN = 5.0


class JoinRefused(Exception):
    """The class API refused the join file (the message says what to do)."""


@dataclass(frozen=True)
class Joined:
    """What ``join`` did."""

    join: joinfile.Join
    reachable: bool
    problem: str
    outbox: str
    left: str = ""
    """The class left for this one ("" when none, or the same)."""


def _remote(source: Path, join: joinfile.Join) -> tuple[dict[str, Any] | None, str]:
    """The document the class API holds (None when unreachable) and why not."""
    kube: Kube | None = None
    try:
        kube = Kube.connect({"KUBECONFIG": str(source)}, join.context)
        obj = kube.get(object_path(join), timeout=CHECK_TIMEOUT)
    except ClusterError as exc:
        if exc.kind in (ErrorKind.CREDENTIALS, ErrorKind.FORBIDDEN, ErrorKind.NOT_FOUND):
            raise JoinRefused(describe_failure(exc)) from None
        return None, str(exc)
    finally:
        if kube is not None:
            kube.close()
    try:
        return document.decode((obj.get("data") or {}).get(PROGRESS_KEY) or "{}"), ""
    except document.BadDocument:
        return {}, ""


def join(directory: Path, source: Path) -> Joined:
    """Join the class ``source`` names; raises BadJoinFile or JoinRefused."""
    new = joinfile.read(source)
    old: joinfile.Join | None = None
    with contextlib.suppress(joinfile.BadJoinFile):
        old = joinfile.read(directory / JOIN_FILE)
    remote, problem = _remote(source, new)
    left = ""
    if old is not None and (old.class_name, old.learner) != (new.class_name, new.learner):
        left = f"{old.class_name} (as {old.learner})"
    forget(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    joinfile.write(directory / JOIN_FILE, new.kubeconfig)
    outbox = start_outbox(directory, new, remote=remote)
    if remote is not None:
        saved = read_outbox(directory) or {}
        if int(saved.get("seq") or 0) > int(saved.get("acked") or 0):
            sender = Publisher(directory, new)
            sender.flush(SEND_ON_JOIN)
            sender.close(0.0)
    return Joined(new, remote is not None, problem, outbox, left)


def leave(directory: Path) -> joinfile.Join | None:
    """Leave the joined class (its queued events are dropped); the class it was, if any."""
    old: joinfile.Join | None = None
    with contextlib.suppress(joinfile.BadJoinFile):
        old = joinfile.read(directory / JOIN_FILE)
    forget(directory)
    for name in (JOIN_FILE, OUTBOX_FILE, LOCK_FILE):
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()
    return old


def info(directory: Path, *, send: float = 0.0) -> tuple[joinfile.Join, Status] | None:
    """The joined class and how many events wait to be sent (None when not joined).

    With ``send`` > 0, events that wait (queued while the class API was out of
    reach) are sent first, for at most that many seconds; the status then says
    how that went (``online``, or ``offline`` with the problem).
    """
    try:
        join_ = joinfile.read(directory / JOIN_FILE)
    except joinfile.BadJoinFile:
        return None
    saved = read_outbox(directory) or {}
    waiting = max(int(saved.get("seq") or 0) - int(saved.get("acked") or 0), 0)
    if waiting and send > 0:
        sender = Publisher(directory, join_)
        sender.flush(send)
        sender.close(0.0)
        return join_, sender.status()
    return join_, Status(join_.class_name, join_.learner, waiting=waiting)
