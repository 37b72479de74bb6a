"""The join file an instructor hands each learner: a kubeconfig that can do one thing.

It is an ordinary kubeconfig (kubectl reads it, so a learner can look at
their own progress object with it), holding one context: the instructor's
API server, its CA, and a token of the learner's ServiceAccount from the
TokenRequest API, which RBAC allows to get, update and patch that learner's
progress object and nothing else. The class, the learner and the object are
named in a context extension (``labrunner.dev/class``), the way minikube
keeps its own details in a kubeconfig, so the file is self-contained.

The file holds a credential: it is written ``0600``, and ``class join``
copies it into the learner's state directory, ``0600`` as well.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labrunner.classroom.names import BadName, check_class_name, check_learner_name
from labrunner.fsutil import write_atomic

EXTENSION = "labrunner.dev/class"
HEADER = (
    "# labrunner class join file for {name} ({learner}) in class {cls}.\n"
    "# Join with: labrunner class join {file}\n"
    "# It holds a token that may only update your own progress in the class; keep it private.\n"
)


class BadJoinFile(ValueError):
    """A join file that cannot be used (the message names the file and the problem)."""


@dataclass(frozen=True)
class Join:
    """What a join file says."""

    class_name: str
    learner: str
    name: str
    namespace: str
    object: str
    expires: str
    kubeconfig: Mapping[str, Any]

    @property
    def context(self) -> str:
        """The kubeconfig context to publish through."""
        return str(self.kubeconfig.get("current-context") or "")

    @property
    def server(self) -> str:
        """The instructor's API server URL."""
        for item in self.kubeconfig.get("clusters") or []:
            return str((item.get("cluster") or {}).get("server") or "")
        return ""


def build(
    *,
    class_name: str,
    learner: str,
    name: str,
    namespace: str,
    object_name: str,
    cluster: Mapping[str, Any],
    token: str,
    expires: str,
) -> dict[str, Any]:
    """The kubeconfig of a join file (``cluster`` is the instructor's cluster entry)."""
    context = f"labrunner-class-{class_name}"
    user = f"{context}-{learner}"
    entry = {k: v for k, v in cluster.items() if k != "certificate-authority"}
    authority = cluster.get("certificate-authority")
    if isinstance(authority, str) and authority and "certificate-authority-data" not in entry:
        try:
            entry["certificate-authority-data"] = base64.b64encode(
                Path(authority).read_bytes()
            ).decode()
        except OSError as exc:
            raise BadJoinFile(f"cannot read the cluster's CA file {authority}: {exc}") from None
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": context, "cluster": entry}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {
                "name": context,
                "context": {
                    "cluster": context,
                    "user": user,
                    "namespace": namespace,
                    "extensions": [
                        {
                            "name": EXTENSION,
                            "extension": {
                                "class": class_name,
                                "learner": learner,
                                "name": name,
                                "object": object_name,
                                "expires": expires,
                            },
                        }
                    ],
                },
            }
        ],
        "current-context": context,
    }


def write(path: Path, config: Mapping[str, Any]) -> Path:
    """Write a join file (``0600``: it holds a token)."""
    import yaml  # lazy: only the class commands read or write YAML here

    join = parse(config, source=str(path))
    header = HEADER.format(
        name=join.name, learner=join.learner, cls=join.class_name, file=path.name
    )
    text = header + yaml.safe_dump(dict(config), sort_keys=False, default_flow_style=False)
    write_atomic(path, text.encode(), mode=0o600)
    return path


def read(path: Path) -> Join:
    """Read and check a join file; raises BadJoinFile saying what is wrong."""
    import yaml  # lazy, as in write

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadJoinFile(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise BadJoinFile(f"{path}: cannot read it: {exc}") from None
    return parse(data, source=str(path))


def parse(data: Any, *, source: str) -> Join:
    """A Join from a loaded kubeconfig mapping; raises BadJoinFile."""
    if not isinstance(data, Mapping) or data.get("kind") != "Config":
        raise BadJoinFile(f"{source}: not a kubeconfig (a labrunner class join file is one)")
    current = data.get("current-context")
    contexts = {
        c.get("name"): c.get("context") or {}
        for c in data.get("contexts") or []
        if isinstance(c, Mapping)
    }
    context = contexts.get(current)
    if not isinstance(context, Mapping):
        raise BadJoinFile(f"{source}: its current-context {current!r} is not defined in it")
    details = next(
        (
            e.get("extension")
            for e in context.get("extensions") or []
            if isinstance(e, Mapping) and e.get("name") == EXTENSION
        ),
        None,
    )
    if not isinstance(details, Mapping):
        raise BadJoinFile(
            f"{source}: a kubeconfig, but not a labrunner class join file (no {EXTENSION} "
            "extension); ask your instructor for the file `labrunner class init` wrote for you"
        )
    users = {u.get("name"): u.get("user") or {} for u in data.get("users") or []}
    if not (users.get(context.get("user")) or {}).get("token"):
        raise BadJoinFile(f"{source}: it holds no token")
    try:
        class_name = check_class_name(str(details.get("class") or ""))
        learner = check_learner_name(str(details.get("learner") or ""))
    except BadName as exc:
        raise BadJoinFile(f"{source}: {exc}") from None
    namespace = str(context.get("namespace") or "")
    object_name = str(details.get("object") or "")
    if not namespace or not object_name:
        raise BadJoinFile(f"{source}: it names no namespace or no progress object")
    return Join(
        class_name=class_name,
        learner=learner,
        name=str(details.get("name") or learner),
        namespace=namespace,
        object=object_name,
        expires=str(details.get("expires") or ""),
        kubeconfig=dict(data),
    )
