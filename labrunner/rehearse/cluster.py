"""The simulated cluster a rehearsal runs against, and what it starts with.

Each lab is rehearsed on a fresh simulated cluster (``labrunner.testing``'s
fake API server, in this process): kubectl and the verifiers talk to it over
HTTP as they would to kind, Deployments roll out, pods become Ready and get
their sidecars, Events are recorded. A fresh cluster per lab means one lab's
leftovers can never make another lab's checks pass.

What the cluster starts with is the workshop's to declare (``rehearse:`` in
``workshop.yaml``): CRD files (Istio's come from the release on this machine,
never from the repository) and manifests to preload (the state the install lab
leaves). Preloaded manifests may use ``${VAR}`` from the workshop's env, so a
stand-in's image tags follow the pinned ``${ISTIO_VERSION}``. When a CRD file
is missing the rehearsal still runs: Istio's kinds are served from built-in
stand-ins that accept any fields, with a warning that says how to get the real
schemas.

``labrunner.testing`` is imported here and only here outside the tests, and
lazily, so ``labrunner --help`` and every other command never load it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labrunner.lab.expand import UnsetVariable, expand, expand_str, with_env
from labrunner.lab.model import Workshop

if TYPE_CHECKING:
    from labrunner.testing.fakecluster import FakeCluster

CONTEXT = "kind-rehearsal"
"""The kube context of the simulated cluster (a name the context guard accepts)."""

# Istio's kinds, for a rehearsal without Istio's CRD file: names and versions only, so
# objects of these kinds can be applied and read; their fields are not validated.
# (group, kind, plural, served versions, storage version)
_NET = ("v1", "v1alpha3", "v1beta1")
_SEC = ("v1", "v1beta1")
ISTIO_KINDS: tuple[tuple[str, str, str, tuple[str, ...], str], ...] = (
    ("extensions.istio.io", "TrafficExtension", "trafficextensions", ("v1alpha1",), "v1alpha1"),
    ("extensions.istio.io", "WasmPlugin", "wasmplugins", ("v1alpha1",), "v1alpha1"),
    ("networking.istio.io", "DestinationRule", "destinationrules", _NET, "v1"),
    ("networking.istio.io", "EnvoyFilter", "envoyfilters", ("v1alpha3",), "v1alpha3"),
    ("networking.istio.io", "Gateway", "gateways", _NET, "v1"),
    ("networking.istio.io", "ProxyConfig", "proxyconfigs", ("v1beta1",), "v1beta1"),
    ("networking.istio.io", "ServiceEntry", "serviceentries", _NET, "v1"),
    ("networking.istio.io", "Sidecar", "sidecars", _NET, "v1"),
    ("networking.istio.io", "VirtualService", "virtualservices", _NET, "v1"),
    ("networking.istio.io", "WorkloadEntry", "workloadentries", _NET, "v1"),
    ("networking.istio.io", "WorkloadGroup", "workloadgroups", _NET, "v1"),
    ("security.istio.io", "AuthorizationPolicy", "authorizationpolicies", _SEC, "v1"),
    ("security.istio.io", "PeerAuthentication", "peerauthentications", _SEC, "v1"),
    ("security.istio.io", "RequestAuthentication", "requestauthentications", _SEC, "v1"),
    ("telemetry.istio.io", "Telemetry", "telemetries", ("v1", "v1alpha1"), "v1alpha1"),
)


class RehearsalSetupError(Exception):
    """The workshop's ``rehearse:`` declaration cannot be met; the message says how."""


def stand_in_crds() -> list[dict[str, Any]]:
    """CRDs for Istio's kinds that accept any fields (used when the real ones are missing)."""
    docs = []
    for group, kind, plural, versions, storage in ISTIO_KINDS:
        docs.append(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": f"{plural}.{group}"},
                "spec": {
                    "group": group,
                    "scope": "Namespaced",
                    "names": {
                        "kind": kind,
                        "plural": plural,
                        "singular": kind.lower(),
                        "listKind": f"{kind}List",
                        "categories": ["istio-io"],
                    },
                    "versions": [
                        {
                            "name": version,
                            "served": True,
                            "storage": version == storage,
                            "schema": {
                                "openAPIV3Schema": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                }
                            },
                            "subresources": {"status": {}},
                        }
                        for version in versions
                    ],
                },
            }
        )
    return docs


@dataclass
class ClusterPlan:
    """The workshop's ``rehearse:`` declaration resolved on this machine."""

    crd_docs: list[dict[str, Any]] = field(default_factory=list)
    preload: list[tuple[Path, dict[str, Any]]] = field(default_factory=list)
    missing_files: dict[str, Path] = field(default_factory=dict)
    """Declared ``files`` that are not here: the text as written → the expanded path."""
    warnings: list[str] = field(default_factory=list)


def _expanded(text: str, env: Mapping[str, str], root: Path) -> Path:
    path = Path(os.path.expanduser(expand_str(text, env)))
    return path if path.is_absolute() else root / path


def _manifest_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json"))
    return [path]


def resolve_plan(workshop: Workshop, env: Mapping[str, str]) -> ClusterPlan:
    """Read the CRDs and preload manifests the workshop declares (raises RehearsalSetupError).

    ``env`` is the user's environment: ``${ISTIO_HOME}`` resolves as it does in the
    labs' shells, so the rehearsal finds the release the install lab downloaded.
    """
    from labrunner.testing.fakecluster import parse_manifests  # lazy: see the module docstring

    plan = workshop.rehearse
    full = with_env(env, workshop.env)
    get = f" (get it: {plan.get})" if plan.get else ""
    out = ClusterPlan()
    missing_crds = []

    def resolved(key: str, text: str) -> Path:
        try:
            return _expanded(text, full, workshop.root)
        except UnsetVariable as exc:
            raise RehearsalSetupError(f"rehearse.{key}: {text}: {exc}") from None

    for text in plan.crds:
        path = resolved("crds", text)
        if not path.is_file():
            missing_crds.append(str(path))
            continue
        try:
            out.crd_docs += [
                d for d in parse_manifests(path) if d.get("kind") == "CustomResourceDefinition"
            ]
        except (OSError, ValueError) as exc:
            raise RehearsalSetupError(f"rehearse.crds: cannot read {path}: {exc}") from None
    if missing_crds:
        out.warnings.append(
            f"no CRD file at {', '.join(missing_crds)}{get}; rehearsing with built-in "
            "stand-ins for Istio's kinds, so Istio objects are applied without their schemas"
        )
    if missing_crds or not plan.crds:
        known = {d["metadata"]["name"] for d in out.crd_docs}
        out.crd_docs += [d for d in stand_in_crds() if d["metadata"]["name"] not in known]
    for text in plan.preload:
        path = resolved("preload", text)
        if not path.exists():
            raise RehearsalSetupError(f"rehearse.preload: no such file or directory: {path}")
        for file in _manifest_files(path):
            try:
                docs = [expand(d, full) for d in parse_manifests(file)]
            except UnsetVariable as exc:
                raise RehearsalSetupError(f"rehearse.preload: {file}: {exc}") from None
            except (OSError, ValueError) as exc:
                raise RehearsalSetupError(f"rehearse.preload: cannot read {file}: {exc}") from None
            out.preload += [(file, d) for d in docs]
    for text in plan.files:
        try:
            path = _expanded(text, full, workshop.root)
        except UnsetVariable:
            path = Path(text)
        if not path.exists():
            out.missing_files[text] = path
    if out.missing_files:
        names = ", ".join(str(p) for p in out.missing_files.values())
        out.warnings.append(
            f"{names} not found{get}; steps whose commands read it are not rehearsable"
        )
    from labrunner.testing.fakecluster import builtin_schema  # lazy: see the module docstring

    if not builtin_schema.available():
        out.warnings.append(
            "kubernetes-validate is not installed, so built-in kinds are not checked for "
            "unknown fields (pip install 'labrunner[rehearse]')"
        )
    return out


class SimulatedCluster:
    """One running simulated cluster, its kubeconfig and the environment that points at it."""

    def __init__(self, directory: Path, plan: ClusterPlan) -> None:
        self.directory = directory
        self.plan = plan
        self.server: FakeCluster | None = None
        self.kubeconfig = directory / "kubeconfig"
        self.cache_dir = directory / "kube-cache"

    @property
    def env(self) -> dict[str, str]:
        """Variables that point kubectl and the client at this cluster only."""
        return {"KUBECONFIG": str(self.kubeconfig), "KUBECACHEDIR": str(self.cache_dir)}

    def start(self, *, preload: bool = True) -> SimulatedCluster:
        """Start the server, serve the CRDs and (unless told not to) load the preload
        manifests; raises RehearsalSetupError."""
        from labrunner.testing.fakecluster import FakeCluster  # lazy: see the module docstring

        self.directory.mkdir(parents=True, exist_ok=True)
        self.cache_dir.mkdir(exist_ok=True)
        server = FakeCluster().start()
        self.server = server
        try:
            server.load_crds(self.plan.crd_docs)
            if preload:
                self.preload_into(server, self.plan)
            server.write_kubeconfig(self.kubeconfig, context=CONTEXT)
        except BaseException:
            self.stop()
            raise
        return self

    @staticmethod
    def preload_into(server: FakeCluster, plan: ClusterPlan) -> None:
        """Create the plan's preload objects in ``server`` (raises RehearsalSetupError)."""
        from labrunner.testing.fakecluster import ApiError  # lazy: see the module docstring

        for path, doc in plan.preload:
            try:
                try:
                    server.create(doc)
                except ApiError as exc:
                    if exc.code != 409:
                        raise
                    server.apply(doc)
            except (ApiError, KeyError) as exc:
                kind = f"{doc.get('kind', '?')} {(doc.get('metadata') or {}).get('name', '?')}"
                message = getattr(exc, "message", None) or str(exc)
                raise RehearsalSetupError(f"rehearse.preload: {path}: {kind}: {message}") from None

    def stop(self) -> None:
        """Stop the server (safe to call twice)."""
        if self.server is not None:
            self.server.stop()
            self.server = None

    def __enter__(self) -> SimulatedCluster:
        return self if self.server is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def kubectl(
        self, *args: str, timeout: float = 60, base_env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against this cluster (FileNotFoundError without kubectl)."""
        env = {**(base_env if base_env is not None else os.environ), **self.env}
        binary = shutil.which("kubectl", path=env.get("PATH", os.defpath))
        if binary is None:
            raise FileNotFoundError("kubectl")
        return subprocess.run(
            [binary, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
        )


def paths_named(commands: Sequence[str], missing: Mapping[str, Path]) -> list[str]:
    """The missing declared paths (as written) that ``commands`` name, in either spelling."""
    found = []
    for text, path in missing.items():
        spellings = {text, str(path)}
        if "${" in text:  # ${ISTIO_HOME}/samples is also written $ISTIO_HOME/samples
            spellings.add(text.replace("${", "$").replace("}", ""))
        if any(s in c for s in spellings for c in commands):
            found.append(text)
    return found
