"""The state directory is where platformdirs says, found without it where the rule is plain.

``labrunner.statedir`` applies the XDG rule itself on Linux (importing
platformdirs would cost a short command more than the rest of its start-up);
here its answer is held to platformdirs' own under each environment a user may
have, and the commands are shown to start without importing platformdirs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from platformdirs import user_state_dir

from labrunner import statedir
from labrunner.state.store import state_dir


@pytest.mark.parametrize(
    "env",
    [
        {"HOME": "{tmp}/home"},
        {"HOME": "{tmp}/home/"},
        {"HOME": "{tmp}/home", "XDG_STATE_HOME": "{tmp}/xdg"},
        {"HOME": "{tmp}/home", "XDG_STATE_HOME": "relative/xdg"},
        {"HOME": "{tmp}/home", "XDG_STATE_HOME": ""},
        {"HOME": "relative-home"},
        {},
    ],
    ids=["home", "home-slash", "xdg", "xdg-relative", "xdg-empty", "home-relative", "no-home"],
)
def test_the_state_dir_is_platformdirs_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    for name in ("HOME", "XDG_STATE_HOME", "LABRUNNER_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(tmp=tmp_path))
    try:
        expected: str | None = user_state_dir("labrunner", appauthor=False)
    except RuntimeError:  # no usable home at all: then both must fail alike
        expected = None
    if expected is None:
        with pytest.raises(RuntimeError):
            statedir.state_root()
        return
    assert statedir.state_root() == expected
    assert state_dir() == Path(expected)


def test_the_override_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("LABRUNNER_STATE_DIR", "~/elsewhere")
    assert statedir.state_root() == str(tmp_path / "elsewhere")


def test_commands_start_without_platformdirs(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABRUNNER_", "XDG_"))}
    env["HOME"] = str(tmp_path)
    probe = (
        "import sys\n"
        "sys.argv = ['labrunner', *sys.argv[1:]]\n"
        "from labrunner.launch import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('PLATFORMDIRS', 'platformdirs' in sys.modules)\n"
    )
    labs = Path(__file__).resolve().parents[2] / "labs"
    for argv in (["--help"], ["--help"], ["--labs", str(labs), "list"]):
        out = subprocess.run(
            [sys.executable, "-c", probe, *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        ).stdout
        assert out.strip().endswith("PLATFORMDIRS False"), (argv, out)
    # and the state went where platformdirs would have put it
    assert (tmp_path / ".local" / "state" / "labrunner" / "cache").is_dir()
