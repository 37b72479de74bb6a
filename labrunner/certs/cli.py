"""Click commands for certificates: ``labrunner certs`` and ``labrunner mtls-server``.

The main CLI registers these objects in its group. They import the
certificate toolbox (and with it ``cryptography``) only inside their
callbacks, so ``labrunner --help`` and the other commands start fast.
Data (what was written, the server's address) goes to stdout, problems to
stderr; exit code 3 means the environment is broken (a directory that cannot
be written, a port in use, unreadable certificate files).
"""

from __future__ import annotations

from pathlib import Path

import click

ENVIRONMENT_BROKEN = 3
"""The CLI-wide exit code for "the environment is broken" (see DESIGN.md)."""


def _labs_option_value() -> str | None:
    """The ``--labs`` directory given to the root command (click reads ``LABRUNNER_LABS`` too)."""
    ctx = click.get_current_context(silent=True)
    value = ctx.find_root().params.get("labs_dir") if ctx is not None else None
    return str(value) if value else None


@click.command("certs")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write the certificates (default: certs/ in the workshop root).",
)
@click.option("--force", is_flag=True, help="Regenerate even if the files are still valid.")
@click.option(
    "--host",
    default="istioinaction.io",
    show_default=True,
    help="DNS name for the server certificate.",
)
@click.option(
    "--key-type",
    type=click.Choice(["rsa2048", "rsa3072", "ec256"]),
    default="rsa2048",
    show_default=True,
)
def certs_command(*, directory: Path | None, force: bool, host: str, key_type: str) -> None:
    """Generate the workshop CA and the istioinaction.io server certificate into certs/."""
    from labrunner.certs import files as workshop  # lazy: cryptography, see the docstring
    from labrunner.lab.locate import BundledReadOnly, locate

    if directory is not None:
        target = directory
    else:
        try:
            target = locate(_labs_option_value()).certs_dir
        except BundledReadOnly as exc:
            click.echo(f"labrunner certs: {exc.message}", err=True)
            raise SystemExit(2) from None
    try:
        actions = workshop.ensure_workshop_certs(
            target,
            force=force,
            host=host,
            key_kind=key_type,  # type: ignore[arg-type]  # click.Choice guarantees it
        )
    except workshop.CertsDirError as exc:
        click.echo(f"labrunner certs: {exc}", err=True)
        raise SystemExit(ENVIRONMENT_BROKEN) from None
    for line in workshop.format_actions(actions, relative_to=Path.cwd()):
        click.echo(line)


@click.group("mtls-server")
def mtls_server_group() -> None:
    """A local HTTPS server that requires client certificates (for the mesh-security lab)."""


_PIDFILE = click.option(
    "--pidfile",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("mtls-server.pid"),
    show_default=True,
    help="Where the server's pid is recorded.",
)


@mtls_server_group.command("start")
@click.option("--port", type=click.IntRange(0, 65535), required=True, help="0 picks a free port.")
@click.option("--cert", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--key", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option(
    "--client-ca",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="CA whose client certificates are accepted.",
)
@click.option("--name", default="payments", show_default=True, help="Name used in replies.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@_PIDFILE
def mtls_start(
    *, port: int, cert: Path, key: Path, client_ca: Path, name: str, host: str, pidfile: Path
) -> None:
    """Start the server in the background; returns once it accepts connections."""
    from labrunner.certs import mtls_server

    try:
        started = mtls_server.start(
            port=port,
            cert=cert,
            key=key,
            client_ca=client_ca,
            pidfile=pidfile,
            name=name,
            host=host,
        )
    except mtls_server.ServerError as exc:
        click.echo(f"labrunner mtls-server: {exc}", err=True)
        raise SystemExit(ENVIRONMENT_BROKEN) from None
    click.echo(
        f"{name} listening on https://{started.host}:{started.port} (pid {started.pid},"
        f" pidfile {pidfile})"
    )


@mtls_server_group.command("stop")
@_PIDFILE
def mtls_stop(*, pidfile: Path) -> None:
    """Stop the server; succeeds quietly when none is running."""
    from labrunner.certs import mtls_server

    pid = mtls_server.stop(pidfile)
    click.echo(f"stopped pid {pid}" if pid is not None else "no server was running")


@mtls_server_group.command("status")
@_PIDFILE
def mtls_status(*, pidfile: Path) -> None:
    """Exit 0 if the server is running, 1 if not."""
    from labrunner.certs import mtls_server

    pid = mtls_server.running_pid(pidfile)
    if pid is None:
        click.echo("not running")
        raise SystemExit(1)
    click.echo(f"running (pid {pid})")


COMMANDS = (certs_command, mtls_server_group)
"""Everything this module adds to the ``labrunner`` group."""
