"""Round trip of one command through the persistent lab shell (target: median < 5 ms).

A check-heavy lab runs hundreds of short commands; the framing (sentinel,
state save, PTY read) must cost next to nothing next to the command itself.
"""

from __future__ import annotations

import os
import tempfile

from _common import Figure, median_ms, p95_ms, report, timed

from labrunner.shell import Shell


def run(n: int = 500) -> list[Figure]:
    """Measure ``true`` round trips."""
    with tempfile.TemporaryDirectory() as tmp, Shell(env=dict(os.environ), cwd=tmp) as shell:
        for _ in range(20):
            shell.run("true", timeout=5)
        samples = timed(lambda: shell.run("true", timeout=5), n)
    return [
        Figure("shell round trip (true), median", median_ms(samples), "ms", "< 5 ms"),
        Figure("shell round trip (true), p95", p95_ms(samples), "ms"),
    ]


def main() -> None:
    """Print the figures."""
    report(run())


if __name__ == "__main__":
    main()
