"""Which Kubernetes versions each Istio release supports: the one table, in one place.

It also reads which Istio release a cluster runs, from the istiod
Deployment, so the ``istio_installed`` verifier and the doctor agree on it.

A workshop pins one Istio release; learners bring whatever cluster their kind
or minikube happens to create. ``istioctl install`` refuses (or warns about)
a cluster older than the release's ``MinK8SVersion``, and releases are only
tested up to some newest Kubernetes minor. The doctor uses this table to warn
before lab one rather than halfway through the install.

Sources (notes/istio-labs.md §1.2): the istio.io support tables and the
``MinK8SVersion`` constant in istio/istio for each release. ``newest`` is the
newest Kubernetes minor the release was tested with, where the table says;
None means unknown (no warning about new clusters then).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from labrunner.cluster.resources import name_of


@dataclass(frozen=True)
class Support:
    """The Kubernetes minors an Istio minor works with."""

    minimum: int
    """``MinK8SVersion``: below it istioctl precheck and install complain (1.x)."""
    oldest: int
    """The oldest Kubernetes minor the release is tested with."""
    newest: int | None
    """The newest Kubernetes minor the release is tested with, if known."""


ISTIO_KUBERNETES: dict[int, Support] = {
    20: Support(minimum=25, oldest=25, newest=29),
    21: Support(minimum=26, oldest=26, newest=29),
    22: Support(minimum=26, oldest=26, newest=None),
    23: Support(minimum=26, oldest=27, newest=30),
    24: Support(minimum=28, oldest=28, newest=31),
    25: Support(minimum=28, oldest=29, newest=32),
    26: Support(minimum=29, oldest=29, newest=33),
    27: Support(minimum=29, oldest=29, newest=None),
    28: Support(minimum=29, oldest=29, newest=34),
    29: Support(minimum=30, oldest=30, newest=None),
    # 1.30: MinK8SVersion is 1.32; its support table is not in our notes, 1.34 is
    # the newest minor its predecessors were tested with.
    30: Support(minimum=32, oldest=32, newest=34),
}
"""Istio 1.<key> → supported Kubernetes 1.<minor> range."""

_MINOR = re.compile(r"^v?1\.(\d+)")


def minor(version: str | None) -> int | None:
    """The minor number of ``1.30.3``, ``v1.32.2`` or ``1.33+`` (None when unparseable)."""
    if not version:
        return None
    match = _MINOR.match(version.strip())
    return int(match.group(1)) if match else None


def kubernetes_support(istio: str, kubernetes_minor: int) -> tuple[bool | None, str]:
    """Whether Istio ``istio`` supports Kubernetes 1.``kubernetes_minor``, and why.

    None means unknown (the Istio release is not in the table).
    """
    istio_minor = minor(istio)
    support = ISTIO_KUBERNETES.get(istio_minor) if istio_minor is not None else None
    if support is None:
        return None, f"no support data for Istio {istio}"
    newest = f"1.{support.newest}" if support.newest else "newer"
    span = f"1.{support.oldest}–{newest}"
    if kubernetes_minor < support.minimum:
        return False, (
            f"Istio {istio} needs Kubernetes ≥ 1.{support.minimum} (supports {span}); "
            "istioctl install will refuse this cluster"
        )
    if kubernetes_minor < support.oldest:
        return False, f"Istio {istio} is tested with Kubernetes {span}, not 1.{kubernetes_minor}"
    if support.newest is not None and kubernetes_minor > support.newest:
        return False, (
            f"Istio {istio} is tested with Kubernetes {span}; 1.{kubernetes_minor} is newer "
            "(it may work, but it is untested)"
        )
    return True, f"Istio {istio} supports Kubernetes {span}"


_ISTIO_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


def istio_version_of(deployment: Mapping[str, Any]) -> str | None:
    """The Istio version istiod runs: its image tag, else its version labels."""
    spec = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = spec.get("containers") or []
    chosen = next((c for c in containers if c.get("name") == "discovery"), None)
    for c in [chosen, *containers]:
        image = str((c or {}).get("image") or "")
        ref = image.split("@", 1)[0]
        tag = ref.rsplit(":", 1)[1] if ":" in ref.rsplit("/", 1)[-1] else ""
        match = _ISTIO_VERSION.match(tag)
        if match:
            return match.group(0).lstrip("v")
    labels = (deployment.get("metadata") or {}).get("labels") or {}
    for key in ("app.kubernetes.io/version", "operator.istio.io/version"):
        match = _ISTIO_VERSION.match(str(labels.get(key) or ""))
        if match:
            return match.group(0).lstrip("v")
    rev = str(labels.get("istio.io/rev") or "")
    match = re.match(r"^(\d+)-(\d+)(?:-(\d+))?", rev)
    if match:
        return ".".join(g for g in match.groups() if g is not None)
    return None


def version_matches(found: str, wanted: str) -> bool:
    """``1.30.3`` matches ``1.30.3`` and ``1.30``; a leading ``v`` is ignored."""
    have = found.lstrip("v").split(".")
    want = wanted.strip().lstrip("v").split(".")
    return have[: len(want)] == want


def find_istiod(deployments: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The istiod Deployment (``istiod``, else the first revisioned ``istiod-<rev>``)."""
    by_name = {name_of(d): d for d in deployments}
    if "istiod" in by_name:
        return by_name["istiod"]
    revisioned = sorted(n for n in by_name if n.startswith("istiod-"))
    return by_name[revisioned[0]] if revisioned else None
