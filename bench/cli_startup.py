"""Wall time of ``labrunner --help`` and ``labrunner list`` (target: < 300 ms each).

Measured as whole processes, the way a learner or a CI job starts them,
against the bundled workshop, with an isolated HOME and state directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import Figure, median_ms, report, timed

LABRUNNER = str(Path(sys.executable).parent / "labrunner")


def _env(home: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HOME=home,
        LABRUNNER_STATE_DIR=os.path.join(home, "state"),
        KUBECONFIG=os.path.join(home, "none"),
    )
    return env


def run(repeat: int = 15) -> list[Figure]:
    """Time the two commands."""
    figures = []
    with tempfile.TemporaryDirectory() as home:
        env = _env(home)
        for args in (["--help"], ["list"]):

            def call(args: list[str] = args) -> None:
                subprocess.run([LABRUNNER, *args], env=env, stdout=subprocess.DEVNULL, check=True)

            call()
            samples = timed(call, repeat)
            figures.append(
                Figure(
                    f"labrunner {' '.join(args)} wall time, median",
                    median_ms(samples),
                    "ms",
                    "< 300 ms",
                )
            )
    return figures


def main() -> None:
    """Print the figures."""
    report(run())


if __name__ == "__main__":
    main()
