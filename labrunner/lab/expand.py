"""``${VAR}`` expansion for check parameters and env values.

Only the braced form is expanded (``${NS}``, ``${NS:-default}``), so the
``$`` in a regular expression or a jsonpath stays as written; ``$${`` gives a
literal ``${``. Commands are not expanded here: they go to bash as the
learner would type them, and bash expands them with the same variables.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

TYPE_CHECKING = False  # as typing's, without importing typing (a start-up cost)
if TYPE_CHECKING:
    from typing import Any

_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class UnsetVariable(KeyError):
    """A ``${VAR}`` without a default named a variable that is not set."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"${{{self.name}}} is not set"


def expand_str(text: str, env: Mapping[str, str]) -> str:
    """``text`` with every ``${VAR}`` replaced from ``env``; raises UnsetVariable."""
    if "$" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is not None:
                return default
            raise UnsetVariable(name)
        return value

    return _REF.sub(replace, text)


def expand(value: Any, env: Mapping[str, str]) -> Any:
    """``value`` with strings expanded recursively through lists and mappings."""
    if isinstance(value, str):
        return expand_str(value, env)
    if isinstance(value, Mapping):
        return {k: expand(v, env) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [expand(v, env) for v in value]
    return value


def references(value: Any) -> Iterator[tuple[str, bool]]:
    """Every ``(name, has_default)`` referenced in strings inside ``value``."""
    if isinstance(value, str):
        for match in _REF.finditer(value):
            if match.group(1):
                yield match.group(1), match.group(2) is not None
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from references(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from references(v)


def with_env(base: Mapping[str, str], *layers: Mapping[str, str]) -> dict[str, str]:
    """``base`` with each layer's variables set in turn, as a lab shell starts.

    A value may use variables set before it (``PATH: ${ISTIO_HOME}/bin:${PATH}``);
    one that names an unset variable is kept as written.
    """
    env = dict(base)
    for layer in layers:
        for key, value in layer.items():
            try:
                env[key] = expand_str(value, env)
            except UnsetVariable:
                env[key] = value
    return env
