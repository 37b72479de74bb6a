"""``labrunner class``: run a class (instructor) and join one (learner).

The instructor's commands act on a context the instructor names: ``init``
needs ``--context``, and remembers it (with the namespace) in the state
directory, so ``status``, ``watch``, ``add``, ``renew``, ``revoke`` and ``end``
find the class by its name afterwards. The learner's commands (``join``,
``leave``, ``info``) touch only the learner's state directory and, through
the join file, the learner's own progress object.

The work is ``labrunner.classroom``'s; this module parses options, prints,
and maps failures to exit codes. Like the rest of the CLI it imports what a
command needs inside that command (start-up speed), and Textual only inside
``watch``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from labrunner.errors import EnvironmentProblem, ExitCode, LabrunnerError, UsageProblem

if TYPE_CHECKING:
    from labrunner.classroom.admin import ClassRef, Issued, Issuing
    from labrunner.classroom.document import StuckRules
    from labrunner.classroom.names import Learner
    from labrunner.cluster.client import Kube

DEFAULT_TOKEN_TTL = "24h"  # noqa: S105 - a duration, not a secret
STUCK_AFTER = "10m"
STUCK_FAILURES = 3


def _fail(error: LabrunnerError) -> NoReturn:
    click.echo(f"labrunner: {error.message}", err=True)
    sys.exit(int(error.exit_code))


def _classes_dir() -> Path:
    from labrunner.state.store import state_dir

    return state_dir() / "classes"


def _learner_dir() -> Path:
    from labrunner.engine.classfeed import class_directory

    return class_directory()


def _remember(name: str, context: str, namespace: str) -> None:
    from labrunner.fsutil import write_atomic

    data = json.dumps({"class": name, "context": context, "namespace": namespace})
    write_atomic(_classes_dir() / f"{name}.json", data.encode(), mode=0o600)


def _recall(name: str) -> dict[str, str]:
    try:
        data = json.loads((_classes_dir() / f"{name}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _class(name: str, context: str | None, namespace: str | None) -> tuple[ClassRef, str]:
    """The class and the context it lives on (options first, then what ``init`` remembered)."""
    from labrunner.classroom.admin import ClassRef
    from labrunner.classroom.names import BadName, check_class_name, namespace_for

    try:
        check_class_name(name)
    except BadName as exc:
        _fail(UsageProblem(str(exc)))
    known = _recall(name)
    context = context or known.get("context")
    if not context:
        _fail(
            UsageProblem(
                f"which cluster holds class {name!r}? pass --context CTX "
                "(`class init` remembers it for the other commands)"
            )
        )
    return ClassRef(name, namespace or known.get("namespace") or namespace_for(name)), context


def _connect(context: str) -> Kube:
    from labrunner.cluster.client import Kube
    from labrunner.cluster.errors import ClusterError

    try:
        return Kube.connect(os.environ, context)
    except ClusterError as exc:
        _fail(EnvironmentProblem(str(exc)))


def _cluster_entry(context: str, server: str | None) -> dict[str, object]:
    from labrunner.cluster.errors import ClusterError
    from labrunner.cluster.kubeconfig import cluster_entry

    try:
        entry = cluster_entry(os.environ, context)
    except ClusterError as exc:
        _fail(EnvironmentProblem(str(exc)))
    if entry is None:
        _fail(UsageProblem(f"kube context {context!r} names no cluster in the kubeconfig"))
    if server:
        entry["server"] = server
    return entry


def _ttl(value: str) -> int:
    from labrunner.durations import parse_duration

    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        _fail(UsageProblem(f"--token-ttl: {exc}"))
    if seconds < 600:
        _fail(UsageProblem("--token-ttl: the API server issues tokens for 10m or longer"))
    return int(seconds)


def _rules(stuck_after: str, failures: int) -> StuckRules:
    from labrunner.classroom.document import StuckRules
    from labrunner.durations import parse_duration

    try:
        after = parse_duration(stuck_after)
    except ValueError as exc:
        _fail(UsageProblem(f"--stuck-after: {exc}"))
    return StuckRules(after=after, failures=max(failures, 1))


def _learners(count: int | None, names: Path | None, start: int = 0) -> list[Learner]:
    from labrunner.classroom.names import BadName, from_file, numbered

    if (count is None) == (names is None):
        _fail(UsageProblem("give the learners with --learners N or --names FILE (one of them)"))
    try:
        if names is not None:
            return from_file(names)
        assert count is not None
        learners = numbered(start + count)[start:]
    except BadName as exc:
        _fail(UsageProblem(str(exc)))
    return learners


def _print_issued(issued: list[Issued], issuing: Issuing) -> None:
    for item in issued:
        again = "; readmitted, their old join files stay revoked" if item.readmitted else ""
        click.echo(
            f"  {item.learner.name:<24} {item.path}  (token valid until {item.expires}{again})"
        )
    short = _granted_less(issued, issuing.token_seconds)
    if short:
        click.echo(f"labrunner: note: {short}", err=True)
    server = issuing.cluster.get("server") or "the cluster's API server"
    click.echo(
        f"Hand each learner their file; they run `labrunner class join FILE`. Their machines "
        f"must reach {server}."
    )
    click.echo(
        "Tokens expire at the time shown (the cluster may cap the lifetime asked for); "
        "`labrunner class renew NAME` writes new files."
    )


def _granted_less(issued: list[Issued], asked: int) -> str:
    """A sentence when the cluster granted tokens shorter than asked ("" otherwise)."""
    from datetime import datetime

    from labrunner.durations import format_duration

    granted = []
    for item in issued:
        try:
            until = datetime.fromisoformat(item.expires.replace("Z", "+00:00")).timestamp()
        except ValueError:
            continue
        granted.append(until - time.time())
    if not granted or min(granted) >= asked - 120:
        return ""
    return (
        f"asked for tokens of {format_duration(asked)}, the cluster granted "
        f"{format_duration(max(round(min(granted) / 60) * 60, 0))}; run `labrunner class renew` "
        "before they expire"
    )


def _warn_loopback(server: str) -> None:
    from labrunner.classroom.admin import is_loopback

    if is_loopback(server):
        click.echo(
            f"labrunner: warning: the join files name {server}, which only this machine can "
            "reach; pass --server with an address the learners' machines reach (its "
            "certificate must name it)",
            err=True,
        )


def _problem(exc: Exception) -> NoReturn:
    _fail(EnvironmentProblem(str(exc)))


context_option = click.option("--context", "context", metavar="CTX", help="Kube context.")
namespace_option = click.option(
    "--namespace", metavar="NS", help="The class namespace (default: labrunner-class-NAME)."
)


@click.group("class")
def class_group() -> None:
    """Run a class (instructor) or join one (learner).

    \b
    Instructor: init, add, status, watch, renew, revoke, end.
    Learner:    join, leave, info.
    """


# --------------------------------------------------------------------------- instructor


def issuing_options(command: Callable[..., None]) -> Callable[..., None]:
    """``--server``, ``--token-ttl`` and ``--out``: how join files are made."""
    for option in reversed(
        (
            click.option(
                "--server",
                metavar="URL",
                help="The API server URL learners use (default: the context's).",
            ),
            click.option(
                "--token-ttl",
                default=DEFAULT_TOKEN_TTL,
                show_default=True,
                metavar="DURATION",
                help="How long the learners' tokens last.",
            ),
            click.option(
                "--out",
                type=click.Path(file_okay=False, path_type=Path),
                help="Where to write the join files (default: ./class-NAME).",
            ),
        )
    ):
        command = option(command)
    return command


def _issuing(
    ref: ClassRef, context: str, server: str | None, token_ttl: str, out: Path | None
) -> Issuing:
    """How this command makes join files (the loopback warning said once)."""
    from labrunner.classroom.admin import Issuing

    seconds = _ttl(token_ttl)
    entry = _cluster_entry(context, server)
    _warn_loopback(str(entry.get("server") or ""))
    return Issuing(entry, seconds, out or Path(f"class-{ref.name}"))


@contextmanager
def _on(context: str) -> Iterator[Kube]:
    """A connection to ``context`` for one command; a class problem ends the command."""
    from labrunner.classroom.admin import ClassProblem

    kube = _connect(context)
    try:
        yield kube
    except (ClassProblem, ValueError) as exc:
        _problem(exc)
    finally:
        kube.close()


learners_options = (
    click.option("--learners", "count", type=int, metavar="N", help="N numbered learners."),
    click.option(
        "--names",
        type=click.Path(dir_okay=False, path_type=Path),
        help="A file of learners' names, one per line.",
    ),
)


@class_group.command("init")
@click.argument("name")
@learners_options[0]
@learners_options[1]
@click.option("--context", "context", metavar="CTX", required=True, help="Kube context.")
@namespace_option
@issuing_options
def init_command(
    name: str,
    count: int | None,
    names: Path | None,
    context: str,
    namespace: str | None,
    server: str | None,
    token_ttl: str,
    out: Path | None,
) -> None:
    """Set up class NAME on a cluster: a namespace, per learner access and a join file."""
    from labrunner.classroom import admin

    learners = _learners(count, names)
    ref, context = _class(name, context, namespace)
    issuing = _issuing(ref, context, server, token_ttl, out)
    with _on(context) as kube:
        issued = admin.init(kube, ref, learners, issuing)
    _remember(name, context, ref.namespace)
    click.echo(
        f"class {name}: {len(issued)} learners in namespace {ref.namespace} "
        f"(context {context}); join files in {issuing.out_dir}:"
    )
    _print_issued(issued, issuing)


@class_group.command("add")
@click.argument("name")
@learners_options[0]
@learners_options[1]
@context_option
@namespace_option
@issuing_options
def add_command(
    name: str,
    count: int | None,
    names: Path | None,
    context: str | None,
    namespace: str | None,
    server: str | None,
    token_ttl: str,
    out: Path | None,
) -> None:
    """Add learners to class NAME (numbered ones continue after the last number)."""
    from labrunner.classroom import admin

    ref, context = _class(name, context, namespace)
    issuing = _issuing(ref, context, server, token_ttl, out)
    with _on(context) as kube:
        start = 0
        if count is not None:
            numbers = [
                int(x.name.removeprefix("learner-"))
                for x in admin.learner_names(kube, ref)
                if x.name.removeprefix("learner-").isdigit()
            ]
            start = max(numbers, default=0)
        issued = admin.add(kube, ref, _learners(count, names, start), issuing)
    click.echo(f"class {name}: {len(issued)} learners added; join files in {issuing.out_dir}:")
    _print_issued(issued, issuing)


@class_group.command("renew")
@click.argument("name")
@click.argument("learners", nargs=-1)
@context_option
@namespace_option
@issuing_options
def renew_command(
    name: str,
    learners: tuple[str, ...],
    context: str | None,
    namespace: str | None,
    server: str | None,
    token_ttl: str,
    out: Path | None,
) -> None:
    """New tokens and join files for LEARNERS of class NAME (all when none are named)."""
    from labrunner.classroom import admin

    ref, context = _class(name, context, namespace)
    issuing = _issuing(ref, context, server, token_ttl, out)
    with _on(context) as kube:
        everyone = admin.learner_names(kube, ref)
        missing = sorted(set(learners) - {x.name for x in everyone})
        if missing:
            raise admin.ClassProblem(f"class {name} has no learner {', '.join(missing)}")
        chosen = [x for x in everyone if not learners or x.name in learners]
        issued = admin.renew(kube, ref, chosen, issuing)
    click.echo(
        f"class {name}: new join files in {issuing.out_dir} (old tokens last until they expire):"
    )
    _print_issued(issued, issuing)


@class_group.command("revoke")
@click.argument("name")
@click.argument("learners", nargs=-1, required=True)
@context_option
@namespace_option
def revoke_command(
    name: str, learners: tuple[str, ...], context: str | None, namespace: str | None
) -> None:
    """Cut LEARNERS of class NAME off: their ServiceAccount and its tokens are deleted."""
    from labrunner.classroom import admin

    ref, context = _class(name, context, namespace)
    with _on(context) as kube:
        for learner in learners:
            admin.revoke(kube, ref, learner)
            click.echo(f"revoked {learner}: their token no longer works; their progress stays")


@class_group.command("status")
@click.argument("name")
@context_option
@namespace_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per learner, in a list.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV, one row per learner.")
@click.option("--stuck-after", default=STUCK_AFTER, show_default=True, metavar="DURATION")
@click.option("--failures", default=STUCK_FAILURES, show_default=True, metavar="N", type=int)
def status_command(
    name: str,
    context: str | None,
    namespace: str | None,
    as_json: bool,
    as_csv: bool,
    stuck_after: str,
    failures: int,
) -> None:
    """Every learner's current step, time on it, failures and whether they look stuck."""
    from labrunner.classroom import admin, document

    if as_json and as_csv:
        _fail(UsageProblem("--json or --csv, not both"))
    rules = _rules(stuck_after, failures)
    ref, context = _class(name, context, namespace)
    with _on(context) as kube:
        found = admin.class_progress(kube, ref)
    now = time.time()
    views = [document.view(p.doc, revoked=p.revoked) for p in found]
    rows = [document.row(v, now=now, rules=rules) for v in views]
    if as_json:
        for item, view, progress in zip(rows, views, found, strict=True):
            steps = document.step_times(progress.doc)
            item["labs"] = {
                lab.lab: {"done": lab.done, "total": lab.total, "steps": steps.get(lab.lab, {})}
                for lab in view.labs
            }
        click.echo(json.dumps(rows, indent=2))
        return
    if as_csv:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(document.ROW_FIELDS))
        writer.writeheader()
        writer.writerows(rows)
        click.echo(buffer.getvalue(), nl=False)
        return
    from labrunner.durations import format_duration

    click.echo(f"class {name} ({ref.namespace}, context {context}): {len(rows)} learners")
    for item in rows:
        spent = item["on_step_seconds"]
        where = f"{item['lab']}/{item['step']}" if item["step"] else "-"
        on = format_duration(spent) if spent is not None else item["state"]
        flag = f"  STUCK: {item['stuck']}" if item["stuck"] else ""
        revoked = "  (revoked)" if item["revoked"] else ""
        click.echo(
            f"  {item['learner']:<20} {where:<44} {on:<12} fails {item['fails']}"
            f"  labs done {item['labs_done']}{flag}{revoked}"
        )


@class_group.command("watch")
@click.argument("name")
@context_option
@namespace_option
@click.option("--stuck-after", default=STUCK_AFTER, show_default=True, metavar="DURATION")
@click.option("--failures", default=STUCK_FAILURES, show_default=True, metavar="N", type=int)
def watch_command(
    name: str, context: str | None, namespace: str | None, stuck_after: str, failures: int
) -> None:
    """The class live: learners × labs, current steps, who is stuck (Textual)."""
    from labrunner.classroom import admin

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        _fail(UsageProblem("`class watch` needs a terminal; `class status --json` is headless"))
    rules = _rules(stuck_after, failures)
    ref, context = _class(name, context, namespace)
    kube = _connect(context)
    try:
        admin.read_class(kube, ref)
    except admin.ClassProblem as exc:
        kube.close()
        _problem(exc)
    # lazy: Textual only for the one command that shows it
    from labrunner.tui.classwatch import ClassWatchApp

    app = ClassWatchApp(
        class_name=name,
        where=f"{ref.namespace} on {context}",
        follow=lambda **callbacks: admin.follow(kube, ref, **callbacks),
        rules=rules,
    )
    try:
        app.run()
    finally:
        kube.close()


@class_group.command("end")
@click.argument("name")
@context_option
@namespace_option
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def end_command(name: str, context: str | None, namespace: str | None, yes: bool) -> None:
    """Remove class NAME: its namespace (when the class made it) and everything in it."""
    from labrunner.classroom import admin

    ref, context = _class(name, context, namespace)
    if not yes:
        if not sys.stdin.isatty():
            _fail(UsageProblem(f"refusing to end class {name} without --yes (not a terminal)"))
        click.confirm(
            f"End class {name}: delete its learners' access and progress in {ref.namespace} "
            f"(context {context})?",
            abort=True,
            err=True,
        )
    with _on(context) as kube:
        said = admin.end(kube, ref)
    (_classes_dir() / f"{name}.json").unlink(missing_ok=True)
    click.echo(f"class {name} ended: {said}")


# --------------------------------------------------------------------------- learner


@class_group.command("join")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def join_command(file: Path) -> None:
    """Join a class with the join file your instructor gave you."""
    from labrunner.classroom import joinfile, learner

    try:
        joined = learner.join(_learner_dir(), file)
    except joinfile.BadJoinFile as exc:
        _fail(UsageProblem(str(exc)))
    except learner.JoinRefused as exc:
        _fail(EnvironmentProblem(f"the class did not accept {file}: {exc}"))
    join = joined.join
    if joined.left:
        click.echo(f"left class {joined.left}", err=True)
    click.echo(
        f"joined class {join.class_name} as {join.learner} ({join.name}); your steps are "
        f"published to {join.server} (token valid until {join.expires or 'unknown'})"
    )
    if not joined.reachable:
        click.echo(
            f"labrunner: warning: the class API cannot be reached now ({joined.problem}); your "
            "steps are kept here and sent once it can be",
            err=True,
        )
    click.echo(f"progress: {joined.outbox}")


@class_group.command("leave")
def leave_command() -> None:
    """Stop publishing to the class you joined (events not yet sent are dropped)."""
    from labrunner.classroom import learner

    old = learner.leave(_learner_dir())
    if old is None:
        click.echo("not in a class")
        return
    click.echo(f"left class {old.class_name} ({old.learner})")


@class_group.command("info")
def info_command() -> None:
    """Which class you joined, as whom, and whether events wait to be sent."""
    from labrunner.classroom import learner

    found = learner.info(_learner_dir(), send=learner.SEND_ON_JOIN)
    if found is None:
        click.echo("not in a class (join one with `labrunner class join FILE`)")
        sys.exit(int(ExitCode.FAILED))
    join, status = found
    click.echo(f"class {join.class_name} as {join.learner} ({join.name})")
    click.echo(f"server: {join.server}")
    click.echo(f"token valid until: {join.expires or 'unknown'}")
    click.echo(f"events waiting to be sent: {status.waiting}")
    if status.state == "online":
        click.echo("the class API has everything (events that waited were sent just now)")
    elif status.waiting and status.problem:
        click.echo(f"cannot send them now: {status.problem}", err=True)
