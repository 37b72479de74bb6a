"""The Textual app: builds the screens, drives the engine, keeps the learner safe.

``make_app`` builds the app for both the CLI (``run_app``) and the tests,
which pass fakes in (a memory progress store, a doctor that answers at once,
a shell runner that does what a learner would type). The app owns the one
:class:`~labrunner.tui.driver.LabDriver` of the open lab and is the only
place that starts workers: screens post requests, the app checks the context
guard and whether the session is free, then runs the blocking engine call in
a thread worker. Nothing here blocks the UI thread for long, except on
purpose: while the learner's own shell runs, the app is suspended.

On exit the open lab is cancelled and its shell closed, so no command the
learner started outlives labrunner.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.driver import Driver
from textual.notifications import Notification, Notify
from textual.worker import Worker, get_current_worker

from labrunner import proctree, startup
from labrunner.classroom import publisher as class_publisher
from labrunner.cluster.identity import cluster_uid
from labrunner.cluster.kubeconfig import server_for
from labrunner.doctor import Finding, collect
from labrunner.doctor.cluster import CREATE_CLUSTER_FIX
from labrunner.engine import events as ev
from labrunner.engine.classfeed import class_directory
from labrunner.engine.events import Phase
from labrunner.engine.prepare import PreparedRun, prepare_run
from labrunner.engine.runner import Engine, RunOptions
from labrunner.lab.model import Lab, Step, Workshop
from labrunner.lab.watch import LabFileWatcher
from labrunner.shell.pane import PaneShell, attach_terminal
from labrunner.state import ProgressStore, StateError, StepRecord
from labrunner.state.rules import (
    lab_progress,
    resume_target,
    steps_to_recheck,
    workshop_progress,
)
from labrunner.tui import hangup
from labrunner.tui import messages as msg
from labrunner.tui.commands import Action, ScreenActions, bindings
from labrunner.tui.dialogs.confirm import ConfirmDialog, GuardDialog
from labrunner.tui.driver import LabDriver
from labrunner.tui.progress import EnvironmentStatus, summarize
from labrunner.tui.screens.help import HelpScreen, binding_rows
from labrunner.tui.screens.home import HomeScreen
from labrunner.tui.screens.lab import TERMINAL_ACTIONS, LabScreen
from labrunner.tui.terminal.keys import encode_key
from labrunner.tui.widgets.terminal_pane import key_label
from labrunner.verify.registry import Registry, builtin_registry

Doctor = Callable[[], Iterable[Finding]]
ShellRunner = Callable[[Mapping[str, str], Path, str], int]
Attacher = Callable[[PaneShell, str, str], None]
Identify = Callable[[], str]

LIVE_INTERVAL = 2.5
OUTPUT_LINES = 10_000
POSITION_DELAY = 0.4
WATCH_INTERVAL = 0.3


TERMINAL_ESCAPE = "ctrl+right_square_bracket"


def attach_learner_terminal(shell: PaneShell, escape: str, banner: str) -> None:
    """Hand this process's terminal to the lab's shell until the escape key is typed."""
    code = encode_key(escape)
    attach_terminal(shell, 0, 1, escape=code or b"\x1d", banner=banner)


def run_learner_shell(env: Mapping[str, str], cwd: Path, banner: str) -> int:
    """Run the learner's ``$SHELL`` (bash if unset) in the foreground until they exit."""
    shell = env.get("SHELL") or os.environ.get("SHELL") or shutil.which("bash") or "/bin/sh"
    print(banner, flush=True)
    proc = subprocess.Popen([shell], env=dict(env), cwd=cwd)
    with proctree.owned(proc.pid):  # it carries the lab's marker: its status is ours
        return proc.wait()


@dataclass(frozen=True)
class Settings:
    """Everything the app needs besides the workshop; the factory fills the defaults."""

    registry: Registry
    store: ProgressStore
    context: str | None
    explicit_context: bool
    base_env: Mapping[str, str]
    doctor: Doctor | None
    identify: Identify | None = None
    """Learns the identity of the cluster behind the context (after the first paint)."""
    run: PreparedRun | None = None
    """The run's private directory and pinned environment; removed when the app ends."""
    shell_runner: ShellRunner = run_learner_shell
    attacher: Attacher = attach_learner_terminal
    live_interval: float = LIVE_INTERVAL
    output_lines: int = OUTPUT_LINES
    watch: bool = False
    """Reload a lab file when it changes on disk (``run --watch``)."""
    watch_interval: float = WATCH_INTERVAL
    served: bool = False
    """Served to a browser (``labrunner serve``): there is no terminal to hand the learner,
    so actions that need one are hidden."""
    terminal_pane: bool = True
    """The lab's shell is the learner's terminal, in a pane of the lab screen; ``t``
    attaches the real terminal to it. Off: the shell is the engine's alone and ``t``
    opens a separate shell in its environment."""
    terminal_escape: str = TERMINAL_ESCAPE
    """The key that takes the keyboard back from the terminal (pane and ``t``)."""


class LabrunnerApp(App[int]):
    """labrunner's terminal UI."""

    CSS_PATH = "labrunner.tcss"
    TITLE = "labrunner"
    COMMANDS = App.COMMANDS | {ScreenActions}
    ACTIONS: ClassVar[tuple[Action, ...]] = (
        Action("q", "quit", "Quit", "Cancel what runs, close the lab shell and leave"),
        Action("question_mark,f1", "help", "Help", "Every key binding", footer=False),
        Action("ctrl+t", "toggle_theme", "Theme", "Switch between light and dark", footer=False),
    )
    BINDINGS: ClassVar[list[BindingType]] = bindings(ACTIONS)
    NOTIFICATION_TIMEOUT = 4

    def __init__(self, workshop: Workshop, settings: Settings, *, start_lab: str | None) -> None:
        super().__init__()
        self.notices: deque[Notification] = deque(maxlen=200)
        """Every notification shown lately, oldest first (only the newest stays on screen)."""
        self.workshop = workshop
        self.settings = settings
        self.start_lab = start_lab
        self.home = HomeScreen(workshop)
        self.lab_screen: LabScreen | None = None
        self.driver: LabDriver | None = None
        self.environment = EnvironmentStatus(settings.context)
        self.findings: list[Finding] = []
        self.guard_confirmed = False
        self._pending_position: tuple[str, str] | None = None
        self.ready = threading.Event()
        self.closing = threading.Event()
        self._state_warned: set[str] = set()
        self._identifying = False
        self.watcher: LabFileWatcher | None = None
        self.reloads = 0
        """How many lab file versions were read again (tests wait on it)."""
        self.class_note = ""

    # ------------------------------------------------------------------ start

    def on_mount(self) -> None:
        self._exit_on_signals()
        self.push_screen(self.home)
        self._refresh_home()
        position = None
        try:
            position = self.settings.store.position()
        except StateError as exc:
            self._state_error(exc)
        for warning in self.settings.store.warnings:
            self.notify(warning, title="Progress", severity="warning", markup=False)
        for notice in self.settings.store.notices:
            self.notify(notice, title="Progress", markup=False)
        target = resume_target(self.workshop, requested=self.start_lab, position=position)
        if target is not None:
            lab, step = target
            self.home.highlighted = lab.id
            self._open_lab(lab, step)
        self.call_after_refresh(self._start_doctor)
        self.call_after_refresh(self._start_identify)
        if self.settings.watch:
            self.watcher = LabFileWatcher(
                [lab.path for lab in self.workshop.labs],
                self._file_changed,
                interval=self.settings.watch_interval,
            ).start()
        self._follow_class()

    def _follow_class(self) -> None:
        """Show how publishing to the learner's class goes, if they joined one."""
        try:
            publisher = class_publisher.active(class_directory())
        except Exception:  # an unreadable state directory: no class note
            return
        if publisher is None:
            return

        def changed(status: class_publisher.Status) -> None:
            self.post_message(msg.ClassStatus(status.note()))

        publisher.on_change(changed)
        self.post_message(msg.ClassStatus(publisher.status().note()))

    def on_class_status(self, message: msg.ClassStatus) -> None:
        self.class_note = message.note
        self.home.status = replace(self.home.status, classroom=message.note)
        if self.lab_screen is not None:
            self.lab_screen.class_note = message.note

    def on_hint_revealed(self, message: msg.HintRevealed) -> None:
        driver = self.driver
        if driver is not None:
            driver.engine.emit(ev.HintShown(driver.lab.id, message.step_id, message.number))

    def _on_notify(self, event: Notify) -> None:
        """The newest notification replaces the one on screen: toasts never stack up."""
        self.notices.append(event.notification)
        self._notifications.clear()
        super()._on_notify(event)

    def get_driver_class(self) -> type[Driver]:
        """Textual's driver, made to survive the terminal going away (see ``hangup``)."""
        return hangup.driver_class(super().get_driver_class())

    def on_ready(self) -> None:
        startup.resume()  # the start-up is over: the first screen is up (labrunner.launch)
        self.ready.set()

    def _exit_on_signals(self) -> None:
        """SIGTERM and SIGHUP (the terminal closed) leave like ``q``: the lab shell and
        everything it started are stopped on the way out (see ``run_app``)."""
        try:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGHUP):
                loop.add_signal_handler(signum, partial(self.exit, 128 + signum))
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread, or no signals here: the default action stays

    def _state_error(self, exc: StateError) -> None:
        message = str(exc)
        if message in self._state_warned:
            return
        self._state_warned.add(message)
        self.notify(message, title="Progress unavailable", severity="error", markup=False)

    def _records(self, lab_id: str) -> dict[str, StepRecord]:
        try:
            return self.settings.store.steps(lab_id)
        except StateError as exc:
            self._state_error(exc)
            return {}

    def _refresh_home(self) -> None:
        records = {lab.id: self._records(lab.id) for lab in self.workshop.labs}
        progress = lab_progress(self.workshop, records)
        self.home.overall = workshop_progress(self.workshop, records, progress)
        self.home.progress = progress

    def what_next(self, lab_id: str) -> str:
        """What to do after finishing ``lab_id``: the next open lab, or how to get the
        cluster it needs (the doctor's words: see Bring a cluster)."""
        labs = self.workshop.labs
        records = {lab.id: self._records(lab.id) for lab in labs}
        progress = lab_progress(self.workshop, records)
        position = next((i for i, lab in enumerate(labs) if lab.id == lab_id), -1)
        order = [*labs[position + 1 :], *labs[: max(position, 0)]]
        following = next(
            (lab for lab in order if not progress[lab.id].complete and not progress[lab.id].locked),
            None,
        )
        if following is None:
            if all(p.complete for p in progress.values()):
                return "That was the whole workshop."
            return "The other labs wait for labs you have not finished; see the lab list (Esc)."
        status = self.environment
        if following.needs_cluster and status.checked and status.reachable is not True:
            return f"Next: “{following.title}” needs a cluster; {CREATE_CLUSTER_FIX}."
        return f"Next: “{following.title}”; press Esc for the lab list and open it."

    def _context_label(self, *, refused: bool = False) -> str:
        context = self.settings.context or "none"
        return f"context: {context}" + (" (not confirmed)" if refused else "")

    # ------------------------------------------------------------------ doctor

    def _start_doctor(self) -> None:
        if self.closing.is_set():
            return
        if self.settings.doctor is None:
            self.post_message(msg.DoctorDone([]))
            return
        self.run_worker(
            partial(self._doctor_work, self.settings.doctor),
            thread=True,
            group="doctor",
            name="doctor",
            exclusive=True,
            exit_on_error=False,
        )

    def _aside(self, name: str, call: Callable[[], object]) -> tuple[object, str | None] | None:
        """Run ``call`` in a daemon thread, so a slow cluster never holds up quitting.

        Returns (value, error text), or None when the worker was cancelled or
        the app is closing before the call ended.
        """
        worker = get_current_worker()
        box: dict[str, object] = {}

        def target() -> None:
            try:
                box["value"] = call()
            except Exception as exc:  # reported by the caller; never takes the app down
                box["error"] = f"{type(exc).__name__}: {exc}"

        thread = threading.Thread(target=target, name=f"labrunner-{name}", daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(0.1)
            if worker.is_cancelled or self.closing.is_set():
                return None
        error = box.get("error")
        return box.get("value"), str(error) if error else None

    def _doctor_work(self, doctor: Doctor) -> None:
        """Run the doctor aside and report its findings."""
        done = self._aside("doctor", lambda: list(doctor()))
        if done is None:
            return
        findings, error = done
        self.post_message(
            msg.DoctorDone(list(findings) if isinstance(findings, list) else [], error)
        )

    # ------------------------------------------------------------------ cluster identity

    def _start_identify(self) -> None:
        """Confirm which cluster answers, after the first paint (never before it).

        Only a context the guard allows (or the learner confirmed) is asked:
        a context the learner has not approved gets no request from labrunner.
        """
        identify = self.settings.identify
        if identify is None or self.closing.is_set() or self._identifying:
            return
        if not any(lab.needs_cluster for lab in self.workshop.labs):
            return
        first = next((lab for lab in self.workshop.labs if lab.needs_cluster), None)
        if first is None or not (self.guard_confirmed or self._approved(first)):
            return
        self._identifying = True
        self.run_worker(
            partial(self._identify_work, identify),
            thread=True,
            group="identify",
            name="identify",
            exit_on_error=False,
        )

    def _identify_work(self, identify: Identify) -> None:
        done = self._aside("identify", identify)
        if done is None or not isinstance(done[0], str):
            return  # unreachable: the doctor says so; progress stays as cached
        uid = done[0]
        try:
            notice = self.settings.store.confirm_cluster(uid)
        except StateError as exc:
            self.call_from_thread(self._state_error, exc)
            return
        if notice is not None:
            self.call_from_thread(self._cluster_changed, notice)

    def _cluster_changed(self, notice: str) -> None:
        """Another cluster answers than the progress was recorded on: show its progress."""
        self.notify(notice, title="A different cluster", severity="warning", markup=False)
        self._refresh_home()
        screen = self.lab_screen
        if screen is not None and screen.lab.needs_cluster:
            screen.records = self._records(screen.lab.id)

    def on_doctor_done(self, message: msg.DoctorDone) -> None:
        status = summarize(message.findings, self.settings.context)
        status = replace(status, classroom=self.class_note)
        if message.error:
            status = replace(status, problems=(*status.problems, f"doctor: {message.error}"))
        self.environment = status
        self.findings = message.findings
        self.home.findings = message.findings
        self.home.status = status

    # ------------------------------------------------------------------ labs

    def _engine(self, emit: Callable[[ev.Event], None]) -> Engine:
        settings = self.settings
        return Engine(
            self.workshop,
            registry=settings.registry,
            store=settings.store,
            emit=emit,
            options=RunOptions(
                kube_context=settings.context if settings.explicit_context else None,
                interactive=True,
                pane=settings.terminal_pane,
            ),
            base_env=settings.base_env,
            run=settings.run,
        )

    def on_lab_chosen(self, message: msg.LabChosen) -> None:
        lab = self.workshop.lab(message.lab_id)
        position = None
        try:
            stored = self.settings.store.position()
            position = stored[1] if stored and stored[0] == lab.id else None
        except StateError as exc:
            self._state_error(exc)
        self._open_lab(lab, position)

    def _open_lab(self, lab: Lab, step_id: str | None) -> None:
        progress = self.home.progress.get(lab.id)
        if progress is not None and progress.locked:
            self.notify(
                f"“{lab.title}” is locked: finish {', '.join(progress.missing)} first.",
                title="Locked",
                severity="warning",
                markup=False,
            )
            return
        self._close_lab(wait=False)
        records = self._records(lab.id)
        screen = LabScreen(
            lab,
            records=records,
            start_step=step_id,
            context_label=self._context_label(),
            output_lines=self.settings.output_lines,
            real_terminal=not self.settings.served,
            terminal_pane=self.settings.terminal_pane,
            escape_key=self.settings.terminal_escape,
        )
        screen.class_note = self.class_note
        screen.what_next = self.what_next
        driver = LabDriver(
            engine_factory=self._engine,
            lab=lab,
            target=screen,
            output_capacity=self.settings.output_lines,
        )
        screen.output_source = driver.output
        self.driver = driver
        self.lab_screen = screen
        self.push_screen(screen)
        completed = steps_to_recheck(lab, records)
        # a cluster nobody approved yet is not asked anything, not even a re-check
        approved = self._approved(lab)
        if self.settings.terminal_pane:
            if approved:
                self._open_terminal(driver)
            else:
                screen.terminal_failed("press i to start the lab shell (after a cluster check)")
        if completed and approved:
            self._work(partial(driver.recheck, completed), name="recheck")
        self._pending_position = (lab.id, screen.selected.id)
        self._flush_position()

    def on_leave_lab(self, message: msg.LeaveLab) -> None:
        lab_id = self.driver.lab.id if self.driver else None
        self._close_lab(wait=False)
        if isinstance(self.screen, LabScreen):
            self.pop_screen()
        self._refresh_home()
        if lab_id is not None:
            self.home.highlighted = lab_id

    def _close_lab(self, *, wait: bool) -> None:
        """Cancel what runs, close the lab's shell (in a worker unless ``wait``)."""
        self._flush_position(now=wait)
        driver, self.driver = self.driver, None
        self.lab_screen = None
        if driver is None:
            return
        driver.stop_live()
        driver.cancel()
        if wait:
            driver.close()
        else:
            self.run_worker(driver.close, thread=True, group="close", exit_on_error=False)

    def close_lab(self) -> None:
        """Close the open lab now and stop background work (at exit; safe to call twice)."""
        self.closing.set()
        self._close_lab(wait=True)

    # ------------------------------------------------------------------ jobs

    def _work(self, work: Callable[[], object], *, name: str) -> Worker[object]:
        return self.run_worker(work, thread=True, group="engine", name=name, exit_on_error=False)

    def _step(self, step_id: str) -> tuple[LabDriver, Step] | None:
        driver = self.driver
        if driver is None:
            return None
        return driver, driver.lab.step(step_id)

    def _start(self, kind: msg.JobKind, driver: LabDriver, work: Callable[[], object]) -> bool:
        busy = driver.claim(kind)
        if busy is not None:
            self.notify(f"Busy {busy.value}; press x to cancel it.", severity="warning")
            return False
        self._work(work, name=kind.name.lower())
        return True

    def _approved(self, lab: Lab) -> bool:
        """True when ``lab`` may act now: it needs no cluster, or its cluster is approved
        (the guard allows it, which pins it at once, or the learner confirmed it)."""
        run = self.settings.run
        if not lab.needs_cluster or run is None or run.approved(self.workshop, lab):
            return True
        if run.decide(self.workshop, lab).allowed:
            run.approve(self.workshop, lab)
            self.guard_confirmed = True
            return True
        return False

    def _guarded(self, driver: LabDriver, proceed: Callable[[], None]) -> None:
        """Run ``proceed`` once the lab's cluster is known to be safe (or confirmed) and
        pinned: the lab's shell and checks then reach that cluster and no other."""
        lab = driver.lab
        run = self.settings.run
        if self._approved(lab) or run is None:
            proceed()
            return
        decision = run.decide(self.workshop, lab)
        if run.target(self.workshop, lab).problem is not None:
            # nothing to confirm: there is no usable cluster to pin
            self.notify(
                f"Nothing ran. {decision.reason}",
                title="No usable kube context",
                severity="error",
                timeout=12,
                markup=False,
            )
            return

        def answered(yes: bool | None) -> None:
            screen = self.lab_screen
            if yes:
                run.approve(self.workshop, lab)
                self.guard_confirmed = True
                self._start_identify()
                if screen is not None:
                    screen.context_label = self._context_label()
                if self.driver is driver:
                    proceed()
                return
            if screen is not None:
                screen.context_label = self._context_label(refused=True)
            self.notify(
                f"Nothing ran. {decision.reason}",
                title="Kube context not confirmed",
                severity="error",
                timeout=12,
                markup=False,
            )

        self.push_screen(GuardDialog(decision.context, decision.reason), answered)

    def _request(
        self,
        kind: msg.JobKind,
        step_id: str,
        work: Callable[[LabDriver, Step], Callable[[], object]],
        *,
        guarded: bool,
    ) -> None:
        """Start ``work`` for a step once the session is free (and the context is safe)."""
        found = self._step(step_id)
        if found is None:
            return
        driver, step = found

        def go() -> None:
            self._start(kind, driver, work(driver, step))

        if guarded:
            self._guarded(driver, go)
        else:
            go()

    def on_run_requested(self, message: msg.RunRequested) -> None:
        index = message.index
        if index is None:
            self._request(
                msg.JobKind.RUN, message.step_id, lambda d, s: partial(d.run_step, s), guarded=True
            )
        else:
            self._request(
                msg.JobKind.COMMAND,
                message.step_id,
                lambda d, s: partial(d.run_command, s, index),
                guarded=True,
            )

    def on_checks_requested(self, message: msg.ChecksRequested) -> None:
        self._request(
            msg.JobKind.CHECK, message.step_id, lambda d, s: partial(d.check, s), guarded=True
        )

    def on_skip_requested(self, message: msg.SkipRequested) -> None:
        self._request(
            msg.JobKind.SKIP, message.step_id, lambda d, s: partial(d.skip, s), guarded=True
        )

    def on_phase_requested(self, message: msg.PhaseRequested) -> None:
        driver = self.driver
        if driver is None:
            return
        phase = Phase.CLEANUP if message.cleanup else Phase.SETUP
        kind = msg.JobKind.CLEANUP if message.cleanup else msg.JobKind.SETUP

        def go() -> None:
            self._start(kind, driver, partial(driver.run_phase, phase))

        self._guarded(driver, go)

    def on_cancel_requested(self, message: msg.CancelRequested) -> None:
        if self.driver is not None:
            self.driver.cancel()

    def on_input_submitted(self, message: msg.InputSubmitted) -> None:
        driver = self.driver
        if driver is not None:
            self.run_worker(
                partial(driver.send_input, message.text),
                thread=True,
                group="input",
                exit_on_error=False,
            )

    def on_live_requested(self, message: msg.LiveRequested) -> None:
        found = self._step(message.step_id)
        screen = self.lab_screen
        if found is None or screen is None:
            return
        driver, step = found
        if not message.on:
            driver.stop_live()
            screen.live = False
            self.notify("Live checking off.")
            return
        if driver.live:
            driver.live_step = step
            return
        self._guarded(driver, partial(self._start_live, driver, step))

    def _start_live(self, driver: LabDriver, step: Step) -> None:
        screen = self.lab_screen
        if screen is None or self.driver is not driver:
            return
        driver.start_live(step)
        holder: list[Worker[None]] = []
        worker = self.run_worker(
            partial(
                driver.live_loop,
                self.settings.live_interval,
                lambda: bool(holder) and holder[0].is_cancelled,
            ),
            thread=True,
            group="live",
            name="live",
            exit_on_error=False,
        )
        holder.append(worker)
        screen.live = True
        where = "elsewhere" if self.settings.served else "in your own terminal (t opens one)"
        self.notify(
            f"Live checking on: the step's checks run every {self.settings.live_interval:g}s "
            f"while you work {where}.",
            markup=False,
        )

    def _open_terminal(
        self, driver: LabDriver, *, restart: bool = False, attach_for: str | None = None
    ) -> None:
        """Start the lab's shell in a worker and show it in the lab screen's pane; with
        ``attach_for`` (a step id), then give it the real terminal, as ``t`` does."""

        def work() -> None:
            shell = driver.terminal(restart=restart)
            screen = self.lab_screen
            if driver is not self.driver or screen is None:
                return
            if isinstance(shell, str):
                self.call_from_thread(screen.terminal_failed, shell)
                if attach_for is not None:
                    self.call_from_thread(
                        self.notify,
                        shell.capitalize() + ".",
                        title="Shell",
                        severity="error",
                        markup=False,
                    )
                return
            self.call_from_thread(screen.attach_terminal, shell)
            if attach_for is not None:
                self.call_from_thread(self._attach_shell, driver, attach_for, shell)

        self.run_worker(work, thread=True, group="terminal", exit_on_error=False)

    def on_terminal_requested(self, message: msg.TerminalRequested) -> None:
        driver = self.driver
        if driver is None:
            return
        self._guarded(driver, partial(self._open_terminal, driver, restart=message.restart))

    def on_shell_requested(self, message: msg.ShellRequested) -> None:
        driver = self.driver
        shell = driver.attached_shell() if driver is not None else None
        if driver is not None and shell is not None:
            self._attach_shell(driver, message.step_id, shell)
            return
        if driver is not None and self.settings.terminal_pane:
            # never a second shell: start the lab's own (after the cluster check), then attach
            attach = partial(self._open_terminal, driver, attach_for=message.step_id)
            self._guarded(driver, attach)
            return
        self._request(
            msg.JobKind.SHELL,
            message.step_id,
            lambda d, s: partial(d.shell_environment, s),
            guarded=True,
        )

    def _attach_shell(self, driver: LabDriver, step_id: str, shell: PaneShell) -> None:
        """``t``: the real terminal on the lab's own shell; the step is checked after."""
        step = driver.lab.step(step_id)
        back = key_label(self.settings.terminal_escape)
        banner = (
            f"\r\nlabrunner: this is the lab's shell for “{driver.lab.title}”, full screen. "
            f"Press {back} to go back to labrunner; the step is checked when you do.\r\n"
        )
        attacher = self.settings.attacher
        if self.is_headless and attacher is attach_learner_terminal:
            self.notify("There is no terminal to attach here.", title="Shell", markup=False)
            return
        attach = partial(attacher, shell, self.settings.terminal_escape, banner)
        try:
            if self.is_headless:
                attach()
            else:
                with self.suspend():
                    attach()
        except Exception as exc:  # no terminal to suspend to
            self.notify(
                f"Could not attach the terminal: {exc}",
                title="Shell",
                severity="error",
                markup=False,
            )
            return
        self.refresh()
        self._start(msg.JobKind.CHECK, driver, partial(driver.check, step))

    def on_shell_ready(self, message: msg.ShellReady) -> None:
        found = self._step(message.step_id)
        if found is None:
            return
        driver, step = found
        banner = (
            f"labrunner: your shell for “{driver.lab.title}”, in {message.cwd}, with the lab's "
            "environment.\nType `exit` to go back; the step's checks run when you do."
        )
        runner = partial(self.settings.shell_runner, message.env, message.cwd, banner)
        try:
            if self.is_headless:
                runner()
            else:
                with self.suspend():
                    runner()
        except Exception as exc:  # no terminal to suspend to, a shell that cannot start
            self.notify(
                f"Could not open a shell: {exc}", title="Shell", severity="error", markup=False
            )
            return
        self.refresh()
        self._start(msg.JobKind.CHECK, driver, partial(driver.check, step))

    # ------------------------------------------------------------------ progress

    def on_position_changed(self, message: msg.PositionChanged) -> None:
        driver = self.driver
        if driver is None:
            return
        if driver.live:
            driver.live_step = driver.lab.step(message.step_id)
        self._pending_position = (driver.lab.id, message.step_id)
        self.set_timer(POSITION_DELAY, self._flush_position)

    def _flush_position(self, *, now: bool = False) -> None:
        pending, self._pending_position = self._pending_position, None
        if pending is None:
            return
        if now:
            self._save_position(*pending)
        else:
            self.run_worker(
                partial(self._save_position, *pending),
                thread=True,
                group="position",
                exit_on_error=False,
            )

    def _save_position(self, lab_id: str, step_id: str) -> None:
        driver = self.driver
        if driver is not None and driver.lab.id == lab_id:
            driver.engine.emit(ev.StepViewed(lab_id, step_id))
        try:
            self.settings.store.set_position(lab_id, step_id)
        except StateError:
            pass  # the next recorded step saves the position too; progress errors show there

    def on_reset_requested(self, message: msg.ResetRequested) -> None:
        driver = self.driver
        if driver is not None and driver.busy is not None:
            self.notify(f"Busy {driver.busy.value}; cancel it first (x).", severity="warning")
            return
        self.run_worker(
            partial(self._reset_work, message.lab_id, message.step_id),
            thread=True,
            group="reset",
            exit_on_error=False,
        )

    def _reset_work(self, lab_id: str, step_id: str | None) -> None:
        error = None
        try:
            self.settings.store.reset(lab_id, step_id)
        except StateError as exc:
            error = str(exc)
        self.call_from_thread(self._after_reset, lab_id, step_id, error)

    def _after_reset(self, lab_id: str, step_id: str | None, error: str | None) -> None:
        if error is not None:
            self.notify(error, title="Reset failed", severity="error", markup=False)
            return
        screen = self.lab_screen
        if screen is not None and screen.lab.id == lab_id:
            screen.records = self._records(lab_id)
            screen.progress_reset(step_id)
            if step_id is None:
                self.notify(
                    f"Reset the lab; you are on step 1, “{screen.lab.steps[0].title}”.",
                    markup=False,
                )
            else:
                self.notify(f"Reset “{screen.lab.step(step_id).title}”.", markup=False)
        self._refresh_home()

    # ------------------------------------------------------------------ run --watch

    def _file_changed(self, path: Path) -> None:
        """From the watcher's thread: hand the change to the UI thread."""
        self.post_message(msg.LabFileChanged(path))

    def on_lab_file_changed(self, message: msg.LabFileChanged) -> None:
        if self.closing.is_set():
            return
        self.run_worker(
            partial(self._reload_work, message.path),
            thread=True,
            group="reload",
            exit_on_error=False,
        )

    def _reload_work(self, path: Path) -> None:
        """Read a changed lab file again (worker thread): the new lab, or its problems."""
        # lazy: the loader's checks load only when a watched file changed
        from labrunner.lab.loader import check_lab_file, cross_lab_problems

        old = next((lab for lab in self.workshop.labs if lab.path == path), None)
        if old is None:
            return
        # Straight from the file: a reload never reads a cached copy of the old version.
        lab, problems = check_lab_file(
            path, self.settings.registry, known_env=frozenset(self.workshop.env)
        )
        errors = [str(p) for p in problems if p.is_error]
        if lab is not None:
            where = f"{path}:{lab.where.line if lab.where else 1}: "
            if lab.id != old.id:
                errors.append(
                    f"{where}the lab's id changed from {old.id!r} to {lab.id!r}; "
                    "change it back, or restart labrunner to run it under its new id"
                )
            # what a fresh start would refuse across labs: imports, requirements, cycles
            labs = [lab if other.path == path else other for other in self.workshop.labs]
            errors += [str(p) for p in cross_lab_problems(labs) if p.is_error]
        if lab is None and not errors:
            errors.append(f"{path}: does not load")
        self.post_message(msg.LabReloaded(old.id, path, None if errors else lab, tuple(errors)))

    def on_lab_reloaded(self, message: msg.LabReloaded) -> None:
        self.reloads += 1
        screen = self.lab_screen
        is_open = screen is not None and screen.lab.id == message.lab_id
        if message.lab is None:
            if is_open and screen is not None:
                screen.show_problems(str(message.path), message.problems)
            self.notify(
                "\n".join(message.problems[:3]),
                title=f"{message.path.name} does not load",
                severity="error",
                timeout=10,
                markup=False,
            )
            return
        lab = message.lab
        self.workshop = replace(
            self.workshop,
            labs=tuple(lab if other.id == lab.id else other for other in self.workshop.labs),
        )
        self.home.workshop = self.workshop
        self._refresh_home()
        driver = self.driver
        if is_open and driver is not None:
            self.run_worker(
                partial(driver.replace_lab, lab, self.workshop),
                thread=True,
                group="reload",
                exit_on_error=False,
            )
        else:
            self.notify(f"Reloaded {message.path.name}.", markup=False)

    # ------------------------------------------------------------------ app-wide actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """While the keyboard is in the terminal pane, q, ? and Ctrl+P are the shell's: the
        footer does not offer them then, and Ctrl+P (a priority binding) reaches readline
        instead of opening the palette. Ctrl+Q still quits."""
        screen = self.screen
        if action in ("quit", "help", "command_palette") and isinstance(screen, LabScreen):
            return not screen.terminal_focused
        return True

    def action_help(self) -> None:
        """Show every key binding."""
        if isinstance(self.screen, HelpScreen):
            return
        everywhere = [
            *binding_rows(self.BINDINGS),
            ("Ctrl+P", "Command palette: search every action"),
            ("Ctrl+Q", "Quit"),
            ("Tab, Shift+Tab", "Move between panes"),
            ("↑, ↓", "Move in lists"),
        ]
        lab_bindings = [
            b
            for b in LabScreen.BINDINGS
            if not (
                self.settings.served and isinstance(b, Binding) and b.action in TERMINAL_ACTIONS
            )
        ]
        sections = [
            ("Lab", binding_rows(lab_bindings)),
            ("Lab list", binding_rows(HomeScreen.BINDINGS)),
            ("Everywhere", everywhere),
            ("Questions", binding_rows(ConfirmDialog.BINDINGS)),
        ]
        self.push_screen(HelpScreen(sections))

    def action_toggle_theme(self) -> None:
        """Switch between the light and dark themes."""
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"

    def running_work(self) -> str | None:
        """What quitting would stop (a learner's command, a lab service), or None."""
        driver = self.driver
        busy = driver.busy if driver is not None else None
        screen = self.lab_screen
        services = (
            [
                service.label
                for service in screen.lab.services
                if screen.services.get(service.id, ("",))[0] == "running"
            ]
            if screen is not None
            else []
        )
        parts = []
        if busy is not None and busy is not msg.JobKind.SHELL:
            parts.append(f"labrunner is {busy.value}")
        shell = driver.attached_shell() if driver is not None else None
        if busy is None and shell is not None and shell.learner_running:
            parts.append("a command you typed is running in the terminal")
        if len(services) == 1:
            parts.append(f"the lab service {services[0]} is running")
        elif services:
            parts.append(f"the lab services {', '.join(services)} are running")
        return "; ".join(parts) or None

    async def action_quit(self) -> None:
        """Cancel what runs, close the lab shell, and leave (asks first if something runs)."""
        running = self.running_work()
        if running is None or self.screen.id == "quit-dialog":
            self._leave()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._leave()

        self.push_screen(
            ConfirmDialog(
                "Quit labrunner?",
                f"{running[0].upper()}{running[1:]}. Quitting stops it and closes the lab "
                "shell; a command cut short may leave its work half done.",
                yes="Quit",
                no="Keep working",
                id="quit-dialog",
            ),
            answered,
        )

    def _leave(self) -> None:
        self.close_lab()
        self.exit(0)

    def on_unmount(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        self.close_lab()
        if self.settings.run is not None:
            self.settings.run.close()


def _pinned_identify(run: PreparedRun, workshop: Workshop) -> Identify | None:
    """Ask the approved cluster (through the kubeconfig the run pinned) which cluster it is."""
    lab = next((lab for lab in workshop.labs if lab.needs_cluster), None)
    context = run.context
    if lab is None or context is None:
        return None

    def identify() -> str:
        env = dict(run.env)
        env["KUBECONFIG"] = str(run.kubeconfig_for(workshop, lab))
        return cluster_uid(env, context)

    return identify


def make_app(
    workshop: Workshop,
    *,
    registry: Registry | None = None,
    store: ProgressStore | None = None,
    context: str | None = None,
    base_env: Mapping[str, str] | None = None,
    lab: str | None = None,
    doctor: Doctor | None = None,
    identify: Identify | None = None,
    shell_runner: ShellRunner | None = None,
    live_interval: float = LIVE_INTERVAL,
    output_lines: int = OUTPUT_LINES,
    watch: bool = False,
    watch_interval: float = WATCH_INTERVAL,
    served: bool = False,
    terminal_pane: bool = True,
    attacher: Attacher | None = None,
    terminal_escape: str = TERMINAL_ESCAPE,
) -> LabrunnerApp:
    """Build the app; ``context`` is an explicit --context, the rest default to real things."""
    run = prepare_run(context, base_env=base_env)
    if registry is None:
        registry = builtin_registry()
    if store is None:
        server = server_for(run.user_env, run.context) if run.context else None
        store = ProgressStore.for_workshop(workshop, context=run.context, server=server)
    if doctor is None:
        doctor = partial(
            collect,
            catalog=registry,
            workshop=workshop,
            context=run.context_option,
            env=run.user_env,
        )
    if identify is None and run.context is not None:
        identify = _pinned_identify(run, workshop)
    settings = Settings(
        registry=registry,
        store=store,
        context=run.context,
        explicit_context=run.explicit,
        base_env=run.env,
        doctor=doctor,
        identify=identify,
        run=run,
        shell_runner=shell_runner or run_learner_shell,
        live_interval=live_interval,
        output_lines=output_lines,
        watch=watch,
        watch_interval=watch_interval,
        served=served,
        terminal_pane=terminal_pane,
        attacher=attacher or attach_learner_terminal,
        terminal_escape=terminal_escape,
    )
    return LabrunnerApp(workshop, settings, start_lab=lab)


def run_app(
    workshop: Workshop,
    *,
    lab: str | None = None,
    context: str | None = None,
    watch: bool = False,
    served: bool = False,
    detach_key: str = TERMINAL_ESCAPE,
) -> int:
    """Run the TUI until the learner quits; returns the process exit code."""
    app = make_app(
        workshop,
        lab=lab,
        context=context,
        watch=watch,
        served=served,
        terminal_escape=detach_key,
    )
    try:
        app.run()
    finally:
        app.close_lab()
        if app.settings.run is not None:
            app.settings.run.close()
    return app.return_code or 0
