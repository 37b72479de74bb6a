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

A session also keeps what a step leaves behind for later ones: the shell's
exports and directory (restored as of the step before ``--from STEP``),
exports imported from the labs it requires, and the lab's *services*
(``labrunner.engine.services``): before a later step runs or is checked,
each service its earlier steps started is checked for readiness and started
again if it is down. ``Engine.verify`` runs ``--cleanup`` after every lab of
the run, in reverse dependency order, so no lab loses what it requires.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from labrunner import procs
from labrunner.durations import format_duration
from labrunner.engine import classfeed
from labrunner.engine import events as ev
from labrunner.engine.events import Phase, StepStatus
from labrunner.engine.prepare import PreparedRun
from labrunner.engine.services import ServiceProcess, ServiceState
from labrunner.fsutil import which
from labrunner.lab.expand import UnsetVariable, expand, with_env
from labrunner.lab.model import Check, Command, Lab, Service, Step, Workshop
from labrunner.redact import mask_values, redact
from labrunner.shell import CommandResult, ShellError
from labrunner.state import ProgressStore, StateError
from labrunner.state.rules import (
    StaleCause,
    restore_point,
    stale_message,
    unmet_requirements,
)
from labrunner.verify.context import CheckContext, RunResources
from labrunner.verify.outcome import Outcome, Status
from labrunner.verify.registry import Registry

TYPE_CHECKING = False  # as typing's, without importing typing (a start-up cost)
if TYPE_CHECKING:
    from labrunner.shell.session import Shell

Emit = Callable[[ev.Event], None]

TOOLS = frozenset({"kubectl", "istioctl", "helm", "curl", "openssl", "jq", "kind", "k3d", "git"})
MIN_CHECK_TIME = 10.0
"""How long one round of checks may take when there is no budget (``labrunner check``)."""
LAST_ROUND_TIME = 1.0
"""How long an evaluation that starts just before the budget runs out may still take."""
BACKOFF_START = 0.1
BACKOFF_MAX = 2.0
CONSECUTIVE_GAP = 0.5
PROBE_TIME = 5.0
"""How long one readiness probe of a service may take."""
FILE_PARAMS = ("path", "file", "ca", "cert", "key", "key_matches", "chain_to")
"""Check parameters that name a file the lab made (to word a stale step's message)."""
Identify = Callable[[], str]
"""Returns the identity of the cluster the run acts on (raises when it cannot tell)."""


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
    interactive: bool = False
    """A learner can type into commands (the TUI); headless runs refuse input instead."""
    shell_free_checks: bool = False
    """Checks that only ask the cluster run on the environment a new lab shell would have,
    computed without starting bash (``labrunner check``, a fresh process with no shell)."""
    pane: bool = False
    """The lab shell is also the learner's terminal (:class:`PaneShell`, the TUI's pane)."""


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
    halted: str | None = None
    """Why the run stopped before its end (the lab shell left the approved kubeconfig)."""

    @property
    def ok(self) -> bool:
        """True when no lab failed or errored."""
        return all(s.ok for s in self.lab_status.values())

    @property
    def environment_broken(self) -> bool:
        """True when some step ended in ``error`` (the environment needs fixing)."""
        return self.halted is not None or any(
            r.status is StepStatus.ERROR for rs in self.labs.values() for r in rs
        )


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
        which("labrunner", path=env.get("PATH", os.defpath)) is None
        and (here / "labrunner").exists()
    ):
        env["PATH"] = f"{here}{os.pathsep}{env.get('PATH', os.defpath)}"
    return env


def _moved_message(culprit: str, actual: str | None, expected: str | None) -> str:
    """Why a run stopped: ``culprit`` pointed KUBECONFIG away from the approved one."""
    now = "now unset, so kubectl reads ~/.kube/config" if not actual else f"now {actual!r}"
    was = repr(expected) if expected else "unset"
    return (
        f"{culprit} pointed KUBECONFIG away from the kubeconfig this run approved "
        f"({now}; the run uses {was}); labrunner stopped, so that no later command or "
        "check acts on a cluster you did not approve"
    )


class LabSession:
    """One lab run: a shell, shared resources, and the lab's progress."""

    def __init__(
        self,
        engine: Engine,
        lab: Lab,
        *,
        restore_exports: bool = True,
        restore_before: str | None = None,
    ) -> None:
        self.engine = engine
        self.lab = lab
        self.resources = RunResources()
        self.cancelled = threading.Event()
        self._shell: Shell | None = None
        self._restore = restore_exports
        self._restore_before = restore_before
        """``--from``/``--only``: resume as of the step before this one, and take the
        steps before it as done (their services may be started again)."""
        self._env_snapshot: dict[str, str] | None = None
        self._planned: tuple[dict[str, str], Path] | None = None
        """Set when the checks' environment was computed without a shell (``check``)."""
        self.halted: str | None = None
        """Set when the shell left the approved kubeconfig: nothing more runs in it."""
        self._kubeconfig: str | None = None
        """The KUBECONFIG the lab's shell must keep (the one it was started with)."""
        self._state_warned = False
        self._reported: dict[int, ev.CheckResult] = {}
        """The last result reported for each check of the step being checked."""
        self._done: set[str] = set()
        """Steps that passed (or were skipped) in this session."""
        self._services: dict[str, ServiceProcess] = {}
        """Services this session started itself (the steps' own copies live in the shell)."""
        self.service_states: dict[str, tuple[ServiceState, str]] = {}

    # ------------------------------------------------------------------ shell

    def _emit(self, event: ev.Event) -> None:
        self.engine.emit(event)

    @property
    def shell(self) -> Shell:
        """The lab's shell, started on first use (a shell that died restarts itself
        with its saved state on its next command; one that was closed is replaced)."""
        if self.halted is not None:
            raise ShellError(self.halted)
        if self._shell is None or self._shell.pid is None:
            env = self.engine.lab_environment(self.lab)
            directory = self.engine.run.directory if self.engine.run is not None else None
            # lazy: pexpect and the terminal modules load only when a shell starts, so a
            # check that needs none (`labrunner check` of a cluster step) starts without them
            kind: type[Shell]
            if self.engine.options.pane:
                from labrunner.shell.pane import PaneShell as kind
            else:
                from labrunner.shell.session import Shell as kind
            shell = kind(env=env, cwd=self.engine.workshop.root, directory=directory)
            shell.start()
            self._shell = shell
            self._kubeconfig = env.get("KUBECONFIG")
            if self.engine.run is None:  # nothing judged the lab's env: hold it to the base
                self._kubeconfig = self.engine.base_env.get("KUBECONFIG")
            self._guard_kubeconfig("the lab's environment (its `env`, or the workshop's)")
            values, cwd = self._restored()
            if values:
                shell.export(values)
                self._guard_kubeconfig("the exports restored from your progress")
            if cwd and cwd != shell.cwd and Path(cwd).is_dir():
                from shlex import quote  # with the shell's own modules, not at start-up

                shell.run(f"cd -- {quote(cwd)}", timeout=5.0)
        return self._shell

    def _restored(self) -> tuple[dict[str, str], str]:
        """The exports (imported, then saved and this run's) and the cwd a new shell resumes
        with; the cwd is empty when there is none to restore."""
        values = self._imported()
        if not self._restore:
            return values, ""
        try:
            records = self.engine.store.steps(self.lab.id)
        except StateError as exc:  # unreadable progress must not stop the lab
            records = {}
            self._warn_state(f"saved exports not restored: {exc}")
        point = restore_point(self.lab, records, before=self._restore_before)
        values.update(point.exports)
        values.update(self.engine.run_exports(self.lab.id, before=self._restore_before))
        return values, point.cwd

    def _shell_free(self, step: Step) -> bool:
        """True when ``step``'s checks may run on the environment a new shell would have,
        computed without starting one: the run asked for it, no shell runs yet, and every
        check asks the cluster (its environment is the pinned kubeconfig and the lab's
        variables), none reads what only a shell has (its variables, files, bash code)."""
        if not self.engine.options.shell_free_checks or self._shell is not None:
            return False
        for check in step.check:
            spec = self.engine.registry.get(check.verifier)
            if spec is None or spec.shell_params or "cluster" not in spec.needs:
                return False
        return True

    def _planned_environment(self) -> tuple[dict[str, str], Path]:
        """What a new lab shell would report as its exports and directory, without bash.

        The shell would start with the lab's environment, export the restored values and
        ``cd`` to the restored directory; the same KUBECONFIG guard applies. Raises
        ShellError when the restored exports move KUBECONFIG away from the pinned one.
        """
        if self.halted is not None:
            raise ShellError(self.halted)
        if self._planned is not None:
            return self._planned
        env = self.engine.lab_environment(self.lab)
        # as for a started shell: held to the pinned kubeconfig, else to the user's own
        base = env if self.engine.run is not None else self.engine.base_env
        expected = base.get("KUBECONFIG")
        root = self.engine.workshop.root
        values, restored = self._restored()
        env.update(values)
        cwd = Path(restored) if restored and Path(restored).is_dir() else root
        env["PWD"] = str(cwd)
        actual = env.get("KUBECONFIG")
        if kubeconfig_moved(actual, expected, cwd=str(cwd)):
            self.halted = _moved_message(
                "the exports restored from your progress", actual, expected
            )
            raise ShellError(self.halted)
        self._planned = (env, cwd)
        return env, cwd

    @property
    def current_shell(self) -> Shell | None:
        """The lab's shell if it was started (never starts one)."""
        return self._shell

    def restart_shell(self) -> Shell:
        """Close the lab's shell and start a new one with the exports and directory it
        saved (for a shell whose integration was lost, ``exec bash``)."""
        old = self._shell
        if old is not None:
            state = old.snapshot()
            self._shell = None
            old.close()
            shell = self.shell
            base = self.engine.lab_environment(self.lab)
            values = {k: v for k, v in state.env.items() if base.get(k) != v}
            if values:
                shell.export(values)
                self._guard_kubeconfig("the exports of the shell you restarted")
            if state.cwd != shell.cwd and Path(state.cwd).is_dir():
                from shlex import quote

                shell.run(f"cd -- {quote(state.cwd)}", timeout=5.0)
        return self.shell

    def _guard_kubeconfig(self, culprit: str) -> None:
        """Stop everything if the shell's KUBECONFIG left the one this lab was pinned to.

        Raises ShellError (and closes the shell, with all it started) when it did;
        ``culprit`` says what changed it, for the message.
        """
        shell = self._shell
        if shell is None:
            return
        expected = self._kubeconfig
        actual = shell.kubeconfig
        if not kubeconfig_moved(actual, expected, cwd=shell.cwd):
            return
        self.halted = _moved_message(culprit, actual, expected)
        self.close()
        raise ShellError(self.halted)

    def _imported(self) -> dict[str, str]:
        """The exports this lab imports from the labs it requires: this run's, else saved."""
        values: dict[str, str] = {}
        for item in self.lab.imports:
            known = self.engine.run_exports(item.lab)
            if not all(name in known for name in item.names):
                try:
                    known = {**self.engine.store.exports(item.lab), **known}
                except StateError as exc:
                    self._warn_state(f"exports of {item.lab} not imported: {exc}")
            missing = [name for name in item.names if name not in known]
            if missing:
                names = ", ".join(f"${name}" for name in missing)
                self._emit(
                    ev.Notice(
                        self.lab.id,
                        f"{names} from {item.lab} is not known yet (do that lab first); "
                        "steps that use it will say so",
                    )
                )
            values.update({name: known[name] for name in item.names if name in known})
        return values

    def close(self) -> None:
        """Stop the services, the shell and everything they started; close shared resources;
        make the lab's saved progress durable."""
        self.stop_services()
        self.resources.close()
        if self.engine.options.save:
            with contextlib.suppress(StateError):
                self.engine.store.sync()
        if self._shell is not None:
            self._shell.close()
            self._shell = None

    def __enter__(self) -> LabSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fresh_start(self) -> None:
        """Forget an earlier cancel before new work, unless the whole run was interrupted."""
        if self.engine.interrupted.is_set():
            self.cancelled.set()
        else:
            self.cancelled.clear()

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
        self._fresh_start()
        lab_id = self.lab.id
        shown = _shown(command)
        try:
            shell: Shell | None = self.shell  # started (and judged) before anything is shown
            failure = ""
        except ShellError as exc:
            if self.halted is not None:  # nothing runs any more: no command to show
                return CommandResult(exit_code=None, duration=0.0)
            shell, failure = None, str(exc)
        self._emit(ev.CommandStarted(lab_id, step_id, phase, index, shown))

        def on_line(text: str) -> None:
            self._emit(ev.OutputLine(lab_id, step_id, text))

        headless = not self.engine.options.interactive

        def on_prompt(text: str) -> None:
            self._emit(ev.PromptWaiting(lab_id, step_id, text, refused=headless))

        try:
            if shell is None:
                raise ShellError(failure)
            result = shell.run(
                command.cmd,
                timeout=command.timeout,
                on_line=on_line,
                expect=command.expect,
                on_prompt=on_prompt,
                headless=headless,
            )
        except ShellError as exc:
            result = CommandResult(exit_code=None, duration=0.0, tail=(f"shell error: {exc}",))
        else:
            first = shown.strip().splitlines()[0] if shown.strip() else shown
            try:
                self._guard_kubeconfig(f"the command `{first}`")
            except ShellError:
                pass  # self.halted says why; run_commands stops on it
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
            if self.halted is not None:
                return StepStatus.ERROR, self.halted, None
            tolerated = result.exit_code is not None and command.allow_failure
            if tolerated or (result.ok and result.input_wanted is None):
                continue
            text = _shown(command)
            first = text.strip().splitlines()[0] if text.strip() else text
            # redacted with all the lines kept, then cut: a tail that starts inside
            # a key or a hex dump has lost what shows it is one
            details = "\n".join(redact("\n".join(result.tail)).split("\n")[-30:]) or None
            if result.cancelled:
                return StepStatus.CANCELLED, f"cancelled: {first}", details
            if result.input_wanted is not None:
                # headless: an unanswered prompt is a lab bug even when the command
                # then exits 0 (it went on without the answer it asked for)
                return StepStatus.FAILED, _no_input(result, first), details
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
        step_id: str,
        env: Mapping[str, str],
        cwd: Path,
        *,
        deadline: float,
        attempt: int = 1,
    ) -> CheckContext:
        """What a check of step ``step_id`` (or forensics about it) may see and use."""
        return CheckContext(
            env=env,
            cwd=cwd,
            workdir=self.engine.workshop.root,
            lab_id=self.lab.id,
            step_id=step_id,
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
            started = time.monotonic()
            label, outcome = self._run_check(
                check,
                step.id,
                env,
                cwd,
                deadline=max(deadline, started + floor),
                attempt=attempt,
            )
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

    def _run_check(
        self,
        check: Check,
        step_id: str,
        env: Mapping[str, str],
        cwd: Path,
        *,
        deadline: float,
        attempt: int,
    ) -> tuple[str, Outcome]:
        """Run one check once; returns its label and outcome (never raises)."""
        spec = self.engine.registry.get(check.verifier)
        label = check.title or (spec.label(check.params) if spec else check.verifier)
        if spec is None:
            return label, Outcome.error(f"verifier {check.verifier!r} is not installed")
        try:
            params = _expanded(check.params, env, spec.shell_params)
        except UnsetVariable as exc:
            return label, Outcome.error(
                f"{exc} in the lab shell; set it (or export it from an earlier step)"
            )
        if not check.title:
            label = spec.label(params)
        ctx = self.context(step_id, env, cwd, deadline=deadline, attempt=attempt)
        return label, _call(spec.func, ctx, params, check.verifier)

    def check(
        self,
        step: Step,
        *,
        within: float | None = None,
        refresh_env: bool = True,
        services: bool = True,
    ) -> StepResult:
        """Poll ``step``'s checks until all pass or the budget is spent.

        With ``services`` (the default), the lab services the step relies on
        are made ready first; a step's own run turns that off, so the check
        sees what the step's commands did.
        """
        try:
            if services:
                self.ensure_services(step)
        except ShellError as exc:
            why = self.halted or f"the lab shell failed: {exc}"
            return StepResult(step.id, StepStatus.ERROR, why)
        self._fresh_start()
        self._reported = {}
        budget = step.within if within is None else within
        start = time.monotonic()
        deadline = start + budget
        try:
            if self._shell_free(step):
                env, cwd = self._planned_environment()
            else:
                env, cwd = self.environment(refresh=refresh_env)
        except ShellError as exc:
            why = self.halted or f"the lab shell failed: {exc}"
            return StepResult(step.id, StepStatus.ERROR, why)
        pinned = self.engine.kubeconfig(self.lab)
        if pinned is not None and env.get("KUBECONFIG") != pinned:
            # checks act on the approved cluster whatever the shell exported since
            env = {**env, "KUBECONFIG": pinned}
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
                # a budget spent waiting on a broken environment (an API server that
                # stalls or cuts connections) is the environment's fault, not the lab's
                status = StepStatus.ERROR if waiting.environment else StepStatus.FAILED
                return self._verdict(StepResult(step.id, status, msg, waiting.details, last))
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
            last = outcomes[index] if index < len(outcomes) else None
            broken = last is not None and last.status is Status.PENDING and last.environment
            final = Status.ERROR if broken else Status.FAILED
            self._emit(replace(reported, status=final))
            self._reported[index] = replace(reported, status=final)
            if last is not None and last.status is Status.PENDING:
                outcomes[index] = Outcome(final, last.message, last.details)
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
            if which(tool, path=path) is None:
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
        # lazy: only a failed cluster step pays for the cluster client and its evidence
        from labrunner.verify import forensics
        from labrunner.verify.evidence import Section

        try:
            env, cwd = self.environment(refresh=False)
        except ShellError:
            env = shell_environment(self.engine.workshop, self.lab, self.engine.base_env)
            cwd = self.engine.workshop.root
        namespaces = forensics.lab_namespaces(self.lab, step, env)
        ctx = self.context(step.id, env, cwd, deadline=time.monotonic() + forensics.BUDGET)
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
        self.ensure_services(step, starting=True)
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
        return self.check(step, refresh_env=False, services=False)

    def record(self, step: Step, result: StepResult, *, status: str | None = None) -> None:
        """Save a step's result in the progress store (warn once if that is impossible)."""
        if result.status is StepStatus.CANCELLED:
            return
        exports: dict[str, str] = {}
        if result.status is StepStatus.PASSED and step.exports and self._env_snapshot:
            exports = {k: self._env_snapshot[k] for k in step.exports if k in self._env_snapshot}
        if result.ok:
            self._done.add(step.id)
            self.engine.remember_exports(self.lab.id, step.id, exports)
            self._report_started(step)
        if not self.engine.options.save:
            return
        message = redact(result.message) if not result.ok else ""
        try:
            # The message is redacted before it is stored; export values are kept as
            # they are (a later step needs the real token) in the 0600 progress file.
            self.engine.store.record(
                self.lab.id,
                step.id,
                status or result.status.value,
                exports=exports,
                message=message,
                cwd=self._shell.cwd if self._shell is not None and result.ok else None,
            )
        except StateError as exc:
            self._warn_state(f"progress not saved: {exc}")
        self._emit(ev.StepRecorded(self.lab.id, step.id, status or result.status.value, message))

    def _warn_state(self, message: str) -> None:
        if not self._state_warned:  # once per lab run: the cause is the same every time
            self._state_warned = True
            self._emit(ev.Notice(self.lab.id, message))

    # ------------------------------------------------------------------ re-checks

    def recheck(self, step: Step) -> StepResult:
        """Check a completed step once more (on resume): flag it stale when it fails."""
        result = self.check(step, within=0)
        self.note_recheck(step, result)
        return result

    def note_recheck(self, step: Step, result: StepResult) -> str | None:
        """Record what a re-check of a completed step found; returns the stale message."""
        if result.status is StepStatus.CANCELLED:
            return None
        why = None if result.status is StepStatus.PASSED else self.stale_reason(step, result)
        if self.engine.options.save:
            try:
                self.engine.store.mark_stale(self.lab.id, step.id, why)
            except StateError as exc:
                self._warn_state(f"progress not saved: {exc}")
        return why

    def stale_reason(self, step: Step, result: StepResult) -> str:
        """Why a completed step no longer passes, in words that fit the cause."""
        for service in self._services_for(step):
            known = self.service_states.get(service.id)  # only services this run looked at
            if known is not None and known[0] is not ServiceState.RUNNING:
                return stale_message(StaleCause.SERVICE, subject=service.label, detail=known[1])
        failing = next((i for i, o in enumerate(result.outcomes) if not o.ok), None)
        detail = redact(result.message)
        if failing is None or failing >= len(step.check):
            return stale_message(StaleCause.CHECK, detail=detail)
        check = step.check[failing]
        gone = self._missing_file(check)
        if gone is not None:
            return stale_message(StaleCause.FILE, subject=gone)
        spec = self.engine.registry.get(check.verifier)
        if spec is not None and "cluster" in spec.needs:
            return stale_message(StaleCause.CLUSTER, detail=detail)
        return stale_message(StaleCause.CHECK, detail=detail)

    def _missing_file(self, check: Check) -> str | None:
        """A file the check reads that does not exist (any more), if there is one."""
        env, cwd = self.environment(refresh=False)
        try:
            params = expand(dict(check.params), env)
        except UnsetVariable:
            return None
        for key in FILE_PARAMS:
            value = params.get(key)
            if isinstance(value, str) and value and not (cwd / value).exists():
                return value
        return None

    # ------------------------------------------------------------------ services

    def _services_for(self, step: Step) -> list[Service]:
        """The services ``step`` relies on: those its earlier steps (or itself) started."""
        index = self.lab.index(step.id)
        return [s for s in self.lab.services if self.lab.index(s.step) <= index]

    def _introduced(self, service: Service) -> bool:
        """True once the step that starts ``service`` is done (or taken as done)."""
        if service.step in self._done:
            return True
        if self._restore_before is not None and self.lab.index(service.step) < self.lab.index(
            self._restore_before
        ):
            return True
        try:
            record = self.engine.store.steps(self.lab.id).get(service.step)
        except StateError:
            return False
        return record is not None and record.complete

    def _can_run(self, service: Service) -> bool:
        """A service needs what the step that starts it needs (a tool, traffic, ...)."""
        return self.missing_needs(self.lab.step(service.step)) is None

    def ensure_services(self, step: Step, *, starting: bool = False) -> None:
        """Make the services ``step`` relies on ready, starting those that are down.

        ``starting``: the step's own commands are about to run; a service this
        step introduces is then left to them (a copy the runner started is
        stopped first, so the step starts it as the learner would).
        """
        if not self.lab.services:
            return
        due = []
        for service in self._services_for(step):
            if service.step == step.id and starting:
                self._stop_service(service)
            elif self._introduced(service) and self._can_run(service):
                due.append(service)
        if not due:
            return
        env, cwd = self.environment(refresh=True)
        for service in due:
            if self.cancelled.is_set():
                return
            self._ensure_service(service, env, cwd)

    def _report_started(self, step: Step) -> None:
        """After a step that starts services passed: say whether they run now."""
        started = [s for s in self.lab.services if s.step == step.id]
        if not started:
            return
        try:
            env, cwd = self.environment(refresh=False)
        except ShellError:
            return
        for service in started:
            down = self._probe(service, env, cwd)
            if down is None:
                self._set_service(service, ServiceState.RUNNING, f"running (started by {step.id})")
            else:
                self._set_service(service, ServiceState.STOPPED, f"not running: {down.message}")

    def _set_service(
        self, service: Service, state: ServiceState, message: str, output: tuple[str, ...] = ()
    ) -> None:
        before = self.service_states.get(service.id)
        self.service_states[service.id] = (state, message)
        if before != (state, message):
            self._emit(
                ev.ServiceChanged(
                    self.lab.id, service.id, service.label, state.value, message, output
                )
            )

    def _probe(
        self, service: Service, env: Mapping[str, str], cwd: Path, *, attempt: int = 1
    ) -> Outcome | None:
        """Run the service's readiness checks once; the first that does not pass, or None."""
        for check in service.ready:
            _, outcome = self._run_check(
                check,
                service.step,
                env,
                cwd,
                deadline=time.monotonic() + PROBE_TIME,
                attempt=attempt,
            )
            if not outcome.ok:
                return outcome
        return None

    def _ensure_service(self, service: Service, env: Mapping[str, str], cwd: Path) -> None:
        ours = self._services.get(service.id)
        down = self._probe(service, env, cwd)
        if down is None:
            known = self.service_states.get(service.id)
            if ours is not None and ours.exit_code in (None, 0):
                message = "running (started by labrunner)"
            elif known is not None and known[0] is ServiceState.RUNNING:
                message = known[1]
            else:
                message = "running"
            self._set_service(service, ServiceState.RUNNING, message)
            return
        if ours is not None:
            ours.stop()
        where = self._service_cwd(service, cwd)
        self._set_service(
            service, ServiceState.STARTING, f"not running ({down.message}); starting it again"
        )
        try:
            ours = ServiceProcess(service.start.cmd, env=env, cwd=where)
        except OSError as exc:
            self._set_service(service, ServiceState.FAILED, f"cannot start: {exc.strerror or exc}")
            return
        self._services[service.id] = ours
        deadline = time.monotonic() + service.within
        backoff = BACKOFF_START
        attempt = 1
        while True:
            attempt += 1
            down = self._probe(service, env, where, attempt=attempt)
            if down is None:
                self._set_service(service, ServiceState.RUNNING, "running (started by labrunner)")
                return
            code = ours.exit_code
            if code not in (None, 0):
                self._fail_service(service, ours, f"its start command exited {code}")
                return
            if self.cancelled.is_set():
                return
            if time.monotonic() >= deadline:
                why = f"not ready after {format_duration(service.within)}: {down.message}"
                self._fail_service(service, ours, why)
                return
            self.cancelled.wait(min(backoff, max(deadline - time.monotonic(), 0.0)))
            backoff = min(backoff * 1.6, BACKOFF_MAX)

    def _fail_service(self, service: Service, process: ServiceProcess, why: str) -> None:
        process.stop()
        self._services.pop(service.id, None)
        output = process.lines()
        last = f" ({output[-1]})" if output and output[-1].strip() else ""
        self._set_service(service, ServiceState.FAILED, f"{why}{last}", output)

    def _service_cwd(self, service: Service, fallback: Path) -> Path:
        """Where to start a service: where the learner was when its step passed."""
        try:
            record = self.engine.store.steps(self.lab.id).get(service.step)
        except StateError:
            record = None
        if record is not None and record.cwd and Path(record.cwd).is_dir():
            return Path(record.cwd)
        return fallback

    def _stop_service(self, service: Service) -> None:
        ours = self._services.pop(service.id, None)
        if ours is None:
            return
        if service.stop is not None:
            self._run_stop(service)
        ours.stop()
        self._set_service(service, ServiceState.STOPPED, "stopped")

    def _run_stop(self, service: Service) -> None:
        """The service's own stop command, for what stopping its process group cannot reach."""
        assert service.stop is not None
        env = dict(self._env_snapshot or self.engine.base_env)
        try:
            procs.run(
                ["bash", "-c", service.stop.cmd],
                timeout=min(service.stop.timeout, 30.0),
                env=env,
                cwd=self._service_cwd(service, self.engine.workshop.root),
            )
        except procs.ToolNotFound:
            pass

    def stop_services(self) -> None:
        """Stop every service this session started (the lab shell takes its own with it)."""
        for service in self.lab.services:
            self._stop_service(service)

    def run_phase(self, phase: Phase) -> tuple[StepStatus, str, str | None]:
        """Run the lab's setup or cleanup commands."""
        commands = self.lab.setup if phase is Phase.SETUP else self.lab.cleanup
        if not commands:
            return StepStatus.PASSED, "", None
        self._emit(ev.PhaseStarted(self.lab.id, phase))
        return self.run_commands(commands, step_id=None, phase=phase)


def _expanded(
    params: Mapping[str, object], env: Mapping[str, str], shell: frozenset[str]
) -> dict[str, object]:
    """A check's parameters with ``${VAR}`` expanded, except those bash expands itself."""
    out = expand({k: v for k, v in params.items() if k not in shell}, env)
    out.update({k: v for k, v in params.items() if k in shell})
    return dict(out)


def _no_input(result: CommandResult, first: str) -> str:
    """Why a headless command that waited for input fails its step, naming its prompt."""
    prompt = result.input_wanted
    where = f"at the prompt {prompt!r}" if prompt else "on its standard input"
    if result.input_stopped:
        got = "it reads keys one at a time, so it was stopped"
    elif result.exit_code:
        got = f"it got end-of-file and exited {result.exit_code}"
    else:
        got = "it got end-of-file and went on without an answer"
    unless = "" if prompt else ", or `< /dev/null` if it needs no input"
    return (
        f"command got no input: {first} (it was waiting for input {where}; "
        f"add an `expect` answer for it{unless}) — a headless run has nobody to type, so {got}"
    )


def kubeconfig_moved(actual: str | None, expected: str | None, *, cwd: str) -> bool:
    """True when ``actual`` (the shell's KUBECONFIG, in ``cwd``) names other files than
    ``expected`` (the run's, in this process's directory), as kubectl reads them:
    empty entries skipped, no ``~`` expansion, relative to the working directory,
    and an empty or unset value meaning ``~/.kube/config``."""
    if actual == expected:
        return False
    return _kube_files(actual, cwd) != _kube_files(expected, os.getcwd())


def _kube_files(value: str | None, cwd: str) -> tuple[str, ...]:
    files = [os.path.realpath(os.path.join(cwd, p)) for p in (value or "").split(os.pathsep) if p]
    return tuple(dict.fromkeys(files))


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
    except procs.CannotStart as exc:  # the lab's environment, not the verifier, is at fault
        return Outcome.error(str(exc))
    except Exception as exc:  # a verifier bug must not take the run down
        import traceback  # lazy: only a crash needs it (start-up speed)

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
        identify: Identify | None = None,
        run: PreparedRun | None = None,
    ) -> None:
        self.workshop = workshop
        self.registry = registry
        self.store = store
        self.emit = classfeed.tap(emit, workshop)
        """Every event goes to ``emit``, and to the class when the learner joined one."""
        self.options = options or RunOptions()
        if base_env is None:
            base_env = run.env if run is not None else os.environ
        self.base_env: dict[str, str] = dict(base_env)
        self.identify = identify
        """How to learn the identity of the cluster (confirmed before the first cluster lab)."""
        self.run = run
        """The run's pinned kubeconfigs; without one (library use, tests) the shells get
        ``base_env``'s KUBECONFIG as it is."""
        self._session: LabSession | None = None
        self._lock = threading.Lock()
        self._exports: dict[str, dict[str, dict[str, str]]] = {}
        self._confirmed = False
        self.interrupted = threading.Event()
        """Set by :meth:`interrupt`: nothing more runs in this engine."""

    def kubeconfig(self, lab: Lab) -> str | None:
        """The kubeconfig ``lab`` is pinned to in this run (None when nothing is pinned)."""
        if self.run is None:
            return None
        return str(self.run.kubeconfig_for(self.workshop, lab))

    def lab_environment(self, lab: Lab) -> dict[str, str]:
        """The environment ``lab``'s shell starts with, KUBECONFIG pinned."""
        env = shell_environment(self.workshop, lab, self.base_env)
        pinned = self.kubeconfig(lab)
        if pinned is not None and self.run is not None:
            env["KUBECONFIG"] = pinned
            if which("kubectl", path=env.get("PATH", os.defpath)) is not None:
                guard = self.run.kubectl_guard(Path(pinned))
                env["PATH"] = f"{guard}{os.pathsep}{env.get('PATH', os.defpath)}"
        return env

    def session(
        self, lab: Lab, *, restore_exports: bool = True, restore_before: str | None = None
    ) -> LabSession:
        """A new session for ``lab`` (the caller closes it)."""
        session = LabSession(
            self, lab, restore_exports=restore_exports, restore_before=restore_before
        )
        with self._lock:
            self._session = session
        return session

    def cancel(self) -> None:
        """Cancel whatever the current session is doing."""
        with self._lock:
            session = self._session
        if session is not None:
            session.cancel()

    # ------------------------------------------------------------------ what this run made

    def remember_exports(self, lab_id: str, step_id: str, values: Mapping[str, str]) -> None:
        """Keep a passed step's exports for later labs of this run (saved or not)."""
        with self._lock:
            self._exports.setdefault(lab_id, {})[step_id] = dict(values)

    def run_exports(self, lab_id: str, *, before: str | None = None) -> dict[str, str]:
        """Exports that ``lab_id``'s steps (before ``before``) left in this run."""
        with self._lock:
            by_step = dict(self._exports.get(lab_id, {}))
        lab = self.workshop.find(lab_id)
        order = [s.id for s in lab.steps] if lab is not None else list(by_step)
        values: dict[str, str] = {}
        for step_id in order:
            if step_id == before:
                break
            values.update(by_step.get(step_id, {}))
        return values

    def confirm_cluster(self, lab_id: str) -> None:
        """Tie the cluster labs' progress to the cluster that answers (once per engine)."""
        if self._confirmed or self.identify is None:
            return
        self._confirmed = True
        try:
            uid = self.identify()
        except Exception:  # an unreachable cluster: the lab's own checks will say so
            return
        try:
            notice = self.store.confirm_cluster(uid)
        except StateError as exc:
            self.emit(ev.Notice(lab_id, f"progress not saved: {exc}"))
            return
        if notice:
            self.emit(ev.Notice(lab_id, notice))

    def interrupt(self) -> None:
        """Cancel what runs and everything after it (Ctrl-C in a headless run)."""
        self.interrupted.set()
        self.cancel()

    # ------------------------------------------------------------------ verify

    def verify(self, labs: Iterable[Lab]) -> RunSummary:
        """Run labs headless: setup when needed, each step's solution, then its checks.

        With ``cleanup``, the labs' cleanups run after every lab of the run, in
        reverse dependency order, so no lab loses the state it requires.
        """
        summary = RunSummary()
        passed: set[str] = set()
        not_ok: set[str] = set()
        ran: list[Lab] = []
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
            if lab.needs_cluster:
                self.confirm_cluster(lab.id)
            partial = steps[0].id != lab.steps[0].id
            ran.append(lab)
            with self.session(
                lab, restore_exports=partial, restore_before=steps[0].id if partial else None
            ) as session:
                status, message = StepStatus.PASSED, ""
                wants_setup = opts.setup
                if wants_setup is None:
                    wants_setup = bool(lab.setup) and _state_may_be_gone(lab, passed)
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
                if session.halted is not None:
                    summary.halted = session.halted
                    status = StepStatus.ERROR
                    message = session.halted
            summary.labs[lab.id] = results
            summary.lab_status[lab.id] = status
            (passed if status.ok else not_ok).add(lab.id)
            self.emit(
                ev.LabFinished(
                    lab.id, status, _counts(results), time.monotonic() - started, message
                )
            )
            if status is StepStatus.CANCELLED or summary.halted or self.interrupted.is_set():
                break
        if opts.cleanup and summary.halted is None:  # a halted run runs nothing more
            self.cleanup(ran)
        return summary

    def cleanup(self, labs: Sequence[Lab]) -> None:
        """Run the labs' cleanups, those that depend on others first (the order is announced)."""
        order = cleanup_order(self.workshop, [lab for lab in labs if lab.cleanup])
        if not order:
            return
        self.emit(ev.CleanupPlanned(order[0].id, tuple(lab.id for lab in order)))
        for lab in order:
            with self.session(lab, restore_exports=True) as session:
                status, why, _ = session.run_phase(Phase.CLEANUP)
            if status is not StepStatus.PASSED:
                self.emit(ev.Notice(lab.id, f"cleanup failed: {why}"))
            if status is StepStatus.CANCELLED:
                break

    def _skip(self, lab: Lab, step: Step, why: str, *, details: str | None = None) -> StepResult:
        self.emit(ev.StepStarted(lab.id, step.id, lab.index(step.id), step.title))
        self.emit(ev.StepFinished(lab.id, step.id, StepStatus.SKIPPED, why, details))
        return StepResult(step.id, StepStatus.SKIPPED, why, details)


def _state_may_be_gone(lab: Lab, passed: set[str]) -> bool:
    """True when some lab ``lab`` requires did not pass in this run.

    Its state may then be missing (never made here, or cleaned up since), so
    the lab's setup brings the environment to the lab's starting point. A
    requirement that passed in this run still stands: ``--cleanup`` runs only
    after every lab of the run.
    """
    return any(r not in passed for r in lab.requires)


def cleanup_order(workshop: Workshop, labs: Sequence[Lab]) -> list[Lab]:
    """``labs`` in reverse dependency order: a lab before every lab it requires."""
    position = {lab.id: i for i, lab in enumerate(workshop.labs)}  # already topological
    return sorted(labs, key=lambda lab: position.get(lab.id, -1), reverse=True)


def _counts(results: Sequence[StepResult]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status.value] = counts.get(r.status.value, 0) + 1
    return counts
