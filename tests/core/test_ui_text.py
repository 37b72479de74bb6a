"""The headless run log: plain when not a terminal, redacted, with hints and totals."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labrunner.engine import Engine
from labrunner.engine import events as ev
from labrunner.engine.events import Phase, StepStatus
from labrunner.lab.loader import load_workshop
from labrunner.reports import ReportCollector
from labrunner.state import ProgressStore
from labrunner.ui_text import Printer
from labrunner.verify.context import CheckContext
from labrunner.verify.outcome import Outcome, Status
from labrunner.verify.registry import Registry

TOKEN = "abc123SECRETtokenVALUE987"


def test_printer_output_is_plain_redacted_and_complete() -> None:
    out = io.StringIO()
    printer = Printer(stream=out)
    collector = ReportCollector()
    events: list[ev.Event] = [
        ev.LabStarted("lab", "The lab", ("one", "two", "three")),
        ev.StepStarted("lab", "one", 0, "One"),
        ev.CommandStarted(
            "lab", "one", Phase.SOLUTION, 0, f"curl -H 'Authorization: Bearer {TOKEN}'"
        ),
        ev.OutputLine("lab", "one", "\x1b[31mred\x1b[0m"),
        ev.OutputLine("lab", "one", f"token: {TOKEN}"),
        ev.CommandFinished("lab", "one", Phase.SOLUTION, 0, "curl", 0, 0.2),
        ev.CheckResult(
            "lab",
            "one",
            0,
            "command",
            "$ curl",
            Status.PENDING,
            f"exit code 1, expected 0: token: {TOKEN}",
            None,
            3,
            0.1,
        ),
        ev.StepFinished(
            "lab",
            "one",
            StepStatus.FAILED,
            f"not done after 1.0s: token: {TOKEN}",
            f"stdout:\ntoken: {TOKEN}",
            1.0,
            ("First hint.", "Second hint."),
            3,
        ),
        ev.StepStarted("lab", "two", 1, "Two"),
        ev.StepFinished("lab", "two", StepStatus.CANCELLED, "cancelled"),
        ev.StepStarted("lab", "three", 2, "Three"),
        ev.StepFinished("lab", "three", StepStatus.SKIPPED, "not run"),
        ev.LabFinished("lab", StepStatus.FAILED, {"failed": 1, "cancelled": 1, "skipped": 1}, 1.5),
    ]
    for event in events:
        printer(event)
        collector(event)
    printer.summary(collector)
    text = out.getvalue()
    assert "\x1b" not in text
    assert TOKEN not in text
    assert text.splitlines() == [
        "== lab: The lab",
        "-- one: One",
        "  $ curl -H 'Authorization: Bearer [REDACTED]'",
        "  | red",
        "  | token: [REDACTED]",
        "  … $ curl: exit code 1, expected 0: token: [REDACTED]",
        "✘ FAIL one (1.0s): not done after 1.0s: token: [REDACTED]",
        "    stdout:",
        "    token: [REDACTED]",
        "  hint: First hint.",
        "-- two: Two",
        "■ CANCEL two (0ms): cancelled",
        "-- three: Three",
        "↷ SKIP three (0ms): not run",
        "✘ lab: FAIL (1 cancelled, 1 failed, 1 skipped; 1.5s)",
        "3 steps: 1 failed, 1 skipped, 1 cancelled",
    ]


def test_quiet_hides_command_output_but_not_results() -> None:
    out = io.StringIO()
    printer = Printer(stream=out, quiet=True)
    printer(ev.StepStarted("lab", "one", 0, "One"))
    printer(ev.CommandStarted("lab", "one", Phase.RUN, 0, "echo hi"))
    printer(ev.OutputLine("lab", "one", "hi"))
    printer(ev.StepFinished("lab", "one", StepStatus.PASSED, "", None, 0.01))
    assert out.getvalue().splitlines() == ["-- one: One", "✔ PASS one (10ms)"]


def test_a_huge_check_message_is_clipped_as_in_reports_and_printed_once(
    lab_file: Callable[[str, str], Path],
) -> None:
    huge = "x" * 10_000_000
    registry = Registry()

    @registry.verifier("huge")
    def _huge(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
        return Outcome.failed(huge)

    path = lab_file(
        "huge.yaml",
        "apiVersion: labrunner/v1\nid: huge\ntitle: Huge\nsteps:\n"
        "  - id: one\n    title: One\n    run: ['true']\n    check:\n      - huge: {}\n",
    )
    loaded = load_workshop(path.parent, registry)
    assert loaded.workshop is not None, loaded.problems
    out = io.StringIO()
    printer = Printer(stream=out)
    collector = ReportCollector()

    def emit(event: ev.Event) -> None:
        printer(event)
        collector(event)

    engine = Engine(loaded.workshop, registry=registry, store=ProgressStore.memory(), emit=emit)
    assert not engine.verify(loaded.workshop.labs).ok
    text = out.getvalue()
    assert len(text) < 10_000, len(text)
    report = collector.as_dict()["labs"][0]["steps"][0]
    clipped = report["checks"][0]["message"]
    assert len(clipped) < 2100 and clipped.endswith("more characters]")
    assert text.count(clipped) == 1, "the long message is printed once, clipped as in reports"
    assert "✘ FAIL one" in text and "(see the check above)" in text


class _Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def _coloured_run(monkeypatch: Any, **env: str) -> str:
    for name in ("NO_COLOR", "TERM"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out = _Terminal()
    printer = Printer(stream=out)
    printer(ev.StepStarted("lab", "one", 0, "One"))
    printer(ev.OutputLine("lab", "one", "\x1b[31mred\x1b[0m \x1b]0;title\x07\x1b[2Kok\x07"))
    printer(ev.OutputLine("lab", "one", "10%\r50%\r100% done"))
    printer(ev.StepFinished("lab", "one", StepStatus.FAILED, "it broke"))
    return out.getvalue()


def test_a_terminal_gets_sgr_colours_and_only_those(monkeypatch: Any) -> None:
    text = _coloured_run(monkeypatch, TERM="xterm-256color")
    lines = text.splitlines()
    assert lines[0] == "\x1b[1;36m-- one: One\x1b[0m"
    # the command's own colour stays; the title, the erase and the bell do not
    assert lines[1] == "\x1b[2m  │ \x1b[0m\x1b[31mred\x1b[0m ok\x1b[0m"
    # what a carriage return overwrote is gone, as a terminal would show it
    assert lines[2] == "\x1b[2m  │ \x1b[0m100% done\x1b[0m"
    assert lines[3].startswith("\x1b[1;31m✘ FAIL one (") and lines[3].endswith("\x1b[0m")
    assert "it broke" in lines[3]


def test_no_colour_for_no_color_or_a_dumb_terminal(monkeypatch: Any) -> None:
    for env in ({"NO_COLOR": "1", "TERM": "xterm"}, {"TERM": "dumb"}):
        text = _coloured_run(monkeypatch, **env)
        assert "\x1b" not in text, env
        # (a plain log keeps what is not an escape code, as it always did)
        assert text.splitlines()[:2] == ["-- one: One", "  | red ok\x07"], env
