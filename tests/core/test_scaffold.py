"""``labrunner new LAB-ID``: a lab that validates, one line added to workshop.yaml, no overwrite."""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from labrunner.lab.scaffold import ScaffoldError, insert_into_labs, next_file_name

REPO = Path(__file__).resolve().parents[2]


def labrunner(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labrunner", *args],
        cwd=cwd,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def workshop(tmp_path: Path) -> Path:
    """A copy of the bundled workshop's labs (and what they apply) to add a lab to."""
    shutil.copytree(REPO / "labs", tmp_path / "labs")
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    return tmp_path


def test_new_then_validate_passes_and_the_lab_runs(workshop: Path) -> None:
    before = (workshop / "labs" / "workshop.yaml").read_text()
    done = labrunner(workshop, "new", "demo")
    assert done.returncode == 0, done.stdout + done.stderr
    created = workshop / "labs" / "19-demo.yaml"
    assert f"created {created}" in done.stdout
    text = created.read_text()
    assert text.splitlines()[0] == "# yaml-language-server: $schema=lab.schema.json"
    assert (workshop / "labs" / "lab.schema.json").is_file()
    for part in ("id: demo", "title: Demo", "run:", "check:", "hints:"):
        assert part in text
    after = (workshop / "labs" / "workshop.yaml").read_text()
    diff = [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="")
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert diff == ["+  - 19-demo.yaml"], "one line added, every comment kept"
    assert after.splitlines()[-1] == "  - 19-demo.yaml"
    check = labrunner(workshop, "validate")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "20 lab files checked: 0 errors, 0 warnings" in check.stderr
    listed = labrunner(workshop, "list", "--no-steps")
    assert listed.stdout.splitlines()[-1].split()[0] == "demo", "last in the workshop's order"
    run = labrunner(workshop, "verify", "demo", "--no-save", "--cleanup")
    assert run.returncode == 0, run.stdout + run.stderr
    assert not (workshop / ".lab-work" / "demo.txt").exists(), "its cleanup undoes it"


def test_new_refuses_to_overwrite_or_reuse_an_id(workshop: Path) -> None:
    assert labrunner(workshop, "new", "demo").returncode == 0
    lab = workshop / "labs" / "19-demo.yaml"
    lab.write_text(lab.read_text() + "# my edits\n")
    again = labrunner(workshop, "new", "demo")
    assert again.returncode == 2
    assert "already exists" in again.stderr
    assert lab.read_text().endswith("# my edits\n")
    assert len(list((workshop / "labs").glob("*demo*"))) == 1
    taken = labrunner(workshop, "new", "strict-mtls")
    assert taken.returncode == 2 and "already exists" in taken.stderr
    (workshop / "labs" / "30-other.yaml").write_text(
        lab.read_text().replace("id: demo", "id: reused")
    )
    reused = labrunner(workshop, "new", "reused")
    assert reused.returncode == 2 and "already used by 30-other.yaml" in reused.stderr


@pytest.mark.parametrize("bad", ["Demo", "my_lab", "-x", "a b"])
def test_new_rejects_a_bad_id(workshop: Path, bad: str) -> None:
    done = labrunner(workshop, "new", "--", bad)
    assert done.returncode == 2
    assert "is not a lab id" in done.stderr


def test_new_in_a_workshop_without_workshop_yaml(tmp_path: Path) -> None:
    (tmp_path / "labs").mkdir()
    done = labrunner(tmp_path, "new", "first-lab", "--title", "My first lab")
    assert done.returncode == 0, done.stderr
    lab = tmp_path / "labs" / "first-lab.yaml"
    assert "title: My first lab" in lab.read_text()
    assert labrunner(tmp_path, "validate").returncode == 0


WORKSHOP = """\
# top comment
apiVersion: labrunner/v1
kind: Workshop
labs:
  # the basics
  - 01-a.yaml   # first
  # then
  - "02-b.yaml"

# trailing comment
contexts: [kind-*]
"""


def test_insert_keeps_comments_and_quoting() -> None:
    out = insert_into_labs(WORKSHOP, "03-c.yaml")
    assert out == WORKSHOP.replace('  - "02-b.yaml"\n', '  - "02-b.yaml"\n  - 03-c.yaml\n')


def test_insert_matches_the_list_indent_and_handles_no_final_newline() -> None:
    text = "kind: Workshop\nlabs:\n    - a.yaml"
    assert insert_into_labs(text, "b.yaml") == "kind: Workshop\nlabs:\n    - a.yaml\n    - b.yaml\n"
    assert insert_into_labs("labs:\n", "a.yaml") == "labs:\n  - a.yaml\n"
    assert insert_into_labs("title: x\n", "a.yaml") == "title: x\n", "no list: name order"
    with pytest.raises(ScaffoldError, match="inline"):
        insert_into_labs("labs: [a.yaml]\n", "b.yaml")


def test_next_file_name_follows_the_numbering(tmp_path: Path) -> None:
    assert next_file_name(tmp_path, "x") == "x.yaml"
    (tmp_path / "9-a.yaml").touch()
    (tmp_path / "010-b.yaml").touch()
    assert next_file_name(tmp_path, "x") == "011-x.yaml"
