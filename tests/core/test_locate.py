"""One answer to "where is the workshop": labs dir, root, certs dir; and ``labrunner init``."""

from __future__ import annotations

from pathlib import Path

import pytest

from labrunner.lab import locate
from labrunner.lab.locate import BundledReadOnly, find_labs_dir

from .conftest import assert_clean, cli_env, run_cli


def test_precedence_option_env_nearest_then_bundled(tmp_path: Path) -> None:
    nested = tmp_path / "ws" / "manifests" / "deep"
    nested.mkdir(parents=True)
    (tmp_path / "ws" / "labs").mkdir()
    other = tmp_path / "other"
    assert find_labs_dir(other, env={}, cwd=nested) == other.resolve()
    assert find_labs_dir(None, env={"LABRUNNER_LABS": str(other)}, cwd=nested) == other.resolve()
    assert find_labs_dir(None, env={}, cwd=nested) == (tmp_path / "ws" / "labs").resolve()
    bundled = locate.bundled_labs_dir()
    assert bundled is not None, "a checkout carries its workshop"
    assert (
        find_labs_dir(None, env={}, cwd=other.parent.parent) in (bundled.resolve(),)
        or (other.parent.parent / "labs").is_dir()
    )


def test_root_and_certs_follow_workdir(tmp_path: Path) -> None:
    labs = tmp_path / "ws" / "labs"
    labs.mkdir(parents=True)
    plain = locate.locate(labs, env={})
    assert (plain.root, plain.certs_dir) == (labs.parent, labs.parent / "certs")
    (labs / "workshop.yaml").write_text("apiVersion: labrunner/v1\nkind: Workshop\nworkdir: ..\n")
    moved = locate.locate(labs, env={})
    assert moved.root == (tmp_path / "ws").resolve()
    (labs / "workshop.yaml").write_text("apiVersion: labrunner/v1\nkind: Workshop\nworkdir: ../x\n")
    assert locate.locate(labs, env={}).certs_dir == (tmp_path / "ws" / "x" / "certs").resolve()


def test_an_installed_labrunner_without_a_workshop_says_to_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(locate, "CHECKOUT_LABS", tmp_path / "site-packages" / "labs")
    with pytest.raises(BundledReadOnly, match=r"labrunner init DIR"):
        find_labs_dir(None, env={}, cwd=tmp_path)


def test_init_copies_the_bundled_workshop_which_then_runs_from_there(tmp_path: Path) -> None:
    target = tmp_path / "my-workshop"
    proc = run_cli("init", target, cwd=tmp_path)
    assert_clean(proc, 0)
    assert (target / "labs" / "workshop.yaml").is_file()
    assert (target / "manifests" / "kind" / "cluster.yaml").is_file()
    assert (target / "certs" / "README.md").is_file()
    assert not list((target / "certs").rglob("*.key")), "generated keys are never copied"
    env = cli_env()
    env.pop("LABRUNNER_LABS", None)
    listed = run_cli("list", "--no-steps", cwd=target, env=env)
    assert_clean(listed, 0)
    assert str(target / "labs") in listed.stdout, "labrunner in DIR uses DIR's labs"
    again = run_cli("init", target, cwd=tmp_path)
    assert_clean(again, 2)
    assert "already exists" in again.stderr
