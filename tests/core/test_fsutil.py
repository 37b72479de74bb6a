"""What ``labrunner.fsutil`` gives instead of ``shutil`` and ``tempfile`` (start-up speed).

Each stands in for a standard-library call on the road of a command that starts
no process, so each is held to that call's answers: ``which`` to
``shutil.which``, ``temp_root`` to ``tempfile.gettempdir`` (in a fresh
interpreter, under each environment), ``private_dir`` to ``mkdtemp``'s promise
(a new folder, 0700 from the start), and ``remove_tree`` to
``shutil.rmtree(ignore_errors=True)``, symbolic links included.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from labrunner import fsutil


def _executable(path: Path, text: str = "#!/bin/sh\n") -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_which_finds_what_shutil_which_finds(tmp_path: Path) -> None:
    first, second, empty = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for folder in (first, second, empty):
        folder.mkdir()
    _executable(second / "tool")
    (first / "tool").write_text("not executable")  # skipped, as shutil skips it
    (first / "dir-tool").mkdir()  # a folder is never the answer
    _executable(first / "both")
    _executable(second / "both")
    path = os.pathsep.join(map(str, (first, second, first, empty)))
    for program in ("tool", "both", "dir-tool", "missing", str(second / "tool"), "a/tool"):
        assert fsutil.which(program, path) == shutil.which(program, path=path), program
    assert fsutil.which("tool", path) == str(second / "tool")
    assert fsutil.which("both", path) == str(first / "both")
    assert fsutil.which("tool", "") is None


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"TMPDIR": "{tmp}/chosen"},
        {"TMPDIR": "{tmp}/missing", "TMP": "{tmp}/chosen"},
        {"TMPDIR": "{tmp}/file"},
        {"TMPDIR": "{tmp}/rel/../chosen"},
    ],
    ids=["default", "tmpdir", "first-missing", "not-a-folder", "unnormalised"],
)
def test_temp_root_is_tempfiles_choice(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "chosen").mkdir()
    (tmp_path / "rel").mkdir()
    (tmp_path / "file").write_text("")
    child_env = {k: v for k, v in os.environ.items() if k not in ("TMPDIR", "TEMP", "TMP")} | {
        k: v.format(tmp=tmp_path) for k, v in env.items()
    }
    probe = (
        "import sys\n"
        "from labrunner import fsutil\n"
        "mine = fsutil.temp_root()\n"
        "assert 'tempfile' not in sys.modules\n"
        "import tempfile\n"
        "print(mine == tempfile.gettempdir(), mine)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=child_env, capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("True "), out


def test_private_dir_is_new_and_private_from_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delitem(sys.modules, "tempfile", raising=False)  # fsutil's own answer
    made = []
    for mask in (0, 0o077, 0o277):  # neither widened by a permissive umask nor narrowed
        old = os.umask(mask)
        try:
            made.append(fsutil.private_dir("labrunner-test-"))
        finally:
            os.umask(old)
    assert len(set(made)) == 3
    for folder in made:
        assert folder.parent == tmp_path and folder.name.startswith("labrunner-test-")
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_remove_tree_removes_everything_and_follows_no_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "kept").mkdir(parents=True)
    (outside / "kept" / "file").write_text("precious")
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "deep").write_text("x")
    (tree / "top").write_text("x")
    (tree / "a" / "c").mkdir()
    (tree / "a" / "c" / "f").write_text("x")
    (tree / "link-to-dir").symlink_to(outside)
    (tree / "a" / "link-to-file").symlink_to(outside / "kept" / "file")
    (tree / "dangling").symlink_to(tmp_path / "nowhere")
    fsutil.remove_tree(tree)
    assert not tree.exists() and not tree.is_symlink()
    assert (outside / "kept" / "file").read_text() == "precious"
    # a link given as the tree itself is left alone, as shutil.rmtree leaves it
    link = tmp_path / "link"
    link.symlink_to(outside)
    fsutil.remove_tree(link)
    assert link.is_symlink() and (outside / "kept" / "file").exists()
    fsutil.remove_tree(tmp_path / "never-there")  # errors are ignored
