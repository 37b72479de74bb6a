"""The headless commands without click: loading the workshop, the guard, ``check``, ``verify``.

``labrunner check LAB STEP`` is what CI jobs and other platforms' check scripts
start as a process, so its start-up is its cost: click alone takes longer to
import than the check takes to run. The console script
(:mod:`labrunner.launch`) therefore hands a plain ``check`` command line
straight to :func:`check` here (and a plain ``verify``, ``list`` or
``validate`` to theirs), and :mod:`labrunner.cli` uses the same
function and helpers for every other spelling, so both roads run one code
path. Diagnostics go to stderr as ``labrunner: …`` lines, redacted; data goes
to stdout; exit codes come from :class:`labrunner.errors.ExitCode`.

Every import below the standard library is inside the function that needs it:
a command pays only for what it uses.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from labrunner import startup
from labrunner.errors import EnvironmentProblem, ExitCode, LabrunnerError, UsageProblem

TYPE_CHECKING = False  # as typing's, without importing typing (a start-up cost)
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from labrunner.engine.prepare import PreparedRun
    from labrunner.lab.model import Lab, Workshop
    from labrunner.lab.problems import LoadResult, Problem
    from labrunner.state import ProgressStore
    from labrunner.verify.registry import Registry


def echo_err(text: str) -> None:
    """One line on stderr (whatever stream is stderr at the time, as click's ``echo``)."""
    stream = sys.stderr
    stream.write(text + "\n")
    stream.flush()


def say(message: str) -> None:
    """A ``labrunner: …`` diagnostic on stderr, redacted like everything else that leaves."""
    # imported here, not at the top: only runs that have something to say pay for it
    from labrunner.redact import redact

    echo_err(f"labrunner: {redact(message)}")


def fail(error: LabrunnerError) -> NoReturn:
    """Say ``error`` and exit with its code."""
    say(error.message)
    sys.exit(int(error.exit_code))


def cache_dir() -> Path:
    """Where start-up caches live: the entry-point list and loaded workshops."""
    from labrunner.state.store import state_dir

    return state_dir() / "cache"


def use_caches() -> None:
    """Keep parsed kubeconfigs in the cache directory (see ``labrunner.cluster.yamlcache``)."""
    from labrunner.cluster import yamlcache

    yamlcache.enable(cache_dir())


def registry() -> Registry:
    """The installed verifiers (each module imported only when a lab names it)."""
    from labrunner.lab.catalog import VerifierUnavailable
    from labrunner.verify.registry import builtin_registry

    try:
        return builtin_registry(cache_dir=cache_dir())
    except VerifierUnavailable as exc:
        raise EnvironmentProblem(str(exc)) from None


def load_dir(labs_dir: Path, verifiers: Registry) -> LoadResult:
    """Every lab of ``labs_dir``, from the compiled-lab cache while it is current."""
    from labrunner.lab.cache import WorkshopCache, load_workshop_cached

    key = verifiers.fingerprint()
    cache = WorkshopCache(cache_dir(), key) if key is not None else None
    return load_workshop_cached(labs_dir, verifiers, cache=cache)


def load(labs_option: str | None, refs: Sequence[str] = ()) -> tuple[Workshop, list[Lab]]:
    """The workshop and the labs named by ``refs`` (ids or files; all labs if none)."""
    from labrunner.lab.locate import find_labs_dir

    files = [Path(r) for r in refs if r.endswith((".yaml", ".yml")) or os.sep in r]
    if files:
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise UsageProblem(f"no such lab file: {', '.join(missing)}")
        dirs = {f.resolve().parent for f in files}
        if len(dirs) > 1:
            raise UsageProblem("lab files given together must be in one directory")
        labs_dir = dirs.pop()
    else:
        labs_dir = find_labs_dir(labs_option)
    result = load_dir(labs_dir, registry())
    if result.workshop is None and files:
        # Errors only in labs the user did not name must not block the ones named:
        # load the directory again without the broken files, and say so.
        wanted = {f.resolve() for f in files}
        broken = {p.file for p in result.errors}
        if broken and not broken & wanted and labs_dir not in broken:
            from labrunner.lab.loader import lab_files, load_workshop

            rest = [p for p in lab_files(labs_dir) if p.resolve() not in broken]
            retry = load_workshop(labs_dir, registry(), files=rest)
            if retry.workshop is not None:
                names = ", ".join(sorted(p.name for p in broken))
                echo_err(
                    f"labrunner: warning: ignoring lab files with errors: {names} "
                    "(run `labrunner validate` for details)"
                )
                result = retry
    for problem in result.problems:
        if not problem.is_error:
            continue
        echo_err(str(problem))
    if result.workshop is None:
        count = len(result.errors)
        raise UsageProblem(f"{count} problem{'s' if count != 1 else ''} in lab files; see above")
    workshop = result.workshop
    if not refs:
        return workshop, list(workshop.labs)
    chosen: list[Lab] = []
    for ref in refs:
        lab = (
            workshop.find(str(Path(ref).resolve()))
            if ref in map(str, files)
            else workshop.find(ref)
        )
        if lab is None:
            ids = ", ".join(lab.id for lab in workshop.labs)
            raise UsageProblem(f"no lab {ref!r} in {workshop.labs_dir} (labs: {ids})")
        chosen.append(lab)
    order = {lab.id: i for i, lab in enumerate(workshop.labs)}
    return workshop, sorted(chosen, key=lambda lab: order[lab.id])


def store(workshop: Workshop, context: str | None) -> ProgressStore:
    """The workshop's progress (and, for its cluster labs, that of ``context``'s cluster)."""
    from labrunner.cluster.kubeconfig import server_for
    from labrunner.state import ProgressStore

    server = server_for(os.environ, context) if context else None
    return ProgressStore.for_workshop(workshop, context=context, server=server)


def context_of(explicit: str | None) -> str | None:
    """The kube context a command shows progress for: ``explicit``, else the current one."""
    from labrunner.cluster.kubeconfig import current_context

    return explicit or current_context(os.environ)


def store_news(store: ProgressStore) -> None:
    """Say what opening the progress found: warnings, and one-line notices."""
    for warning in store.warnings:
        say(f"warning: {warning}")
    for notice in store.notices:
        say(notice)


def guard(workshop: Workshop, labs: Sequence[Lab], run: PreparedRun) -> None:
    """Judge and pin the cluster of every lab that acts on one, before anything runs.

    Each lab's own kubeconfig is judged (a lab or the workshop may set
    KUBECONFIG in its env); a refusal stops the whole run with exit 3, an
    approval pins that cluster for the lab's shells and checks.
    """
    said: set[str] = set()
    for lab in labs:
        if not lab.needs_cluster:
            continue
        decision = run.decide(workshop, lab)
        if not decision.allowed:
            raise EnvironmentProblem(decision.reason)
        run.approve(workshop, lab)
        if decision.reason not in said:
            said.add(decision.reason)
            say(decision.reason)


def install_signal_handlers(engine: Any) -> threading.Event:
    """Ctrl-C cancels the running command (a second one exits at once); SIGTERM and
    SIGHUP exit cleanly. Either way the lab shells and all they started are killed
    on the way out. Returns the event set by SIGINT: the run then exits 130."""
    interrupted = threading.Event()
    import signal

    def on_int(signum: int, frame: Any) -> None:
        if interrupted.is_set():
            raise SystemExit(int(ExitCode.INTERRUPTED))
        interrupted.set()
        engine.interrupt()

    def on_term(signum: int, frame: Any) -> None:
        engine.interrupt()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGINT, on_int)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    return interrupted


# --------------------------------------------------------------------------- list


def echo(text: str) -> None:
    """One line of data on stdout."""
    sys.stdout.write(text + "\n")


def list_labs(
    labs_option: str | None, *, context_option: str | None, as_json: bool, steps: bool
) -> None:
    """``labrunner list``: the labs, their steps and the progress (raises LabrunnerError)."""
    use_caches()
    workshop, labs = load(labs_option)
    from labrunner.state.rules import StepState, lab_progress, step_states

    context = context_of(context_option)
    progress_store = store(workshop, context)
    try:
        records = {lab.id: progress_store.steps(lab.id) for lab in labs}
    except Exception as exc:  # an unreadable store must not hide the labs
        say(f"warning: progress unavailable: {exc}")
        records = {lab.id: {} for lab in labs}
    progress = lab_progress(workshop, records)
    states = {lab.id: step_states(lab, records[lab.id]) for lab in labs}
    store_news(progress_store)
    if as_json:
        data = {
            "workshop": workshop.title,
            "labs_dir": str(workshop.labs_dir),
            "context": context,
            "labs": [
                {
                    "id": lab.id,
                    "title": lab.title,
                    "file": lab.path.name,
                    "requires": list(lab.requires),
                    "needs_cluster": lab.needs_cluster,
                    "locked": progress[lab.id].locked,
                    "done": progress[lab.id].done,
                    "steps": [
                        {
                            "id": s.id,
                            "title": s.title,
                            "status": records[lab.id][s.id].status
                            if s.id in records[lab.id]
                            else None,
                            "state": states[lab.id][s.id].value,
                            "stale": records[lab.id][s.id].stale if s.id in records[lab.id] else "",
                        }
                        for s in lab.steps
                    ],
                }
                for lab in labs
            ],
        }
        import json  # lazy, like every import a command alone needs

        echo(json.dumps(data, indent=2))
        return
    echo(f"{workshop.title}  ({workshop.labs_dir}; context: {context or 'none'})")
    for lab in labs:
        locked = progress[lab.id].missing
        state = "locked (needs " + ", ".join(locked) + ")" if locked else ""
        where = "cluster" if lab.needs_cluster else "no cluster needed"
        echo(f"  {lab.id:<28} {progress[lab.id].label}  [{where}]  {lab.title}  {state}".rstrip())
        if steps:
            for step in lab.steps:
                record = records[lab.id].get(step.id)
                look = states[lab.id][step.id].look
                # a step nobody has touched shows a dot: "to do" and "locked" are the
                # lab's order, not something the learner did
                mark = look.glyph if record is not None else "·"
                line = f"      {mark} {step.id:<26} {step.title}"
                if states[lab.id][step.id] is StepState.STALE and record is not None:
                    line += f"  ({look.word}: {record.stale})"
                elif states[lab.id][step.id] is StepState.FAILED and record is not None:
                    line += f"  ({look.word})"
                echo(line)


# --------------------------------------------------------------------------- validate


def validate_labs(labs_option: str | None, files: Sequence[str], *, strict: bool) -> NoReturn:
    """``labrunner validate``: one ``file:line: message`` per problem in ``files`` (lab files
    or directories; default: the workshop's), then a count on stderr; exits 2 on errors (on
    warnings too with ``strict``). Raises LabrunnerError when there is nothing to check."""
    from labrunner.lab.locate import find_labs_dir, lab_files

    verifiers = registry()
    problems: list[Problem | None] = []
    checked = 0
    if files:
        by_dir: dict[Path, list[Path]] = {}
        for name in files:
            given = Path(name)
            if not given.exists():
                echo(f"{given}: no such file")
                problems.append(None)
                continue
            if given.is_dir():
                by_dir.setdefault(given.resolve(), [])
                continue
            by_dir.setdefault(given.resolve().parent, []).append(given.resolve())
        for directory, chosen in by_dir.items():
            result = load_dir(directory, verifiers)
            wanted = set(chosen)
            checked += len(chosen) if chosen else len(list(directory.glob("*.y*ml")))
            problems.extend(
                p for p in result.problems if not chosen or p.file in wanted or p.file == directory
            )
    else:
        labs_dir = find_labs_dir(labs_option)
        result = load_dir(labs_dir, verifiers)
        checked = len(lab_files(labs_dir)) if labs_dir.is_dir() else 0
        problems.extend(result.problems)
    real = [p for p in problems if p is not None]
    for problem in real:
        echo(str(problem))
    errors = sum(1 for p in problems if p is None or p.is_error or strict)
    warnings = sum(1 for p in real if not p.is_error)
    sys.stdout.flush()
    echo_err(
        f"{checked} lab file{'s' if checked != 1 else ''} checked: "
        f"{errors} error{'s' if errors != 1 else ''}, "
        f"{warnings} warning{'s' if warnings != 1 else ''}"
    )
    sys.exit(int(ExitCode.USAGE if errors else ExitCode.OK))


def parse_validate(argv: Sequence[str], env: Mapping[str, str]) -> dict[str, Any] | None:
    """The arguments of a plain ``validate`` command line, or None for anything else.

    Plain means: ``[--labs DIR] validate [--strict] [FILE ...]``, ``--strict``
    at most once and anywhere among the files. Any other option (or ``--``)
    returns None: click parses it, or says what is wrong.
    """
    head = _command_line(argv, env, "validate")
    if head is None:
        return None
    labs, rest = head
    files: list[str] = []
    strict = False
    for word in rest:
        if word == "--strict" and not strict:
            strict = True
        elif word.startswith("-") and word != "-":
            return None
        else:
            files.append(word)
    return {"labs_option": labs, "files": files, "strict": strict}


# --------------------------------------------------------------------------- verify


def verify_labs(
    labs_option: str | None,
    refs: Sequence[str],
    *,
    from_step: str | None = None,
    only_step: str | None = None,
    junit: Path | None = None,
    json_path: Path | None = None,
    context_option: str | None = None,
    setup: bool | None = None,
    cleanup: bool = False,
    skip_needs: str = "",
    no_save: bool = False,
    quiet: bool = False,
    annotations: str = "auto",
    forensics_dir: Path | None = None,
    repeat: int = 1,
) -> NoReturn:
    """``labrunner verify``: run labs headless, each step's commands, then its checks."""
    use_caches()
    from dataclasses import replace

    from labrunner.engine import Engine, RunOptions, UsageError
    from labrunner.engine.events import StepStatus
    from labrunner.engine.prepare import prepare_run
    from labrunner.reports import ReportCollector
    from labrunner.reports.github import wanted as wanted_annotations
    from labrunner.ui_text import Printer

    run = prepare_run(context_option)
    try:
        verifiers = registry()
        workshop, chosen = load(labs_option, refs)
        if (from_step or only_step) and len(chosen) != 1:
            raise UsageProblem("--from and --only need exactly one lab")
        if from_step and only_step:
            raise UsageProblem("use --from or --only, not both")
        guard(workshop, chosen, run)
    except LabrunnerError as exc:
        run.close()
        fail(exc)
    context = run.context
    options = RunOptions(
        from_step=from_step,
        only_step=only_step,
        setup=setup,
        cleanup=cleanup,
        skip_needs=frozenset(n.strip() for n in skip_needs.split(",") if n.strip()),
        kube_context=context_option,
        save=not no_save,
        # the JUnit report carries forensics too, so a CI run that keeps one collects them
        forensics=forensics_dir is not None or junit is not None,
    )
    collector = ReportCollector(workshop=workshop.title, context=context)
    writer = None
    if forensics_dir is not None:
        from labrunner.reports.forensics import ForensicsWriter

        writer = ForensicsWriter(forensics_dir)
    printer = Printer(quiet=quiet)
    log: Any = printer
    github = None
    if wanted_annotations(annotations, os.environ):
        from labrunner.reports.github import GitHubActions

        github = GitHubActions(
            workshop,
            inner=printer,
            stream=sys.stdout,
            workspace=os.environ.get("GITHUB_WORKSPACE"),
        )
        log = github

    stats = None
    if repeat > 1:
        from labrunner.reports.repeat import RepeatStats

        stats = RepeatStats(repeat)
        collector.repeat = stats

    def emit(event: Any) -> None:
        collector(event)
        if stats is not None:
            stats(event)
        if writer is not None:
            try:
                writer(event)
            except OSError as exc:
                say(f"warning: cannot write forensics: {exc.strerror or exc}")
        log(event)

    progress = store(workshop, run.context)
    engine = Engine(
        workshop,
        registry=verifiers,
        store=progress,
        emit=emit,
        options=options,
        run=run,
        identify=identify_cluster(run, workshop, chosen),
    )
    interrupted = install_signal_handlers(engine)
    broken = failed = False
    startup.resume()  # a run may last hours: collect cycles from here on
    try:
        for index in range(1, repeat + 1):
            if stats is not None:
                printer.heading(f"run {index}/{repeat}")
                stats.start_run(index)
                collector.start_run(index, repeat)
                if writer is not None:
                    writer.start_run(index, repeat)
                if github is not None:
                    github.label = f"run {index}/{repeat} · "
                # cleanup between runs, so each run starts where the first did
                engine.options = replace(options, cleanup=cleanup or index < repeat)
            summary = engine.verify(chosen)
            broken = broken or summary.environment_broken
            failed = failed or not summary.ok
            if interrupted.is_set() or any(
                s is StepStatus.CANCELLED for s in summary.lab_status.values()
            ):
                break
    except UsageError as exc:
        fail(UsageProblem(str(exc)))
    finally:
        run.close()
        store_news(progress)
    class_note()
    printer.summary(collector)
    if stats is not None:
        echo(stats.table())
    if writer is not None and writer.written:
        say(f"forensics of {len(writer.written)} failed step(s) in {forensics_dir}")
    try:
        if junit:
            collector.write_junit(junit)
        if json_path:
            collector.write_json(json_path)
        if github is not None:
            from labrunner.reports.github import write_summary

            title = f"labrunner verify: {workshop.title}"
            write_summary(stats.markdown(title) if stats else github.summary(title))
    except OSError as exc:
        fail(EnvironmentProblem(f"cannot write report: {exc.strerror or exc}"))
    if interrupted.is_set():
        sys.exit(int(ExitCode.INTERRUPTED))
    if broken:
        sys.exit(int(ExitCode.ENVIRONMENT))
    sys.exit(int(ExitCode.FAILED if failed else ExitCode.OK))


def identify_cluster(
    run: PreparedRun, workshop: Workshop, labs: Sequence[Lab]
) -> Callable[[], str] | None:
    """How the engine learns which cluster answers for the run (None without one).

    It asks through the kubeconfig the run pinned for its first cluster lab, so the
    identity comes from the approved cluster and nothing else.
    """
    lab = next((lab for lab in labs if lab.needs_cluster), None)
    if not run.context or lab is None:
        return None
    context = run.context

    def identify() -> str:
        from labrunner.cluster.identity import cluster_uid

        env = dict(run.env)
        env["KUBECONFIG"] = str(run.kubeconfig_for(workshop, lab))
        return cluster_uid(env, context)

    return identify


def class_note() -> None:
    """End class publishing for this process; say so when events are left waiting."""
    from labrunner.engine.classfeed import finish as finish_class

    note = finish_class()
    if note:
        say(note)


_VERIFY_FLAGS = {
    "-q": "quiet",
    "--quiet": "quiet",
    "--no-save": "no_save",
    "--cleanup": "cleanup",
    "--setup": "setup",
    "--no-setup": "setup",
}
_VERIFY_VALUES = {
    "--from": "from_step",
    "--only": "only_step",
    "--context": "context_option",
    "--skip-needs": "skip_needs",
    "--junit": "junit",
    "--json": "json_path",
}


def parse_verify(argv: Sequence[str], env: Mapping[str, str]) -> dict[str, Any] | None:
    """The arguments of a plain ``verify`` command line, or None for anything else.

    Plain means: ``[--labs DIR] verify [LAB|FILE]...`` with any of ``-q``/``--quiet``,
    ``--no-save``, ``--cleanup``, ``--setup``/``--no-setup``, ``--context CTX``,
    ``--from STEP``, ``--only STEP``, ``--skip-needs LIST``, ``--junit FILE`` and
    ``--json FILE`` (a report file that is not a folder), each at most once, in
    either ``--opt value`` or ``--opt=value`` form, among the labs in any order.
    Anything else (``--repeat``, ``--forensics``, ``--annotations``, help, ``--``,
    an unknown or repeated option) returns None and goes to click, which parses
    it the same way or says what is wrong.
    """
    head = _command_line(argv, env, "verify")
    if head is None:
        return None
    labs, rest = head
    arguments: dict[str, Any] = {"labs_option": labs, "refs": []}
    i = 0
    while i < len(rest):
        word = rest[i]
        i += 1
        if not word.startswith("-") or word == "-":
            arguments["refs"].append(word)
            continue
        name, eq, value = word.partition("=")
        key = _VERIFY_FLAGS.get(name) or _VERIFY_VALUES.get(name)
        if key is None or key in arguments:
            return None
        if name in _VERIFY_FLAGS:
            if eq:
                return None
            arguments[key] = name != "--no-setup"
            continue
        found, i = _option_value(rest, i, eq, value)
        if found is None:
            return None
        value = found
        if key in ("junit", "json_path"):
            if not value or os.path.isdir(value):
                return None  # click refuses a folder as a report file, in its words
            arguments[key] = Path(value)
        else:
            arguments[key] = value
    return arguments


# --------------------------------------------------------------------------- check


def check(
    labs_option: str | None,
    lab: str,
    step: str | None,
    *,
    context_option: str | None,
    wait: bool,
) -> NoReturn:
    """``labrunner check``: run only the checks of ``lab`` (or of one ``step``), no commands."""
    from labrunner.engine import Engine, RunOptions, UsageError, select_steps
    from labrunner.engine import events as ev
    from labrunner.engine.events import StepStatus
    from labrunner.engine.prepare import prepare_run
    from labrunner.ui_text import Printer

    use_caches()
    run = prepare_run(context_option, reaper=False)
    try:
        verifiers = registry()
        workshop, (chosen,) = load(labs_option, [lab])
        steps = select_steps(chosen, from_step=None, only_step=step)
        guard(workshop, [chosen], run)
    except UsageError as exc:
        run.close()
        fail(UsageProblem(str(exc)))
    except LabrunnerError as exc:
        run.close()
        fail(exc)
    printer = Printer(quiet=True)
    engine = Engine(
        workshop,
        registry=verifiers,
        store=store(workshop, run.context),
        emit=printer,
        options=RunOptions(kube_context=context_option, save=False, shell_free_checks=True),
        run=run,
    )
    interrupted = install_signal_handlers(engine)
    worst = StepStatus.PASSED
    startup.resume()  # the checks may wait (--wait): collect cycles from here on
    try:
        with engine.session(chosen) as session:
            for item in steps:
                printer(ev.StepStarted(chosen.id, item.id, chosen.index(item.id), item.title))
                # only the checks: a lab service that is down is reported, not started
                result = session.check(item, within=None if wait else 0.0, services=False)
                printer(
                    ev.StepFinished(
                        chosen.id, item.id, result.status, result.message, result.details
                    )
                )
                if (
                    not result.ok and worst is StepStatus.PASSED
                ) or result.status is StepStatus.ERROR:
                    worst = result.status
                if interrupted.is_set() or session.halted is not None:
                    break
    finally:
        run.close()
    if interrupted.is_set():
        sys.exit(int(ExitCode.INTERRUPTED))
    if worst is StepStatus.ERROR:
        sys.exit(int(ExitCode.ENVIRONMENT))
    sys.exit(int(ExitCode.OK if worst.ok else ExitCode.FAILED))


def run_plain(argv: Sequence[str]) -> None:
    """Run ``argv`` when it is a plain ``check``, ``verify``, ``list`` or ``validate``
    command line (never returns then); return at once for anything else, which is
    click's to parse.

    A Ctrl-C before the command's own handler is in place, or a closed stdout,
    ends the process as click would end it.
    """
    commands: tuple[tuple[Callable[..., dict[str, Any] | None], Callable[..., None]], ...] = (
        (parse_check, check),
        (parse_verify, verify_labs),
        (parse_list, list_labs),
        (parse_validate, validate_labs),
    )
    for parse, command in commands:
        arguments = parse(argv, os.environ)
        if arguments is not None:
            status = end_after_atexit()
            _run_plain(status, command, arguments)


def _run_plain(
    status: list[object], command: Callable[..., None], arguments: Mapping[str, Any]
) -> NoReturn:
    """Run a click-free command as click would: its exit code, a LabrunnerError said with
    its code, "Aborted!" after a Ctrl-C before the command's own handler, a quiet exit when
    stdout was closed. ``status`` gets the exit status (see ``end_after_atexit``)."""
    try:
        try:
            command(**arguments)
        except LabrunnerError as exc:
            fail(exc)
        sys.exit(0)
    except SystemExit as exc:
        from labrunner import codecache  # the command's modules are in: keep their code

        codecache.save()
        status.append(exc.code)
        raise
    except (EOFError, KeyboardInterrupt):
        echo_err("\nAborted!")
        status.append(1)
        sys.exit(1)
    except BrokenPipeError:
        # `labrunner check … | head -0`: point stdout at /dev/null so the exit's flush is quiet
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        status.append(1)
        sys.exit(1)


def end_after_atexit() -> list[object]:
    """Make the process end right after its last ``atexit`` handler; returns the list to
    append the exit status (``SystemExit.code``) to.

    After the ``atexit`` handlers, an interpreter's teardown only frees memory:
    it clears every module and collects every object, which costs a short
    command like ``check`` about a seventh of its run (some 25 ms). Everything
    labrunner must do on the way out is an ``atexit`` handler or happens
    before: the run's directory and what its shells left (``weakref.finalize``
    runs at exit), progress (written with ``os.write`` and synced when
    recorded), the class publisher. The handler registered here runs last
    (handlers run in reverse order), after Python has joined the non-daemon
    threads; it flushes stdout and stderr and ends the process with the
    status, as CPython would (1 after an uncaught exception, 120 when stdout
    cannot be flushed). Where something registered a handler before this
    (a coverage tool, say), it would run after ours, so the teardown is kept.
    """
    import atexit

    status: list[object] = []
    count = getattr(atexit, "_ncallbacks", None)
    if count is None or count() != 0:
        return status

    def leave() -> None:
        code = status[-1] if status else 1
        exit_code = 0 if code is None else code if isinstance(code, int) else 1
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            exit_code = 120
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os._exit(exit_code)

    atexit.register(leave)
    return status


def parse_check(argv: Sequence[str], env: Mapping[str, str]) -> dict[str, Any] | None:
    """The arguments of a plain ``check`` command line, or None for anything else.

    Plain means: ``[--labs DIR] check LAB [STEP] [--context CTX] [--wait]``,
    options in either ``--opt value`` or ``--opt=value`` form, each at most
    once. Anything else (help, version, ``--``, an unknown or repeated option,
    a missing or extra argument) returns None and goes to click, which
    parses it the same way or says what is wrong.
    """
    head = _command_line(argv, env, "check")
    if head is None:
        return None
    labs, rest = head
    positional: list[str] = []
    context: str | None = None
    seen: set[str] = set()
    wait = False
    i = 0
    while i < len(rest):
        word = rest[i]
        i += 1
        if not word.startswith("-") or word == "-":
            positional.append(word)
            continue
        name, eq, value = word.partition("=")
        if name in seen:
            return None
        seen.add(name)
        if name == "--wait" and not eq:
            wait = True
        elif name == "--context":
            context, i = _option_value(rest, i, eq, value)
            if context is None:
                return None
        else:
            return None
    if not 1 <= len(positional) <= 2:
        return None
    return {
        "labs_option": labs,
        "lab": positional[0],
        "step": positional[1] if len(positional) > 1 else None,
        "context_option": context,
        "wait": wait,
    }


def _command_line(
    argv: Sequence[str], env: Mapping[str, str], command: str
) -> tuple[str | None, list[str]] | None:
    """``(labs directory, the words after command)`` for ``[--labs DIR] COMMAND ...``, the
    directory from ``LABRUNNER_LABS`` when not given (as click's envvar); None for a line
    that does not run ``command``."""
    args = list(argv)
    labs: str | None = None
    if args and (args[0] == "--labs" or args[0].startswith("--labs=")):
        if args[0] == "--labs":
            if len(args) < 2:
                return None
            labs, args = args[1], args[2:]
        else:
            labs, args = args[0].removeprefix("--labs="), args[1:]
    if not args or args[0] != command:
        return None
    if labs is None:
        labs = env.get("LABRUNNER_LABS") or None
    return labs, args[1:]


def _option_value(rest: Sequence[str], i: int, eq: str, value: str) -> tuple[str | None, int]:
    """An option's value, from ``--opt=value`` or else the next word, and where the parse
    goes on; None when no word follows or it looks like an option (click's to judge)."""
    if eq:
        return value, i
    if i >= len(rest) or rest[i].startswith("-"):
        return None, i
    return rest[i], i + 1


def parse_list(argv: Sequence[str], env: Mapping[str, str]) -> dict[str, Any] | None:
    """The arguments of a plain ``list`` command line, or None for anything else.

    Plain means: ``[--labs DIR] list [--context CTX] [--json] [--steps|--no-steps]``,
    each option at most once (anything else is click's to parse or refuse).
    """
    head = _command_line(argv, env, "list")
    if head is None:
        return None
    labs, rest = head
    seen: set[str] = set()
    context: str | None = None
    as_json = False
    steps = True
    i = 0
    while i < len(rest):
        name, eq, value = rest[i].partition("=")
        i += 1
        key = "--steps" if name == "--no-steps" else name
        if key in seen:
            return None
        seen.add(key)
        if name == "--context":
            context, i = _option_value(rest, i, eq, value)
            if context is None:
                return None
        elif name == "--json" and not eq:
            as_json = True
        elif name in ("--steps", "--no-steps") and not eq:
            steps = name == "--steps"
        else:
            return None
    return {"labs_option": labs, "context_option": context, "as_json": as_json, "steps": steps}
