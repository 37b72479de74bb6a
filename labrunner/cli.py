"""The command line: the contract CI relies on (see DESIGN.md, "Command line").

Data goes to stdout, diagnostics to stderr, and exit codes come from
``labrunner.errors.ExitCode``: 0 all passed, 1 a step failed, 2 bad usage or an
invalid lab file, 3 the environment is broken, 130 interrupted by SIGINT. Textual is
imported only inside ``run`` (and ``served``, the TUI as ``serve`` runs it for a browser, and
``class watch``), so ``--help``, ``verify`` and the other headless commands
start fast and work where no terminal UI could. For the same start-up speed every command
imports what it needs inside its own body: the function-level imports below
are all lazy on purpose.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import click

from labrunner import __version__, headless
from labrunner.certs.cli import certs_command, mtls_server_group
from labrunner.classcmd import class_group
from labrunner.errors import EnvironmentProblem, ExitCode, LabrunnerError, UsageProblem

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


# --------------------------------------------------------------------------- shared helpers
# They live in labrunner.headless, click-free, so the console script can run a plain
# `check` without importing click; every command here uses them under these names.
_say = headless.say
_fail = headless.fail
_cache_dir = headless.cache_dir
_registry = headless.registry
_load_dir = headless.load_dir
_load = headless.load
_store = headless.store
_guard = headless.guard
_install_signal_handlers = headless.install_signal_handlers


_context = headless.context_of
_store_news = headless.store_news
_class_note = headless.class_note


# --------------------------------------------------------------------------- the group


@click.group(context_settings=CONTEXT_SETTINGS, invoke_without_command=True)
@click.option(
    "--labs",
    "labs_dir",
    envvar="LABRUNNER_LABS",
    metavar="DIR",
    help="The workshop's labs directory (default: the bundled workshop).",
)
@click.version_option(__version__, "-V", "--version", prog_name="labrunner")
@click.pass_context
def main(ctx: click.Context, labs_dir: str | None) -> None:
    """labrunner walks you through Kubernetes and Istio labs and checks every step.

    With no command it opens the interactive TUI on the bundled workshop.
    """
    ctx.ensure_object(dict)
    ctx.obj["labs"] = labs_dir
    headless.use_caches()
    if ctx.invoked_subcommand is None:
        ctx.invoke(run)


@main.command()
@click.argument("lab", required=False)
@click.option("--context", "context_option", metavar="CTX", help="Kube context to act on.")
@click.option(
    "--watch",
    is_flag=True,
    help="Reload a lab file when you save it (for authors), keeping your place and progress.",
)
@click.option(
    "--detach-key",
    metavar="KEY",
    envvar="LABRUNNER_DETACH_KEY",
    show_envvar=True,
    help="The key that gives the keyboard back from the lab's shell (default ctrl+]).",
)
@click.pass_context
def run(
    ctx: click.Context,
    lab: str | None,
    context_option: str | None,
    watch: bool,
    detach_key: str | None,
) -> None:
    """Open the TUI (on LAB if given)."""
    escape = _detach_key(detach_key)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        _fail(
            UsageProblem(
                "the TUI needs a terminal (stdin and stdout are not one here); "
                "for a headless run use `labrunner verify`, or `labrunner list` to see the labs"
            )
        )
    _open_tui(ctx, lab, context_option, served=False, watch=watch, detach_key=escape)


def _detach_key(option: str | None) -> str:
    """The detach key as Textual names it, from --detach-key or LABRUNNER_DETACH_KEY
    (``labrunner`` alone invokes ``run`` without click reading the environment)."""
    keys = importlib.import_module("labrunner.tui.terminal.keys")
    text = option or os.environ.get("LABRUNNER_DETACH_KEY") or "ctrl+]"
    try:
        return str(keys.detach_key(text))
    except ValueError as exc:
        _fail(UsageProblem(f"--detach-key (LABRUNNER_DETACH_KEY): {exc}"))


@main.command("served", hidden=True)
@click.argument("lab", required=False)
@click.option("--context", "context_option", metavar="CTX")
@click.pass_context
def served(ctx: click.Context, lab: str | None, context_option: str | None) -> None:
    """The TUI as `labrunner serve` runs it for a browser (its driver talks over pipes)."""
    _open_tui(ctx, lab, context_option, served=True)


def _open_tui(
    ctx: click.Context,
    lab: str | None,
    context_option: str | None,
    *,
    served: bool,
    watch: bool = False,
    detach_key: str | None = None,
) -> None:
    try:
        run_app = importlib.import_module("labrunner.tui.app").run_app
    except ImportError as exc:  # pragma: no cover - only when the TUI is not installed
        _fail(EnvironmentProblem(f"the TUI is not available: {exc}"))
    try:
        workshop, _ = _load(ctx.obj.get("labs"))
        if lab is not None and workshop.find(lab) is None:
            raise UsageProblem(f"no lab {lab!r} in {workshop.labs_dir}")
        code = run_app(
            workshop,
            lab=lab,
            context=context_option,
            watch=watch,
            served=served,
            **({"detach_key": detach_key} if detach_key else {}),
        )
    except LabrunnerError as exc:
        _fail(exc)
    _class_note()
    sys.exit(int(code))


@main.command()
@click.argument("lab", required=False)
@click.option("--host", default="localhost", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port (0: any free one).")
@click.option(
    "--public-url",
    metavar="URL",
    help="The address the browser uses (https://… behind a TLS proxy); default http://HOST:PORT.",
)
@click.option(
    "--token",
    envvar="LABRUNNER_SERVE_TOKEN",
    metavar="TOKEN",
    help="The access token (default: a new random one). Also LABRUNNER_SERVE_TOKEN.",
)
@click.option("--context", "context_option", metavar="CTX", help="Kube context to act on.")
@click.pass_context
def serve(
    ctx: click.Context,
    lab: str | None,
    host: str,
    port: int,
    public_url: str | None,
    token: str | None,
    context_option: str | None,
) -> None:
    """Serve the TUI to one browser, behind a token (printed once, as the URL to open)."""
    try:
        from labrunner import serve as web
    except ImportError as exc:
        _fail(
            EnvironmentProblem(
                f"serving needs the `serve` extra: pip install 'labrunner[serve]' ({exc})"
            )
        )
    try:
        workshop, _ = _load(ctx.obj.get("labs"))
        if lab is not None and workshop.find(lab) is None:
            raise UsageProblem(f"no lab {lab!r} in {workshop.labs_dir}")
    except LabrunnerError as exc:
        _fail(exc)
    argv = web.child_command(labs=str(workshop.labs_dir), context=context_option, lab=lab)

    def announce(url: str) -> None:
        click.echo(url)
        sys.stdout.flush()
        click.echo(
            "labrunner: serving to one browser at a time; open the URL above (it carries the "
            "token). Ctrl+C stops.",
            err=True,
        )

    try:
        web.serve(argv, host=host, port=port, public_url=public_url, token=token, announce=announce)
    except web.ServeProblem as exc:
        _fail(UsageProblem(str(exc)))
    except OSError as exc:
        _fail(EnvironmentProblem(f"cannot listen on {host}:{port}: {exc.strerror or exc}"))


# --------------------------------------------------------------------------- list


@main.command("list")
@click.option("--context", "context_option", metavar="CTX", help="Show progress for this context.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--steps/--no-steps", default=True, help="Show each lab's steps.")
@click.pass_context
def list_(ctx: click.Context, context_option: str | None, as_json: bool, steps: bool) -> None:
    """Labs, their steps and your progress."""
    try:
        headless.list_labs(
            ctx.obj.get("labs"), context_option=context_option, as_json=as_json, steps=steps
        )
    except LabrunnerError as exc:
        _fail(exc)


# --------------------------------------------------------------------------- verify


@main.command()
@click.argument("labs", nargs=-1, metavar="[LAB|FILE]...")
@click.option("--from", "from_step", metavar="STEP", help="Start at STEP (one lab only).")
@click.option("--only", "only_step", metavar="STEP", help="Run only STEP (one lab only).")
@click.option(
    "--junit",
    "junit",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a JUnit XML report.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a JSON report.",
)
@click.option(
    "--context",
    "context_option",
    metavar="CTX",
    help="Kube context to act on (also confirms a non-disposable one).",
)
@click.option(
    "--setup/--no-setup",
    default=None,
    help="Run each lab's setup first (default: when its required labs did not run).",
)
@click.option("--cleanup", is_flag=True, help="Run each lab's cleanup at the end.")
@click.option(
    "--skip-needs",
    metavar="LIST",
    default="",
    help="Skip steps that need these (comma-separated, e.g. traffic,internet).",
)
@click.option("--no-save", is_flag=True, help="Do not record progress.")
@click.option("-q", "--quiet", is_flag=True, help="Do not show command output.")
@click.option(
    "--annotations",
    type=click.Choice(["auto", "github", "none"]),
    default="auto",
    show_default=True,
    help="GitHub Actions groups, annotations, step summary (auto: when GITHUB_ACTIONS=true).",
)
@click.option(
    "--forensics",
    "forensics_dir",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="When a cluster step fails, save its events, pod states and logs to DIR/LAB/STEP/.",
)
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=1,
    metavar="N",
    help="Run the labs N times (cleanup between runs) and report pass rates and timings.",
)
@click.pass_context
def verify(
    ctx: click.Context,
    labs: tuple[str, ...],
    from_step: str | None,
    only_step: str | None,
    junit: Path | None,
    json_path: Path | None,
    context_option: str | None,
    setup: bool | None,
    cleanup: bool,
    skip_needs: str,
    no_save: bool,
    quiet: bool,
    annotations: str,
    forensics_dir: Path | None,
    repeat: int,
) -> None:
    """Run labs headless: each step's commands, then its checks (the CI smoke test)."""
    headless.verify_labs(
        ctx.obj.get("labs"),
        labs,
        from_step=from_step,
        only_step=only_step,
        junit=junit,
        json_path=json_path,
        context_option=context_option,
        setup=setup,
        cleanup=cleanup,
        skip_needs=skip_needs,
        no_save=no_save,
        quiet=quiet,
        annotations=annotations,
        forensics_dir=forensics_dir,
        repeat=repeat,
    )


# --------------------------------------------------------------------------- check


@main.command()
@click.argument("lab")
@click.argument("step", required=False)
@click.option("--context", "context_option", metavar="CTX", help="Kube context to check.")
@click.option(
    "--wait", is_flag=True, help="Wait up to each step's `within` budget instead of checking once."
)
@click.pass_context
def check(
    ctx: click.Context, lab: str, step: str | None, context_option: str | None, wait: bool
) -> None:
    """Run only the checks of LAB (or of one STEP), no commands."""
    headless.check(ctx.obj.get("labs"), lab, step, context_option=context_option, wait=wait)


# --------------------------------------------------------------------------- new


@main.command()
@click.argument("lab_id", metavar="LAB-ID")
@click.option("--title", help="The lab's title (default: from its id).")
@click.pass_context
def new(ctx: click.Context, lab_id: str, title: str | None) -> None:
    """Start a new lab: a file that validates, listed last in workshop.yaml."""
    from labrunner.lab.loader import check_lab_file
    from labrunner.lab.locate import find_labs_dir
    from labrunner.lab.scaffold import ScaffoldError, new_lab
    from labrunner.lab.schema import lab_schema

    try:
        labs_dir = find_labs_dir(ctx.obj.get("labs"))
        registry = _registry()
        created = new_lab(labs_dir, lab_id, title=title, schema=lab_schema(registry))
    except ScaffoldError as exc:
        _fail(UsageProblem(str(exc)))
    except OSError as exc:
        _fail(EnvironmentProblem(f"cannot write the lab: {exc.strerror or exc}"))
    except LabrunnerError as exc:
        _fail(exc)
    _lab, problems = check_lab_file(created.lab_file, registry)
    for problem in problems:  # the template is tested to load; this is a last guard
        click.echo(str(problem), err=True)
    click.echo(f"created {created.lab_file}")
    if created.workshop_file is not None:
        click.echo(f"listed it last in {created.workshop_file}")
    if created.schema_file is not None:
        click.echo(f"wrote {created.schema_file} for editor completion")
    click.echo(
        f"next: edit it, then `labrunner validate`, `labrunner rehearse {lab_id}`, "
        f"`labrunner run --watch {lab_id}`"
    )
    if any(p.is_error for p in problems):
        sys.exit(int(ExitCode.USAGE))


# --------------------------------------------------------------------------- rehearse


@main.command()
@click.argument("labs", nargs=-1, metavar="[LAB|FILE]...")
@click.option("-v", "--verbose", is_flag=True, help="Show every command and check as it runs.")
@click.pass_context
def rehearse(ctx: click.Context, labs: tuple[str, ...], verbose: bool) -> None:
    """Rehearse labs on a simulated cluster: no cluster needed.

    For each lab, on a fresh simulated cluster: setup, then every step's cluster
    checks must fail before its solution and pass after, then cleanup must undo
    the lab. Steps that need real traffic, istioctl, helm or the internet are
    reported as not rehearsable. The labs run in a copy of the workshop.
    """
    import shutil
    import tempfile

    from labrunner.ui_text import Printer

    try:
        registry = _registry()
        workshop, chosen = _load(ctx.obj.get("labs"), labs)
    except LabrunnerError as exc:
        _fail(exc)
    if any(lab.needs_cluster for lab in chosen) and shutil.which("kubectl") is None:
        _fail(EnvironmentProblem("rehearse runs the labs' kubectl commands: install kubectl"))
    from labrunner.lab.loader import load_workshop
    from labrunner.rehearse import Rehearsal, RehearsalSetupError, copy_workshop
    from labrunner.rehearse.table import lab_line, render

    directory = Path(tempfile.mkdtemp(prefix="labrunner-rehearse-"))
    try:
        try:
            copied = load_workshop(copy_workshop(workshop, directory / "workshop"), registry)
        except (RehearsalSetupError, OSError) as exc:
            _fail(EnvironmentProblem(f"cannot copy the workshop for a rehearsal: {exc}"))
        if copied.workshop is None:  # the copy of a valid workshop is valid
            raise AssertionError("\n".join(map(str, copied.problems)))
        copy = copied.workshop
        printer = Printer(quiet=False) if verbose else None
        _say(f"rehearsing {len(chosen)} lab{'s' if len(chosen) != 1 else ''} of {workshop.title}")
        rehearsal = Rehearsal(
            copy,
            registry=registry,
            emit=printer,
            on_lab=lambda result: _say(lab_line(result)),
            directory=directory / "runs",
        )
        try:
            if any(lab.needs_cluster for lab in chosen):
                for warning in rehearsal.plan.warnings:
                    _say(f"warning: {warning}")
            report = rehearsal.run(copy.lab(lab.id) for lab in chosen)
        except RehearsalSetupError as exc:
            _fail(UsageProblem(str(exc)))
        except KeyboardInterrupt:  # the shells and the cluster are closed on the way out
            _say("interrupted")
            sys.exit(130)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    click.echo(render(report))
    sys.exit(int(report.exit_code))


# --------------------------------------------------------------------------- validate / schema


@main.command()
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@click.pass_context
def validate(ctx: click.Context, files: tuple[Path, ...], strict: bool) -> None:
    """Lint lab files (default: the whole workshop): one `file:line: message` per problem."""
    try:
        headless.validate_labs(ctx.obj.get("labs"), [str(f) for f in files], strict=strict)
    except LabrunnerError as exc:
        _fail(exc)


@main.command()
def schema() -> None:
    """Print the JSON Schema of the lab format (for editor completion)."""
    from labrunner.lab.catalog import VerifierUnavailable
    from labrunner.lab.schema import lab_schema

    try:
        schema = lab_schema(_registry())
    except VerifierUnavailable as exc:
        _fail(EnvironmentProblem(str(exc)))
    except LabrunnerError as exc:
        _fail(exc)
    import json

    click.echo(json.dumps(schema, indent=2))


# --------------------------------------------------------------------------- reset


@main.command()
@click.argument("lab", required=False)
@click.option("--step", metavar="STEP", help="Forget only this step.")
@click.option("--context", "context_option", metavar="CTX", help="Progress of this context.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def reset(
    ctx: click.Context, lab: str | None, step: str | None, context_option: str | None, yes: bool
) -> None:
    """Forget progress (of LAB, or of everything)."""
    from labrunner.state import StateError

    if step and not lab:
        _fail(UsageProblem("--step needs a LAB"))
    context = _context(context_option)
    try:
        workshop, chosen_labs = _load(ctx.obj.get("labs"), [lab] if lab is not None else [])
    except LabrunnerError as exc:
        _fail(exc)
    if lab is not None:
        (chosen,) = chosen_labs
        if step is not None and step not in {s.id for s in chosen.steps}:
            _fail(UsageProblem(f"lab {chosen.id} has no step {step!r}"))
        lab = chosen.id
    what = f"step {step} of {lab}" if step else f"lab {lab}" if lab else "all progress"
    if not yes:
        if not sys.stdin.isatty():
            _fail(UsageProblem(f"refusing to forget {what} without --yes (not a terminal)"))
        click.confirm(
            f"Forget {what} of {workshop.root} (context {context or 'none'})?",
            abort=True,
            err=True,
        )
    try:
        count = _store(workshop, context).reset(lab, step)
    except StateError as exc:
        _fail(EnvironmentProblem(str(exc)))
    click.echo(
        f"forgot {count} step{'s' if count != 1 else ''} ({what}, context {context or 'none'})"
    )


# --------------------------------------------------------------------------- init


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def init(directory: Path) -> None:
    """Copy the bundled Istio workshop into DIRECTORY (labs, manifests, certs/)."""
    from labrunner.lab.locate import WorkshopCopyError, copy_bundled

    try:
        labs = copy_bundled(directory)
    except WorkshopCopyError as exc:
        _fail(UsageProblem(str(exc)))
    click.echo(f"copied the bundled workshop to {labs.parent}")
    click.echo(f"start it with: cd {labs.parent} && labrunner")


# --------------------------------------------------------------------------- doctor


@main.command()
@click.option("--context", "context_option", metavar="CTX", help="Kube context to inspect.")
@click.option("--json", "as_json", is_flag=True, help="Print findings as JSON.")
@click.pass_context
def doctor(ctx: click.Context, context_option: str | None, as_json: bool) -> None:
    """Check tools, versions, cluster reachability and context safety."""
    from labrunner.doctor import examine, runnable_labs

    try:
        registry = _registry()
    except LabrunnerError as exc:
        _fail(exc)
    findings, workshop = examine(
        catalog=registry, labs_option=ctx.obj.get("labs"), context=context_option
    )
    if as_json:
        import json

        click.echo(json.dumps([f.as_json() for f in findings], indent=2))
    else:
        for finding in findings:
            mark = "✔" if finding.ok else ("✘" if finding.required else "·")
            click.echo(f"{mark} {finding.name:<18} {finding.detail}")
            if not finding.ok and finding.fix:
                click.echo(f"  {'':<18} → {finding.fix}")
    blocking = [f for f in findings if f.blocking]
    if not as_json and workshop is not None:
        click.echo(_runnable_line(runnable_labs(findings, workshop), len(workshop.labs)))
    if blocking:
        count = len(blocking)
        stop = "1 problem stops" if count == 1 else f"{count} problems stop"
        click.echo(f"labrunner: {stop} the workshop from running; see above", err=True)
        sys.exit(int(ExitCode.ENVIRONMENT))


def _runnable_line(runnable: list[str], total: int) -> str:
    """Which labs can run now, in one line."""
    if len(runnable) == total:
        return f"Labs you can run now: all {total}."
    if not runnable:
        return "Labs you can run now: none until the problems above are fixed."
    return (
        f"Labs you can run now: {', '.join(runnable)} (no cluster needed); "
        f"the other {total - len(runnable)} need the cluster fixed first."
    )


for _command in (certs_command, mtls_server_group, class_group):
    main.add_command(_command)
