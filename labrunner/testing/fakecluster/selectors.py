"""Label and field selectors, in both string and ``LabelSelector`` object form.

kubectl and the Python client send selectors as query strings (``app in (web,x),version!=v2``);
controllers in the simulation match ``spec.selector`` objects. Both forms compile to the same
:class:`Requirement` list so they can never disagree.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_VALUE = r"[-A-Za-z0-9_.]*"
_EQUALITY = re.compile(rf"^({_KEY})\s*(==|!=|=|>|<)\s*({_VALUE})$")
_SET = re.compile(rf"^({_KEY})\s+(in|notin)\s*\(([^()]*)\)$")
_EXISTS = re.compile(rf"^(!?)\s*({_KEY})$")
_VALUE_RE = re.compile(rf"^{_VALUE}$")


class SelectorError(ValueError):
    """A selector that does not parse; the API answers 400."""


@dataclass(frozen=True)
class Requirement:
    """One clause of a label selector."""

    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists", ">", "<"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a label map satisfies this clause."""
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if self.op in (">", "<") and present and value is not None:
            try:
                have, want = int(value), int(self.values[0])
            except ValueError:
                return False
            return have > want if self.op == ">" else have < want
        return False


LabelSelector = tuple[Requirement, ...]


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse ``a=b,c!=d,e in (f,g),!h`` (an empty string selects everything)."""
    if not text or not text.strip():
        return ()
    reqs: list[Requirement] = []
    for raw in _split_top_level(text):
        part = raw.strip()
        if not part:
            raise SelectorError(
                f"unable to parse requirement: found '', expected: identifier in {text!r}"
            )
        if m := _SET.match(part):
            values = tuple(v.strip() for v in m.group(3).split(",") if v.strip())
            for v in values:
                if not _VALUE_RE.match(v):
                    raise SelectorError(f"unable to parse requirement: invalid label value {v!r}")
            reqs.append(Requirement(m.group(1), m.group(2), values))
        elif m := _EQUALITY.match(part):
            op = "=" if m.group(2) == "==" else m.group(2)
            reqs.append(Requirement(m.group(1), op, (m.group(3),)))
        elif m := _EXISTS.match(part):
            reqs.append(Requirement(m.group(2), "!exists" if m.group(1) else "exists"))
        else:
            raise SelectorError(f"unable to parse requirement: {part!r}")
    return tuple(reqs)


def selector_from_object(selector: Mapping[str, Any] | None) -> LabelSelector:
    """Compile a ``LabelSelector`` object (matchLabels + matchExpressions)."""
    if not selector:
        return ()
    reqs = [Requirement(k, "=", (str(v),)) for k, v in (selector.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    for expr in selector.get("matchExpressions") or []:
        op = ops.get(expr.get("operator", ""))
        if op is None:
            raise SelectorError(f"{expr.get('operator')!r} is not a valid label selector operator")
        reqs.append(Requirement(expr["key"], op, tuple(expr.get("values") or ())))
    return tuple(reqs)


def selector_to_string(selector: LabelSelector) -> str:
    """Render a selector the way ``status.selector`` and kubectl write it."""
    out: list[str] = []
    for r in selector:
        if r.op == "exists":
            out.append(r.key)
        elif r.op == "!exists":
            out.append(f"!{r.key}")
        elif r.op in ("in", "notin"):
            out.append(f"{r.key} {r.op} ({','.join(r.values)})")
        else:
            out.append(f"{r.key}{r.op}{r.values[0]}")
    return ",".join(out)


def labels_match(selector: LabelSelector, labels: Mapping[str, str] | None) -> bool:
    """Whether every clause holds for the labels."""
    have = labels or {}
    return all(r.matches(have) for r in selector)


@dataclass(frozen=True)
class FieldRequirement:
    """One ``path=value`` / ``path!=value`` clause of a field selector."""

    path: str
    negated: bool
    value: str


FieldSelector = tuple[FieldRequirement, ...]

_FIELD_LABELS: dict[tuple[str, str], frozenset[str]] = {
    (
        "",
        "pods",
    ): frozenset(
        {
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        }
    ),
    ("", "secrets"): frozenset({"type"}),
    ("", "namespaces"): frozenset({"status.phase"}),
    ("", "nodes"): frozenset({"spec.unschedulable"}),
    ("", "events"): frozenset(
        {
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        }
    ),
    ("apps", "replicasets"): frozenset({"status.replicas"}),
}


def parse_field_selector(text: str | None, group: str = "", plural: str = "") -> FieldSelector:
    """Parse ``metadata.name=x,status.phase!=Running``; unknown field labels are rejected."""
    if not text or not text.strip():
        return ()
    allowed = {"metadata.name", "metadata.namespace"} | _FIELD_LABELS.get((group, plural), set())
    reqs: list[FieldRequirement] = []
    for raw in _split_top_level(text):
        part = raw.strip()
        m = re.match(r"^([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(.*)$", part)
        if not m:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        if m.group(1) not in allowed:
            raise SelectorError(f"field label not supported: {m.group(1)}")
        reqs.append(FieldRequirement(m.group(1), m.group(2) == "!=", m.group(3)))
    return tuple(reqs)


def _field_value(obj: Mapping[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def fields_match(selector: FieldSelector, obj: Mapping[str, Any]) -> bool:
    """Whether an object satisfies every field clause."""
    for req in selector:
        equal = _field_value(obj, req.path) == req.value
        if equal == req.negated:
            return False
    return True
