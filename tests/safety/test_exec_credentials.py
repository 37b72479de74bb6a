"""Exec credential plugins (client.authentication.k8s.io), run by labrunner itself.

The plugin here is a small Python script that logs how it was called
(arguments, environment, ``KUBERNETES_EXEC_INFO``) and answers what the test
asks for: a token, a client certificate, an expiry, garbage, an exit code.
The same kubeconfig works with the real kubectl, so the plugin speaks the
real protocol. And ``labrunner check`` on token, client-certificate and
exec kubeconfigs runs without importing the ``kubernetes`` package.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from labrunner.cluster.client import Kube
from labrunner.cluster.errors import ClusterError, ErrorKind
from labrunner.testing.fakecluster import FakeCluster
from labrunner.testing.fakecluster.auth import ADMIN
from labrunner.testing.fakecluster.kubeconfig import render_entries, write
from labrunner.testing.fixtures import cli_environ

V1 = "client.authentication.k8s.io/v1"
V1BETA1 = "client.authentication.k8s.io/v1beta1"

PLUGIN = """\
import json, os, sys, time
plan = json.load(open(sys.argv[1]))
log = sys.argv[1] + ".log"
with open(log, "a") as fh:
    fh.write(json.dumps({"args": sys.argv[2:], "info": os.environ.get("KUBERNETES_EXEC_INFO"),
                         "extra": os.environ.get("PLUGIN_EXTRA"), "stdin": sys.stdin.isatty()})
             + "\\n")
calls = sum(1 for _ in open(log))
step = plan["answers"][min(calls, len(plan["answers"])) - 1]
if step.get("sleep"):
    time.sleep(step["sleep"])
if step.get("stderr"):
    sys.stderr.write(step["stderr"] + "\\n")
if "raw" in step:
    sys.stdout.write(step["raw"])
else:
    print(json.dumps({"apiVersion": plan["version"], "kind": "ExecCredential",
                      "status": step.get("status", {})}))
sys.exit(step.get("exit", 0))
"""


def in_seconds(seconds: float) -> str:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


class Plugin:
    """A kubeconfig whose user runs the logging plugin with a plan of answers."""

    def __init__(self, folder: Path, server: FakeCluster, **exec_extra: Any) -> None:
        self.folder = folder
        self.plan = folder / "plan.json"
        script = folder / "plugin.py"
        script.write_text(PLUGIN)
        self.kubeconfig = folder / "config"
        entry = server.kubeconfig_entry("kind-exec", token=None)
        data = yaml.safe_load(render_entries([entry]))
        exec_config: dict[str, Any] = {
            "apiVersion": V1,
            "command": sys.executable,
            "args": [str(script), str(self.plan)],
            "env": [{"name": "PLUGIN_EXTRA", "value": "from-kubeconfig"}],
            "interactiveMode": "Never",
        }
        exec_config.update(exec_extra)
        data["users"][0]["user"] = {"exec": exec_config}
        write(self.kubeconfig, yaml.safe_dump(data))
        self.env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def answers(self, *answers: dict[str, Any], version: str = V1) -> None:
        self.plan.write_text(json.dumps({"version": version, "answers": list(answers)}))
        log = Path(str(self.plan) + ".log")
        if log.exists():
            log.unlink()

    def calls(self) -> list[dict[str, Any]]:
        log = Path(str(self.plan) + ".log")
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    def kube(self) -> Kube:
        return Kube.connect(self.env, "kind-exec")


@pytest.fixture(scope="module")
def server() -> Iterator[FakeCluster]:
    with FakeCluster(https=True, token="the-admin-token", client_certs=True) as found:
        found.tokens.add("second-token", ADMIN)
        yield found


@pytest.fixture
def plugin(tmp_path: Path, server: FakeCluster) -> Plugin:
    return Plugin(tmp_path, server, provideClusterInfo=True)


def namespaces(kube: Kube) -> list[str]:
    items = kube.get("/api/v1/namespaces", timeout=10)["items"]
    return [i["metadata"]["name"] for i in items]


def test_a_token_is_fetched_once_and_reused_until_it_expires(
    plugin: Plugin, server: FakeCluster
) -> None:
    plugin.answers({"status": {"token": "the-admin-token", "expirationTimestamp": in_seconds(600)}})
    kube = plugin.kube()
    try:
        assert "default" in namespaces(kube) and "default" in namespaces(kube)
    finally:
        kube.close()
    (call,) = plugin.calls()
    info = json.loads(call["info"])
    assert info["kind"] == "ExecCredential" and info["apiVersion"] == V1
    assert info["spec"]["interactive"] is False
    assert info["spec"]["cluster"]["server"] == server.url
    assert info["spec"]["cluster"]["certificate-authority-data"]
    assert call["extra"] == "from-kubeconfig" and call["stdin"] is False
    # the real kubectl accepts the same plugin and kubeconfig
    plugin.answers({"status": {"token": "the-admin-token"}})
    done = subprocess.run(
        ["kubectl", "get", "ns", "default", "-o", "name"],
        env=plugin.env,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(plugin.calls()[0]["info"])["spec"]["interactive"] is False


def test_an_expiring_credential_is_asked_for_again(plugin: Plugin) -> None:
    plugin.answers({"status": {"token": "the-admin-token", "expirationTimestamp": in_seconds(1)}})
    kube = plugin.kube()
    try:
        namespaces(kube)
        namespaces(kube)
    finally:
        kube.close()
    assert len(plugin.calls()) == 2


def test_a_rejected_token_asks_the_plugin_once_more(plugin: Plugin) -> None:
    plugin.answers({"status": {"token": "revoked"}}, {"status": {"token": "second-token"}})
    kube = plugin.kube()
    try:
        assert "default" in namespaces(kube)
    finally:
        kube.close()
    assert len(plugin.calls()) == 2


def test_a_client_certificate_from_the_plugin(plugin: Plugin, server: FakeCluster) -> None:
    cert, key = server.issue_client_cert("kubernetes-admin", "system:masters")
    status = {"clientCertificateData": cert.decode(), "clientKeyData": key.decode()}
    plugin.answers({"status": status}, version=V1BETA1)
    config = yaml.safe_load(plugin.kubeconfig.read_text())
    exec_config = config["users"][0]["user"]["exec"]
    exec_config["apiVersion"] = V1BETA1
    del exec_config["interactiveMode"]  # optional in v1beta1
    plugin.kubeconfig.write_text(yaml.safe_dump(config))
    server.clear_requests()
    kube = plugin.kube()
    try:
        assert "default" in namespaces(kube)
    finally:
        kube.close()
    assert {r.user for r in server.requests(path_prefix="/api/v1/namespaces")} == {
        "kubernetes-admin"
    }


@pytest.mark.parametrize(
    ("extra", "answers", "kind", "message"),
    [
        ({"interactiveMode": None}, [], ErrorKind.KUBECONFIG, "interactiveMode must be set"),
        ({"interactiveMode": "Always"}, [], ErrorKind.CREDENTIALS, "needs an interactive terminal"),
        (
            {},
            [{"exit": 1, "stderr": "error: SSO session expired; run aws sso login"}],
            ErrorKind.CREDENTIALS,
            "failed (exit 1): error: SSO session expired; run aws sso login",
        ),
        ({}, [{"raw": "not json"}], ErrorKind.CREDENTIALS, "did not answer an ExecCredential"),
        ({}, [{"status": {}}], ErrorKind.CREDENTIALS, "neither a token nor a client certificate"),
        (
            {"command": "no-such-login-plugin", "installHint": "install it with `brew install x`"},
            [],
            ErrorKind.CREDENTIALS,
            "exec plugin no-such-login-plugin not found (the kubeconfig's user runs it to log "
            "in); install it with `brew install x`",
        ),
        (
            {"apiVersion": "client.authentication.k8s.io/v1alpha1"},
            [],
            ErrorKind.KUBECONFIG,
            "is not supported",
        ),
    ],
)
def test_plugin_problems_say_what_to_fix(
    tmp_path: Path,
    server: FakeCluster,
    extra: dict[str, Any],
    answers: list[dict[str, Any]],
    kind: ErrorKind,
    message: str,
) -> None:
    plugin = Plugin(tmp_path, server, **{k: v for k, v in extra.items() if v is not None})
    if extra.get("interactiveMode", "") is None:
        config = yaml.safe_load(plugin.kubeconfig.read_text())
        del config["users"][0]["user"]["exec"]["interactiveMode"]
        plugin.kubeconfig.write_text(yaml.safe_dump(config))
    plugin.answers(*(answers or [{"status": {"token": "x"}}]))
    with pytest.raises(ClusterError) as caught:
        kube = plugin.kube()
        try:
            namespaces(kube)
        finally:
            kube.close()
    assert caught.value.kind is kind
    assert message in caught.value.message


def test_a_hanging_plugin_is_bounded_by_the_deadline(plugin: Plugin) -> None:
    plugin.answers({"sleep": 30, "status": {"token": "the-admin-token"}})
    kube = plugin.kube()
    started = time.monotonic()
    with pytest.raises(ClusterError, match="did not answer within"):
        kube.get("/api/v1/namespaces", timeout=1.0)
    assert time.monotonic() - started < 3.0
    kube.close()


# --------------------------------------------------------------------------- no kubernetes import

CHECK_LAB = """\
apiVersion: labrunner/v1
id: shop
title: Shop
steps:
  - id: ready
    title: Namespace ready
    check: [{namespace: {name: default}}]
"""


def imports_during_check(env: dict[str, str], root: Path) -> tuple[int, set[str], str]:
    """Run ``labrunner check shop`` with ``-X importtime``: (exit code, top-level modules)."""
    proc = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "labrunner",
            "--labs",
            str(root),
            "check",
            "shop",
        ],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    modules = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            modules.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return proc.returncode, modules, proc.stdout + proc.stderr[-2000:]


@pytest.mark.parametrize("kind", ["token", "client-certificate", "exec"])
def test_check_does_not_import_kubernetes(
    kind: str, tmp_path: Path, isolated_env: Path, server: FakeCluster
) -> None:
    root = tmp_path / "labs"
    root.mkdir()
    (root / "shop.yaml").write_text(textwrap.dedent(CHECK_LAB))
    if kind == "token":
        kubeconfig = server.write_kubeconfig(tmp_path / "config", "kind-shop")
    elif kind == "client-certificate":
        cert = server.issue_client_cert("kubernetes-admin", "system:masters")
        entry = server.kubeconfig_entry("kind-shop", token=None, client_cert=cert)
        kubeconfig = write(tmp_path / "config", render_entries([entry]))
    else:
        plugin = Plugin(tmp_path, server)
        plugin.answers({"status": {"token": "the-admin-token"}})
        kubeconfig = plugin.kubeconfig
    env = cli_environ(isolated_env, KUBECONFIG=str(kubeconfig))
    code, modules, output = imports_during_check(env, root)
    assert code == 0, output
    assert "kubernetes" not in modules, "labrunner check imported the kubernetes package"
    assert "labrunner" in modules and "ssl" in modules  # the check did reach the cluster (TLS)
    assert "urllib3" not in modules, "labrunner check imported urllib3 (no proxy-url here)"
