"""Textual key events become the bytes xterm sends."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from labrunner.cli import main
from labrunner.tui.terminal.keys import detach_key, encode_key


@pytest.mark.parametrize(
    ("key", "character", "app_cursor", "expected"),
    [
        ("a", "a", False, b"a"),
        ("A", "A", False, b"A"),
        ("shift+a", "A", False, b"A"),
        ("full_stop", ".", False, b"."),
        ("space", " ", False, b" "),
        ("é", "é", False, "é".encode()),
        ("enter", "\r", False, b"\r"),
        ("tab", "\t", False, b"\t"),
        ("shift+tab", None, False, b"\x1b[Z"),
        ("backspace", "\x7f", False, b"\x7f"),
        ("ctrl+backspace", None, False, b"\x08"),
        ("escape", "\x1b", False, b"\x1b"),
        ("up", None, False, b"\x1b[A"),
        ("up", None, True, b"\x1bOA"),
        ("left", None, True, b"\x1bOD"),
        ("home", None, False, b"\x1b[H"),
        ("end", None, True, b"\x1bOF"),
        ("ctrl+right", None, True, b"\x1b[1;5C"),
        ("shift+up", None, False, b"\x1b[1;2A"),
        ("alt+left", None, False, b"\x1b[1;3D"),
        ("pageup", None, False, b"\x1b[5~"),
        ("pagedown", None, False, b"\x1b[6~"),
        ("delete", None, False, b"\x1b[3~"),
        ("insert", None, False, b"\x1b[2~"),
        ("ctrl+delete", None, False, b"\x1b[3;5~"),
        ("f1", None, False, b"\x1bOP"),
        ("f4", None, False, b"\x1bOS"),
        ("shift+f1", None, False, b"\x1b[1;2P"),
        ("f5", None, False, b"\x1b[15~"),
        ("f10", None, False, b"\x1b[21~"),
        ("f12", None, False, b"\x1b[24~"),
        ("ctrl+f5", None, False, b"\x1b[15;5~"),
        ("ctrl+a", "\x01", False, b"\x01"),
        ("ctrl+c", "\x03", False, b"\x03"),
        ("ctrl+z", None, False, b"\x1a"),
        ("ctrl+@", "\x00", False, b"\x00"),
        ("ctrl+backslash", None, False, b"\x1c"),
        ("ctrl+right_square_bracket", None, False, b"\x1d"),
        ("ctrl+underscore", None, False, b"\x1f"),
        ("alt+b", "b", False, b"\x1bb"),
        ("alt+shift+b", "B", False, b"\x1bB"),
        ("alt+ctrl+a", None, False, b"\x1b\x01"),
        ("alt+enter", None, False, b"\x1b\r"),
        ("alt+backspace", None, False, b"\x1b\x7f"),
        ("f24", None, False, None),
        ("ctrl+shift+f13", None, False, None),
    ],
)
def test_keys_are_encoded_like_xterm(
    key: str, character: str | None, app_cursor: bool, expected: bytes | None
) -> None:
    assert encode_key(key, character, app_cursor=app_cursor) == expected


@pytest.mark.parametrize(
    ("spelled", "key"),
    [
        ("ctrl+]", "ctrl+right_square_bracket"),
        ("C-]", "ctrl+right_square_bracket"),
        ("^T", "ctrl+t"),
        ("ctrl-\\", "ctrl+backslash"),
        ("ctrl+right_square_bracket", "ctrl+right_square_bracket"),
    ],
)
def test_a_detach_key_is_read_the_ways_people_write_it(spelled: str, key: str) -> None:
    assert detach_key(spelled) == key
    assert encode_key(key) is not None and len(encode_key(key) or b"") == 1


@pytest.mark.parametrize(
    ("spelled", "why"),
    [
        ("ctrl+c", "interrupts a command"),
        ("ctrl+d", "ends input"),
        ("ctrl+[", "cannot be told apart"),
        ("q", "is not a Ctrl key"),
        ("ctrl+f5", "cannot be told apart"),
    ],
)
def test_a_detach_key_the_shell_needs_is_refused(spelled: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        detach_key(spelled)


def test_run_refuses_a_detach_key_the_shell_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Usage errors (exit 2) name the option and say why, from the option or the variable."""
    result = CliRunner().invoke(main, ["run", "--detach-key", "ctrl+c"])
    assert result.exit_code == 2
    assert "--detach-key (LABRUNNER_DETACH_KEY): ctrl+c interrupts a command" in result.output
    monkeypatch.setenv("LABRUNNER_DETACH_KEY", "F5")
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 2
    assert "'F5' is not a Ctrl key" in result.output
