"""``labrunner rehearse``: labs on a simulated cluster, proven step by step, through the CLI.

A tiny workshop (one ConfigMap lab) shows what the protocol catches: a check
that already holds before its step, a cleanup that leaves an object, a step
that needs what the simulated cluster cannot give. The bundled workshop must
rehearse green in a checkout with no cluster and no Istio release.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")

LAB = """\
apiVersion: labrunner/v1
kind: Lab
id: config
title: A ConfigMap
needs: [cluster]
setup:
  - kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f -
{extra_setup}
cleanup:
  - {cleanup}
steps:
  - id: create
    title: Create the greeting
    run:
      - kubectl create configmap greeting -n demo --from-literal=hello=world
    check:
      - resource: {{apiVersion: v1, kind: ConfigMap, namespace: demo, name: greeting}}
  - id: call
    title: Call something through the mesh
    needs: [traffic]
    run:
      - curl -fsS http://greeting.demo/
    check:
      - command: {{run: "true"}}
  - id: route
    title: Route it
    run:
      - kubectl apply -f route.yaml
    check:
      - resource:
          apiVersion: networking.istio.io/v1
          kind: VirtualService
          namespace: demo
          name: greeting
"""

ROUTE = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "greeting", "namespace": "demo"},
    "spec": {"hosts": ["greeting"], "http": [{"route": [{"destination": {"host": "greeting"}}]}]},
}


def make_workshop(
    root: Path,
    *,
    extra_setup: str = "",
    cleanup: str = "kubectl delete configmap greeting -n demo --ignore-not-found"
    " && kubectl delete -f route.yaml --ignore-not-found",
    rehearse: dict[str, object] | None = None,
    route: dict[str, object] | None = None,
) -> Path:
    labs = root / "labs"
    labs.mkdir(parents=True)
    meta: dict[str, object] = {
        "apiVersion": "labrunner/v1",
        "kind": "Workshop",
        "title": "Tiny",
        "labs": ["10-config.yaml"],
    }
    if rehearse is not None:
        meta["rehearse"] = rehearse
    (labs / "workshop.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    setup = f"  - {extra_setup}" if extra_setup else ""
    (labs / "10-config.yaml").write_text(
        LAB.format(extra_setup=setup, cleanup=cleanup).replace("\n\n", "\n")
    )
    (root / "route.yaml").write_text(yaml.safe_dump(route or ROUTE))
    return labs


def rehearse(
    labs: Path | None, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "labrunner"]
    if labs is not None:
        argv += ["--labs", str(labs)]
    return subprocess.run(
        [*argv, "rehearse", *args],
        cwd=cwd or (labs.parent if labs else REPO),
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
    )


def table(stdout: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(lab, step) → (result, why) from the rehearsal's table."""
    rows = {}
    lines = stdout.splitlines()
    header = lines[0]
    starts = [header.index(name) for name in ("LAB", "STEP", "RESULT", "WHY")]
    for line in lines[1:]:
        if not line.strip():
            break
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        rows[(cells[0], cells[1])] = (cells[2], cells[3])
    return rows


def test_a_sound_lab_rehearses(tmp_path: Path) -> None:
    labs = make_workshop(tmp_path / "w")
    done = rehearse(labs)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = table(done.stdout)
    assert rows[("config", "setup")][0] == "rehearsed"
    assert rows[("config", "create")] == ("rehearsed", "failed before, passed after")
    result, why = rows[("config", "call")]
    assert result == "not rehearsable" and "real traffic" in why
    assert rows[("config", "route")] == ("rehearsed", "failed before, passed after")
    assert rows[("config", "cleanup")] == ("rehearsed", "undid create, route")
    assert "3 steps: 2 rehearsed, 1 not rehearsable" in done.stdout
    assert "config — rehearsed" in done.stderr
    assert not (labs.parent / "certs").exists(), "the rehearsal ran in a copy"


def test_a_check_that_holds_before_its_step_fails_the_rehearsal(tmp_path: Path) -> None:
    labs = make_workshop(
        tmp_path / "w", extra_setup="kubectl create configmap greeting -n demo --from-literal=a=b"
    )
    done = rehearse(labs)
    assert done.returncode == 1, done.stdout + done.stderr
    rows = table(done.stdout)
    result, why = rows[("config", "create")]
    assert result == "failed"
    assert "already pass before the step runs" in why
    assert rows[("config", "route")][0] == "not run"
    assert "config/create: failed: its checks already pass" in done.stdout


def test_a_cleanup_that_leaves_an_object_fails_the_rehearsal(tmp_path: Path) -> None:
    labs = make_workshop(tmp_path / "w", cleanup="kubectl get configmaps -n demo")
    done = rehearse(labs)
    assert done.returncode == 1, done.stdout + done.stderr
    result, why = table(done.stdout)[("config", "cleanup")]
    assert result == "failed"
    assert why.startswith("cleanup left what step create created"), why
    assert "route" in why, "every step whose work is left is named"


def test_a_step_that_fails_names_itself_with_the_command_output(tmp_path: Path) -> None:
    labs = make_workshop(tmp_path / "w")
    (labs.parent / "route.yaml").unlink()
    done = rehearse(labs)
    assert done.returncode == 1
    result, why = table(done.stdout)[("config", "route")]
    assert result == "failed" and "kubectl apply -f route.yaml" in why
    assert "route.yaml" in done.stdout.split("config/route: failed:", 1)[1]


def test_missing_crds_say_how_to_get_them_and_stand_ins_serve_istio_kinds(tmp_path: Path) -> None:
    labs = make_workshop(
        tmp_path / "w",
        rehearse={"crds": ["${HOME}/istio/crds.yaml"], "get": "run the download step"},
        route={**ROUTE, "spec": {"made-up": True}},
    )
    done = rehearse(labs)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no CRD file at" in done.stderr and "crds.yaml" in done.stderr
    assert "(get it: run the download step)" in done.stderr
    assert "built-in stand-ins" in done.stderr


def test_real_crds_validate_what_the_steps_apply(tmp_path: Path, istio_crds_path: Path) -> None:
    home = Path(os.environ["HOME"])
    (home / "istio").mkdir()
    shutil.copyfile(istio_crds_path, home / "istio" / "crds.yaml")
    labs = make_workshop(
        tmp_path / "w",
        rehearse={"crds": ["${HOME}/istio/crds.yaml"]},
        route={**ROUTE, "spec": {"hosts": ["greeting"], "made-up": True}},
    )
    done = rehearse(labs)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no CRD file" not in done.stderr
    result, _ = table(done.stdout)[("config", "route")]
    assert result == "failed"
    assert "made-up" in done.stdout, "the schema's complaint is shown"


def test_a_step_reading_a_missing_download_is_not_rehearsable(tmp_path: Path) -> None:
    labs = make_workshop(
        tmp_path / "w",
        rehearse={"files": ["${HOME}/release/samples"], "get": "download the release"},
    )
    lab = labs / "10-config.yaml"
    lab.write_text(
        lab.read_text().replace(
            "kubectl apply -f route.yaml", 'kubectl apply -f "$HOME/release/samples/route.yaml"'
        )
    )
    done = rehearse(labs)
    assert done.returncode == 0, done.stdout + done.stderr
    result, why = table(done.stdout)[("config", "route")]
    assert result == "not rehearsable"
    assert "reads ${HOME}/release/samples, which is not on this machine" in why
    assert "download the release" in why


def test_rehearse_rejects_an_invalid_workshop_with_file_and_line(tmp_path: Path) -> None:
    labs = make_workshop(tmp_path / "w", rehearse={"kept": {"config/nope": "because"}})
    done = rehearse(labs)
    assert done.returncode == 2
    assert "workshop.yaml:" in done.stderr
    assert "rehearse.kept: lab config has no step 'nope'" in done.stderr


def test_rehearse_never_loads_the_fake_for_help() -> None:
    code = textwrap.dedent(
        """
        import sys
        from click.testing import CliRunner
        import labrunner.rehearse
        from labrunner.cli import main
        assert CliRunner().invoke(main, ["rehearse", "--help"]).exit_code == 0
        print(sorted(m for m in sys.modules if m.startswith("labrunner.testing")))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


@pytest.mark.slow
def test_the_bundled_workshop_rehearses_green_without_a_cluster_or_a_release() -> None:
    """The checkout as cloned: no cluster, no kubeconfig, no Istio release in HOME."""
    home = Path(os.environ["HOME"])
    assert not (home / ".istio-workshop").exists() and not (home / ".kube" / "config").exists()
    done = rehearse(None)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert "labrunner verify install-istio --only download" in done.stderr
    rows = table(done.stdout)
    assert rows[("strict-mtls", "strict-policy")] == ("rehearsed", "failed before, passed after")
    result, why = rows[("bookinfo", "deploy")]
    assert result == "not rehearsable" and "${ISTIO_HOME}/samples" in why
    assert rows[("install-istio", "install")][0] == "not rehearsable"
    assert rows[("mesh-security-basics", "mesh-ca")] == ("rehearsed", "passed")
    assert not any(result in ("failed", "error") for result, _ in rows.values())


def test_without_kubernetes_validate_the_rehearsal_says_what_it_does_not_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labrunner.lab.loader import load_workshop
    from labrunner.rehearse import resolve_plan
    from labrunner.testing.fakecluster import builtin_schema
    from labrunner.verify.registry import builtin_registry

    labs = make_workshop(tmp_path / "w")
    workshop = load_workshop(labs, builtin_registry()).workshop
    assert workshop is not None
    assert not resolve_plan(workshop, os.environ).warnings
    monkeypatch.setattr(builtin_schema, "available", lambda: False)
    (warning,) = resolve_plan(workshop, os.environ).warnings
    assert "kubernetes-validate is not installed" in warning
    assert "labrunner[rehearse]" in warning
