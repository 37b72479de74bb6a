"""Whole-request deadlines: act (shut a socket down) when a deadline passes.

Socket timeouts bound each *operation*, not a request: a server that
trickles its answer one byte a second never lets a single ``recv`` time
out, so a response of a few hundred bytes would hold a check for minutes.
A request that must end by a deadline (a check's remaining budget, say)
arms an alarm here with an action that shuts its socket down; the blocked
read then returns at once and the caller reports a timeout.

One daemon thread serves every alarm of the process, kept in a heap, so
arming costs a lock and a heap push rather than a thread per request; the
thread ends as soon as no alarm is armed.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

LINGER = 1.0
"""How long the watchdog thread waits for the next alarm before it ends."""


class Alarm:
    """One armed deadline; ``disarm`` it when the request is over."""

    __slots__ = ("_action", "_lock", "_watchdog", "fired", "when")

    def __init__(self, when: float, action: Callable[[], None], watchdog: _Watchdog) -> None:
        self.when = when
        self._action: Callable[[], None] | None = action
        self._lock = threading.Lock()
        self._watchdog = watchdog
        self.fired = False

    def _take(self) -> Callable[[], None] | None:
        with self._lock:
            action, self._action = self._action, None
            return action

    def disarm(self) -> None:
        """Cancel the action (no-op once it ran)."""
        if self._take() is not None:
            self._watchdog.done()

    def _fire(self) -> None:
        action = self._take()
        if action is None:
            return
        self.fired = True
        self._watchdog.done()
        try:
            action()
        except Exception:  # noqa: S110 - an alarm's action is best effort (a closed socket)
            pass

    def __enter__(self) -> Alarm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.disarm()


class _Watchdog:
    """One thread for every alarm; it ends a moment after the last alarm, and comes back on
    demand, so a process that makes no request holds no thread."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Alarm]] = []
        self._cond = threading.Condition()
        self._counter = itertools.count()
        self._thread: threading.Thread | None = None
        self._armed = 0

    def arm(self, when: float, action: Callable[[], None]) -> Alarm:
        alarm = Alarm(when, action, self)
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._counter), alarm))
            self._armed += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="labrunner-deadlines", daemon=True
                )
                self._thread.start()
            elif self._heap[0][2] is alarm:
                self._cond.notify()
        return alarm

    def done(self) -> None:
        """One alarm was disarmed or fired."""
        with self._cond:
            self._armed -= 1
            if self._armed == 0:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._armed == 0:
                    self._heap.clear()  # only disarmed alarms are left
                    # a check polls: stay a moment for the next request rather than pay
                    # for a new thread each time
                    self._cond.wait(LINGER)
                    if self._armed == 0:
                        self._thread = None
                        return
                    continue
                when, _, alarm = self._heap[0]
                delay = when - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)
            alarm._fire()


_WATCHDOG = _Watchdog()


def arm(when: float, action: Callable[[], None]) -> Alarm:
    """Run ``action`` (from the watchdog thread) at ``when`` (``time.monotonic()``) unless
    the returned alarm is disarmed first."""
    return _WATCHDOG.arm(when, action)
