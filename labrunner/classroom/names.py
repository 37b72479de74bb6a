"""Names in a class: the class, its learners, and the Kubernetes objects made for them.

An instructor types a class name and hands in a list of people; Kubernetes
wants DNS labels. Every name is checked (or made into a label) once, here,
with an error that says which line of the names file is wrong, so nothing
downstream has to wonder whether a name is safe in a URL path or a label.

Per learner the class namespace holds a ServiceAccount, a Role and a
RoleBinding called by the learner's name, and the progress ConfigMap
``progress-<name>``; every object carries the class and learner labels, so
the instructor's view can watch exactly the class's progress objects and
``class end`` can find everything it made.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

CLASS_PATTERN = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,28}[a-z0-9])?")
LEARNER_PATTERN = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,38}[a-z0-9])?")
RESERVED = frozenset({"default"})
"""Names a namespace already uses for its own ServiceAccount."""

NAMESPACE_PREFIX = "labrunner-class-"
CLASS_OBJECT = "labrunner-class"
"""The ConfigMap that says a namespace holds a class (and whether the class made it)."""
PROGRESS_PREFIX = "progress-"
PROGRESS_KEY = "progress.json"
CLASS_KEY = "class.json"

LABEL_CLASS = "labrunner.dev/class"
LABEL_LEARNER = "labrunner.dev/learner"
LABEL_PART = "labrunner.dev/part"
LABEL_MANAGED = "app.kubernetes.io/managed-by"
MANAGER = "labrunner"
PART_PROGRESS = "progress"
PART_ACCESS = "access"
PART_CLASS = "class"


class BadName(ValueError):
    """A class or learner name that cannot be used (the message says why)."""


@dataclass(frozen=True)
class Learner:
    """One learner: ``name`` is the DNS label, ``display`` what the instructor typed."""

    name: str
    display: str

    @property
    def progress_object(self) -> str:
        """The name of this learner's progress ConfigMap."""
        return PROGRESS_PREFIX + self.name


def check_class_name(name: str) -> str:
    """``name`` if it can name a class; raises BadName saying what is allowed."""
    if not CLASS_PATTERN.fullmatch(name):
        raise BadName(
            f"class name {name!r}: use 1–30 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return name


def check_learner_name(name: str) -> str:
    """``name`` if it can name a learner; raises BadName."""
    if not LEARNER_PATTERN.fullmatch(name):
        raise BadName(
            f"learner name {name!r}: use 1–40 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    if name in RESERVED:
        raise BadName(f"learner name {name!r} is reserved (the namespace's own account)")
    return name


def slug(text: str) -> str:
    """``Zoë O'Neil`` → ``zoe-o-neil``: a DNS label made from what a person is called."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    label = re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")
    return label[:40].rstrip("-")


def numbered(count: int) -> list[Learner]:
    """``learner-01`` … ``learner-NN`` for a class of ``count``."""
    if not 1 <= count <= 1000:
        raise BadName(f"--learners {count}: a class has 1 to 1000 learners")
    width = max(2, len(str(count)))
    return [
        Learner(f"learner-{i:0{width}d}", f"learner {i:0{width}d}") for i in range(1, count + 1)
    ]


def from_lines(lines: list[str], *, source: str = "names") -> list[Learner]:
    """Learners from lines of names (blank lines and ``#`` comments skipped)."""
    learners: list[Learner] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        display = raw.split("#", 1)[0].strip()
        if not display:
            continue
        name = slug(display)
        where = f"{source}:{number}"
        if not name:
            raise BadName(f"{where}: {display!r} has no letters or digits to make a name from")
        try:
            check_learner_name(name)
        except BadName as exc:
            raise BadName(f"{where}: {exc}") from None
        if name in seen:
            raise BadName(
                f"{where}: {display!r} becomes {name!r}, like line {seen[name]}; "
                "make the names differ"
            )
        seen[name] = number
        learners.append(Learner(name, display))
    if not learners:
        raise BadName(f"{source}: no names in it")
    return learners


def from_file(path: Path) -> list[Learner]:
    """Learners from a file of names, one per line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadName(f"cannot read {path}: {exc}") from None
    return from_lines(text.splitlines(), source=str(path))


def namespace_for(class_name: str) -> str:
    """The namespace a class gets unless the instructor names one."""
    return NAMESPACE_PREFIX + class_name


def class_selector(class_name: str) -> str:
    """The label selector of a class's objects."""
    return f"{LABEL_CLASS}={class_name}"


def progress_selector(class_name: str) -> str:
    """The label selector of a class's progress objects."""
    return f"{LABEL_CLASS}={class_name},{LABEL_PART}={PART_PROGRESS}"


def labels(class_name: str, part: str, learner: str | None = None) -> dict[str, str]:
    """The labels every object of a class carries."""
    out = {LABEL_MANAGED: MANAGER, LABEL_CLASS: class_name, LABEL_PART: part}
    if learner is not None:
        out[LABEL_LEARNER] = learner
    return out
