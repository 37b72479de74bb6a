"""Load YAML while remembering where every value came from.

Error messages must name the file and line of the offending key, so the
loader composes the YAML node graph (which carries line marks) and converts it
to plain Python values itself, recording the line of every mapping key, value
and list item by path. The conversion also guards against hostile input:
alias expansion is bounded (no "billion laughs"), nesting depth is bounded,
keys must be scalars, duplicate keys are errors, and bytes that are not UTF-8
are reported with their line instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

try:  # the C loader is much faster; fall back to pure Python where it is missing
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

Path_ = tuple[str | int, ...]

MAX_NODES = 200_000
MAX_DEPTH = 64
MAX_BYTES = 8 * 1024 * 1024


class SourceError(Exception):
    """A problem with a source file, with the line it was found on (1-based)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass
class Positions:
    """Line numbers by path: where each key and each value starts."""

    keys: dict[Path_, int] = field(default_factory=dict)
    values: dict[Path_, int] = field(default_factory=dict)

    def line(self, path: Path_, *, key: bool = False) -> int:
        """The line of ``path`` (its key when ``key``), or of the nearest ancestor."""
        table = self.keys if key else self.values
        probe = tuple(path)
        while True:
            if probe in table:
                return table[probe]
            if probe in self.values:
                return self.values[probe]
            if not probe:
                return 1
            probe = probe[:-1]


@dataclass
class Source:
    """One parsed document and where its values came from."""

    path: Path
    data: Any
    positions: Positions


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SourceError(
            f"not valid UTF-8 (byte 0x{raw[exc.start]:02x}); save the file as UTF-8", line
        ) from None


class _Frame:
    """A mapping or sequence under construction."""

    __slots__ = ("anchor", "container", "key", "key_line", "line", "merges", "path", "size")

    def __init__(self, container: Any, path: Path_, line: int, anchor: str | None) -> None:
        self.container = container
        self.path = path
        self.line = line
        self.anchor = anchor
        self.key: Any = _NO_KEY
        self.key_line = line
        self.merges: list[dict[Any, Any]] = []
        self.size = 1


_NO_KEY = object()
_STR_TAG = "tag:yaml.org,2002:str"


def _line(event: yaml.Event) -> int:
    mark = event.start_mark
    return mark.line + 1 if mark is not None else 0


class _Composer:
    """Builds plain values from parser events, iteratively (no recursion).

    The C composer recurses per nesting level and crashes the interpreter on
    deeply nested input, so documents are built here from the event stream,
    which also lets us bound depth and alias expansion as we go.
    """

    def __init__(self) -> None:
        self.positions = Positions()
        self.size = 0
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.resolver = yaml.resolver.Resolver()
        self.constructor = yaml.constructor.SafeConstructor()
        self.stack: list[_Frame] = []
        self.result: Any = None

    def _grow(self, amount: int, line: int) -> None:
        self.size += amount
        if self.size > MAX_NODES:
            raise SourceError(
                f"document expands to more than {MAX_NODES} values (an alias bomb?)", line
            )

    def _child_path(self) -> Path_:
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.container, list):
            return (*top.path, len(top.container))
        return (*top.path, top.key)

    def _scalar(self, event: yaml.ScalarEvent) -> Any:
        line = _line(event)
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.resolver.resolve(  # type: ignore[no-untyped-call]
                yaml.ScalarNode, event.value, event.implicit
            )
        if tag == _STR_TAG:
            return event.value  # what SafeConstructor makes of it, without building a node
        if tag == "tag:yaml.org,2002:merge":
            return "<<"
        if tag not in yaml.constructor.SafeConstructor.yaml_constructors:
            raise SourceError(f"unsupported YAML tag {tag}", line)
        node = yaml.ScalarNode(tag, event.value, None, None, event.style)
        try:
            return self.constructor.construct_object(node, deep=False)
        except (yaml.YAMLError, ValueError, OverflowError, TypeError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SourceError(f"bad value {event.value!r}: {reason}", line) from None

    def _add(self, value: Any, line: int, size: int) -> None:
        """Attach a finished value to the container on top of the stack."""
        if not self.stack:
            self.result = value
            return
        top = self.stack[-1]
        top.size += size
        if isinstance(top.container, list):
            top.container.append(value)
            return
        if top.key is _NO_KEY:
            if isinstance(value, dict | list):
                raise SourceError("mapping keys must be plain strings", line)
            key = value if isinstance(value, str) else str(value)
            if key in top.container:
                raise SourceError(f"duplicate key {key!r}", line)
            top.key = key
            top.key_line = line
            return
        key, top.key = top.key, _NO_KEY
        if key == "<<":
            sources = value if isinstance(value, list) else [value]
            for source in sources:
                if not isinstance(source, dict):
                    raise SourceError("'<<' must merge a mapping", line)
                top.merges.append(source)
            return
        top.container[key] = value
        self.positions.keys[(*top.path, key)] = top.key_line

    def _open(self, container: Any, event: yaml.Event) -> None:
        line = _line(event)
        tag = getattr(event, "tag", None)
        if tag not in (None, "!", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"):
            raise SourceError(f"unsupported YAML tag {tag}", line)
        if len(self.stack) >= MAX_DEPTH:
            raise SourceError(f"nesting deeper than {MAX_DEPTH} levels", line)
        path = self._child_path()
        if not self.stack or not (
            isinstance(self.stack[-1].container, dict) and self.stack[-1].key is _NO_KEY
        ):
            self.positions.values.setdefault(path, line)
        self._grow(1, line)
        self.stack.append(_Frame(container, path, line, getattr(event, "anchor", None)))

    def feed(self, event: yaml.Event) -> None:
        line = _line(event)
        if isinstance(event, yaml.ScalarEvent):
            value = self._scalar(event)
            self._grow(1, line)
            top = self.stack[-1] if self.stack else None
            if top is None or not (isinstance(top.container, dict) and top.key is _NO_KEY):
                self.positions.values.setdefault(self._child_path(), line)
            if event.anchor:
                self.anchors[event.anchor] = (value, 1)
            self._add(value, line, 1)
        elif isinstance(event, yaml.MappingStartEvent):
            self._open({}, event)
        elif isinstance(event, yaml.SequenceStartEvent):
            self._open([], event)
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            frame = self.stack.pop()
            value = frame.container
            if frame.merges:
                merged: dict[Any, Any] = {}
                for source in frame.merges:
                    for k, v in source.items():
                        merged.setdefault(k, v)
                merged.update(value)
                value = merged
            if frame.anchor:
                self.anchors[frame.anchor] = (value, frame.size)
            self._add(value, frame.line, frame.size)
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in self.anchors:
                raise SourceError(f"unknown alias *{event.anchor}", line)
            value, size = self.anchors[event.anchor]
            self._grow(size, line)
            top = self.stack[-1] if self.stack else None
            if top is None or not (isinstance(top.container, dict) and top.key is _NO_KEY):
                self.positions.values.setdefault(self._child_path(), line)
            self._add(value, line, size)


def _events(text: str) -> Iterator[yaml.Event]:
    """The parser's events, as ``yaml.parse`` yields them, at half its cost per event."""
    loader = _Loader(text)
    try:
        get = loader.get_event
        while True:
            event = get()
            if event is None:
                return
            yield event
            if isinstance(event, yaml.StreamEndEvent):
                return
    finally:
        loader.dispose()


def parse_text(text: str, path: Path) -> list[Source]:
    """Parse every YAML document in ``text``; raises SourceError with a line."""
    sources: list[Source] = []
    composer: _Composer | None = None
    try:
        for event in _events(text):
            if isinstance(event, yaml.DocumentStartEvent):
                composer = _Composer()
            elif isinstance(event, yaml.DocumentEndEvent):
                assert composer is not None
                if composer.result is not None:
                    sources.append(Source(path, composer.result, composer.positions))
                composer = None
            elif composer is not None:
                composer.feed(event)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        problem = exc.problem or exc.context or "invalid YAML"
        start = exc.context_mark
        if exc.problem and exc.context and start is not None and start.line + 1 != line:
            # e.g. an unclosed quote: the parser only notices at the end of the file,
            # so point at where the unfinished construct began
            problem += f" ({exc.context} that starts on line {start.line + 1})"
            if mark is not None and mark.index >= len(text.rstrip()):
                line = start.line + 1
        raise SourceError(f"invalid YAML: {problem}", line) from None
    except yaml.YAMLError as exc:
        raise SourceError(f"invalid YAML: {exc}") from None
    return sources


def load_file(path: Path) -> list[Source]:
    """Read and parse a YAML file; raises SourceError for any problem."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise SourceError(f"file is {size} bytes; lab files are limited to {MAX_BYTES}")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SourceError("no such file") from None
    except IsADirectoryError:
        raise SourceError("is a directory, not a lab file") from None
    except PermissionError:
        raise SourceError("permission denied") from None
    except OSError as exc:
        raise SourceError(f"cannot read: {exc.strerror or exc}") from None
    return parse_text(_decode(raw), path)
