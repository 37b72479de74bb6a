"""The engine with real bash: example labs from tests/core/labs, run in-process."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from labrunner.engine import Engine, RunOptions, RunSummary, UsageError
from labrunner.engine import events as ev
from labrunner.engine.events import Phase, StepStatus
from labrunner.lab.loader import load_workshop
from labrunner.lab.model import Workshop
from labrunner.state import ProgressStore
from labrunner.testing.waiting import wait_for
from labrunner.verify.context import CheckContext
from labrunner.verify.outcome import Outcome, Status
from labrunner.verify.registry import Registry, builtin_registry

from .conftest import pid_alive, read_pids

Make = Callable[..., Path]


@dataclass
class Run:
    """A finished engine run: its summary, every event, and the workshop."""

    summary: RunSummary
    events: list[ev.Event]
    workshop: Workshop
    store: ProgressStore

    @property
    def root(self) -> Path:
        return self.workshop.root

    def finished(self, step_id: str, lab_id: str | None = None) -> ev.StepFinished:
        found = [
            e
            for e in self.events
            if isinstance(e, ev.StepFinished)
            and e.step_id == step_id
            and (lab_id is None or e.lab_id == lab_id)
        ]
        assert len(found) == 1, found
        return found[0]

    def statuses(self, lab_id: str) -> dict[str, str]:
        return {r.step_id: r.status.value for r in self.summary.labs[lab_id]}

    def of(self, kind: type[ev.Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@dataclass
class Runner:
    """Builds an engine over a labs directory and runs labs with it."""

    labs_dir: Path
    registry: Registry = field(default_factory=builtin_registry)
    store: ProgressStore = field(default_factory=ProgressStore.memory)
    listeners: list[Callable[[ev.Event], None]] = field(default_factory=list)

    def workshop(self) -> Workshop:
        result = load_workshop(self.labs_dir, self.registry)
        assert result.workshop is not None, [str(p) for p in result.errors]
        return result.workshop

    def engine(
        self,
        events: list[ev.Event],
        options: RunOptions | None = None,
        base_env: Mapping[str, str] | None = None,
    ) -> Engine:
        def emit(event: ev.Event) -> None:
            events.append(event)
            for listener in self.listeners:
                listener(event)

        return Engine(
            self.workshop(),
            registry=self.registry,
            store=self.store,
            emit=emit,
            options=options,
            base_env=base_env,
        )

    def run(
        self,
        *lab_ids: str,
        options: RunOptions | None = None,
        base_env: Mapping[str, str] | None = None,
    ) -> Run:
        events: list[ev.Event] = []
        engine = self.engine(events, options, base_env)
        labs = [engine.workshop.lab(i) for i in lab_ids] if lab_ids else list(engine.workshop.labs)
        summary = engine.verify(labs)
        return Run(summary, events, engine.workshop, self.store)


@pytest.fixture
def runner(workshop: Make) -> Callable[..., Runner]:
    def make(*names: str, **kwargs: Any) -> Runner:
        return Runner(workshop(*names), **kwargs)

    return make


# --------------------------------------------------------------------------- the shell carries over


def test_cd_export_and_functions_carry_over_between_steps(runner: Callable[..., Runner]) -> None:
    run = runner("carry-over").run()
    assert run.statuses("carry-over") == {"prepare": "passed", "use": "passed"}
    assert (run.root / "work" / "inner" / "greeting.txt").read_text() == "hello teal!\n"
    output = [e.text for e in run.of(ev.OutputLine)]
    assert f"dir={run.root / 'work' / 'inner'} local=not-exported" in output
    assert run.summary.ok
    assert run.store.exports("carry-over") == {"COLOUR": "teal"}


def test_missing_export_fails_clearly(runner: Callable[..., Runner]) -> None:
    run = runner("exports-missing").run()
    assert run.statuses("exports-missing") == {"forgetful": "failed", "later": "skipped"}
    assert run.finished("forgetful").message == (
        "the step should leave $GATEWAY_IP set for later steps, but it is not set"
    )
    assert run.finished("later").message == "not run: step forgetful did not pass"


# --------------------------------------------------------------------------- prompts and timeouts


def test_prompts_are_answered_by_expect(runner: Callable[..., Runner]) -> None:
    run = runner("prompts").run()
    assert run.statuses("prompts") == {"confirm": "passed"}
    output = "\n".join(e.text for e in run.of(ev.OutputLine))
    assert "answer=y length=7" in output
    assert "hunter2" not in output


def test_a_plain_answer_shows_on_its_prompt_line(runner: Callable[..., Runner]) -> None:
    run = runner("prompts").run()
    lines = [e.text for e in run.of(ev.OutputLine)]
    assert "Proceed? (y/N) y" in lines  # as a terminal shows what was typed
    assert "Password: " in lines  # a secret answer is not


def test_a_secret_answer_is_never_in_an_event(runner: Callable[..., Runner]) -> None:
    run = runner("secret-answer").run()
    assert run.statuses("secret-answer") == {"login": "passed"}
    commands = [e.command for e in run.of(ev.CommandStarted) + run.of(ev.CommandFinished)]
    assert commands and all("[REDACTED]" in c for c in commands)
    texts = commands + [e.text for e in run.of(ev.OutputLine)]
    assert not [t for t in texts if "correct-horse-42" in t]
    assert [e.text for e in run.of(ev.OutputLine)] == ["Password: ", "accepted"]


def test_unanswered_prompt_fails_at_once_naming_the_prompt(
    runner: Callable[..., Runner],
) -> None:
    # the command's own timeout is 1 s and the default would be 300 s: a headless run
    # gives the prompt end-of-file as soon as it waits, and fails the step for it
    started = time.monotonic()
    run = runner("prompt-unanswered").run()
    elapsed = time.monotonic() - started
    finished = run.finished("ask")
    assert finished.status is StepStatus.FAILED
    assert finished.message.startswith("command got no input: read -r -p")
    assert "(it was waiting for input at the prompt 'Delete the cluster? [yes/no]'; " in (
        finished.message
    )
    assert "add an `expect` answer for it)" in finished.message
    assert "went on without an answer" in finished.message
    (waiting,) = run.of(ev.PromptWaiting)
    assert waiting.prompt == "Delete the cluster? [yes/no]" and waiting.refused
    (done,) = run.of(ev.CommandFinished)
    assert done.exit_code == 0 and not done.timed_out  # `read` got end-of-file, then echo ran
    assert elapsed < 1.0, "the prompt waited for the command's timeout"


def test_timed_out_command_has_its_process_group_killed(
    runner: Callable[..., Runner], reaper: list[int]
) -> None:
    seen: dict[str, Any] = {}
    r = runner("hang")

    def on_event(event: ev.Event) -> None:
        # still inside the lab run: the shell is open, so only the group kill can explain it
        if isinstance(event, ev.StepFinished) and event.step_id == "forever":
            pids = read_pids(r.labs_dir.parent / "pids")
            reaper.extend(pids)
            seen["pids"] = pids
            seen["gone"] = wait_for(lambda: not any(pid_alive(p) for p in pids), 3)
            shell_pid = int((r.labs_dir.parent / "shell.pid").read_text())
            seen["shell_alive"] = pid_alive(shell_pid)

    r.listeners.append(on_event)
    run = r.run()
    finished = run.finished("forever")
    assert finished.status is StepStatus.FAILED
    assert finished.message.startswith("command timed out after 1.0s: echo $$ > shell.pid")
    assert len(seen["pids"]) == 2
    assert seen["gone"], "the timed-out command's processes are still running"
    assert seen["shell_alive"], "the lab shell itself should survive a timeout"
    (done,) = [e for e in run.of(ev.CommandFinished) if e.step_id == "forever"]
    assert done.timed_out and done.exit_code is None


def test_polling_passes_as_soon_as_the_file_appears(runner: Callable[..., Runner]) -> None:
    r = runner("polling")
    marks: dict[str, float] = {}

    def on_event(event: ev.Event) -> None:
        pending = isinstance(event, ev.CheckResult) and event.status is Status.PENDING
        if pending and "go" not in marks:
            marks["go"] = time.monotonic()
            (r.labs_dir.parent / "go").touch()
        if isinstance(event, ev.StepFinished):
            marks["done"] = time.monotonic()

    r.listeners.append(on_event)
    run = r.run()
    assert run.finished("eventually").status is StepStatus.PASSED
    attempts = [e for e in run.of(ev.CheckResult)]
    assert attempts[0].status is Status.PENDING
    assert attempts[-1].status is Status.PASSED
    # the budget is 10s; the check notices the file within a few polls
    assert marks["done"] - marks["go"] < 1.5


def test_consecutive_passes(runner: Callable[..., Runner]) -> None:
    run = runner("consecutive").run()
    root = run.root
    assert run.finished("steady").status is StepStatus.PASSED
    assert len((root / "steady.count").read_text().splitlines()) == 3
    flapping = run.finished("flapping")
    assert flapping.status is StepStatus.FAILED
    assert len((root / "flap.count").read_text().splitlines()) >= 3
    passes = [e.status for e in run.of(ev.CheckResult) if e.step_id == "flapping"]
    assert Status.PASSED in passes and Status.PENDING in passes


def test_failing_check_carries_hints(runner: Callable[..., Runner]) -> None:
    run = runner("hints", "check-hint").run()
    failed = run.finished("needs-config")
    assert failed.status is StepStatus.FAILED
    assert failed.message == "not done after 1.0s: config.yaml does not contain 'mode: strict'"
    assert failed.hints == (
        "Strict mode is spelled `mode: strict`, in config.yaml.",
        "Read the file back with cat config.yaml.",
    )
    assert run.finished("fine").hints == ()
    own = run.finished("colour")
    assert own.message == (
        "$COLOUR differs from the expected value (3 characters, expected 4 characters)"
    )
    assert own.hints == ("Export COLOUR=blue, not red.",)


# --------------------------------------------------------------------------- choosing steps


def test_from_and_only(runner: Callable[..., Runner], tmp_path: Path) -> None:
    r = runner("sequence", store=ProgressStore.for_root(tmp_path / "ws", context="kind-test"))
    log = r.labs_dir.parent / "ran.log"
    full = r.run()
    assert full.summary.ok
    assert log.read_text().split() == ["one", "two", "three"]
    log.unlink()
    # --from two restores TOKEN_ONE, which step one exported in the earlier run
    partial = r.run(options=RunOptions(from_step="two"))
    assert partial.statuses("sequence") == {"two": "passed", "three": "passed"}
    assert log.read_text().split() == ["two", "three"]
    log.unlink()
    only = r.run(options=RunOptions(only_step="two"))
    assert only.statuses("sequence") == {"two": "passed"}
    assert log.read_text().split() == ["two"]
    started = only.of(ev.LabStarted)
    assert [s.step_ids for s in started] == [("two",)]


def test_from_without_earlier_exports_fails_the_check(runner: Callable[..., Runner]) -> None:
    run = runner("sequence").run(options=RunOptions(from_step="two"))
    assert run.statuses("sequence") == {"two": "failed", "three": "skipped"}


def test_unknown_step_is_a_usage_error(runner: Callable[..., Runner]) -> None:
    with pytest.raises(UsageError, match=r"--only nope: lab sequence has no such step"):
        runner("sequence").run(options=RunOptions(only_step="nope"))


# --------------------------------------------------------------------------- setup and cleanup


def test_setup_runs_when_a_required_lab_is_not_in_the_run(runner: Callable[..., Runner]) -> None:
    r = runner("base", "dependent")
    setup_log = r.labs_dir.parent / "setup.log"
    alone = r.run("dependent")
    assert alone.statuses("dependent") == {"house": "passed"}
    assert setup_log.read_text().split() == ["dependent-setup"]
    assert [e.phase for e in alone.of(ev.PhaseStarted)] == [Phase.SETUP]
    setup_log.unlink()
    (r.labs_dir.parent / "foundation.txt").unlink()
    both = r.run("base", "dependent")
    assert both.summary.ok
    assert not setup_log.exists(), "setup ran although base ran (and passed) first"


def test_setup_can_be_forced_off_and_on(runner: Callable[..., Runner]) -> None:
    r = runner("base", "dependent")
    off = r.run("dependent", options=RunOptions(setup=False))
    assert off.statuses("dependent") == {"house": "failed"}
    on = r.run("base", options=RunOptions(setup=True))
    assert on.summary.ok
    assert (r.labs_dir.parent / "setup.log").read_text().split() == ["base-setup"]


def test_failed_setup_skips_the_steps(lab_file: Callable[[str, str], Path]) -> None:
    path = lab_file(
        "setup-fails.yaml",
        "apiVersion: labrunner/v1\nid: setup-fails\ntitle: T\n"
        "setup: ['echo broken >&2; (exit 4)']\n"
        "steps:\n  - id: one\n    title: One\n    run: [echo]\n"
        "    check: [{env: {name: HOME}}]\n",
    )
    run = Runner(path.parent).run(options=RunOptions(setup=True))
    assert run.summary.lab_status["setup-fails"] is StepStatus.ERROR
    finished = run.finished("one")
    assert finished.status is StepStatus.SKIPPED
    assert finished.message == "setup failed: command failed (exit 4): echo broken >&2; (exit 4)"
    assert finished.details == "broken"


def test_cleanup_runs_only_when_asked(runner: Callable[..., Runner]) -> None:
    r = runner("base", "dependent")
    cleanup_log = r.labs_dir.parent / "cleanup.log"
    r.run("dependent")
    assert not cleanup_log.exists()
    assert (r.labs_dir.parent / "house.txt").exists()
    run = r.run("dependent", options=RunOptions(cleanup=True))
    assert run.summary.ok
    assert cleanup_log.read_text().split() == ["dependent-cleanup"]
    assert not (r.labs_dir.parent / "house.txt").exists()
    assert [e.phase for e in run.of(ev.PhaseStarted)] == [Phase.SETUP, Phase.CLEANUP]


def test_a_lab_whose_required_lab_failed_is_skipped(
    lab_file: Callable[[str, str], Path],
) -> None:
    lab_file(
        "a.yaml",
        "apiVersion: labrunner/v1\nid: first\ntitle: T\nsteps:\n  - id: one\n    title: One\n"
        "    run: ['false']\n    check: [{env: {name: HOME}}]\n",
    )
    path = lab_file(
        "b.yaml",
        "apiVersion: labrunner/v1\nid: second\ntitle: T\nrequires: [first]\nsteps:\n"
        "  - id: two\n    title: Two\n    run: ['touch ran']\n    check: [{env: {name: HOME}}]\n",
    )
    run = Runner(path.parent).run()
    assert run.summary.lab_status["second"] is StepStatus.SKIPPED
    assert run.finished("two").message == "requires first, which did not pass"
    assert not (path.parent.parent / "ran").exists()


# --------------------------------------------------------------------------- failures and needs


def test_allow_failure(runner: Callable[..., Runner]) -> None:
    run = runner("allow-failure").run()
    assert run.statuses("allow-failure") == {"tolerated": "passed", "strict": "failed"}
    assert run.finished("strict").message == (
        'command failed (exit 7): exit_with() { return "$1"; }; exit_with 7'
    )
    assert not (run.root / "after-strict").exists()


def test_needs_a_missing_tool_is_skipped_with_the_reason(
    runner: Callable[..., Runner], restricted_path: str
) -> None:
    env = {**os.environ, "PATH": restricted_path}
    run = runner("needs").run(base_env=env)
    assert run.statuses("needs") == {
        "plain": "passed",
        "with-kind": "skipped",
        "with-traffic": "passed",
    }
    assert run.finished("with-kind").message == "needs kind, which is not on the lab shell's PATH"
    assert run.summary.ok
    assert not (run.root / "kind.txt").exists()


def test_skip_needs(runner: Callable[..., Runner], restricted_path: str) -> None:
    env = {**os.environ, "PATH": restricted_path}
    run = runner("needs").run(base_env=env, options=RunOptions(skip_needs=frozenset({"traffic"})))
    assert run.statuses("needs")["with-traffic"] == "skipped"
    assert run.finished("with-traffic").message == "needs traffic, skipped with --skip-needs"
    assert not (run.root / "traffic.txt").exists()


def test_missing_tool_in_a_check_is_an_environment_error(runner: Callable[..., Runner]) -> None:
    run = runner("broken-tool").run()
    finished = run.finished("missing-tool")
    assert finished.status is StepStatus.ERROR
    assert "labrunner-test-no-such-tool: command not found" in finished.message
    assert "install it or add it to PATH" in finished.message
    assert run.summary.environment_broken and not run.summary.ok


def test_shell_that_exits_is_an_error_and_leaves_nothing_behind(
    lab_file: Callable[[str, str], Path], reaper: list[int]
) -> None:
    path = lab_file(
        "quits.yaml",
        "apiVersion: labrunner/v1\nid: quits\ntitle: T\nsteps:\n"
        "  - id: one\n    title: One\n"
        "    run: ['export KEEP=1; cd /tmp', 'sleep 1000 & echo $! > $OLDPWD/bg.pid; exit 3']\n"
        "    check: [{env: {name: HOME}}]\n",
    )
    r = Runner(path.parent)
    events: list[ev.Event] = []
    engine = r.engine(events)
    lab = engine.workshop.lab("quits")
    with engine.session(lab) as session:
        result = session.run_step(lab.steps[0])
        assert result.status is StepStatus.ERROR
        assert result.message.startswith("the lab shell died while running: sleep 1000 &")
        pid = int((r.labs_dir.parent / "bg.pid").read_text())
        reaper.append(pid)
        # the next command gets a shell back, with the state the last one left
        env, cwd = session.environment()
        assert env.get("KEEP") == "1"
        assert cwd == Path("/tmp")
    assert wait_for(lambda: not pid_alive(pid), 5), "a process of the dead shell survived"


def test_no_processes_survive_the_run(runner: Callable[..., Runner], reaper: list[int]) -> None:
    run = runner("orphans").run()
    assert run.summary.ok
    pids = read_pids(run.root / "bg.pids")
    reaper.extend(pids)
    assert len(pids) == 2
    assert wait_for(lambda: not any(pid_alive(p) for p in pids), 5)


def test_cancel_stops_the_run(lab_file: Callable[[str, str], Path]) -> None:
    path = lab_file(
        "slow.yaml",
        "apiVersion: labrunner/v1\nid: slow\ntitle: T\nsteps:\n"
        "  - id: one\n    title: One\n    run: [{cmd: 'echo started; sleep 100', timeout: 60s}]\n"
        "    check: [{env: {name: HOME}}]\n"
        "  - id: two\n    title: Two\n    run: [touch two]\n    check: [{env: {name: HOME}}]\n",
    )
    r = Runner(path.parent)
    events: list[ev.Event] = []
    engine = r.engine(events)
    started = threading.Event()
    r.listeners.append(
        lambda e: started.set() if isinstance(e, ev.OutputLine) and e.text == "started" else None
    )
    result: dict[str, RunSummary] = {}
    worker = threading.Thread(target=lambda: result.update(s=engine.verify(engine.workshop.labs)))
    worker.start()
    assert started.wait(10)
    began = time.monotonic()
    engine.cancel()
    worker.join(10)
    assert not worker.is_alive()
    assert time.monotonic() - began < 5
    summary = result["s"]
    assert summary.lab_status["slow"] is StepStatus.CANCELLED
    assert [r.status for r in summary.labs["slow"]] == [StepStatus.CANCELLED, StepStatus.SKIPPED]
    assert not (path.parent.parent / "two").exists()


# --------------------------------------------------------------------------- progress


def test_progress_is_recorded_with_exports(runner: Callable[..., Runner], tmp_path: Path) -> None:
    store = ProgressStore.for_root(tmp_path / "ws", context="kind-progress")
    run = runner("carry-over", "exports-missing", store=store).run()
    assert not run.summary.ok
    again = ProgressStore.for_root(tmp_path / "ws", context="kind-progress")
    assert again.completed("carry-over") == {"prepare", "use"}
    assert again.steps("carry-over")["prepare"].exports == {"COLOUR": "teal"}
    record = again.steps("exports-missing")["forgetful"]
    assert record.status == "failed"
    assert "GATEWAY_IP" in record.message
    # steps skipped after a failure are not recorded: the learner is still at the failure
    assert again.position() == ("exports-missing", "forgetful")


def test_unsaved_progress_warns_once_and_changes_nothing_else(
    runner: Callable[..., Runner], tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the progress directory should be")
    store = ProgressStore(blocker / "progress", root=tmp_path / "ws")
    run = runner("carry-over", store=store).run()
    assert run.summary.ok
    notices = [e.message for e in run.of(ev.Notice)]
    assert len(notices) == 1
    assert notices[0].startswith(f"progress not saved: cannot read progress file {blocker}/")


# --------------------------------------------------------------------------- registries


def counting_registry() -> tuple[Registry, dict[str, int]]:
    calls = {"eventually": 0, "waited": 0}
    registry = Registry()
    schema = {"type": "object", "additionalProperties": False, "properties": {}}

    @registry.verifier("eventually", params=schema)
    def eventually(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
        """Pending twice, with a waiter, then passes."""
        calls["eventually"] += 1
        if calls["eventually"] < 3:

            def wait(timeout: float) -> bool:
                calls["waited"] += 1
                return True

            return Outcome.pending(f"not yet ({calls['eventually']})", wait=wait)
        return Outcome.passed(f"now, in {ctx.lab_id}/{ctx.step_id}")

    @registry.verifier("crashes", params=schema)
    def crashes(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
        """Raises."""
        raise RuntimeError("boom")

    @registry.verifier("sloppy", params=schema)
    def sloppy(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
        """Returns the wrong type."""
        return True  # type: ignore[return-value]

    return registry, calls


def test_a_replaced_registry_drives_the_engine(lab_file: Callable[[str, str], Path]) -> None:
    registry, calls = counting_registry()
    path = lab_file(
        "custom.yaml",
        "apiVersion: labrunner/v1\nid: custom\ntitle: T\nsteps:\n"
        "  - id: waits\n    title: W\n    run: [echo]\n    within: 5s\n"
        "    check: [{eventually: {}}]\n"
        "  - id: crash\n    title: C\n    run: [echo]\n    check: [{crashes: {}}]\n",
    )
    sloppy = lab_file(
        "sloppy.yaml",
        "apiVersion: labrunner/v1\nid: sloppy\ntitle: T\nsteps:\n"
        "  - id: wrong\n    title: W\n    run: [echo]\n    check: [{sloppy: {}}]\n",
    )
    started = time.monotonic()
    run = Runner(path.parent, registry=registry).run()
    assert time.monotonic() - started < 3, "the engine slept instead of calling the waiter"
    assert calls == {"eventually": 3, "waited": 2}
    waits = run.finished("waits")
    assert waits.status is StepStatus.PASSED and waits.attempts == 1
    crash = run.finished("crash")
    assert crash.status is StepStatus.ERROR
    assert crash.message == "verifier crashes crashed: RuntimeError: boom"
    assert crash.details is not None and "RuntimeError: boom" in crash.details
    wrong = run.finished("wrong", lab_id=sloppy.stem)
    assert wrong.message == "verifier sloppy returned bool, not an Outcome"


def test_checks_see_the_environment_after_a_200_kb_export(
    lab_file: Callable[[str, str], Path],
) -> None:
    path = lab_file(
        "big.yaml",
        "apiVersion: labrunner/v1\nid: big\ntitle: Big\nsteps:\n"
        "  - id: export\n    title: A big export\n    run:\n"
        "      - export BIG=$(head -c 200000 /dev/zero | tr '\\0' x); export SMALL=ok\n"
        "      - ': > marker'\n"
        "    check:\n"
        "      - env: {name: SMALL, equals: ok}\n"
        "      - env: {name: BIG, matches: '^x{200000}$'}\n"
        "      - file: {path: marker}\n"
        "  - id: start\n    title: No new process can start now\n    run: [':']\n"
        "    check:\n      - command: {run: 'true'}\n",
    )
    first, second = Runner(path.parent).run().summary.labs["big"]
    assert first.status is StepStatus.PASSED, first.message
    # the kernel refuses an exec with a value over 128 KiB: the check says so, it does not crash
    assert second.status is StepStatus.ERROR
    assert "$BIG is over the kernel's 128 KiB limit" in second.message
    assert "crashed" not in second.message
