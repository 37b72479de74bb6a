"""Drives one open lab's engine session from worker threads.

Everything the engine does blocks (a command can run for ten minutes), so the
app calls these methods only inside Textual thread workers, never on the UI
thread. The driver keeps the session to one job at a time: a learner's own
job (run, check, skip, shell) is refused while another one runs, and
background jobs (re-checking completed steps on resume, live mode) step aside
as soon as the learner asks for something. Results go back to the lab screen
as messages; output lines go through an :class:`OutputBuffer` so a flood of
them arrives in batches.

Engine errors never escape a worker: a ``ShellError`` or ``StateError``
becomes a ``JobDone`` carrying the message, which the screen shows as a
notification, and the learner stays in the app.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path

from textual.message import Message
from textual.message_pump import MessagePump

from labrunner.engine import events as ev
from labrunner.engine.events import Phase, StepStatus
from labrunner.engine.runner import Engine, StepResult
from labrunner.lab.model import Lab, Step, Workshop
from labrunner.shell import ShellError
from labrunner.shell.pane import PaneShell
from labrunner.state import StateError, StepRecord
from labrunner.tui import messages as msg
from labrunner.tui.output import OutputBuffer

CLOSE_GRACE = 3.0


class PhaseFailed(Exception):
    """The lab's setup or cleanup stopped at a command that failed."""


def first_line(cmd: str) -> str:
    """The first non-empty line of a command, with a marker when more follow."""
    lines = [line for line in cmd.strip().splitlines() if line.strip()]
    if not lines:
        return cmd.strip()
    return lines[0] + (" …" if len(lines) > 1 else "")


class LabDriver:
    """One lab's session plus the rules for who may use it when."""

    def __init__(
        self,
        *,
        engine_factory: Callable[[Callable[[ev.Event], None]], Engine],
        lab: Lab,
        target: MessagePump,
        output_capacity: int,
    ) -> None:
        self.lab = lab
        self._target = target
        self.output = OutputBuffer(
            lambda: target.post_message(msg.OutputReady()), capacity=output_capacity
        )
        self.engine = engine_factory(self._on_event)
        self.store = self.engine.store
        try:
            self.store.exports(lab.id)
            restore = True
        except StateError:
            # The engine restores exports when the shell starts and does not expect
            # the progress file to be unreadable then; start without them instead.
            restore = False
        self.session = self.engine.session(lab, restore_exports=restore)
        self._engine_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._user_job: msg.JobKind | None = None
        self._background_job: msg.JobKind | None = None
        self._live_stop = threading.Event()
        self._live_stop.set()
        self.live_step: Step | None = None
        self.closed = False
        # Results of this run, shown when the progress file is unreadable (the
        # learner still sees what passed; the engine has warned that it is not saved).
        self._this_run: dict[str, StepRecord] = {}

    # ------------------------------------------------------------------ events (worker thread)

    def _post(self, message: Message) -> None:
        if not self.closed:
            self._target.post_message(message)

    def _on_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.OutputLine):
            self.output.push("out", event.text)
            return
        if isinstance(event, ev.CommandStarted):
            self.output.push("command", f"$ {first_line(event.command)}")
        elif isinstance(event, ev.CommandFinished):
            if event.cancelled:
                self.output.push("note", "■ cancelled")
            elif event.timed_out:
                self.output.push("error", f"⏱ timed out after {event.duration:.0f}s")
            elif event.exit_code not in (0, None):
                self.output.push("error", f"exit {event.exit_code}")
        elif isinstance(event, ev.PhaseStarted):
            self.output.push("note", f"── {event.phase.value} ──")
        self._post(msg.EngineEvent(event))

    # ------------------------------------------------------------------ claiming (UI thread)

    @property
    def busy(self) -> msg.JobKind | None:
        """The learner's job that holds the session, if any."""
        return self._user_job

    def claim(self, kind: msg.JobKind) -> msg.JobKind | None:
        """Reserve the session for a learner's job; returns the job in the way, if any."""
        with self._state_lock:
            if self._user_job is not None:
                return self._user_job
            self._user_job = kind
            background = self._background_job
        if background is not None:
            self.session.cancel()
        return None

    def cancel(self) -> None:
        """Stop what runs now, the command or the check polling (safe from any thread)."""
        self.session.cancel()

    # ------------------------------------------------------------------ jobs (worker threads)

    def _records(self) -> dict[str, StepRecord]:
        """The lab's progress; when the progress file cannot be read, this run's results.

        A stale flag the file could not take (a read-only state directory) is
        kept for this run and shown all the same.
        """
        try:
            records = self.store.steps(self.lab.id)
        except StateError:
            return dict(self._this_run)
        for step_id, mine in self._this_run.items():
            saved = records.get(step_id)
            if mine.stale and saved is not None and saved.complete and not saved.stale:
                records[step_id] = replace(saved, stale=mine.stale)
        return records

    def _remember(self, step: Step, status: str, *, stale: str = "") -> None:
        self._this_run[step.id] = StepRecord(status=status, at="", stale=stale)

    @contextmanager
    def _holding(self, kind: msg.JobKind, *, wait: bool) -> Iterator[bool]:
        if not self._engine_lock.acquire(blocking=wait):
            yield False
            return
        if kind.background:
            with self._state_lock:
                self._background_job = kind
        try:
            yield True
        finally:
            with self._state_lock:
                if kind.background:
                    self._background_job = None
                else:
                    self._user_job = None
            self._engine_lock.release()

    def _job(
        self,
        kind: msg.JobKind,
        step: Step | None,
        body: Callable[[], StepResult | None],
        *,
        wait: bool = True,
    ) -> StepResult | None:
        """Run ``body`` holding the session; report start and end; never raise."""
        step_id = step.id if step else None
        with self._holding(kind, wait=wait) as held:
            if not held:
                return None
            self._post(msg.JobStarted(kind, step_id))
            result: StepResult | None = None
            error: str | None = None
            try:
                result = body()
            except PhaseFailed as exc:
                error = str(exc)
            except ShellError as exc:
                if self.session.halted is not None and step is not None:
                    result = StepResult(step.id, StepStatus.ERROR, self.session.halted)
                else:
                    error = f"the lab shell failed: {exc}"
            except StateError as exc:
                error = f"progress not saved: {exc}"
            except Exception as exc:  # a closed session mid-command, a verifier bug
                if not self.closed:
                    error = f"{type(exc).__name__}: {exc}"
            self._post(msg.JobDone(kind, step_id, result, self._records(), error=error))
            return result

    def _cannot_run(self, step: Step) -> StepResult | None:
        """Why ``step`` cannot run here (a missing tool), as a result that is not recorded.

        Headless runs record such a step as skipped; a learner should instead be
        told what to install, and keep the step open.
        """
        why = self.session.missing_needs(step)
        if why is None:
            return None
        return StepResult(step.id, StepStatus.ERROR, f"this step cannot run here: {why}")

    def run_step(self, step: Step) -> StepResult | None:
        """All of a step's commands, then its checks; the engine records the result."""

        def body() -> StepResult:
            blocked = self._cannot_run(step)
            if blocked is not None:
                return blocked
            result = self.session.run_step(step)
            if result.status is not StepStatus.CANCELLED:
                self._remember(step, result.status.value)
            return result

        return self._job(msg.JobKind.RUN, step, body)

    def run_command(self, step: Step, index: int) -> StepResult | None:
        """One command block; after the last one, the step's checks too."""

        def body() -> StepResult | None:
            blocked = self._cannot_run(step)
            if blocked is not None:
                return blocked
            command = step.run[index]
            self.session.ensure_services(step, starting=True)
            result = self.session.run_command(
                command, step_id=step.id, phase=Phase.RUN, index=index
            )
            if self.session.halted is not None:  # it left the approved kubeconfig
                return StepResult(step.id, StepStatus.ERROR, self.session.halted)
            if result.cancelled:
                return StepResult(step.id, StepStatus.CANCELLED, "cancelled")
            if (
                result.timed_out
                or result.exit_code is None
                or (result.exit_code != 0 and not command.allow_failure)
            ):
                why = "timed out" if result.timed_out else f"exit {result.exit_code}"
                return StepResult(step.id, StepStatus.FAILED, f"command {index + 1} failed ({why})")
            if index + 1 < len(step.run):
                return None
            return self._checks(step, within=None, services=False)

        return self._job(msg.JobKind.COMMAND, step, body)

    def _checks(
        self,
        step: Step,
        *,
        within: float | None,
        record_failure: bool = True,
        services: bool = True,
        first_look: bool = False,
    ) -> StepResult:
        """Check a step; record a pass, or a failure of a step not already complete.

        A completed step that fails is not un-ticked: it is flagged stale, with
        why, everywhere (step list, header, counter, lab list).
        """
        before = self._records().get(step.id)
        result = self.session.check(step, within=within, services=services)
        if result.status is StepStatus.PASSED:
            env, _ = self.session.environment(refresh=False)
            missing = [name for name in step.exports if not env.get(name)]
            if missing:
                names = ", ".join(f"${n}" for n in missing)
                result = StepResult(
                    step.id,
                    StepStatus.FAILED,
                    f"the checks pass, but the step should leave {names} set for later steps",
                    outcomes=result.outcomes,
                )
        passed = result.status is StepStatus.PASSED
        if first_look and result.status is StepStatus.FAILED:
            record_failure = False  # nothing was tried yet: "not yet" is no failure
        if passed or (record_failure and (before is None or not before.complete)):
            self.session.record(step, result)
            if result.status is not StepStatus.CANCELLED:
                self._remember(step, result.status.value)
        elif before is not None and before.complete and result.status is not StepStatus.CANCELLED:
            why = self.session.note_recheck(step, result)
            self._remember(step, before.status, stale=why or "")
        return result

    def check(self, step: Step) -> StepResult | None:
        """The step's checks, on demand; before any attempt a miss is "not yet", unrecorded."""
        first_look = step.id not in self._records()
        return self._job(
            msg.JobKind.CHECK,
            step,
            lambda: self._checks(step, within=None, first_look=first_look),
        )

    def skip(self, step: Step) -> StepResult | None:
        """Run the solution; record "skipped" only when the checks then pass."""

        def body() -> StepResult:
            blocked = self._cannot_run(step)
            if blocked is not None:
                return blocked
            self.session.ensure_services(step, starting=True)
            status, why, details = self.session.run_commands(
                step.solution_commands, step_id=step.id, phase=Phase.SOLUTION
            )
            if status is not StepStatus.PASSED:
                return StepResult(step.id, status, f"the solution did not run: {why}", details)
            result = self.session.check(step, services=False)
            if result.status is not StepStatus.PASSED:
                return StepResult(
                    step.id,
                    StepStatus.FAILED,
                    f"the solution ran, but the checks still fail: {result.message}",
                    result.details,
                    result.outcomes,
                )
            self.session.record(step, result, status="skipped")
            self._remember(step, "skipped")
            return StepResult(
                step.id, StepStatus.SKIPPED, "the solution ran and the checks pass", None
            )

        return self._job(msg.JobKind.SKIP, step, body)

    def run_phase(self, phase: Phase) -> None:
        """The lab's setup or cleanup commands; a failure is reported as the job's error."""
        kind = msg.JobKind.SETUP if phase is Phase.SETUP else msg.JobKind.CLEANUP

        def body() -> None:
            status, why, _ = self.session.run_phase(phase)
            if status is not StepStatus.PASSED:
                raise PhaseFailed(f"{phase.value} did not finish: {why}")

        self._job(kind, None, body)

    def shell_environment(self, step: Step) -> None:
        """Capture the lab shell's environment and directory for the learner's own shell.

        The report goes out after the session is released, so the checks that
        follow the learner's shell can claim it straight away.
        """
        captured: list[tuple[dict[str, str], Path]] = []

        def body() -> None:
            self.session.ensure_services(step)
            env, cwd = self.session.environment()
            pinned = self.engine.kubeconfig(self.lab)
            if pinned is not None:  # the learner's shell gets the approved cluster, no other
                env = {**env, "KUBECONFIG": pinned}
            captured.append((env, Path(cwd)))

        self._job(msg.JobKind.SHELL, step, body)
        if captured:
            env, cwd = captured[0]
            self._post(msg.ShellReady(step.id, env, cwd))

    def terminal(self, *, restart: bool = False) -> PaneShell | str:
        """Start (or, with ``restart``, start again) the lab's shell for the terminal pane;
        returns it, or why it could not start. Waits for a running job to finish."""
        with self._engine_lock:
            current = self.session.current_shell
            if isinstance(current, PaneShell) and current.ended:
                restart = True  # the learner typed exit: a new shell with what it saved
            try:
                shell = self.session.restart_shell() if restart else self.session.shell
            except ShellError as exc:
                return f"the lab shell could not start: {exc}"
        if not isinstance(shell, PaneShell):
            return "this lab's shell has no terminal"
        return shell

    def attached_shell(self) -> PaneShell | None:
        """The lab's shell if it runs and has a terminal (``t`` attaches to it)."""
        shell = self.session.current_shell
        if isinstance(shell, PaneShell) and shell.pump is not None and not shell.ended:
            return shell
        return None

    def recheck(self, steps: list[Step]) -> None:
        """Re-check completed steps once (background), with their services brought back;
        flag those that no longer pass as stale, and clear the flag of those that do."""
        if not steps:
            return
        stale: dict[str, str] = {}
        fresh: set[str] = set()

        def body() -> None:
            for step in steps:
                if self._user_job is not None or self.closed:
                    break
                result = self.session.check(step, within=0)
                if result.status is StepStatus.CANCELLED:
                    break
                why = self.session.note_recheck(step, result)
                record = self._records().get(step.id)
                if record is not None:
                    self._remember(step, record.status, stale=why or "")
                if why is None:
                    fresh.add(step.id)
                else:
                    stale[step.id] = why

        self._job(msg.JobKind.RECHECK, None, body)
        self._post(msg.StaleSteps(stale, frozenset(fresh), self._records()))

    # ------------------------------------------------------------------ live mode

    @property
    def live(self) -> bool:
        """True while live mode re-checks the learner's step."""
        return not self._live_stop.is_set()

    def start_live(self, step: Step) -> None:
        """Mark live mode on (UI thread); the loop itself runs in :meth:`live_loop`."""
        self.live_step = step
        self._live_stop.clear()

    def stop_live(self) -> None:
        """Stop live mode (any thread); an in-flight check is cancelled."""
        if self._live_stop.is_set():
            return
        self._live_stop.set()
        with self._state_lock:
            live_running = self._background_job is msg.JobKind.LIVE
        if live_running:
            self.session.cancel()

    def live_loop(self, interval: float, should_stop: Callable[[], bool]) -> None:
        """Every ``interval`` seconds, check the live step unless something else runs."""
        while not self._live_stop.wait(interval):
            if should_stop() or self.closed:
                break
            step = self.live_step
            if step is None or self._user_job is not None:
                continue
            record = self._records().get(step.id)
            if record is not None and record.complete:
                continue
            # live checks record only a pass: a failure every few seconds is no news
            live = partial(self._checks, step, within=0, record_failure=False)
            self._job(msg.JobKind.LIVE, step, live, wait=False)

    # ------------------------------------------------------------------ reloading

    def replace_lab(self, lab: Lab, workshop: Workshop) -> None:
        """Run ``lab`` (a reloaded version of this one) from now on (worker thread).

        Waits for the job that holds the session (a background one is cancelled),
        so no step ever runs half old, half new. Progress of steps that are gone
        from the file is forgotten, so no record points at a step that no longer
        exists; the lab screen hears of it in a ``LabSwapped``.
        """
        with self._state_lock:
            background = self._background_job
        if background is not None:
            self.session.cancel()
        with self._engine_lock:
            if self.closed:
                return
            old = self.lab
            kept = {step.id for step in lab.steps}
            removed = tuple(step.id for step in old.steps if step.id not in kept)
            self.lab = lab
            self.session.lab = lab
            self.engine.workshop = workshop
            if self.live_step is not None:
                self.live_step = next((s for s in lab.steps if s.id == self.live_step.id), None)
            dropped: list[str] = []
            error = None
            for step_id in removed:
                self._this_run.pop(step_id, None)
                try:
                    if self.store.reset(lab.id, step_id):
                        dropped.append(step_id)
                except StateError as exc:
                    error = f"progress of removed steps not forgotten: {exc}"
            records = self._records()
        self._post(msg.LabSwapped(lab, removed, tuple(dropped), records, error))

    # ------------------------------------------------------------------ input, closing

    def send_input(self, text: str) -> None:
        """Type a line into the waiting command (worker thread: a PTY write can block)."""
        self.session.send_input(text)

    def close(self) -> None:
        """Stop everything and the lab shell with it; no process outlives the lab."""
        if self.closed:
            return
        self.closed = True
        self._live_stop.set()
        self.session.cancel()
        got = self._engine_lock.acquire(timeout=CLOSE_GRACE)
        try:
            self.session.close()
        finally:
            if got:
                self._engine_lock.release()
