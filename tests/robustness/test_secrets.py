"""Secrets printed by lab commands and checks never reach a report or the CLI's log.

The real ``labrunner verify`` runs the labs in ``labs/secrets`` against the
fake API server over HTTPS with a bearer token. Their commands print what
workshop steps really print: the kubeconfig (with that token), a kubeconfig
with ``client-key-data``, private keys fresh from ``openssl genpkey``, TLS and
token Secrets read back with ``kubectl get secret -o yaml`` (the key base64
in ``data`` and again inside the last-applied annotation), a bearer header and
a service-account JWT. Two labs then fail with keys and tokens in their check
messages and in the output tails kept as a step's details.

Every credential is generated here, at test time, so nothing secret is
committed; the test knows each one and looks for any piece of it in the JUnit
file, the JSON report, stdout and stderr. The CLI runs once per module; each
test looks for one family of secrets, so a failure names what leaked.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml

from labrunner.testing.fakecluster import FakeCluster
from labrunner.testing.fixtures import cli_environ

from .conftest import LABS, run_cli, seed

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("openssl", "kubectl")),
        reason="needs openssl and kubectl",
    ),
]

SECRET_LABS = LABS / "secrets"


def _openssl(*args: str) -> str:
    return subprocess.run(
        ["openssl", *args], capture_output=True, text=True, check=True, timeout=30
    ).stdout


def _b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _jwt(claims: dict[str, str]) -> str:
    """A JWT-shaped token with a random RS256-sized signature."""
    header = _b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    return f"{header}.{_b64url(json.dumps(claims).encode())}.{_b64url(secrets.token_bytes(256))}"


def _key_lines(pem: str) -> list[str]:
    """The base64 body of a PEM block: each line is a piece of the key."""
    return [line for line in pem.splitlines() if line and "-----" not in line and len(line) >= 16]


def _pieces(value: str, size: int = 24) -> list[str]:
    """Overlapping-free slices of a long secret: finding any of them is a leak."""
    return [value[i : i + size] for i in range(0, len(value) - size + 1, size)]


@dataclass
class Run:
    """One ``labrunner verify`` of the secrets workshop, and what it must not reveal."""

    proc: subprocess.CompletedProcess[str]
    report: dict[str, object]
    junit: ET.Element
    places: dict[str, str]
    token: str
    sa_jwt: str
    check_jwt: str
    client_key: str
    tls_key: str
    server_key: str
    printed: dict[str, str]

    def leaks(self, secrets_by_name: dict[str, list[str]]) -> list[str]:
        """Where any piece of any of the named secrets shows up."""
        return sorted(
            {
                f"{what} leaked into {where}: {piece[:12]}…"
                for what, pieces in secrets_by_name.items()
                for piece in pieces
                for where, text in self.places.items()
                if piece in text
            }
        )


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """The secrets workshop, verified once by the real CLI against an HTTPS fake with a token."""
    tmp = tmp_path_factory.mktemp("secrets")
    home = tmp / "home"
    out = tmp / "out"
    out.mkdir()
    token = secrets.token_urlsafe(24)
    server = FakeCluster(https=True, token=token).start()
    try:
        seed(server)
        kubeconfig = server.write_kubeconfig(tmp / "kubeconfig")
        client_key = _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
        tls_key = _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
        (tmp / "tls.key").write_text(tls_key)
        tls_crt = _openssl(
            "req", "-x509", "-new", "-key", str(tmp / "tls.key"),
            "-subj", "/CN=web.robust.svc", "-days", "1",
        )  # fmt: skip
        server_key = _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048")
        sa_jwt = _jwt({"iss": "kubernetes/serviceaccount", "sub": "system:serviceaccount:r:web"})
        check_jwt = _jwt({"sub": "r:web"})

        client_kubeconfig = tmp / "client.kubeconfig"
        client_kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "users": [
                        {
                            "name": "learner",
                            "user": {
                                "client-certificate-data": _b64(tls_crt),
                                "client-key-data": _b64(client_key),
                            },
                        }
                    ],
                }
            )
        )
        manifest = tmp / "secrets.yaml"
        manifest.write_text(
            yaml.safe_dump_all(
                [
                    {
                        "apiVersion": "v1",
                        "kind": "Secret",
                        "metadata": {"name": "web-tls", "namespace": "robust"},
                        "type": "kubernetes.io/tls",
                        "data": {"tls.crt": _b64(tls_crt), "tls.key": _b64(tls_key)},
                    },
                    {
                        "apiVersion": "v1",
                        "kind": "Secret",
                        "metadata": {"name": "web-sa", "namespace": "robust"},
                        "type": "Opaque",
                        "data": {"token": _b64(sa_jwt)},
                    },
                ]
            )
        )
        server_key_file = tmp / "server.key"
        server_key_file.write_text(server_key)

        env = cli_environ(
            home,
            KUBECONFIG=str(kubeconfig),
            KUBECACHEDIR=str(tmp / "kube-cache"),
            CLIENT_KUBECONFIG=str(client_kubeconfig),
            SECRET_MANIFEST=str(manifest),
            SERVER_KEY=str(server_key_file),
            API_TOKEN=token,
            SA_JWT=sa_jwt,
            CHECK_JWT=check_jwt,
            OUT=str(out),
        )
        junit, report = tmp / "junit.xml", tmp / "report.json"
        proc = run_cli(
            "--labs", SECRET_LABS, "verify", "--no-save", "--junit", junit, "--json", report,
            env=env, cwd=tmp,
        )  # fmt: skip
    finally:
        server.stop()
    assert report.is_file() and junit.is_file(), proc.stdout + proc.stderr
    yield Run(
        proc=proc,
        report=json.loads(report.read_text()),
        junit=ET.parse(junit).getroot(),
        places={
            "the JUnit report": junit.read_text(),
            "the JSON report": report.read_text(),
            "stdout": proc.stdout,
            "stderr": proc.stderr,
        },
        token=token,
        sa_jwt=sa_jwt,
        check_jwt=check_jwt,
        client_key=client_key,
        tls_key=tls_key,
        server_key=server_key,
        printed={name: (out / name).read_text() for name in ("ed25519.pem", "ec.pem")},
    )


def test_the_run_ends_as_the_labs_say(run: Run) -> None:
    assert run.proc.returncode == 1, run.proc.stdout + run.proc.stderr
    labs = run.report["labs"]
    assert isinstance(labs, list)
    assert {lab["id"]: lab["status"] for lab in labs} == {
        "show-credentials": "passed",
        "failing-check": "failed",
        "failing-command": "failed",
    }, run.proc.stdout
    assert run.junit.get("failures") == "2"
    # Not vacuous: the output really is there, with only the secrets masked.
    assert "kind: Secret" in run.proc.stdout
    assert "-----BEGIN PRIVATE KEY-----" in run.proc.stdout
    assert "client-certificate-data" in run.proc.stdout
    for where in ("the JUnit report", "the JSON report", "stdout"):
        assert "[REDACTED]" in run.places[where], where


def test_credentials_printed_by_commands_never_leak(run: Run) -> None:
    leaks = run.leaks(
        {
            "the API token": [run.token],
            "the service account JWT": [run.sa_jwt, *run.sa_jwt.split(".")],
            "the JWT as stored in a Secret": _pieces(_b64(run.sa_jwt)),
            "client-key-data": _pieces(_b64(run.client_key)[40:]),
            "the client key": _key_lines(run.client_key),
            "tls.key as stored in a Secret": _pieces(_b64(run.tls_key)[40:]),
            "the TLS key": _key_lines(run.tls_key),
            "the ed25519 key from openssl genpkey": _key_lines(run.printed["ed25519.pem"]),
            "the EC key from openssl genpkey": _key_lines(run.printed["ec.pem"]),
        }
    )
    assert not leaks, "\n".join(leaks)


def test_a_private_key_cut_by_an_output_tail_never_leaks(run: Run) -> None:
    """A step's details and a check's details keep only the last lines of output.

    When a private key is longer than that tail, its BEGIN line is cut off and
    what is left is a bare run of base64 lines ending in an END line.
    """
    leaks = run.leaks({"the RSA server key": _key_lines(run.server_key)})
    assert not leaks, "\n".join(leaks)


def test_a_jwt_cut_short_in_a_check_message_never_leaks(run: Run) -> None:
    """A failing command check quotes the last output line, cut to 120 characters."""
    header, claims, signature = run.check_jwt.split(".")
    leaks = run.leaks({"the JWT in a check message": [header, claims, *_pieces(signature)]})
    assert not leaks, "\n".join(leaks)
    labs = run.report["labs"]
    assert isinstance(labs, list)
    (lab,) = [lab for lab in labs if lab["id"] == "failing-check"]
    messages = [c["message"] for c in lab["steps"][0]["checks"]]
    assert "exit code 1, expected 0: [REDACTED]" in messages, messages
