"""Start-up budget: each command imports only what it uses.

Each command runs in a fresh interpreter, twice (a cold and then a warm
compiled-lab cache), and reports which heavy packages it loaded:

- ``--help``, ``list`` and ``check`` never load Textual (only ``run`` does)
  nor ``jsonschema`` (valid labs are checked by ``lab.quickschema``; only a
  problem to explain loads it);
- none of them loads the ``kubernetes`` client with a token kubeconfig
  pointing at a live API server (``list`` reads it for the context, ``check``
  asks the server);
- a warm ``list`` or ``check`` does not even import the loader: the workshop
  comes from the cache;
- a plain ``check``, ``verify``, ``list`` or ``validate`` command line never loads click
  (``labrunner.headless`` runs it), ``check`` of a cluster-only step does not
  load the lab shell's module, and ``verify`` loads neither ``inspect`` nor
  ``hashlib``, nor, where util-linux's ``setsid --ctty`` starts bash, pexpect;
- ``check`` of a cluster step, with a token or a client-certificate
  kubeconfig over HTTPS, loads neither urllib3 (``cluster.connection`` speaks
  HTTP) nor, once the kubeconfig was parsed, PyYAML (``cluster.yamlcache``);
- nor does it load ``hashlib`` (``fsutil.sha256_hex`` names files and caches) nor
  what only other commands use: ``datetime``, the ``idna``
  codec, the class's name rules, the events of commands and whole labs
  (``engine.runevents``); nor, as it starts no process, ``subprocess`` and
  ``ctypes`` (the subreaper waits for a first process); nor ``inspect``, which
  ``dataclasses`` gets only when it needs it (``labrunner.codecache``); nor
  ``tempfile``, ``shutil`` and ``base64`` (``fsutil`` makes and removes the
  run's folder and finds programs; kubeconfig data is decoded by ``binascii``);
  nor, with the workshop from the compiled-lab cache, ``typing`` (its modules
  import typing's names for the type checker only).

bench/whole_process.py measures what these choices are worth in wall time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from labrunner.shell import session as session_module
from labrunner.testing.fakecluster import FakeCluster
from labrunner.testing.fakecluster.kubeconfig import render_entries, write
from labrunner.testing.fixtures import FakeClusterHandle

from .conftest import cli_env, run_on_terminal

Make = Callable[..., Path]

PROBE = r"""
import json, sys
sys.argv = ["labrunner", *sys.argv[1:]]
from labrunner.launch import main  # the console script's entry point

try:
    main()
except SystemExit:
    pass
roots = {name.split(".")[0] for name in sys.modules}
print("LOADED:" + json.dumps({
    "roots": sorted(roots & {
        "textual", "jsonschema", "kubernetes", "yaml", "click", "pexpect", "urllib3", "rich",
        "platformdirs",
    }),
    "loader": "labrunner.lab.loader" in sys.modules,
    "cli": "labrunner.cli" in sys.modules,
    "modules": sorted(set(sys.modules) & {
        "datetime", "encodings.idna", "labrunner.classroom.names",
        "labrunner.engine.runevents", "hashlib", "inspect", "subprocess", "ctypes",
        "tempfile", "shutil", "base64", "labrunner.shell.session", "typing",
    }),
}))
"""

CLUSTER_LAB = """\
apiVersion: labrunner/v1
id: shop
title: Shop
steps:
  - id: ready
    title: The namespace is there
    run: ['kubectl get ns default']
    check:
      - namespace: {name: default}
"""


@dataclass(frozen=True)
class Loaded:
    """What one run imported: the heavy packages, and whether the lab loader."""

    roots: frozenset[str]
    loader: bool
    cli: bool
    output: str
    modules: frozenset[str] = frozenset()
    """Which of a few small modules a plain check has no use for were loaded."""


def loaded(argv: list[str], cwd: Path, **env: str) -> Loaded:
    """Run the CLI with ``argv`` in a fresh interpreter; what it imported and printed."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        env={**cli_env(), **env},
        timeout=120,
        cwd=cwd,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("LOADED:"), proc.stdout + proc.stderr
    data = json.loads(line.removeprefix("LOADED:"))
    output = proc.stdout.rsplit("LOADED:", 1)[0]
    return Loaded(
        frozenset(data["roots"]),
        bool(data["loader"]),
        bool(data["cli"]),
        output,
        frozenset(data["modules"]),
    )


@pytest.fixture
def cluster_labs(tmp_path: Path, fake_cluster: FakeClusterHandle) -> Path:
    """A one-lab workshop whose check asks the fake API server (a token kubeconfig)."""
    labs = tmp_path / "cluster-ws" / "labs"
    labs.mkdir(parents=True)
    (labs / "shop.yaml").write_text(CLUSTER_LAB)
    return labs


@pytest.mark.parametrize(
    ("args", "forbidden"),
    [
        (["--help"], {"textual", "jsonschema", "kubernetes", "yaml"}),
        (["--labs", "{labs}", "list"], {"textual", "jsonschema", "kubernetes", "click"}),
        (
            ["--labs", "{labs}", "check", "carry-over", "prepare"],
            {"textual", "jsonschema", "click"},
        ),
        (["--labs", "{labs}", "validate"], {"textual", "jsonschema", "kubernetes", "click"}),
    ],
    ids=["help", "list", "check", "validate"],
)
def test_headless_commands_import_only_what_they_use(
    workshop: Make, args: list[str], forbidden: set[str]
) -> None:
    labs = workshop("carry-over")
    argv = [a.format(labs=labs) for a in args]
    for run in ("cold cache", "warm cache"):
        found = loaded(argv, labs.parent)
        assert not forbidden & found.roots, (run, found)


def test_a_plain_verify_runs_without_click_inspect_or_hashlib(workshop: Make) -> None:
    # click loads inspect (~12 ms); the lab shell's ids once loaded hashlib with OpenSSL
    labs = workshop("carry-over")
    for run in ("cold cache", "warm cache"):
        found = loaded(["--labs", str(labs), "verify", "carry-over", "--no-save"], labs.parent)
        assert "carry-over: PASS" in found.output, (run, found)
        assert not {"textual", "jsonschema", "kubernetes", "click"} & found.roots, (run, found)
        assert not found.cli and "hashlib" not in found.modules, (run, found)
        assert "labrunner.shell.session" in found.modules  # the control: a lab shell ran
    assert "inspect" not in found.modules, found  # the YAML loader of a cold run may use it
    if session_module._setsid_program() is not None:
        # bash started through setsid --ctty: pexpect (a fork's fallback) was never needed
        assert "pexpect" not in found.roots, found


def test_a_warm_help_is_clicks_text_without_click(tmp_path: Path) -> None:
    click_only = "from labrunner.cli import main; main(prog_name='labrunner')"
    rendered = subprocess.run(
        [sys.executable, "-c", click_only, "--help"],
        capture_output=True,
        text=True,
        env={**cli_env(), "COLUMNS": "77"},
        check=True,
    ).stdout
    for run in ("cold cache", "warm cache"):
        found = loaded(["--help"], tmp_path, COLUMNS="77")
        assert found.output == rendered, run
    assert not found.cli and "click" not in found.roots, found
    # the width is part of the key: another terminal gets click's text for its width
    wide = loaded(["-h"], tmp_path, COLUMNS="140")
    assert wide.cli and wide.output != rendered
    assert "Show this message and exit." in wide.output


def test_list_and_check_of_a_cluster_lab(cluster_labs: Path) -> None:
    # list reads the (token) kubeconfig for the context, yet never needs the client
    for run in ("cold cache", "warm cache"):
        listing = loaded(["--labs", str(cluster_labs), "list"], cluster_labs.parent)
        assert not {"textual", "jsonschema", "kubernetes"} & listing.roots, (run, listing)
        check = loaded(["--labs", str(cluster_labs), "check", "shop", "ready"], cluster_labs.parent)
        assert not {"textual", "jsonschema", "kubernetes", "click", "pexpect"} & check.roots, (
            run,
            check,
        )
        assert check.cli is False, (run, check)
        assert "PASS ready" in check.output, (run, check)
        # nor what only other commands use: the class's name rules (one stat says no
        # class was joined), datetime (exec plugins' expiries, progress summaries), the
        # idna codec (an ASCII server name needs none), the events of commands and labs,
        # hashlib with OpenSSL's digests (file and cache names need only SHA-256),
        # subprocess and ctypes (no process is started), inspect (dataclasses has no use
        # for it with labrunner's documented classes), tempfile, shutil and base64
        assert not check.modules - {"typing"}, (run, check)
    # the second time, the workshop came from the compiled-lab cache and the kubeconfig
    # from its parse cache, and list too ran without click
    assert not {"click", "yaml", "urllib3"} & listing.roots, listing
    assert listing.cli is False
    assert listing.loader is False
    assert check.loader is False
    # nor typing, once the workshop comes from the cache: the check road names typing's
    # types for the type checker only, and the lab cache's codec reads the model without it
    assert "typing" not in check.modules, check


def test_check_on_a_terminal_is_coloured_without_rich(cluster_labs: Path) -> None:
    # a learner's terminal: colour, drawn with plain SGR codes (Rich took longer to import
    # than the check takes to run)
    env = {**cli_env(), "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    argv = ["--labs", str(cluster_labs), "check", "shop", "ready"]
    code, output = run_on_terminal([sys.executable, "-c", PROBE, *argv], env, cluster_labs.parent)
    assert code == 0, output
    line = next(x for x in output.splitlines() if x.startswith("LOADED:"))
    data = json.loads(line.removeprefix("LOADED:"))
    assert "\x1b[1;36m-- ready: The namespace is there\x1b[0m" in output, output
    assert "\x1b[1;32m✔ PASS ready" in output, output
    assert not {"rich", "textual", "click", "kubernetes"} & set(data["roots"]), data


def test_commands_find_the_state_dir_without_platformdirs(tmp_path: Path) -> None:
    # no LABRUNNER_STATE_DIR (empty counts as unset), no XDG_STATE_HOME: a user's ~/.local/state
    user = {"HOME": str(tmp_path), "LABRUNNER_STATE_DIR": "", "XDG_STATE_HOME": ""}
    labs = Path(__file__).resolve().parents[2] / "labs"
    for argv in (["--help"], ["--help"], ["--labs", str(labs), "list"]):
        found = loaded(argv, tmp_path, **user)
        assert "platformdirs" not in found.roots, (argv, found)
    # and the state went where platformdirs would have put it
    assert (tmp_path / ".local" / "state" / "labrunner" / "cache").is_dir()


def test_the_probe_sees_jsonschema_when_a_problem_needs_explaining(workshop: Make) -> None:
    # control for the tests above, and the other half of the bargain: an invalid lab
    # still gets jsonschema's precise messages
    labs = workshop("carry-over")
    (labs / "bad.yaml").write_text(
        "apiVersion: labrunner/v1\nid: bad\ntitle: Bad\nsteps:\n  - id: x\n    titel: X\n"
    )
    found = loaded(["--labs", str(labs), "validate"], labs.parent)
    assert "jsonschema" in found.roots
    assert found.loader is True


@pytest.mark.parametrize("credential", ["token", "client-certificate"])
def test_check_over_https_needs_neither_urllib3_nor_yaml(tmp_path: Path, credential: str) -> None:
    labs = tmp_path / "ws" / "labs"
    labs.mkdir(parents=True)
    (labs / "shop.yaml").write_text(CLUSTER_LAB)
    with FakeCluster(https=True, token="the-token", client_certs=True) as server:
        if credential == "token":
            kubeconfig = server.write_kubeconfig(tmp_path / "config", token="the-token")
        else:
            cert = server.issue_client_cert("kubernetes-admin", "system:masters")
            entry = server.kubeconfig_entry("kind-shop", token=None, client_cert=cert)
            kubeconfig = write(tmp_path / "config", render_entries([entry]))
        argv = ["--labs", str(labs), "check", "shop", "ready"]
        cold = loaded(argv, labs.parent, KUBECONFIG=str(kubeconfig))
        warm = loaded(argv, labs.parent, KUBECONFIG=str(kubeconfig))
    assert "PASS ready" in cold.output and "PASS ready" in warm.output, (cold, warm)
    forbidden = {"textual", "jsonschema", "kubernetes", "click", "pexpect", "urllib3"}
    assert not forbidden & cold.roots, cold
    assert "yaml" in cold.roots  # the first start parses the kubeconfig
    assert not (forbidden | {"yaml"}) & warm.roots, warm
