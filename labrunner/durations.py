"""Durations as lab authors write them: ``90s``, ``2m``, ``1h30m``, ``500ms``, ``30d``,
or a number of seconds."""

from __future__ import annotations

import re

# patterns ``re`` compiles (and keeps) when a duration is first parsed: a command that
# parses none (a ``check`` reading its labs from the compiled-lab cache) never compiles them
_PART = r"(\d+(?:\.\d+)?)(ms|s|m|h|d)"
PATTERN = r"^\s*(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+\s*$|^\s*\d+(?:\.\d+)?\s*$"
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

SCHEMA: dict[str, object] = {
    "description": "a duration: 90s, 2m, 1h30m, 500ms, 30d, or a number of seconds",
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": PATTERN},
    ],
}


def parse_duration(value: object) -> float:
    """Seconds for a duration value; raises ValueError with a readable reason."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration (use 90s, 2m or a number of seconds)")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{value} is negative; a duration must be 0 or more")
        return float(value)
    if isinstance(value, str) and re.match(PATTERN, value):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            return sum(float(n) * _UNIT[u] for n, u in re.findall(_PART, text))
    raise ValueError(f"{value!r} is not a duration (use 90s, 2m, 1h30m or a number of seconds)")


def format_duration(seconds: float) -> str:
    """A compact human form: ``850ms``, ``12s``, ``2m05s``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
