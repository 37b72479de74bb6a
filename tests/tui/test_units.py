"""The TUI's pure parts: gating rules, doctor summaries, the output buffer and pane."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from rich.color import Color
from textual.app import App, ComposeResult

from labrunner.doctor import Finding, Topic
from labrunner.lab.model import Lab, Step, Workshop
from labrunner.state.rules import (
    StepState,
    blocking_step,
    lab_progress,
    resume_target,
    step_states,
)
from labrunner.state.store import StepRecord
from labrunner.tui.output import OutputBuffer
from labrunner.tui.progress import short_command, summarize
from labrunner.tui.screens.help import key_label
from labrunner.tui.widgets.output_pane import OutputPane


def lab(lab_id: str, *step_ids: str, requires: tuple[str, ...] = ()) -> Lab:
    steps = tuple(Step(id=s, title=s.title()) for s in step_ids)
    return Lab(id=lab_id, title=lab_id, path=Path(f"{lab_id}.yaml"), steps=steps, requires=requires)


def rec(status: str) -> StepRecord:
    return StepRecord(status=status, at="2026-01-01T00:00:00Z")


def test_steps_unlock_in_order_and_keep_later_ticks() -> None:
    one = lab("one", "a", "b", "c", "d")
    assert step_states(one, {}) == {
        "a": StepState.TODO,
        "b": StepState.LOCKED,
        "c": StepState.LOCKED,
        "d": StepState.LOCKED,
    }
    states = step_states(one, {"a": rec("passed"), "b": rec("failed")})
    assert states["a"] is StepState.PASSED
    assert states["b"] is StepState.FAILED
    assert states["c"] is StepState.LOCKED
    # b reset after c passed: b is current again, c keeps its tick, d waits for b
    states = step_states(one, {"a": rec("skipped"), "c": rec("passed")})
    assert states == {
        "a": StepState.SKIPPED,
        "b": StepState.TODO,
        "c": StepState.PASSED,
        "d": StepState.LOCKED,
    }
    blocker = blocking_step(one, {"a": rec("passed")}, "d")
    assert blocker is not None and blocker.id == "b"
    assert blocking_step(one, {"a": rec("passed")}, "b") is None


def test_labs_lock_until_what_they_require_is_complete() -> None:
    first, second = lab("first", "a", "b"), lab("second", "x", requires=("first",))
    workshop = Workshop(root=Path(), labs_dir=Path(), labs=(first, second))
    progress = lab_progress(workshop, {"first": {"a": rec("passed")}})
    assert progress["first"].label == "1/2 steps"
    assert progress["second"].locked and progress["second"].missing == ("first",)
    progress = lab_progress(workshop, {"first": {"a": rec("passed"), "b": rec("skipped")}})
    assert progress["first"].complete and not progress["second"].locked


def test_resume_prefers_the_requested_lab_then_the_saved_position() -> None:
    first, second = lab("first", "a", "b"), lab("second", "x")
    workshop = Workshop(root=Path(), labs_dir=Path(), labs=(first, second))
    assert resume_target(workshop, requested=None, position=None) is None
    assert resume_target(workshop, requested=None, position=("first", "b")) == (first, "b")
    assert resume_target(workshop, requested=None, position=("first", "gone")) == (first, None)
    assert resume_target(workshop, requested=None, position=("gone", "b")) is None
    assert resume_target(workshop, requested="second", position=("first", "b")) == (second, None)
    assert resume_target(workshop, requested="first", position=("first", "b")) == (first, "b")


def test_doctor_findings_become_one_status_line() -> None:
    status = summarize(
        [
            Finding("bash", True, "5.2", required=True),
            Finding("istioctl", True, "1.30.3", version="1.30.3"),
            Finding(
                "kube context", True, "kind-istio (https://127.0.0.1:6443)", topic=Topic.CONTEXT
            ),
            Finding("cluster", True, "reachable at https://127.0.0.1:6443", topic=Topic.CLUSTER),
            Finding(
                "kubernetes", True, "v1.34.0; supported", topic=Topic.KUBERNETES, version="v1.34.0"
            ),
            Finding("istio", True, "istiod runs Istio 1.30.3", topic=Topic.ISTIO, version="1.30.3"),
        ],
        "kind-istio",
    )
    assert status.describe() == (
        "context: kind-istio  ·  cluster: reachable (v1.34.0)  ·  istio: 1.30.3"
    )
    status = summarize(
        [
            Finding("kubectl", False, "missing", required=True),
            Finding("kube context", False, "no kubeconfig", required=True, topic=Topic.CONTEXT),
        ],
        None,
    )
    assert status.describe() == (
        "context: none  ·  cluster: no usable kube context  ·  2 problems (d: details)"
    )
    status = summarize(
        [
            Finding("cluster", False, "connection refused", topic=Topic.CLUSTER),
            Finding(
                "istio",
                False,
                "istiod runs Istio 1.29.0; the workshop pins 1.30.3",
                topic=Topic.ISTIO,
                version="1.29.0",
            ),
        ],
        "kind-x",
    )
    assert status.describe() == (
        "context: kind-x  ·  cluster: unreachable  ·  istio: 1.29.0 (d: details)"
    )
    assert summarize([], None).describe() == "context: none  ·  cluster: not checked"


def test_long_commands_are_shortened_in_their_block() -> None:
    assert short_command("echo hi\n") == "echo hi"
    assert short_command("a\nb\nc\nd\ne") == "a\nb\nc\n… (2 more lines)"


def test_key_labels_read_like_keys() -> None:
    assert key_label("question_mark,f1") == "?, F1"
    assert key_label("ctrl+r") == "Ctrl+R"
    assert key_label("R") == "Shift+R"
    assert key_label("escape") == "Esc"


def test_the_output_buffer_wakes_its_reader_once_per_batch() -> None:
    wakes: list[int] = []
    buffer = OutputBuffer(lambda: wakes.append(1), capacity=1000)

    def flood() -> None:
        for i in range(5000):
            buffer.push("out", str(i))

    thread = threading.Thread(target=flood)
    thread.start()
    thread.join()
    assert len(wakes) == 1
    batch = buffer.drain()
    assert len(batch.items) == 1000 and batch.dropped == 4000
    assert batch.items[0] == ("out", "4000") and batch.items[-1] == ("out", "4999")
    buffer.push("note", "again")
    assert len(wakes) == 2
    assert buffer.drain().items == [("note", "again")]


def visible(pane: OutputPane) -> list[str]:
    """The text of the rows the pane shows now."""
    height = pane.scrollable_content_region.height
    return ["".join(seg.text for seg in pane.render_line(y)).rstrip() for y in range(height)]


class PaneApp(App[None]):
    def compose(self) -> ComposeResult:
        yield OutputPane(max_lines=1000, id="pane")


def test_the_output_pane_is_capped_keeps_colours_and_follows() -> None:
    async def scenario() -> None:
        app = PaneApp()
        async with app.run_test(size=(60, 12)) as pilot:
            pane = app.query_one(OutputPane)
            pane.append(("out", f"line {i}") for i in range(25_000))
            await pilot.pause()
            assert pane.line_count == 1000
            assert pane.plain_lines()[0] == "line 24000"
            assert pane.scroll_y == pane.max_scroll_y > 0  # following the newest line
            assert visible(pane)[-1] == "line 24999"

            pane.append([("out", "\x1b[31mred alert\x1b[0m plain")])
            await pilot.pause()
            strip = pane.render_line(pane.scrollable_content_region.height - 1)
            styles = {seg.text: seg.style for seg in strip if seg.text.strip()}
            assert styles["red alert"] is not None
            red = styles["red alert"].color
            assert red is not None and red.number == Color.parse("red").number == 1
            assert pane.plain_lines()[-1] == "red alert plain"

            # scrolling up stops following; new lines no longer move the view
            pane.focus()
            await pilot.press("up")
            await pilot.pause()
            assert not pane.follow
            where = pane.scroll_y
            pane.append([("out", "more")])
            await pilot.pause()
            assert pane.scroll_y == where
            pane.follow = True
            await pilot.pause()
            assert pane.scroll_y == pane.max_scroll_y

    asyncio.run(scenario())
