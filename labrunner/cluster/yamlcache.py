"""Kubeconfig files parsed once: PyYAML's answer kept as positions in the file, never values.

Every ``labrunner check`` reads the kubeconfig, and importing PyYAML costs
more than the rest of reading it. So once a file has been parsed, its
structure is kept in the cache directory the command names
(:func:`enable`), and the next start rebuilds the same data from the file's
own text without PyYAML.

Two rules keep this honest:

* **Never stale.** The entry is keyed by the SHA-256 of the file's bytes,
  read on every start: any change to the file (``kubectl config
  use-context``, a re-exported cluster, an edit that keeps the size and the
  modification time) misses the cache and parses again. An entry that does
  not decode is ignored.
* **No secrets on disk.** Tokens, keys and certificates stay in the
  kubeconfig only. The entry holds the shape of the document, the plain
  values ``true``, ``false``, ``null`` and numbers, and for every string a
  pair of offsets into the file's text (the string is those characters, with
  or without their quotes). A file with a string that is not spelt out
  verbatim (escapes, folded lines), an anchor merge or a timestamp is simply
  not cached. Before an entry is written it is decoded again and compared
  with what PyYAML built: whatever the cache answers is PyYAML's answer.

One entry per kubeconfig path (named by the SHA-256 of the path), replaced
when the file changes; written atomically, owner-only.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from labrunner.fsutil import sha256_hex

TYPE_CHECKING = False  # as typing's, without importing typing (a start-up cost)
if TYPE_CHECKING:
    from typing import Any

FORMAT = 1
_directory: Path | None = None


def enable(directory: Path | None) -> None:
    """Keep parsed kubeconfigs in ``directory`` from now on (None: no cache)."""
    global _directory
    _directory = directory


def _entry(path: Path) -> Path | None:
    if _directory is None:
        return None
    name = sha256_hex(str(path).encode())[:32]
    return _directory / "kubeconfig" / f"{name}.json"


def _decode(item: Any, text: str) -> Any:
    kind = item[0]
    if kind == "s":
        return text[item[1] : item[2]]
    if kind == "v":
        return item[1]
    if kind == "l":
        return [_decode(x, text) for x in item[1]]
    if kind == "m":
        return {_decode(k, text): _decode(v, text) for k, v in item[1]}
    raise ValueError(f"unknown item {kind!r}")


def lookup(path: Path, raw: bytes) -> tuple[bool, Any]:
    """``(True, data)`` when ``path``'s entry is for exactly ``raw``; else ``(False, None)``."""
    entry = _entry(path)
    if entry is None:
        return False, None
    try:
        stored = json.loads(entry.read_bytes())
        if stored["format"] != FORMAT or stored["sha256"] != sha256_hex(raw):
            return False, None
        return True, _decode(stored["doc"], raw.decode("utf-8"))
    except (OSError, ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError):
        return False, None


class _NotVerbatim(Exception):
    """The document holds something the cache cannot spell as offsets."""


def _encode(node: Any, text: str, constructed: Any) -> Any:
    import yaml  # lazy: only a cache miss, which parsed the file, gets here

    if isinstance(node, yaml.ScalarNode):
        value = constructed.construct_object(node)
        if isinstance(value, str):
            start, end = node.start_mark.index, node.end_mark.index
            if text[start:end] == value:
                return ["s", start, end]
            if end - start >= 2 and text[start + 1 : end - 1] == value:
                return ["s", start + 1, end - 1]
            raise _NotVerbatim
        if value is None or isinstance(value, bool | int):
            return ["v", value]
        if isinstance(value, float) and math.isfinite(value):
            return ["v", value]
        raise _NotVerbatim
    if isinstance(node, yaml.SequenceNode):
        return ["l", [_encode(x, text, constructed) for x in node.value]]
    if isinstance(node, yaml.MappingNode):
        pairs = []
        for key, value in node.value:
            if key.tag == "tag:yaml.org,2002:merge":
                raise _NotVerbatim
            pairs.append([_encode(key, text, constructed), _encode(value, text, constructed)])
        return ["m", pairs]
    raise _NotVerbatim


def keep(path: Path, raw: bytes, data: Any) -> None:
    """Remember ``data`` (PyYAML's parse of ``raw``) for ``path``, if it can be kept safely."""
    entry = _entry(path)
    if entry is None:
        return
    import yaml  # lazy: see _encode

    try:
        text = raw.decode("utf-8")
        if text.startswith("\ufeff"):
            return  # offsets would count the byte-order mark
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        if node is None:
            return
        doc = _encode(node, text, yaml.constructor.SafeConstructor())
        if _decode(doc, text) != data:
            return
    except (_NotVerbatim, yaml.YAMLError, UnicodeDecodeError, RecursionError, TypeError):
        return
    record = {"format": FORMAT, "sha256": sha256_hex(raw), "doc": doc}
    # lazy: only a cache miss writes (start-up speed)
    from labrunner.fsutil import write_atomic

    try:
        entry.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(entry, json.dumps(record, separators=(",", ":")).encode(), mode=0o600)
    except OSError:
        pass
