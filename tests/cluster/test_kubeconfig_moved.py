"""A lab that points KUBECONFIG elsewhere stops the run before anything reaches that cluster.

Two fake API servers (``safe_and_prod``): the run is approved for
``kind-safe``; a step exports ``KUBECONFIG`` at a kubeconfig whose current
context reaches prod, and a later step runs the real kubectl. The shell
reports ``$KUBECONFIG`` with every command, so labrunner stops right after
the export: exit 3, the command named, and not one request at prod — from
the commands, the checks, or a ``--cleanup``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from labrunner.testing.fixtures import FakeClusters

LAB = """\
apiVersion: labrunner/v1
id: moved
title: A lab that moves KUBECONFIG
needs: [cluster]
cleanup:
  - kubectl delete configmap marker -n default --ignore-not-found
steps:
  - id: switch
    title: Point KUBECONFIG at another file
    run:
      - {switch}
    check:
      - command: {{run: kubectl get configmaps -n default}}
  - id: use
    title: Use it
    run:
      - kubectl create configmap marker -n default --from-literal=k=v
    check:
      - resource: {{apiVersion: v1, kind: ConfigMap, namespace: default, name: marker}}
"""


def _prod_kubeconfig(clusters: FakeClusters, path: Path) -> Path:
    """A copy of the fixture's kubeconfig whose current context reaches prod."""
    doc = yaml.safe_load(clusters.kubeconfig.read_text())
    doc["current-context"] = "prod-local"
    path.write_text(yaml.safe_dump(doc))
    return path


def _labrunner(
    clusters: FakeClusters, root: Path, lab: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """Write ``lab`` into ``root/labs`` and run ``labrunner ARGS`` on it (verify by default)."""
    (root / "labs").mkdir(parents=True, exist_ok=True)
    (root / "labs" / "moved.yaml").write_text(lab)
    env = dict(clusters.env)
    env.pop("COLUMNS", None)
    return subprocess.run(
        [sys.executable, "-m", "labrunner", "--labs", str(root / "labs"), *(args or ("verify",))],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    "switch",
    [
        "export KUBECONFIG={prod}",
        "export KUBECONFIG={prod}:$KUBECONFIG",
        "cd / && export KUBECONFIG=.{prod}",
        "unset KUBECONFIG; cp {prod} ~/.kube/config 2>/dev/null || true",
    ],
    ids=["export", "prepended", "relative", "unset"],
)
def test_moving_kubeconfig_stops_the_run_and_prod_sees_nothing(
    safe_and_prod: FakeClusters, tmp_path: Path, switch: str
) -> None:
    prod = _prod_kubeconfig(safe_and_prod, tmp_path / "prod.yaml")
    (Path(os.environ["HOME"]) / ".kube").mkdir(parents=True, exist_ok=True)
    before = safe_and_prod.kubeconfig.read_bytes()
    safe_and_prod.reset_traffic()
    command = switch.format(prod=prod)
    proc = _labrunner(
        safe_and_prod, tmp_path / "ws", LAB.format(switch=command), "verify", "--cleanup"
    )
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out
    assert proc.returncode == 3, out
    first = command.splitlines()[0]
    assert f"the command `{first}` pointed KUBECONFIG away" in out, out
    assert "labrunner stopped" in out
    safe_and_prod.servers["prod"].settle()
    assert safe_and_prod.servers["prod"].traffic().untouched, safe_and_prod.traffic()
    assert "kubectl create configmap" not in out, "a later step ran"
    assert safe_and_prod.kubeconfig.read_bytes() == before


def test_kubeconfig_set_back_to_the_same_file_is_fine(
    safe_and_prod: FakeClusters, tmp_path: Path
) -> None:
    # the run pinned its own copy of the approved context: naming that file again is fine
    same = 'export KUBECONFIG="$KUBECONFIG::$(realpath "$KUBECONFIG")"'
    proc = _labrunner(safe_and_prod, tmp_path / "ws", LAB.format(switch=same))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert safe_and_prod.servers["prod"].traffic().untouched


@pytest.mark.parametrize("command", [("verify",), ("check", "moved")], ids=["verify", "check"])
def test_a_lab_env_kubeconfig_is_refused_before_anything_runs(
    safe_and_prod: FakeClusters, tmp_path: Path, command: tuple[str, ...]
) -> None:
    prod = _prod_kubeconfig(safe_and_prod, tmp_path / "prod.yaml")
    lab = LAB.format(switch="echo started").replace(
        "needs: [cluster]\n", f"needs: [cluster]\nenv:\n  KUBECONFIG: {prod}\n"
    )
    proc = _labrunner(safe_and_prod, tmp_path / "ws", lab, *command)
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out
    assert proc.returncode == 3, out
    assert "KUBECONFIG" in out and "prod.yaml" in out
    assert "started" not in out, "a command ran in a shell aimed at prod"
    safe_and_prod.servers["prod"].settle()
    assert safe_and_prod.servers["prod"].traffic().untouched
