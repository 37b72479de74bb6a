"""The engine: ordered steps → shell → verifiers → progress, as a stream of events.

A ``LabSession`` owns one lab run: one persistent shell, one cache of shared
resources (API clients, port-forwards), and the progress store. It can run a
single command block, all of a step's commands, its checks, or the whole
step, which is what the TUI needs; ``Engine.verify`` strings sessions
together for ``labrunner verify``.

Checks are polled until they all pass or the step's ``within`` budget is
spent. A pending outcome that carries a ``wait`` callable (a Kubernetes
watch, say) is waited on instead of slept on, so a step passes within
milliseconds of the cluster converging; otherwise the engine backs off from
0.1 s to 2 s between rounds, so waiting costs almost no CPU. ``failed`` and
``error`` end the attempt at once: waiting will not fix them.

The engine owns every verdict: when a step's budget runs out (or another
check ends it), each check still pending is reported once more as failed
with its last message, so every listener — the terminal, the reports, the
TUI — sees the same final outcome without deciding it themselves.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from labrunner.durations import format_duration
from labrunner.engine import events as ev
from labrunner.engine.events import Phase, StepStatus
from labrunner.lab.expand import UnsetVariable, expand, with_env
from labrunner.lab.model import Command, Lab, Step, Workshop
from labrunner.redact import mask_values, redact
from labrunner.shell import CommandResult, Shell, ShellError
from labrunner.state import ProgressStore, StateError
from labrunner.state.rules import unmet_requirements
from labrunner.verify.context import CheckContext, RunResources
from labrunner.verify.outcome import Outcome, Status
from labrunner.verify.registry import Registry

Emit = Callable[[ev.Event], None]

TOOLS = frozenset({"kubectl", "istioctl", "helm", "curl", "openssl", "jq", "kind", "k3d", "git"})
MIN_CHECK_TIME = 10.0
"""How long one round of checks may take when there is no budget (``labrunner check``)."""
LAST_ROUND_TIME = 1.0
"""How long an evaluation that starts just before the budget runs out may still take."""
BACKOFF_START = 0.1
BACKOFF_MAX = 2.0
CONSECUTIVE_GAP = 0.5


class UsageError(Exception):
    """The caller asked for something that does not exist (a step id, say)."""


@dataclass(frozen=True)
class RunOptions:
    """How a run should behave."""

    from_step: str | None = None
    only_step: str | None = None
    setup: bool | None = None
    cleanup: bool = False
    skip_needs: frozenset[str] = frozenset()
    kube_context: str | None = None
    save: bool = True
    forensics: bool = False
    """Collect the cluster's events, pod states and logs when a cluster step fails."""


@dataclass
class StepResult:
    """How one step ended, for callers that want a value rather than events."""

    step_id: str
    status: StepStatus
    message: str = ""
    details: str | None = None
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the step passed or was skipped."""
        return self.status.ok


@dataclass
class RunSummary:
    """Per-lab step results of a verify run."""

    labs: dict[str, list[StepResult]] = field(default_factory=dict)
    lab_status: dict[str, StepStatus] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no lab failed or errored."""
        return all(s.ok for s in self.lab_status.values())

    @property
    def environment_broken(self) -> bool:
        """True when some step ended in ``error`` (the environment needs fixing)."""
        return any(r.status is StepStatus.ERROR for rs in self.labs.values() for r in rs)


def select_steps(lab: Lab, *, from_step: str | None, only_step: str | None) -> list[Step]:
    """The steps of ``lab`` a run covers; raises UsageError for unknown ids."""
    for name, value in (("--from", from_step), ("--only", only_step)):
        if value is not None and value not in {s.id for s in lab.steps}:
            ids = ", ".join(s.id for s in lab.steps)
            raise UsageError(f"{name} {value}: lab {lab.id} has no such step (steps: {ids})")
    if only_step is not None:
        return [lab.step(only_step)]
    if from_step is not None:
        return list(lab.steps[lab.index(from_step) :])
    return list(lab.steps)


def shell_environment(workshop: Workshop, lab: Lab, base: Mapping[str, str]) -> dict[str, str]:
    """The environment a lab's shell starts with: the user's, the workshop's, the lab's."""
    env = with_env(base, workshop.env, lab.env)
    env["LABRUNNER_WORKSHOP"] = str(workshop.root)
    env["LABRUNNER_LAB"] = lab.id
    here = Path(sys.executable).parent
    if (
        shutil.which("labrunner", path=env.get("PATH", os.defpath)) is None
        and (here / "labrunner").exists()
    ):
        env["PATH"] = f"{here}{os.pathsep}{env.get('PATH', os.defpath)}"
    return env


class LabSession:
    """One lab run: a shell, shared resources, and the lab's progress."""

    def __init__(
        self,
        engine: Engine,
        lab: Lab,
        *,
        restore_exports: bool = True,
    ) -> None:
        self.engine = engine
        self.lab = lab
        self.resources = RunResources()
        self.cancelled = threading.Event()
        self._shell: Shell | None = None
        self._restore = restore_exports
        self._env_snapshot: dict[str, str] | None = None
        self._state_warned = False
        self._reported: dict[int, ev.CheckResult] = {}
        """The last result reported for each check of the step being checked."""

    # ------------------------------------------------------------------ shell

    def _emit(self, event: ev.Event) -> None:
        self.engine.emit(event)

    @property
    def shell(self) -> Shell:
        """The lab's shell, started on first use (a shell that died restarts itself
        with its saved state on its next command; one that was closed is replaced)."""
        if self._shell is None or self._shell.pid is None:
            base = self.engine.base_env
            env = shell_environment(self.engine.workshop, self.lab, base)
            shell = Shell(env=env, cwd=self.engine.workshop.root)
            shell.start()
            self._shell = shell
            if self._restore:
                try:
                    values = self.engine.store.exports(self.lab.id)
                except StateError as exc:  # unreadable progress must not stop the lab
                    values = {}
                    self._warn_state(f"saved exports not restored: {exc}")
                if values:
                    shell.export(values)
                self._restore_directory(shell)
        return self._shell

    def _restore_directory(self, shell: Shell) -> None:
        """Return to the directory the learner's last completed step left the shell in."""
        try:
            records = self.engine.store.steps(self.lab.id)
        except StateError:
            return
        cwd = ""
        for step in self.lab.steps:
            record = records.get(step.id)
            if record is not None and record.complete and record.cwd:
                cwd = record.cwd
        if cwd and cwd != shell.cwd and Path(cwd).is_dir():
            shell.run(f"cd -- {shlex.quote(cwd)}", timeout=5.0)

    def close(self) -> None:
        """Stop the shell and everything it started; close shared resources."""
        self.resources.close()
        if self._shell is not None:
            self._shell.close()
            self._shell = None

    def __enter__(self) -> LabSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cancel(self) -> None:
        """Stop the running command and any check polling (safe from another thread)."""
        self.cancelled.set()
        if self._shell is not None:
            self._shell.cancel()

    def send_input(self, text: str) -> None:
        """Type a line into the running command (for an interactive prompt)."""
        if self._shell is not None:
            self._shell.send(text if text.endswith("\n") else text + "\n")

    def environment(self, *, refresh: bool = True) -> tuple[dict[str, str], Path]:
        """The lab shell's exported variables and working directory."""
        if refresh or self._env_snapshot is None:
            state = self.shell.snapshot()
            self._env_snapshot = state.env
            return state.env, Path(state.cwd)
        return self._env_snapshot, Path(self.shell.cwd)

    # ------------------------------------------------------------------ commands

    def run_command(
        self, command: Command, *, step_id: str | None, phase: Phase, index: int
    ) -> CommandResult:
        """Run one command in the lab shell, streaming its output as events."""
        self.cancelled.clear()
        lab_id = self.lab.id
        shown = _shown(command)
        self._emit(ev.CommandStarted(lab_id, step_id, phase, index, shown))

        def on_line(text: str) -> None:
            self._emit(ev.OutputLine(lab_id, step_id, text))

        def on_prompt(text: str) -> None:
            self._emit(ev.PromptWaiting(lab_id, step_id, text))

        try:
            result = self.shell.run(
                command.cmd,
                timeout=command.timeout,
                on_line=on_line,
                expect=command.expect,
                on_prompt=on_prompt,
            )
        except ShellError as exc:
            result = CommandResult(exit_code=None, duration=0.0, tail=(f"shell error: {exc}",))
        self._emit(
            ev.CommandFinished(
                lab_id,
                step_id,
                phase,
                index,
                shown,
                result.exit_code,
                result.duration,
                result.timed_out,
                result.cancelled,
                result.prompt,
            )
        )
        return result

    def run_commands(
        self, commands: Sequence[Command], *, step_id: str | None, phase: Phase
    ) -> tuple[StepStatus, str, str | None]:
        """Run commands in order; stop at the first that fails. Returns (status, why, details)."""
        for index, command in enumerate(commands):
            result = self.run_command(command, step_id=step_id, phase=phase, index=index)
            if result.ok or (result.exit_code is not None and command.allow_failure):
                continue
            text = _shown(command)
            first = text.strip().splitlines()[0] if text.strip() else text
            # redacted with all the lines kept, then cut: a tail that starts inside
            # a key or a hex dump has lost what shows it is one
            details = "\n".join(redact("\n".join(result.tail)).split("\n")[-30:]) or None
            if result.cancelled:
                return StepStatus.CANCELLED, f"cancelled: {first}", details
            if result.timed_out:
                why = f"command timed out after {format_duration(command.timeout)}: {first}"
                if result.prompt:
                    why += (
                        f" (it was waiting for input at the prompt {result.prompt!r}; "
                        "add an `expect` answer for it)"
                    )
                return StepStatus.FAILED, why, details
            if result.exit_code is None:
                return StepStatus.ERROR, f"the lab shell died while running: {first}", details
            return (
                StepStatus.FAILED,
                f"command failed (exit {result.exit_code}): {first}",
                details,
            )
        return StepStatus.PASSED, "", None

    # ------------------------------------------------------------------ checks

    def context(
        self,
        step: Step,
        env: Mapping[str, str],
        cwd: Path,
        *,
        deadline: float,
        attempt: int = 1,
    ) -> CheckContext:
        """What a check of ``step`` (or forensics about it) may see and use."""
        return CheckContext(
            env=env,
            cwd=cwd,
            workdir=self.engine.workshop.root,
            lab_id=self.lab.id,
            step_id=step.id,
            deadline=deadline,
            cancel=self.cancelled,
            resources=self.resources,
            kube_context=self.engine.options.kube_context,
            attempt=attempt,
        )

    def evaluate(
        self,
        step: Step,
        env: Mapping[str, str],
        cwd: Path,
        *,
        deadline: float,
        attempt: int,
        floor: float = LAST_ROUND_TIME,
    ) -> list[Outcome]:
        """Evaluate every check of ``step`` once, emitting a CheckResult for each.

        Each check must finish by ``deadline``, but gets at least ``floor`` seconds.
        """
        outcomes = []
        for index, check in enumerate(step.check):
            spec = self.engine.registry.get(check.verifier)
            started = time.monotonic()
            label = check.title or (spec.label(check.params) if spec else check.verifier)
            if spec is None:
                outcome = Outcome.error(f"verifier {check.verifier!r} is not installed")
            else:
                try:
                    params = expand(dict(check.params), env)
                except UnsetVariable as exc:
                    outcome = Outcome.error(
                        f"{exc} in the lab shell; set it (or export it from an earlier step)"
                    )
                else:
                    if not check.title:
                        label = spec.label(params)
                    ctx = self.context(
                        step, env, cwd, deadline=max(deadline, started + floor), attempt=attempt
                    )
                    outcome = _call(spec.func, ctx, params, check.verifier)
            outcomes.append(outcome)
            result = ev.CheckResult(
                self.lab.id,
                step.id,
                index,
                check.verifier,
                label,
                outcome.status,
                outcome.message,
                outcome.details,
                attempt,
                time.monotonic() - started,
            )
            self._reported[index] = result
            self._emit(result)
            if outcome.status.final:
                break
        return outcomes

    def check(
        self, step: Step, *, within: float | None = None, refresh_env: bool = True
    ) -> StepResult:
        """Poll ``step``'s checks until all pass or the budget is spent."""
        self.cancelled.clear()
        self._reported = {}
        budget = step.within if within is None else within
        start = time.monotonic()
        deadline = start + budget
        env, cwd = self.environment(refresh=refresh_env)
        streak = 0
        attempt = 0
        backoff = BACKOFF_START
        last: list[Outcome] = []
        if not step.check:
            return StepResult(step.id, StepStatus.PASSED, "no checks")
        while True:
            attempt += 1
            last = self.evaluate(
                step,
                env,
                cwd,
                deadline=deadline,
                attempt=attempt,
                floor=LAST_ROUND_TIME if budget > 0 else MIN_CHECK_TIME,
            )
            final = next((o for o in last if o.status.final), None)
            if final is not None:
                status = StepStatus.ERROR if final.status is Status.ERROR else StepStatus.FAILED
                return self._verdict(
                    StepResult(step.id, status, final.message, final.details, last)
                )
            if all(o.ok for o in last):
                streak += 1
                if streak >= step.consecutive:
                    return StepResult(step.id, StepStatus.PASSED, last[-1].message, None, last)
            else:
                streak = 0
            if self.cancelled.is_set():
                return StepResult(step.id, StepStatus.CANCELLED, "cancelled", None, last)
            now = time.monotonic()
            if now >= deadline:
                waiting = next((o for o in last if not o.ok), None)
                if waiting is None:
                    msg = f"passed only {streak} of {step.consecutive} times in a row"
                    return self._verdict(StepResult(step.id, StepStatus.FAILED, msg, None, last))
                msg = f"not done after {format_duration(budget)}: {waiting.message}"
                return self._verdict(
                    StepResult(step.id, StepStatus.FAILED, msg, waiting.details, last)
                )
            remaining = deadline - now
            if streak:
                self.cancelled.wait(min(CONSECUTIVE_GAP, remaining))
                continue
            waiter = next((o.wait for o in last if o.wait is not None and not o.ok), None)
            if waiter is not None:
                try:
                    waiter(min(remaining, BACKOFF_MAX * 15))
                except Exception:  # a broken watch falls back to plain polling
                    self.cancelled.wait(min(backoff, remaining))
            else:
                self.cancelled.wait(min(backoff, remaining))
                backoff = min(backoff * 1.6, BACKOFF_MAX)
            if self.cancelled.is_set():
                return StepResult(step.id, StepStatus.CANCELLED, "cancelled", None, last)

    def _verdict(self, result: StepResult) -> StepResult:
        """Close a failed step's checks: every check still pending is failed, last message kept.

        The engine owns the verdict, so what the screen, the reports and the
        progress file show of a step that ran out of budget (or stopped at
        another check's failure) agrees: no check of a finished step is left
        ``pending``.
        """
        outcomes = list(result.outcomes)
        for index, reported in sorted(self._reported.items()):
            if reported.status is not Status.PENDING:
                continue
            self._emit(replace(reported, status=Status.FAILED))
            self._reported[index] = replace(reported, status=Status.FAILED)
            if index < len(outcomes) and outcomes[index].status is Status.PENDING:
                outcome = outcomes[index]
                outcomes[index] = Outcome.failed(outcome.message, outcome.details)
        return replace(result, outcomes=outcomes)

    # ------------------------------------------------------------------ steps

    def missing_needs(self, step: Step) -> str | None:
        """Why ``step`` must be skipped (a tool missing, a capability turned off), if so."""
        needs = set(step.needs) | set(self.lab.needs)
        skipped = sorted(needs & self.engine.options.skip_needs)
        if skipped:
            return f"needs {', '.join(skipped)}, skipped with --skip-needs"
        path = None
        for tool in sorted(step.needs & TOOLS):
            if path is None:
                env, _ = self.environment(refresh=True)
                path = env.get("PATH", os.defpath)
            if shutil.which(tool, path=path) is None:
                return f"needs {tool}, which is not on the lab shell's PATH"
        return None

    def run_step(
        self, step: Step, *, solution: bool = False, index: int | None = None
    ) -> StepResult:
        """Run a step's commands (or its solution), then its checks; record the result."""
        started = time.monotonic()
        position = index if index is not None else self.lab.index(step.id)
        self._emit(ev.StepStarted(self.lab.id, step.id, position, step.title))
        result = self._run_step(step, solution=solution)
        duration = time.monotonic() - started
        self.record(step, result)
        if result.status in (StepStatus.FAILED, StepStatus.ERROR):
            self.forensics(step)
        self._emit(
            ev.StepFinished(
                self.lab.id,
                step.id,
                result.status,
                result.message,
                result.details,
                duration,
                _hints(step, result),
                len(result.outcomes),
            )
        )
        return result

    def forensics(self, step: Step) -> None:
        """Collect and emit what the cluster looks like now, if the run asked for it and
        the lab works on a cluster (never raises: evidence must not fail a run)."""
        if not self.engine.options.forensics or not self.lab.needs_cluster:
            return
        # lazy: only a failed cluster step pays for the cluster client
        from labrunner.verify import forensics
        from labrunner.verify.evidence import Section

        try:
            env, cwd = self.environment(refresh=False)
        except ShellError:
            env = shell_environment(self.engine.workshop, self.lab, self.engine.base_env)
            cwd = self.engine.workshop.root
        namespaces = forensics.lab_namespaces(self.lab, step, env)
        ctx = self.context(step, env, cwd, deadline=time.monotonic() + forensics.BUDGET)
        try:
            sections = forensics.collect(ctx, namespaces)
        except Exception as exc:  # a bug here must not hide the step's own failure
            sections = [
                Section(
                    "error.txt", "forensics failed", f"{type(exc).__name__}: {redact(str(exc))}"
                )
            ]
        self._emit(ev.Forensics(self.lab.id, step.id, tuple(sections)))

    def _run_step(self, step: Step, *, solution: bool) -> StepResult:
        try:
            skip = self.missing_needs(step)
        except ShellError as exc:
            return StepResult(step.id, StepStatus.ERROR, f"the lab shell failed: {exc}")
        if skip:
            return StepResult(step.id, StepStatus.SKIPPED, skip)
        commands = step.solution_commands if solution else step.run
        status, why, details = self.run_commands(
            commands, step_id=step.id, phase=Phase.SOLUTION if solution else Phase.RUN
        )
        if status is not StepStatus.PASSED:
            return StepResult(step.id, status, why, details)
        try:
            env, _ = self.environment(refresh=True)
        except ShellError as exc:
            return StepResult(step.id, StepStatus.ERROR, f"the lab shell failed: {exc}")
        missing = [name for name in step.exports if not env.get(name)]
        if missing:
            names = ", ".join(f"${n}" for n in missing)
            return StepResult(
                step.id,
                StepStatus.FAILED,
                f"the step should leave {names} set for later steps, but it is not set",
            )
        return self.check(step, refresh_env=False)

    def record(self, step: Step, result: StepResult, *, status: str | None = None) -> None:
        """Save a step's result in the progress store (warn once if that is impossible)."""
        if not self.engine.options.save or result.status is StepStatus.CANCELLED:
            return
        exports: dict[str, str] = {}
        if result.status is StepStatus.PASSED and step.exports and self._env_snapshot:
            exports = {k: self._env_snapshot[k] for k in step.exports if k in self._env_snapshot}
        try:
            # The message is redacted before it is stored; export values are kept as
            # they are (a later step needs the real token) in the 0600 progress file.
            self.engine.store.record(
                self.lab.id,
                step.id,
                status or result.status.value,
                exports=exports,
                message=redact(result.message) if not result.ok else "",
                cwd=self._shell.cwd if self._shell is not None and result.ok else None,
            )
        except StateError as exc:
            self._warn_state(f"progress not saved: {exc}")

    def _warn_state(self, message: str) -> None:
        if not self._state_warned:  # once per lab run: the cause is the same every time
            self._state_warned = True
            self._emit(ev.Notice(self.lab.id, message))

    def run_phase(self, phase: Phase) -> tuple[StepStatus, str, str | None]:
        """Run the lab's setup or cleanup commands."""
        commands = self.lab.setup if phase is Phase.SETUP else self.lab.cleanup
        if not commands:
            return StepStatus.PASSED, "", None
        self._emit(ev.PhaseStarted(self.lab.id, phase))
        return self.run_commands(commands, step_id=None, phase=phase)


def _shown(command: Command) -> str:
    """The command as events and messages show it: an answer marked secret is never
    shown, not even where the command itself names it."""
    return mask_values(command.cmd, [e.send for e in command.expect if e.secret])


def _hints(step: Step, result: StepResult) -> tuple[str, ...]:
    """Hints for a step that did not pass: the failing check's own hint first."""
    if result.status not in (StepStatus.FAILED, StepStatus.ERROR):
        return ()
    # outcomes line up with step.check: evaluation stops at the first final one
    failing = next((i for i, o in enumerate(result.outcomes) if not o.ok), None)
    if failing is not None and failing < len(step.check) and step.check[failing].hint:
        return (step.check[failing].hint, *step.hints)
    return step.hints


def _call(
    func: Callable[[CheckContext, dict[str, object]], Outcome],
    ctx: CheckContext,
    params: dict[str, object],
    name: str,
) -> Outcome:
    try:
        outcome = func(ctx, params)
    except Exception as exc:  # a verifier bug must not take the run down
        return Outcome.error(
            f"verifier {name} crashed: {type(exc).__name__}: {exc}",
            traceback.format_exc(limit=8),
        )
    if not isinstance(outcome, Outcome):  # a plug-in may ignore its annotations
        kind = type(outcome).__name__  # type: ignore[unreachable]
        return Outcome.error(f"verifier {name} returned {kind}, not an Outcome")
    return outcome


class Engine:
    """Runs labs of one workshop and reports what happens as events."""

    def __init__(
        self,
        workshop: Workshop,
        *,
        registry: Registry,
        store: ProgressStore,
        emit: Emit,
        options: RunOptions | None = None,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        self.workshop = workshop
        self.registry = registry
        self.store = store
        self.emit = emit
        self.options = options or RunOptions()
        self.base_env: dict[str, str] = dict(base_env if base_env is not None else os.environ)
        self._session: LabSession | None = None
        self._lock = threading.Lock()

    def session(self, lab: Lab, *, restore_exports: bool = True) -> LabSession:
        """A new session for ``lab`` (the caller closes it)."""
        session = LabSession(self, lab, restore_exports=restore_exports)
        with self._lock:
            self._session = session
        return session

    def cancel(self) -> None:
        """Cancel whatever the current session is doing."""
        with self._lock:
            session = self._session
        if session is not None:
            session.cancel()

    def verify(self, labs: Iterable[Lab]) -> RunSummary:
        """Run labs headless: setup when needed, each step's solution, then its checks."""
        summary = RunSummary()
        passed: set[str] = set()
        not_ok: set[str] = set()
        opts = self.options
        for lab in labs:
            steps = select_steps(lab, from_step=opts.from_step, only_step=opts.only_step)
            started = time.monotonic()
            self.emit(ev.LabStarted(lab.id, lab.title, tuple(s.id for s in steps)))
            blocked = unmet_requirements(lab, lambda r: r not in not_ok)
            results: list[StepResult] = []
            if blocked:
                why = f"requires {', '.join(blocked)}, which did not pass"
                for step in steps:
                    results.append(self._skip(lab, step, why))
                summary.labs[lab.id] = results
                summary.lab_status[lab.id] = StepStatus.SKIPPED
                not_ok.add(lab.id)
                self.emit(ev.LabFinished(lab.id, StepStatus.SKIPPED, _counts(results), 0.0, why))
                continue
            partial = steps[0].id != lab.steps[0].id
            with self.session(lab, restore_exports=partial) as session:
                status, message = StepStatus.PASSED, ""
                wants_setup = opts.setup
                if wants_setup is None:
                    wants_setup = bool(lab.setup) and any(r not in passed for r in lab.requires)
                if wants_setup and lab.setup:
                    phase_status, why, details = session.run_phase(Phase.SETUP)
                    if phase_status is not StepStatus.PASSED:
                        status = (
                            StepStatus.ERROR
                            if phase_status is not StepStatus.CANCELLED
                            else phase_status
                        )
                        message = f"setup failed: {why}"
                        for step in steps:
                            results.append(self._skip(lab, step, message, details=details))
                if not results:
                    for i, step in enumerate(steps):
                        result = session.run_step(step, solution=True, index=lab.index(step.id))
                        results.append(result)
                        if not result.ok:
                            status = result.status
                            message = f"step {step.id}: {result.message}"
                            for later in steps[i + 1 :]:
                                results.append(
                                    self._skip(lab, later, f"not run: step {step.id} did not pass")
                                )
                            break
                if opts.cleanup and lab.cleanup:
                    cleanup_status, why, _ = session.run_phase(Phase.CLEANUP)
                    if cleanup_status is not StepStatus.PASSED:
                        self.emit(ev.Notice(lab.id, f"cleanup failed: {why}"))
            summary.labs[lab.id] = results
            summary.lab_status[lab.id] = status
            (passed if status.ok else not_ok).add(lab.id)
            self.emit(
                ev.LabFinished(
                    lab.id, status, _counts(results), time.monotonic() - started, message
                )
            )
            if status is StepStatus.CANCELLED:
                break
        return summary

    def _skip(self, lab: Lab, step: Step, why: str, *, details: str | None = None) -> StepResult:
        self.emit(ev.StepStarted(lab.id, step.id, lab.index(step.id), step.title))
        self.emit(ev.StepFinished(lab.id, step.id, StepStatus.SKIPPED, why, details))
        return StepResult(step.id, StepStatus.SKIPPED, why, details)


def _counts(results: Sequence[StepResult]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status.value] = counts.get(r.status.value, 0) + 1
    return counts
