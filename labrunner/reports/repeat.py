"""``verify --repeat N``: how often each step passed, how long it took, how it failed.

A flaky step and a broken one look alike in a single run. Run the labs N
times and the difference shows: a broken step fails N of N with one message,
a flaky one passes most runs and fails with messages that vary, and a slow
one passes with a time-to-pass whose maximum strays far from its median.
``RepeatStats`` is an event sink that keeps, per step and per run, the
outcome, the time and the message; its table goes to the run log and its
data into the JSON report.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from labrunner.durations import format_duration
from labrunner.engine import events as ev
from labrunner.redact import redact
from labrunner.reports.github import cell, summary_head

MAX_MESSAGES = 5
MESSAGE_CHARS = 200


@dataclass
class StepRuns:
    """One step's outcomes over the runs."""

    lab_id: str
    step_id: str
    outcomes: dict[int, str] = field(default_factory=dict)
    times: dict[int, float] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    """Each distinct failure message (redacted) → how many runs ended with it."""

    @property
    def passes(self) -> int:
        """Runs in which the step passed."""
        return sum(1 for o in self.outcomes.values() if o == "passed")

    @property
    def failed(self) -> int:
        """Runs in which the step failed or errored."""
        return sum(1 for o in self.outcomes.values() if o in ("failed", "error"))

    def time_to_pass(self) -> tuple[float, float] | None:
        """(median, max) seconds of the runs that passed."""
        passed = [self.times[r] for r, o in self.outcomes.items() if o == "passed"]
        if not passed:
            return None
        return statistics.median(passed), max(passed)


class RepeatStats:
    """An event sink that tallies each step over ``runs`` runs."""

    def __init__(self, runs: int) -> None:
        self.runs = runs
        self.run = 1
        self.steps: dict[tuple[str, str], StepRuns] = {}
        self.failed_runs: set[int] = set()

    def start_run(self, run: int) -> None:
        """What follows belongs to run ``run`` (1-based)."""
        self.run = run

    def __call__(self, event: ev.Event) -> None:
        if not isinstance(event, ev.StepFinished):
            return
        key = (event.lab_id, event.step_id)
        step = self.steps.setdefault(key, StepRuns(event.lab_id, event.step_id))
        status = event.status.value
        step.outcomes[self.run] = status
        step.times[self.run] = event.duration
        if status in ("failed", "error", "cancelled"):
            self.failed_runs.add(self.run)
            message = _short(redact(event.message) or status)
            step.failures[message] = step.failures.get(message, 0) + 1

    @property
    def ok(self) -> bool:
        """True when every run passed."""
        return not self.failed_runs

    def as_dict(self) -> dict[str, Any]:
        """The tallies as plain data (the JSON report's ``repeat``)."""
        steps = []
        for step in self.steps.values():
            timing = step.time_to_pass()
            steps.append(
                {
                    "lab": step.lab_id,
                    "step": step.step_id,
                    "runs": len(step.outcomes),
                    "passed": step.passes,
                    "failed": step.failed,
                    "skipped": sum(1 for o in step.outcomes.values() if o == "skipped"),
                    "time_to_pass": (
                        {"median": round(timing[0], 3), "max": round(timing[1], 3)}
                        if timing
                        else None
                    ),
                    "failures": [
                        {"message": message, "runs": count}
                        for message, count in sorted(
                            step.failures.items(), key=lambda item: -item[1]
                        )
                    ],
                }
            )
        return {
            "runs": self.runs,
            "failed_runs": sorted(self.failed_runs),
            "steps": steps,
        }

    def table(self) -> str:
        """A plain-text table: one line per step, then the failure messages under it."""
        rows = [("LAB", "STEP", "PASSED", "MEDIAN", "MAX")]
        notes: dict[int, list[str]] = {}
        for step in self.steps.values():
            timing = step.time_to_pass()
            median, worst = (format_duration(t) for t in timing) if timing else ("-", "-")
            ran = len(step.outcomes)
            rows.append((step.lab_id, step.step_id, f"{step.passes}/{ran}", median, worst))
            messages = sorted(step.failures.items(), key=lambda item: -item[1])
            notes[len(rows) - 1] = [
                f"    {count}× {message}" for message, count in messages[:MAX_MESSAGES]
            ] + (
                [f"    … {len(messages) - MAX_MESSAGES} more"]
                if len(messages) > MAX_MESSAGES
                else []
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [f"repeated {self.runs} times: {len(self.failed_runs)} run(s) failed"]
        for index, row in enumerate(rows):
            lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip())
            lines += notes.get(index, [])
        return "\n".join(lines)

    def markdown(self, title: str) -> str:
        """The tallies as a Markdown table (for ``$GITHUB_STEP_SUMMARY``)."""
        lines = summary_head(f"{title}: {self.runs} runs, {len(self.failed_runs)} failed")
        for step in self.steps.values():
            timing = step.time_to_pass()
            time = (
                f"{format_duration(timing[0])} (max {format_duration(timing[1])})"
                if timing
                else "–"
            )
            messages = sorted(step.failures.items(), key=lambda item: -item[1])[:MAX_MESSAGES]
            text = "<br>".join(f"{count}× {cell(message)}" for message, count in messages)
            lines.append(
                f"| {cell(step.lab_id)} | {cell(step.step_id)} "
                f"| {step.passes}/{len(step.outcomes)} passed | {time} | {text} |"
            )
        return "\n".join(lines) + "\n"


def _short(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MESSAGE_CHARS else flat[: MESSAGE_CHARS - 1] + "…"
