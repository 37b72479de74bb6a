"""One command's round trip: labrunner's persistent lab shell against a new ``bash -c`` per command.

Check-script platforms (Killercoda, Instruqt, istio.io's doc tests) start a
new process for every check or snippet. labrunner sends each command to one
persistent bash per lab run, framed by a sentinel. Both run ``true`` from
this Python process, many times, after a warm-up; ``shell_roundtrip.run()``
supplies labrunner's figures, and the peer's median is attached to its
median.
"""

from __future__ import annotations

import os
import subprocess

from _common import Figure, median_ms, report, timed
from shell_roundtrip import run as shell_run


def spawn_samples(n: int) -> list[float]:
    """Seconds for ``bash -c true`` as a new process, ``n`` times."""
    env = dict(os.environ)

    def once() -> None:
        subprocess.run(["bash", "-c", "true"], env=env, check=True)

    for _ in range(10):
        once()
    return timed(once, n)


def run(n: int = 500) -> list[Figure]:
    """labrunner's shell round trip (median, p95) with the spawn-per-command median as peer."""
    figures = shell_run(n)
    peer = median_ms(spawn_samples(max(50, n // 2)))
    median = figures[0]
    median.peer = peer
    median.note = "peer = subprocess bash -c 'true' per command"
    return figures


def main() -> None:
    """Print the figures."""
    report(run())


if __name__ == "__main__":
    main()
