"""``labrunner certs``: the workshop CA and server certificate, idempotent and safe."""

from __future__ import annotations

import datetime as dt
import stat
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from labrunner.certs import files as workshop
from labrunner.certs.cli import COMMANDS, certs_command
from labrunner.pki import core as pki

FILES = ("ca/root-ca.crt", "ca/root-ca.key", "istioinaction.io.crt", "istioinaction.io.key")


def cli() -> click.Group:
    group = click.Group("labrunner")
    for command in COMMANDS:
        group.add_command(command)
    return group


def test_first_run_writes_a_valid_ca_and_server_certificate(tmp_path: Path) -> None:
    target = tmp_path / "certs"
    done = workshop.ensure_workshop_certs(target, key_kind="ec256")
    assert [a.action for a in done] == ["wrote"] * 4
    assert sorted(str(a.path.relative_to(target)) for a in done) == sorted(FILES)
    for key in ("ca/root-ca.key", "istioinaction.io.key"):
        assert stat.S_IMODE((target / key).stat().st_mode) == 0o600
    ca = pki.describe(pki.load_certificates((target / FILES[0]).read_bytes())[0])
    assert ca.subject == ca.issuer == "CN=istio-workshop-ca" and ca.is_ca
    assert ca.lifetime >= dt.timedelta(days=3649)
    server = pki.describe(pki.load_certificates((target / FILES[2]).read_bytes())[0])
    assert server.san_dns == ("istioinaction.io",) and server.extended_key_usage == ("serverAuth",)
    assert dt.timedelta(days=364) <= server.lifetime <= dt.timedelta(days=366)
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(target / FILES[0]), str(target / FILES[2])],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stderr


def test_second_run_keeps_everything(tmp_path: Path) -> None:
    target = tmp_path / "certs"
    workshop.ensure_workshop_certs(target, key_kind="ec256")
    before = {f: (target / f).read_bytes() for f in FILES}
    again = workshop.ensure_workshop_certs(target, key_kind="ec256")
    assert [a.action for a in again] == ["kept"] * 4
    assert {f: (target / f).read_bytes() for f in FILES} == before


def test_force_regenerates(tmp_path: Path) -> None:
    target = tmp_path / "certs"
    workshop.ensure_workshop_certs(target, key_kind="ec256")
    before = (target / FILES[0]).read_bytes()
    forced = workshop.ensure_workshop_certs(target, force=True, key_kind="ec256")
    assert [a.action for a in forced] == ["wrote"] * 4
    assert "(forced)" in forced[0].note
    assert (target / FILES[0]).read_bytes() != before


def test_only_the_broken_server_certificate_is_replaced(tmp_path: Path) -> None:
    target = tmp_path / "certs"
    workshop.ensure_workshop_certs(target, key_kind="ec256")
    ca_before = (target / FILES[0]).read_bytes()
    (target / "istioinaction.io.key").write_bytes(pki.private_key_pem(pki.generate_key("ec256")))
    result = workshop.ensure_workshop_certs(target, key_kind="ec256")
    assert [a.action for a in result] == ["kept", "kept", "wrote", "wrote"]
    assert "previous one: its key does not match" in result[2].note
    assert (target / FILES[0]).read_bytes() == ca_before


def test_a_new_ca_forces_a_new_server_certificate(tmp_path: Path) -> None:
    target = tmp_path / "certs"
    workshop.ensure_workshop_certs(target, key_kind="ec256")
    (target / "ca/root-ca.crt").write_text("garbage")
    result = workshop.ensure_workshop_certs(target, key_kind="ec256")
    assert [a.action for a in result] == ["wrote"] * 4
    assert "unreadable" in result[0].note
    assert "the CA was replaced" in result[2].note


def test_certificates_close_to_expiry_are_renewed(tmp_path: Path) -> None:
    target = tmp_path / "certs"
    workshop.ensure_workshop_certs(target, key_kind="ec256")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=350)
    result = workshop.ensure_workshop_certs(target, key_kind="ec256", now=later)
    assert [a.action for a in result] == ["kept", "kept", "wrote", "wrote"]
    assert "it expires on" in result[2].note


def test_a_server_certificate_signed_elsewhere_is_replaced(tmp_path: Path) -> None:
    target = tmp_path / "certs"
    workshop.ensure_workshop_certs(target, key_kind="ec256")
    stranger = pki.make_server_cert(
        pki.make_ca(common_name="other", key_kind="ec256"),
        dns_names=["istioinaction.io"],
        key_kind="ec256",
    )
    pki.write_certificates(target / "istioinaction.io.crt", [stranger.cert])
    pki.write_private_key(target / "istioinaction.io.key", stranger.key)
    result = workshop.ensure_workshop_certs(target, key_kind="ec256")
    assert "not signed by the current CA" in result[2].note


def test_cli_prints_one_line_per_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "labs").mkdir()
    (tmp_path / "labs" / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "labs" / "sub")
    runner = CliRunner()
    first = runner.invoke(cli(), ["certs", "--key-type", "ec256"])
    assert first.exit_code == 0, first.output
    lines = first.output.splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("wrote ") and "CN=istio-workshop-ca" in lines[0]
    assert (tmp_path / "certs" / "istioinaction.io.crt").is_file()  # found the workshop root
    second = runner.invoke(cli(), ["certs"])
    assert [line.split()[0] for line in second.output.splitlines()] == ["kept"] * 4


def test_cli_dir_option_and_labs_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        certs_command, ["--dir", "elsewhere", "--host", "shop.example", "--key-type", "ec256"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "elsewhere" / "shop.example.crt").is_file()
    (tmp_path / "ws" / "labs").mkdir(parents=True)
    monkeypatch.setenv("LABRUNNER_LABS", str(tmp_path / "ws" / "labs"))
    assert CliRunner().invoke(certs_command, ["--key-type", "ec256"]).exit_code == 0
    assert (tmp_path / "ws" / "certs" / "ca" / "root-ca.crt").is_file()


def test_cli_unwritable_directory_exits_3(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = CliRunner().invoke(certs_command, ["--dir", str(blocker / "certs")])
    assert result.exit_code == 3
    assert result.stdout == ""
    assert "labrunner certs: cannot create" in result.stderr


def test_the_repo_certs_folder_keeps_keys_out_of_git(repo: Path) -> None:
    ignore = (repo / "certs" / ".gitignore").read_text().splitlines()
    assert "*" in ignore and "!README.md" in ignore and "!.gitignore" in ignore
    readme = (repo / "certs" / "README.md").read_text()
    assert "labrunner certs" in readme and "--force" in readme


LAB = """\
apiVersion: labrunner/v1
id: certs-lab
title: Certificates
steps:
  - id: made
    title: The workshop certificate exists
    run: [labrunner certs]
    check:
      - certificate:
          file: certs/istioinaction.io.crt
          san_dns: {contains: istioinaction.io}
          chain_to: certs/ca/root-ca.crt
"""


@pytest.mark.parametrize("workdir", [None, "../site"])
def test_certs_from_another_directory_writes_where_the_labs_look(
    tmp_path: Path, workdir: str | None
) -> None:
    """Regression: ``labrunner --labs DIR certs`` from elsewhere wrote certs/ into the cwd."""
    labs = tmp_path / "ws" / "labs"
    labs.mkdir(parents=True)
    (labs / "certs-lab.yaml").write_text(LAB)
    if workdir:
        (labs / "workshop.yaml").write_text(
            f"apiVersion: labrunner/v1\nkind: Workshop\ntitle: W\nworkdir: {workdir}\n"
        )
        (tmp_path / "ws" / "site").mkdir()
    root = (labs / workdir).resolve() if workdir else labs.parent
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    labrunner = str(Path(sys.executable).parent / "labrunner")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [labrunner, "--labs", str(labs), *args],
            cwd=elsewhere,
            capture_output=True,
            text=True,
            timeout=120,
        )

    made = run("certs", "--key-type", "ec256")
    assert made.returncode == 0, made.stderr
    assert (root / "certs" / "istioinaction.io.crt").is_file()
    assert not (elsewhere / "certs").exists(), "nothing is written into the current directory"
    checked = run("check", "certs-lab")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "PASS made" in checked.stdout
