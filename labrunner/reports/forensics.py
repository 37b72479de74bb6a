"""``verify --forensics DIR``: one folder of evidence per failed step.

The engine collects what the cluster looked like when a step failed
(``labrunner.verify.forensics``); this sink writes each piece to its own file,
``DIR/<lab>/<step>/events.txt``, ``pods.txt``, ``logs.txt``, ``istioctl-*.txt``
(under ``run-N/`` for ``--repeat``), so a CI job can upload the folder as an
artifact. The text is already redacted and bounded; files are written
atomically and readable only by their owner, like the reports.
"""

from __future__ import annotations

from pathlib import Path

from labrunner.engine import events as ev
from labrunner.fsutil import write_atomic


class ForensicsWriter:
    """An event sink that writes each ``Forensics`` event into ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.run: int | None = None
        self.written: list[Path] = []

    def start_run(self, run: int, runs: int) -> None:
        """Write what follows under ``run-N/`` (only when the labs run several times)."""
        self.run = run if runs > 1 else None

    def __call__(self, event: ev.Event) -> None:
        if not isinstance(event, ev.Forensics):
            return
        base = self.directory if self.run is None else self.directory / f"run-{self.run}"
        folder = base / event.lab_id / event.step_id
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for section in event.sections:
            path = folder / section.name
            write_atomic(path, (section.text.rstrip("\n") + "\n").encode("utf-8"), mode=0o600)
        self.written.append(folder)
