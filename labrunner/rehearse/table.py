"""The rehearsal's report: one line per lab as it finishes, one table at the end.

Plain text with fixed columns, so it reads the same in a terminal and in a CI
log; every message is redacted, like everything else that leaves the screen.
"""

from __future__ import annotations

from labrunner.durations import format_duration
from labrunner.redact import redact
from labrunner.rehearse.harness import PHASES, LabRehearsal, RehearsalReport, Verdict

HEADERS = ("LAB", "STEP", "RESULT", "WHY")
DETAIL_LINES = 15


def lab_line(lab: LabRehearsal) -> str:
    """One line for a lab that just finished."""
    parts = [
        f"{lab.count(v)} {v.value}"
        for v in (Verdict.REHEARSED, Verdict.NOT_REHEARSABLE, Verdict.FAILED, Verdict.ERROR)
        if lab.count(v)
    ]
    counts = ", ".join(parts) or "no steps"
    return f"{lab.lab.id} — {lab.verdict.value} ({counts}; {format_duration(lab.duration)})"


def render(report: RehearsalReport) -> str:
    """The table of every row, the totals, and the details of what failed."""
    rows = [
        (r.lab_id, r.step_id, r.verdict.value, redact(r.message).replace("\n", " "))
        for lab in report.labs
        for r in lab.rows
    ]
    widths = [
        max([len(HEADERS[i]), *(len(row[i]) for row in rows)]) for i in range(len(HEADERS) - 1)
    ]
    lines = []
    for row in [HEADERS, *rows]:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    steps = [r for lab in report.labs for r in lab.rows if r.step_id not in PHASES]
    totals = {v: sum(1 for r in steps if r.verdict is v) for v in Verdict}
    summary = ", ".join(f"{n} {v.value}" for v, n in totals.items() if n) or "nothing to rehearse"
    lines.append("")
    lines.append(
        f"{len(report.labs)} lab{'s' if len(report.labs) != 1 else ''}, {len(steps)} steps: "
        f"{summary} ({format_duration(report.duration)})"
    )
    for lab in report.labs:
        for r in lab.rows:
            if r.verdict.ok or r.verdict is Verdict.NOT_RUN:
                continue
            lines.append("")
            lines.append(f"{r.lab_id}/{r.step_id}: {r.verdict.value}: {redact(r.message)}")
            if r.details:
                for line in redact(r.details).splitlines()[-DETAIL_LINES:]:
                    lines.append(f"    {line}")
    return "\n".join(lines)
