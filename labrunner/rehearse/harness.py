"""The rehearsal protocol: every lab on a fresh simulated cluster, every check proven.

For each lab, on its own simulated cluster (see ``cluster.py``):

1. the lab's ``setup`` brings the cluster to its starting point (a lab without
   one that requires others gets their steps replayed first);
2. for every step that can run here, its cluster checks must *fail* before
   its solution runs (a check that already holds proves nothing), then the
   solution runs and the checks must *pass*, twice (the engine's verdict, then
   once more);
3. the lab's ``cleanup`` must undo it: afterwards, no step's cluster checks
   pass any longer, except steps that remove things (their checks say
   ``exists: false``) and the ones the workshop declares ``rehearse.kept``.

Steps that need real traffic, istioctl, helm or the internet cannot be
rehearsed and are reported so, with the reason; so are steps whose commands
read a declared file that is not on this machine (``rehearse.files``). The
engine runs everything (``LabSession``), exactly as ``verify`` does.

The project's own workshop tests run the bundled workshop through this
module, so what they prove is what an author's ``labrunner rehearse`` proves.
Tests may pass ``Hooks`` to look at the cluster between the phases.
"""

from __future__ import annotations

import enum
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labrunner.engine import Engine, LabSession, RunOptions, StepResult
from labrunner.engine import events as ev
from labrunner.engine.events import Phase, StepStatus
from labrunner.engine.prepare import prepare_run
from labrunner.errors import ExitCode
from labrunner.lab.model import Lab, Step, Workshop
from labrunner.rehearse.cluster import (
    CONTEXT,
    ClusterPlan,
    RehearsalSetupError,
    SimulatedCluster,
    paths_named,
    resolve_plan,
)
from labrunner.state import ProgressStore
from labrunner.verify.registry import Registry

NOT_REHEARSABLE: Mapping[str, str] = {
    "traffic": "needs real traffic (the simulated cluster's pods run nothing)",
    "istioctl": "needs istioctl (it talks to a real control plane)",
    "helm": "needs helm (it installs charts into a real cluster)",
    "internet": "needs the internet",
}
UNDO_GRACE = 10.0
"""How long cleanup's deletions may take to show (a namespace terminates asynchronously)."""
UNDO_POLL = 0.2


class Verdict(enum.Enum):
    """How one step (or a lab's setup or cleanup) fared in the rehearsal."""

    REHEARSED = "rehearsed"
    NOT_REHEARSABLE = "not rehearsable"
    FAILED = "failed"
    ERROR = "error"
    NOT_RUN = "not run"

    @property
    def ok(self) -> bool:
        """True when this does not fail the rehearsal."""
        return self in (Verdict.REHEARSED, Verdict.NOT_REHEARSABLE)


@dataclass(frozen=True)
class Row:
    """One line of the rehearsal's table: a step, or a lab's ``setup``/``cleanup``."""

    lab_id: str
    step_id: str
    verdict: Verdict
    message: str = ""
    details: str | None = None


@dataclass
class LabRehearsal:
    """Everything one lab's rehearsal found."""

    lab: Lab
    rows: list[Row] = field(default_factory=list)
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no row failed."""
        return all(r.verdict.ok for r in self.rows)

    @property
    def verdict(self) -> Verdict:
        """The lab's verdict: its worst row."""
        for worst in (Verdict.ERROR, Verdict.FAILED):
            if any(r.verdict is worst for r in self.rows):
                return worst
        if self.rows and all(r.verdict is Verdict.NOT_REHEARSABLE for r in self.rows):
            return Verdict.NOT_REHEARSABLE
        return Verdict.REHEARSED

    def count(self, verdict: Verdict) -> int:
        """How many step rows (not setup/cleanup) have ``verdict``."""
        return sum(1 for r in self.rows if r.verdict is verdict and r.step_id not in PHASES)

    def explain(self) -> str:
        """The rows that did not pass, one per line (for a test's assertion message)."""
        return "\n".join(
            f"{r.lab_id}/{r.step_id}: {r.verdict.value}: {r.message}"
            + (f"\n{r.details}" if r.details else "")
            for r in self.rows
            if not r.verdict.ok
        )


PHASES = ("setup", "cleanup")


@dataclass
class RehearsalReport:
    """A whole rehearsal: one record per lab, and what the user should know."""

    labs: list[LabRehearsal] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every lab rehearsed."""
        return all(lab.ok for lab in self.labs)

    @property
    def exit_code(self) -> ExitCode:
        """As ``verify``: 3 when a step ended in error, 1 when one failed, else 0."""
        rows = [r for lab in self.labs for r in lab.rows]
        if any(r.verdict is Verdict.ERROR for r in rows):
            return ExitCode.ENVIRONMENT
        if any(r.verdict is Verdict.FAILED for r in rows):
            return ExitCode.FAILED
        return ExitCode.OK


@dataclass
class Stage:
    """What a hook sees: the lab, its session, and its simulated cluster (None without one)."""

    lab: Lab
    session: LabSession
    cluster: SimulatedCluster | None


Hook = Callable[[Stage], None]


@dataclass(frozen=True)
class Hooks:
    """Callbacks between phases (tests use them to look at the cluster)."""

    after_setup: Hook | None = None
    before_cleanup: Hook | None = None


def cluster_checked(step: Step, registry: Registry) -> bool:
    """True when some check of ``step`` reads the cluster (those must fail before it runs)."""
    for check in step.check:
        spec = registry.get(check.verifier)
        if spec is not None and "cluster" in spec.needs:
            return True
    return False


def removes_things(step: Step) -> bool:
    """True when ``step`` checks that something is gone (cleanup keeps that true)."""
    return any(
        check.params.get("exists") is False or check.params.get("absent") is True
        for check in step.check
    )


class Rehearsal:
    """Rehearses labs of one workshop (already copied somewhere it may write)."""

    def __init__(
        self,
        workshop: Workshop,
        *,
        registry: Registry,
        base_env: Mapping[str, str] | None = None,
        emit: Callable[[ev.Event], None] | None = None,
        on_lab: Callable[[LabRehearsal], None] | None = None,
        hooks: Hooks | None = None,
        directory: Path | None = None,
        plan: ClusterPlan | None = None,
    ) -> None:
        self.workshop = workshop
        self.registry = registry
        self.base_env = dict(base_env if base_env is not None else os.environ)
        self.emit = emit or (lambda event: None)
        self.on_lab = on_lab or (lambda lab: None)
        self.hooks = hooks or Hooks()
        self._own_directory = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="labrunner-rehearse-"))
        self._plan = plan

    @property
    def plan(self) -> ClusterPlan:
        """The workshop's ``rehearse:`` declaration, resolved once (raises RehearsalSetupError)."""
        if self._plan is None:
            self._plan = resolve_plan(self.workshop, self.base_env)
        return self._plan

    def close(self) -> None:
        """Remove the rehearsal's own directory (not one the caller passed)."""
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Rehearsal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ whole runs

    def run(self, labs: Iterable[Lab]) -> RehearsalReport:
        """Rehearse ``labs`` in order, each on its own cluster (raises RehearsalSetupError)."""
        started = time.monotonic()
        labs = list(labs)
        report = RehearsalReport()
        if any(lab.needs_cluster for lab in labs):
            report.warnings += self.plan.warnings
        for lab in labs:
            result = self.rehearse(lab)
            report.labs.append(result)
            self.on_lab(result)
        report.duration = time.monotonic() - started
        return report

    def rehearse(self, lab: Lab) -> LabRehearsal:
        """Rehearse one lab on a fresh cluster (raises RehearsalSetupError)."""
        started = time.monotonic()
        record = LabRehearsal(lab)
        folder = self.directory / lab.id
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        env = {k: v for k, v in self.base_env.items() if not k.startswith("LABRUNNER_CONTEXT")}
        cluster = None
        if lab.needs_cluster:
            cluster = SimulatedCluster(folder, self.plan).start()
            env.update(cluster.env)
        else:  # a lab without a cluster gets a kubeconfig that points nowhere
            env["KUBECONFIG"] = str(folder / "no-cluster")
        run = prepare_run(CONTEXT if cluster else None, base_env=env, cwd=self.workshop.root)
        if cluster is not None and run.approve(self.workshop, lab) is None:
            run.close()
            cluster.stop()
            raise RehearsalSetupError(f"{lab.id}: cannot pin the simulated cluster's kubeconfig")
        try:
            engine = Engine(
                self.workshop,
                registry=self.registry,
                store=ProgressStore.memory(CONTEXT),
                emit=self.emit,
                options=RunOptions(
                    kube_context=CONTEXT if cluster else None,
                    save=False,
                    skip_needs=frozenset(NOT_REHEARSABLE),
                ),
                base_env=run.env,
                run=run,
            )
            self.emit(ev.LabStarted(lab.id, lab.title, tuple(s.id for s in lab.steps)))
            with engine.session(lab, restore_exports=False) as session:
                _LabRun(self, lab, session, cluster, record).run()
        finally:
            run.close()
            if cluster is not None:
                cluster.stop()
            record.duration = time.monotonic() - started
        counts: dict[str, int] = {}
        for row in record.rows:
            counts[row.verdict.value] = counts.get(row.verdict.value, 0) + 1
        self.emit(
            ev.LabFinished(
                lab.id, _LAB_STATUS[record.verdict], counts, record.duration, record.explain()
            )
        )
        return record


class _LabRun:
    """One lab's rehearsal: the rows it produces, phase by phase."""

    def __init__(
        self,
        rehearsal: Rehearsal,
        lab: Lab,
        session: LabSession,
        cluster: SimulatedCluster | None,
        record: LabRehearsal,
    ) -> None:
        self.rehearsal = rehearsal
        self.lab = lab
        self.session = session
        self.cluster = cluster
        self.record = record
        self.stage = Stage(lab, session, cluster)
        self.proved: list[Step] = []
        """Steps whose cluster checks failed before them and passed after."""

    def row(
        self, step_id: str, verdict: Verdict, message: str = "", details: str | None = None
    ) -> Verdict:
        self.record.rows.append(Row(self.lab.id, step_id, verdict, message, details))
        return verdict

    def run(self) -> None:
        if not self.reach_start():
            self.not_run(self.lab.steps, "not run: the lab's starting point was not reached")
            self.cleanup(undo=False)
            return
        if self.rehearsal.hooks.after_setup:
            self.rehearsal.hooks.after_setup(self.stage)
        for index, step in enumerate(self.lab.steps):
            if not self.step(step).ok:
                self.not_run(self.lab.steps[index + 1 :], f"not run: step {step.id} did not pass")
                self.cleanup(undo=False)
                return
        if self.rehearsal.hooks.before_cleanup:
            self.rehearsal.hooks.before_cleanup(self.stage)
        self.cleanup(undo=True)

    def not_run(self, steps: Sequence[Step], why: str) -> None:
        for step in steps:
            self.row(step.id, Verdict.NOT_RUN, why)

    # ------------------------------------------------------------------ phases

    def reach_start(self) -> bool:
        """Setup, or (for a lab without one) replay the labs it requires; False on failure."""
        if self.lab.setup:
            status, why, details = self.session.run_phase(Phase.SETUP)
            if status is not StepStatus.PASSED:
                self.row("setup", Verdict.FAILED, f"setup failed: {why}", details)
                return False
            self.row("setup", Verdict.REHEARSED, "reached the lab's starting point")
            return True
        replayed = self.replay_requirements()
        if replayed is None:
            return False
        if replayed:
            self.row("setup", Verdict.REHEARSED, f"replayed {', '.join(replayed)} first")
        return True

    def replay_requirements(self) -> list[str] | None:
        """Run the solutions of every lab this one requires (in workshop order), unchecked
        before, so a lab without ``setup`` starts where its requirements leave it."""
        workshop = self.rehearsal.workshop
        needed: set[str] = set()
        pending = list(self.lab.requires)
        while pending:
            current = pending.pop()
            if current not in needed:
                needed.add(current)
                pending += workshop.lab(current).requires
        order = [lab for lab in workshop.labs if lab.id in needed]
        engine = self.session.engine
        for lab in order:
            with engine.session(lab, restore_exports=False) as other:
                if lab.setup:
                    status, why, details = other.run_phase(Phase.SETUP)
                    if status is not StepStatus.PASSED:
                        self.row("setup", Verdict.FAILED, f"{lab.id} setup failed: {why}", details)
                        return None
                for step in lab.steps:
                    if self.not_rehearsable(step, other):
                        continue
                    result = other.run_step(step, solution=True)
                    if not result.ok:
                        self.row(
                            "setup",
                            _verdict(result),
                            f"replaying {lab.id}/{step.id}: {result.message}",
                            result.details,
                        )
                        return None
        return [lab.id for lab in order]

    def not_rehearsable(self, step: Step, session: LabSession) -> str | None:
        """Why ``step`` cannot be rehearsed here, if so."""
        needs = sorted((set(step.needs) | set(self.lab.needs)) & set(NOT_REHEARSABLE))
        if needs:
            return NOT_REHEARSABLE[needs[0]]
        missing = self.rehearsal.plan.missing_files if self.cluster is not None else {}
        commands = [c.cmd for c in (*step.run, *step.solution)]
        named = paths_named(commands, missing)
        if named:
            get = self.rehearsal.workshop.rehearse.get
            return f"reads {named[0]}, which is not on this machine" + (
                f" (get it: {get})" if get else ""
            )
        return None

    def step(self, step: Step) -> Verdict:
        """Rehearse one step and add its row."""
        why = self.not_rehearsable(step, self.session)
        if why:
            self.skipped(step, why)
            return self.row(step.id, Verdict.NOT_REHEARSABLE, why)
        checked = self.cluster is not None and cluster_checked(step, self.rehearsal.registry)
        if checked:
            before = self.session.check(step, within=0)
            if before.status is StepStatus.PASSED:
                return self.row(
                    step.id,
                    Verdict.FAILED,
                    "its checks already pass before the step runs, so they prove nothing "
                    "(check what the step changes, or start the lab from a state without it)",
                )
        result = self.session.run_step(step, solution=True)
        if result.status is StepStatus.SKIPPED:  # a tool missing on this machine
            return self.row(step.id, Verdict.NOT_REHEARSABLE, result.message)
        if not result.ok:
            return self.row(step.id, _verdict(result), result.message, result.details)
        again = self.session.check(step, within=0)
        if again.status is not StepStatus.PASSED:
            return self.row(
                step.id,
                Verdict.FAILED,
                f"passed, then failed when checked again: {again.message}",
                again.details,
            )
        if checked:
            self.proved.append(step)
        return self.row(
            step.id, Verdict.REHEARSED, "failed before, passed after" if checked else "passed"
        )

    def skipped(self, step: Step, why: str) -> None:
        """Tell listeners (the verbose log) that a step was left out, and why."""
        emit = self.rehearsal.emit
        emit(ev.StepStarted(self.lab.id, step.id, self.lab.index(step.id), step.title))
        emit(ev.StepFinished(self.lab.id, step.id, StepStatus.SKIPPED, f"not rehearsable: {why}"))

    def cleanup(self, *, undo: bool) -> None:
        """Run the lab's cleanup; with ``undo``, prove that it undid the lab."""
        if self.lab.cleanup:
            status, why, details = self.session.run_phase(Phase.CLEANUP)
            if status is not StepStatus.PASSED:
                self.row("cleanup", Verdict.FAILED, f"cleanup failed: {why}", details)
                return
        if not undo:
            return
        kept = self.rehearsal.workshop.rehearse.kept
        judged = [
            s for s in self.proved if not removes_things(s) and f"{self.lab.id}/{s.id}" not in kept
        ]
        left = self.left_behind(judged)
        if left:
            step, message = left[0]
            names = ", ".join(s.id for s, _ in left)
            self.row(
                "cleanup",
                Verdict.FAILED,
                f"cleanup left what step {step.id} created (its checks still pass: {message})"
                + (f"; also from {names}" if len(left) > 1 else ""),
            )
        elif self.lab.cleanup or judged:
            undone = ", ".join(s.id for s in judged)
            self.row(
                "cleanup",
                Verdict.REHEARSED,
                f"undid {undone}" if undone else "ran",
            )

    def left_behind(self, steps: Sequence[Step]) -> list[tuple[Step, str]]:
        """Steps whose checks still pass after cleanup (given a moment for deletions)."""
        deadline = time.monotonic() + UNDO_GRACE
        pending = list(steps)
        while True:
            still: list[tuple[Step, str]] = []
            for step in pending:
                result = self.session.check(step, within=0)
                if result.status is StepStatus.PASSED:
                    still.append((step, _passing(result)))
            if not still or time.monotonic() >= deadline:
                return still
            pending = [s for s, _ in still]
            time.sleep(UNDO_POLL)


_LAB_STATUS = {
    Verdict.REHEARSED: StepStatus.PASSED,
    Verdict.NOT_REHEARSABLE: StepStatus.SKIPPED,
    Verdict.FAILED: StepStatus.FAILED,
    Verdict.ERROR: StepStatus.ERROR,
    Verdict.NOT_RUN: StepStatus.SKIPPED,
}


def _verdict(result: StepResult) -> Verdict:
    return Verdict.ERROR if result.status is StepStatus.ERROR else Verdict.FAILED


def _passing(result: StepResult) -> str:
    messages = [o.message for o in result.outcomes if o.ok and o.message]
    return "; ".join(messages[:2]) or result.message


def copy_workshop(workshop: Workshop, target: Path) -> Path:
    """Copy the workshop's root to ``target`` for a rehearsal; returns the copy's labs dir.

    A rehearsal runs the labs' commands, which write next to the lab files
    (``certs/``, ``.lab-work/``), and cleanups remove what they made: in a copy,
    the learner's own files stay as they are. Version control, virtual
    environments, caches, generated certificates and lab work are left out.
    """
    root = workshop.root
    if not workshop.labs_dir.is_relative_to(root):
        raise RehearsalSetupError(
            f"the labs directory {workshop.labs_dir} is outside the workshop root {root}; "
            "a rehearsal copies the root, so keep the labs inside it"
        )
    ignored = shutil.ignore_patterns(*COPY_IGNORED)

    def ignore(folder: str, names: list[str]) -> set[str]:
        skip = set(ignored(folder, names))
        if Path(folder) == root / "certs":
            skip |= {n for n in names if n.endswith((".crt", ".key", ".pem", ".srl"))}
        return skip

    count = sum(1 for _ in _walk(root))
    if count > MAX_COPIED_FILES:
        raise RehearsalSetupError(
            f"the workshop root {root} holds {count} files (more than {MAX_COPIED_FILES}); "
            "a rehearsal copies it first, so point --labs at a workshop of its own"
        )
    shutil.copytree(root, target, ignore=ignore, symlinks=True)
    return target / workshop.labs_dir.relative_to(root)


COPY_IGNORED = (
    ".git",
    ".hg",
    ".svn",
    ".venv",
    "venv",
    ".tox",
    ".nox",
    "node_modules",
    "__pycache__",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    "*.egg-info",
    ".lab-work",
    "build",
    "dist",
)
MAX_COPIED_FILES = 20_000


def _walk(root: Path) -> Iterable[Any]:
    skip = {name for name in COPY_IGNORED if "*" not in name}
    for _folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip and not d.endswith(".egg-info")]
        yield from files
