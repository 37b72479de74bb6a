"""The lab model: frozen data built once by the loader, read everywhere else.

Nothing downstream re-checks types: the loader validated the YAML against the
schema and the verifier registry, so a ``Lab`` in hand is well formed. Each
object keeps the file and line it came from so later problems (a check that
errors at run time, a missing export) can still point at the source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

TYPE_CHECKING = False  # as typing's, without importing typing (a start-up cost)
if TYPE_CHECKING:
    from typing import Any

DEFAULT_WITHIN = 30.0
DEFAULT_TIMEOUT = 300.0
DEFAULT_SERVICE_WITHIN = 30.0
API_VERSION = "labrunner/v1"


@dataclass(frozen=True)
class Where:
    """A place in a source file."""

    file: Path
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Expect:
    """An answer for an interactive prompt: when ``prompt`` shows, send ``send``."""

    prompt: str
    send: str
    secret: bool = False


@dataclass(frozen=True)
class Command:
    """One command line (possibly multi-line script) for the lab shell."""

    cmd: str
    timeout: float = DEFAULT_TIMEOUT
    expect: tuple[Expect, ...] = ()
    allow_failure: bool = False
    where: Where | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Check:
    """One use of a verifier in a step."""

    verifier: str
    params: Mapping[str, Any]
    title: str = ""
    hint: str = ""
    where: Where | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Step:
    """One step of a lab: instructions, commands, and the checks that complete it."""

    id: str
    title: str
    body: str = ""
    run: tuple[Command, ...] = ()
    check: tuple[Check, ...] = ()
    exports: tuple[str, ...] = ()
    within: float = DEFAULT_WITHIN
    consecutive: int = 1
    hints: tuple[str, ...] = ()
    solution: tuple[Command, ...] = ()
    needs: frozenset[str] = frozenset()
    recheck: bool = True
    where: Where | None = field(default=None, compare=False)

    @property
    def solution_commands(self) -> tuple[Command, ...]:
        """The solution, which defaults to the step's own commands."""
        return self.solution or self.run


@dataclass(frozen=True)
class Service:
    """A background process a lab needs after one of its steps started it.

    The step named ``step`` starts it the first time, as the learner would.
    From then on, whenever a later step is entered (and on resume, and with
    ``--from``), the runner runs the ``ready`` checks and, if they fail, runs
    ``start`` itself with the lab shell's exports and directory, and waits up
    to ``within`` for readiness. Every service stops when the lab run ends.
    """

    id: str
    step: str
    start: Command
    ready: tuple[Check, ...]
    title: str = ""
    stop: Command | None = None
    within: float = DEFAULT_SERVICE_WITHIN
    where: Where | None = field(default=None, compare=False)

    @property
    def label(self) -> str:
        """How the service is named on screen."""
        return self.title or self.id


@dataclass(frozen=True)
class Import:
    """Exports a lab takes from a lab it requires (restored into its shell)."""

    lab: str
    names: tuple[str, ...]
    where: Where | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Lab:
    """One lab file."""

    id: str
    title: str
    path: Path
    steps: tuple[Step, ...]
    summary: str = ""
    requires: tuple[str, ...] = ()
    needs: frozenset[str] = frozenset()
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    setup: tuple[Command, ...] = ()
    cleanup: tuple[Command, ...] = ()
    services: tuple[Service, ...] = ()
    imports: tuple[Import, ...] = ()
    namespaces: tuple[str, ...] = ()
    """Namespaces the lab works in, as written (``${VAR}`` allowed): where forensics look."""
    where: Where | None = field(default=None, compare=False)

    def step(self, step_id: str) -> Step:
        """The step with ``step_id``; raises KeyError when there is none."""
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def index(self, step_id: str) -> int:
        """Position of ``step_id`` in the lab."""
        for i, step in enumerate(self.steps):
            if step.id == step_id:
                return i
        raise KeyError(step_id)

    @property
    def needs_cluster(self) -> bool:
        """True when some step acts on, or checks, a Kubernetes cluster."""
        return "cluster" in self.needs


@dataclass(frozen=True)
class RehearsePlan:
    """What ``labrunner rehearse`` gives the simulated cluster (``rehearse:`` in workshop.yaml).

    Paths are kept as written (``${ISTIO_HOME}/...``): they are expanded with the
    workshop's env when a rehearsal starts, on the machine that runs it.
    """

    crds: tuple[str, ...] = ()
    """CRD files to serve; a missing one is a warning, not an error."""
    preload: tuple[str, ...] = ()
    """Manifests (files or directories) applied before each lab: where the labs start."""
    files: tuple[str, ...] = ()
    """Paths some steps read that the workshop does not hold (a downloaded release)."""
    get: str = ""
    """How to get what ``crds`` and ``files`` name, for the message when they are missing."""
    kept: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """``LAB/STEP`` → why that step's effect outlives the lab's cleanup on purpose."""


@dataclass(frozen=True)
class Workshop:
    """A set of labs in order, with the settings they share."""

    root: Path
    labs_dir: Path
    labs: tuple[Lab, ...]
    title: str = "Workshop"
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    context_patterns: tuple[str, ...] = ()
    rehearse: RehearsePlan = field(default_factory=RehearsePlan)

    def lab(self, lab_id: str) -> Lab:
        """The lab with ``lab_id``; raises KeyError when there is none."""
        for lab in self.labs:
            if lab.id == lab_id:
                return lab
        raise KeyError(lab_id)

    def find(self, ref: str) -> Lab | None:
        """A lab by id, by file name, or by path."""
        for lab in self.labs:
            if ref in (lab.id, lab.path.name, lab.path.stem, str(lab.path)):
                return lab
        return None
