"""Reading what bash wrote with its own quoting: ``printf %q`` and ``export -p``.

The lab shell reports values back with builtins only — ``printf %q`` in the
command framing, ``export -p`` in the state it saves after every command —
because a builtin has no size limit, while anything ``exec``-ed (``env -0``)
fails once one variable passes the kernel's 128 KiB per-string limit. These
functions undo bash's quoting exactly, bytes in, bytes out: ``'…'``,
``$'…'`` (ANSI-C escapes, which bash uses for control characters and bytes
that are not text), ``"…"`` and backslashes.
"""

from __future__ import annotations

import re

_SIMPLE_ESCAPES = {
    ord("a"): b"\a",
    ord("b"): b"\b",
    ord("e"): b"\x1b",
    ord("E"): b"\x1b",
    ord("f"): b"\f",
    ord("n"): b"\n",
    ord("r"): b"\r",
    ord("t"): b"\t",
    ord("v"): b"\v",
    ord("\\"): b"\\",
    ord("'"): b"'",
    ord('"'): b'"',
    ord("?"): b"?",
}
_OCTAL = frozenset(b"01234567")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_DQ_ESCAPE = re.compile(rb'\\([\\"$`\n])')


def _ansi_c(data: bytes, i: int, out: bytearray) -> int:
    """Decode the body of ``$'…'`` starting at ``data[i]``; returns the index after the quote."""
    n = len(data)
    while i < n:
        c = data[i]
        if c == 0x27:  # '
            return i + 1
        if c != 0x5C or i + 1 >= n:  # not a backslash
            out.append(c)
            i += 1
            continue
        e = data[i + 1]
        i += 2
        if e in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[e]
        elif e in _OCTAL:
            j = i - 1
            while i < n and i - j < 3 and data[i] in _OCTAL:
                i += 1
            out.append(int(data[j:i], 8) & 0xFF)
        elif e == ord("x") and i < n and data[i] in _HEX:
            j = i
            while i < n and i - j < 2 and data[i] in _HEX:
                i += 1
            out.append(int(data[j:i], 16))
        elif e in (ord("u"), ord("U")) and i < n and data[i] in _HEX:
            j = i
            width = 4 if e == ord("u") else 8
            while i < n and i - j < width and data[i] in _HEX:
                i += 1
            out += chr(min(int(data[j:i], 16), 0x10FFFF)).encode("utf-8", "surrogatepass")
        elif e == ord("c") and i < n:
            out.append(data[i] & 0x1F)
            i += 1
        else:
            out += bytes((0x5C, e))
    return i


def unquote(data: bytes) -> bytes:
    """The bytes a bash word quoted by ``printf %q`` (or ``${v@Q}``) stands for."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        c = data[i]
        if c == 0x24 and i + 1 < n and data[i + 1] == 0x27:  # $'
            i = _ansi_c(data, i + 2, out)
        elif c == 0x27:  # '
            end = data.find(b"'", i + 1)
            end = n if end < 0 else end
            out += data[i + 1 : end]
            i = end + 1
        elif c == 0x22:  # "
            i = _double_quoted(data, i + 1, out)
        elif c == 0x5C and i + 1 < n:  # backslash
            if data[i + 1] != 0x0A:  # a backslash-newline is a line continuation
                out.append(data[i + 1])
            i += 2
        else:
            out.append(c)
            i += 1
    return bytes(out)


def _double_quoted(data: bytes, i: int, out: bytearray) -> int:
    n = len(data)
    start = i
    while i < n:
        c = data[i]
        if c == 0x5C:
            i += 2
            continue
        if c == 0x22:
            break
        i += 1
    out += _DQ_ESCAPE.sub(lambda m: b"" if m.group(1) == b"\n" else m.group(1), data[start:i])
    return i + 1


_DOUBLE = rb'"(?:[^"\\]|\\.)*"'
_ANSI_C = rb"\$'(?:[^'\\]|\\.)*'"
_ARRAY = rb"\((?:[^()\"'\\]|\\.|" + _DOUBLE + rb"|" + _ANSI_C + rb")*\)"
_VALUE = rb"(?:" + _DOUBLE + rb"|" + _ANSI_C + rb"|" + _ARRAY + rb"|[^\n]*)"
_STATEMENT = re.compile(
    rb"(?:declare -([A-Za-z-]+)|export) ([A-Za-z_][A-Za-z0-9_]*)(?:=(" + _VALUE + rb"))?\n",
    re.DOTALL,
)


def parse_exports(data: bytes) -> tuple[dict[str, str], int]:
    """The exported variables in ``export -p`` output at the start of ``data``.

    Returns the variables (values decoded as UTF-8, bad bytes replaced) and
    where the ``export -p`` part ends. Exported names without a value, and
    arrays (which bash never passes to a child), are left out, as ``env``
    would.
    """
    env: dict[str, str] = {}
    pos = 0
    match = _STATEMENT.match
    while True:
        found = match(data, pos)
        if found is None:
            return env, pos
        pos = found.end()
        flags, name, value = found.group(1), found.group(2), found.group(3)
        if value is None or (flags and (b"a" in flags or b"A" in flags)):
            continue
        plain = value[:1] == b'"' and b"\\" not in value  # the common case: nothing escaped
        raw = value[1:-1] if plain else unquote(value)
        env[name.decode("ascii")] = raw.decode("utf-8", "replace")
