"""Textual key events as the bytes an xterm sends for them.

Textual names keys (``ctrl+a``, ``shift+tab``, ``f5``, ``alt+b``); the
program on the other side of the PTY expects what a terminal would type:
control characters, ``ESC [ A`` for an arrow (``ESC O A`` once the program
asked for application cursor keys), ``ESC [ 1 ; 5 C`` for Ctrl+Right,
``ESC [ 15 ~`` for F5, ESC before a character for Alt. The encoding follows
xterm's defaults (PC-style function keys, DEL for Backspace), which is what
``TERM=xterm-256color`` promises to readline, vim and less.
"""

from __future__ import annotations

from textual.keys import key_to_character

_CURSOR = {"up": "A", "down": "B", "right": "C", "left": "D", "home": "H", "end": "F"}
_TILDE = {
    "insert": 2,
    "delete": 3,
    "pageup": 5,
    "pagedown": 6,
    "f5": 15,
    "f6": 17,
    "f7": 18,
    "f8": 19,
    "f9": 20,
    "f10": 21,
    "f11": 23,
    "f12": 24,
}
_SS3 = {"f1": "P", "f2": "Q", "f3": "R", "f4": "S"}
_CONTROL = {
    "@": 0x00,
    "at": 0x00,
    "space": 0x00,
    "left_square_bracket": 0x1B,
    "backslash": 0x1C,
    "right_square_bracket": 0x1D,
    "circumflex_accent": 0x1E,
    "underscore": 0x1F,
    "minus": 0x1F,
    "question_mark": 0x7F,
}
_PLAIN = {
    "enter": b"\r",
    "tab": b"\t",
    "backspace": b"\x7f",
    "escape": b"\x1b",
    "space": b" ",
    "newline": b"\n",
}
_MODIFIERS = {"shift": 1, "alt": 2, "meta": 2, "ctrl": 4, "super": 8, "hyper": 8}


def _modifier_code(mods: set[str]) -> int:
    """xterm's modifier parameter: 1 + shift + 2·alt + 4·ctrl + 8·super."""
    return 1 + sum(_MODIFIERS.get(m, 0) for m in mods)


def encode_key(key: str, character: str | None = None, *, app_cursor: bool = False) -> bytes | None:
    """The bytes for Textual key ``key`` (with its ``character``), or None if none.

    ``app_cursor`` is the program's DECCKM mode: unmodified arrows, Home and
    End then send ``ESC O`` instead of ``ESC [``.
    """
    *mod_list, base = key.split("+") if key != "+" else ["+"]
    mods = set(mod_list)
    if base in _CURSOR:
        final = _CURSOR[base]
        if not mods:
            return (b"\x1bO" if app_cursor else b"\x1b[") + final.encode()
        return f"\x1b[1;{_modifier_code(mods)}{final}".encode()
    if base in _TILDE:
        number = _TILDE[base]
        if not mods:
            return f"\x1b[{number}~".encode()
        return f"\x1b[{number};{_modifier_code(mods)}~".encode()
    if base in _SS3:
        if not mods:
            return f"\x1bO{_SS3[base]}".encode()
        return f"\x1b[1;{_modifier_code(mods)}{_SS3[base]}".encode()
    alt = bool(mods & {"alt", "meta"})
    prefix = b"\x1b" if alt else b""
    if base == "tab" and "shift" in mods:
        return prefix + b"\x1b[Z"
    if "ctrl" in mods:
        if len(base) == 1 and base.isascii() and base.isalpha():
            return prefix + bytes([ord(base.lower()) & 0x1F])
        if base in _CONTROL:
            return prefix + bytes([_CONTROL[base]])
        if base == "backspace":
            return prefix + b"\x08"
        if base in _PLAIN:
            return prefix + _PLAIN[base]
        return None
    if base in _PLAIN:
        return prefix + _PLAIN[base]
    text = character
    if not text or not text.isprintable():
        text = _key_character(base)
        if text is not None and "shift" in mods:
            text = text.upper()
    if text is None or not text.isprintable():
        return None
    return prefix + text.encode("utf-8")


def _key_character(name: str) -> str | None:
    """The character a key name stands for (``a``, ``full_stop`` → ``.``)."""
    return name if len(name) == 1 else key_to_character(name)


_DETACH_SYMBOLS = {
    "]": "right_square_bracket",
    "\\": "backslash",
    "^": "circumflex_accent",
    "_": "underscore",
}
_SHELL_NEEDS = {
    "c": "interrupts a command",
    "d": "ends input",
    "z": "suspends a command",
    "h": "is Backspace",
    "i": "is Tab",
    "j": "is Enter",
    "m": "is Enter",
}


def detach_key(text: str) -> str:
    """The Textual key name for a learner's detach key (``ctrl+]``, ``C-\\``, ``^t``,
    ``ctrl+right_square_bracket``); ValueError says why one cannot be used.

    It must be a control key (one byte, so the real terminal attached by ``t`` can
    watch for it too), and not one the shell needs."""
    spelled = text.strip().lower()
    for prefix in ("ctrl+", "ctrl-", "c-", "^"):
        if spelled.startswith(prefix) and len(spelled) > len(prefix):
            base = spelled[len(prefix) :]
            break
    else:
        raise ValueError(f"{text!r} is not a Ctrl key; write it like ctrl+] or ctrl+t")
    base = _DETACH_SYMBOLS.get(base, base)
    if base in _SHELL_NEEDS:
        raise ValueError(f"ctrl+{base} {_SHELL_NEEDS[base]} in the shell; choose another")
    key = f"ctrl+{base}"
    code = encode_key(key)
    if code is None or len(code) != 1 or code == b"\x1b":
        raise ValueError(f"{text!r} cannot be told apart in a terminal; try ctrl+] or ctrl+t")
    return key
