"""What the doctor found, as typed data the CLI prints and the TUI summarises.

A finding says what was checked (``topic`` and ``name``), what was found
(``detail``, and the ``version`` when there is one), whether it is fine, and
what to do when it is not. Front ends read the fields, never the wording:
the TUI's status line is built from ``topic``, ``ok``, ``found`` and
``version``, so rewording a detail cannot change what it shows.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Topic(enum.Enum):
    """What a finding is about."""

    TOOL = "tool"
    """A program the labs use (``name`` says which)."""
    LABS = "labs"
    """The workshop's lab files."""
    CONTEXT = "context"
    """The kube context labrunner would act on, and the guard's verdict."""
    CLUSTER = "cluster"
    """Whether the API server answers."""
    KUBERNETES = "kubernetes"
    """The cluster's Kubernetes version against the pinned Istio."""
    ISTIO = "istio"
    """istiod and its version against the pinned one."""
    GATEWAY = "gateway"
    """How the ingress gateway can be reached."""

    @property
    def category(self) -> str:
        """The group a finding is listed under: ``tools``, ``labs`` or ``cluster``."""
        if self is Topic.TOOL:
            return "tools"
        if self is Topic.LABS:
            return "labs"
        return "cluster"


@dataclass(frozen=True)
class Finding:
    """One thing the doctor checked."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = False
    topic: Topic = Topic.TOOL
    version: str | None = None
    """The version found (a tool's, the cluster's Kubernetes, istiod's), when known."""
    found: bool = True
    """False when what was looked for is not there at all (a tool not on PATH, no istiod)."""

    @property
    def category(self) -> str:
        """``tools``, ``labs`` or ``cluster``."""
        return self.topic.category

    @property
    def blocking(self) -> bool:
        """True when the workshop cannot run because of this finding."""
        return self.required and not self.ok

    def as_json(self) -> dict[str, Any]:
        """The finding as plain data (``labrunner doctor --json``)."""
        return {
            "name": self.name,
            "ok": self.ok,
            "detail": self.detail,
            "fix": self.fix,
            "required": self.required,
            "category": self.category,
            "topic": self.topic.value,
            "version": self.version,
            "found": self.found,
        }
