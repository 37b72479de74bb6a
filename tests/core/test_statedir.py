"""The state directory is where platformdirs says, found without it where the rule is plain.

``labrunner.statedir`` applies the XDG rule itself on Linux (importing
platformdirs would cost a short command more than the rest of its start-up);
here its answer is held to platformdirs' own under each environment a user may
have (``test_startup_imports`` shows the commands start without importing it).
"""

from __future__ import annotations

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
