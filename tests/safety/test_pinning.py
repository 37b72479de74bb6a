"""The kubeconfig a run pins, and the KUBECONFIG rules it shares with kubectl.

What labrunner judges must be what kubectl then uses. So the resolution
rules (``~`` not expanded, relative to the working directory, first
current-context wins, first definition of a name wins, file references
relative to the file that named them) are checked against the real kubectl
on the same files, and the private kubeconfig a run writes is checked with
the real kubectl too: it reaches the approved cluster from any directory,
refuses every other context, and an exec plugin or a certificate file named
relatively in the original still works.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from labrunner.cluster.guard import ServerClass, classify_server, decide, matches_everything
from labrunner.cluster.kubeconfig import (
    NO_CLUSTER_SERVER,
    kubeconfig_paths,
    load,
    pinned_config,
)
from labrunner.engine.prepare import prepare_run
from labrunner.lab.model import Lab, Step, Workshop
from labrunner.testing.fakecluster import FakeCluster
from labrunner.testing.fakecluster.kubeconfig import render_entries, write

# --------------------------------------------------------------------------- kubectl's rules


def kubectl(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def config(path: Path, *, current: str | None, names: dict[str, str], ca: str = "") -> Path:
    """A kubeconfig with one context per ``names`` entry (context -> server)."""
    data: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": n, "cluster": {"server": s, **({"certificate-authority": ca} if ca else {})}}
            for n, s in names.items()
        ],
        "users": [{"name": n, "user": {"token": f"t-{n}"}} for n in names],
        "contexts": [{"name": n, "context": {"cluster": n, "user": n}} for n in names],
    }
    if current is not None:
        data["current-context"] = current
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


CHAINS: dict[str, Callable[[Path], tuple[str, Path]]] = {
    # a literal "~" directory exists in the working directory: kubectl reads it, no expansion
    "tilde-literal": lambda t: ("~/a.yaml:b.yaml", t / "work"),
    # no "~" directory here: kubectl skips the entry and the second file decides
    "tilde-missing": lambda t: ("~/a.yaml:b.yaml", t / "work" / "sub"),
    "relative-to-cwd": lambda t: ("b.yaml", t / "work"),
    "first-current-context-wins": lambda t: (f"{t}/work/c.yaml:{t}/work/b.yaml", t),
    "empty-entries-and-repeats": lambda t: (f"::{t}/work/b.yaml::{t}/work/b.yaml", t),
    "no-current-context-first": lambda t: (f"{t}/work/none.yaml:{t}/work/b.yaml", t),
}


@pytest.fixture
def chain_files(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    config(work / "~" / "a.yaml", current="ctx-a", names={"ctx-a": "https://10.0.0.1:6443"})
    config(work / "sub" / "b.yaml", current="ctx-sub", names={"ctx-sub": "https://10.0.0.9:1"})
    config(
        work / "b.yaml",
        current="ctx-b",
        names={"ctx-b": "https://10.0.0.2:6443", "shared": "https://10.0.0.22:6443"},
    )
    config(
        work / "c.yaml",
        current="shared",
        names={"ctx-c": "https://10.0.0.3:6443", "shared": "https://10.0.0.33:6443"},
    )
    config(work / "none.yaml", current=None, names={"ctx-n": "https://10.0.0.4:6443"})
    return tmp_path


@pytest.mark.parametrize("shape", sorted(CHAINS))
def test_kubeconfig_resolution_matches_the_real_kubectl(chain_files: Path, shape: str) -> None:
    value, cwd = CHAINS[shape](chain_files)
    cwd.mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.environ["PATH"], "HOME": str(chain_files / "home"), "KUBECONFIG": value}
    theirs = kubectl(
        env, cwd, "config", "view", "--minify", "-o",
        "jsonpath={.contexts[0].name} {.clusters[0].cluster.server}",
    )  # fmt: skip
    ours = load(env, cwd)
    assert theirs.returncode == 0, theirs.stderr
    assert theirs.stdout.split() == [ours.current_context, ours.server(None)]


def test_relative_file_references_resolve_against_the_file_that_names_them(
    tmp_path: Path,
) -> None:
    config(
        tmp_path / "conf" / "k.yaml",
        current="x",
        names={"x": "https://10.0.0.1:6443"},
        ca="pki/ca.crt",
    )
    env = {"PATH": os.environ["PATH"], "KUBECONFIG": "conf/k.yaml", "HOME": str(tmp_path)}
    theirs = kubectl(env, tmp_path, "get", "ns", "--request-timeout=1s")
    expected = tmp_path / "conf" / "pki" / "ca.crt"
    assert str(expected) in theirs.stderr  # kubectl looked for the CA there
    ours = load(env, tmp_path)
    assert ours.clusters["x"]["certificate-authority"] == str(expected)
    assert kubeconfig_paths({"KUBECONFIG": "~/k.yaml"}, tmp_path) == [tmp_path / "~" / "k.yaml"]


# --------------------------------------------------------------------------- the pinned file


def a_lab(*, cluster: bool, env: dict[str, str] | None = None) -> Lab:
    step = Step(id="s", title="S")
    return Lab(
        id="lab",
        title="Lab",
        path=Path("lab.yaml"),
        steps=(step,),
        needs=frozenset({"cluster"}) if cluster else frozenset(),
        env=env or {},
    )


def a_workshop(root: Path) -> Workshop:
    return Workshop(root=root, labs_dir=root / "labs", labs=())


def test_the_pinned_kubeconfig_holds_only_the_approved_context(tmp_path: Path) -> None:
    with FakeCluster(https=True, token="admin-token") as safe, FakeCluster() as other:
        path = tmp_path / "kube" / "config"
        entries = [
            safe.kubeconfig_entry("kind-safe", "shop"),
            other.kubeconfig_entry("prod-x"),
        ]
        write(path, render_entries(entries, current="kind-safe"))
        # a client certificate file named relatively, next to the kubeconfig
        text = yaml.safe_load(path.read_text())
        (path.parent / "certs").mkdir()
        (path.parent / "certs" / "client.crt").write_text("cert")
        (path.parent / "certs" / "client.key").write_text("key")
        text["users"][1]["user"] = {
            "client-certificate": "certs/client.crt",
            "client-key": "certs/client.key",
        }
        text["clusters"][0]["cluster"]["tls-server-name"] = "localhost"
        path.write_text(yaml.safe_dump(text))
        before = path.read_bytes()
        env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "KUBECONFIG": str(path)}
        workshop = a_workshop(tmp_path)
        run = prepare_run(None, base_env=env, cwd=tmp_path)
        lab = a_lab(cluster=True)
        assert run.kubeconfig_for(workshop, lab) == run.no_cluster  # nothing approved yet
        assert run.decide(workshop, lab).allowed
        pinned = run.approve(workshop, lab)
        assert pinned is not None and run.kubeconfig_for(workshop, lab) == pinned
        assert stat.S_IMODE(run.directory.stat().st_mode) == 0o700
        assert stat.S_IMODE(pinned.stat().st_mode) == 0o600
        data = json.loads(pinned.read_text())
        assert [c["name"] for c in data["contexts"]] == ["kind-safe"]
        assert [c["name"] for c in data["clusters"]] == ["kind-safe"]
        assert data["current-context"] == "kind-safe"
        assert data["contexts"][0]["context"]["namespace"] == "shop"
        assert data["clusters"][0]["cluster"]["tls-server-name"] == "localhost"
        assert data["users"][0]["user"]["token"] == "admin-token"

        shell = {**env, "KUBECONFIG": str(pinned)}
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        ns = kubectl(shell, elsewhere, "get", "namespace", "default", "-o", "name")
        assert ns.returncode == 0, ns.stderr
        switched = kubectl(shell, elsewhere, "config", "use-context", "prod-x")
        assert switched.returncode != 0 and "no context exists" in switched.stderr
        flagged = kubectl(shell, elsewhere, "--context", "prod-x", "get", "ns")
        assert flagged.returncode != 0 and "context was not found" in flagged.stderr
        other.assert_untouched()
        assert path.read_bytes() == before

        # file references are absolute in a pinned copy of the other context
        copy = pinned_config(load(env, tmp_path), "prod-x")
        assert copy["users"][0]["user"]["client-certificate"] == str(
            path.parent / "certs" / "client.crt"
        )
        run.close()
        assert not run.directory.exists()


def test_a_lab_without_a_cluster_gets_a_kubeconfig_that_leads_nowhere(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    with prepare_run(None, base_env=env, cwd=tmp_path) as run:
        path = run.kubeconfig_for(a_workshop(tmp_path), a_lab(cluster=False))
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        done = kubectl({**env, "KUBECONFIG": str(path)}, tmp_path, "get", "pods")
        assert done.returncode != 0
        assert "no-cluster.invalid" in done.stderr and NO_CLUSTER_SERVER.startswith("https://")
        assert "localhost:8080" not in done.stderr
        assert "Username" not in done.stdout + done.stderr  # no credential prompt either


def test_an_exec_plugin_named_relatively_still_runs_from_the_pinned_copy(
    tmp_path: Path,
) -> None:
    with FakeCluster(https=True, token="plugin-token") as server:
        folder = tmp_path / "conf"
        (folder / "bin").mkdir(parents=True)
        plugin = folder / "bin" / "get-token"
        plugin.write_text(
            '#!/bin/sh\necho ran >> "$(dirname "$0")/ran"\n'
            'echo \'{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",'
            ' "status": {"token": "plugin-token"}}\'\n'
        )
        plugin.chmod(0o755)
        entry = server.kubeconfig_entry("kind-exec", token=None)
        data = yaml.safe_load(render_entries([entry]))
        data["users"][0]["user"] = {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": "./bin/get-token",
                "interactiveMode": "Never",
            }
        }
        (folder / "config").write_text(yaml.safe_dump(data))
        env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "KUBECONFIG": "conf/config"}
        with prepare_run(None, base_env=env, cwd=tmp_path) as run:
            workshop = a_workshop(tmp_path / "ws")
            lab = a_lab(cluster=True)
            assert run.decide(workshop, lab).allowed
            pinned = run.approve(workshop, lab)
            assert pinned is not None
            copied = json.loads(pinned.read_text())["users"][0]["user"]["exec"]
            assert copied["command"] == str(plugin) and copied["interactiveMode"] == "Never"
            done = kubectl({**env, "KUBECONFIG": str(pinned)}, tmp_path, "get", "ns", "-o", "name")
            assert done.returncode == 0, done.stderr
            assert (folder / "bin" / "ran").exists()


# --------------------------------------------------------------------------- the decision table


NAMES = {"built-in": "kind-x", "workshop": "team-istio-workshop", "other": "prod-eu"}
SERVERS = {
    "loopback": "https://127.0.0.1:6443",
    "private": "https://192.168.49.2:8443",
    "public-ip": "https://34.120.1.2",
    "cloud-domain": "https://ABC.gr7.us-west-2.eks.amazonaws.com",
    "public-name": "https://k8s.example.com:6443",
}
TABLE = {
    # name class: allowed at loopback, private, public ip, cloud domain, public name
    "built-in": (True, True, False, False, False),
    "workshop": (True, True, True, True, True),
    "other": (False, False, False, False, False),
}


@pytest.mark.parametrize("name_class", sorted(TABLE))
def test_the_decision_table(name_class: str) -> None:
    for (server_class, server), allowed in zip(SERVERS.items(), TABLE[name_class], strict=True):
        decision = decide(
            NAMES[name_class], explicit=False, extra=["*istio-workshop*"], server=server
        )
        assert decision.allowed is allowed, (name_class, server_class, decision.reason)
        assert decide(NAMES[name_class], explicit=True, server=server).allowed


def test_server_classes_and_proxies() -> None:
    assert classify_server("https://127.0.0.1:6443").kind is ServerClass.LOOPBACK
    assert classify_server("https://0.0.0.0:6443").kind is ServerClass.LOOPBACK
    assert classify_server("https://[::1]:6443").kind is ServerClass.LOOPBACK
    assert classify_server("https://kubernetes.docker.internal:6443").kind is ServerClass.LOOPBACK
    assert classify_server("https://10.1.2.3").kind is ServerClass.PRIVATE
    assert classify_server("https://100.64.0.5").kind is ServerClass.PRIVATE
    assert classify_server("https://node.local:6443").kind is ServerClass.PRIVATE
    via_proxy = classify_server("https://127.0.0.1:6443", proxy_url="http://10.0.0.1:3128")
    assert via_proxy.kind is ServerClass.PUBLIC and "proxy" in via_proxy.why
    eks = classify_server("https://x.yl4.eu-west-1.eks.amazonaws.com")
    assert eks.kind is ServerClass.PUBLIC and "Amazon EKS" in eks.why
    assert "Azure AKS" in classify_server("https://x-dns-1.hcp.westeurope.azmk8s.io:443").why
    assert not decide(
        "kind-x", explicit=False, server="https://127.0.0.1:1", proxy_url="http://p:1"
    ).allowed
    assert matches_everything("*") and matches_everything("**")
    assert not matches_everything("*istio-workshop*") and not matches_everything("kind-*")
