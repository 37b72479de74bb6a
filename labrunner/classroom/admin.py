"""The instructor's side of a class: set it up, hand out access, watch it, end it.

A class lives in one namespace of a cluster the instructor can reach and
the learners' machines can reach too. Setting it up needs namespace-admin
rights and no CRD: the progress of each learner is a ConfigMap, because
every cluster serves ConfigMaps, RBAC can name one by ``resourceNames``, a
watch on a label selector carries every change to the instructor's view,
and a namespace admin may create all of it (installing a CRD would take
cluster-admin, for little gain: the document is validated by labrunner on
both ends anyway).

Per learner, ``init`` (and ``add``) make:

- a ServiceAccount called by the learner's name;
- the progress ConfigMap ``progress-<learner>``, created up front, because
  ``resourceNames`` cannot restrict ``create``;
- a Role allowing ``get``, ``update`` and ``patch`` of that one ConfigMap,
  and a RoleBinding of it to the ServiceAccount;
- a join file: a kubeconfig with a token for the ServiceAccount from the
  TokenRequest API (``joinfile``).

``revoke`` deletes the learner's ServiceAccount (its tokens stop working at
once), Role and RoleBinding, and marks the progress object revoked; the
progress stays for the instructor. ``end`` deletes the namespace when the
class made it, otherwise every object the class made.

The class itself is recorded in the ConfigMap ``labrunner-class``: its name,
when it began, and whether it made its namespace.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from labrunner.classroom import document, joinfile
from labrunner.classroom.names import (
    CLASS_KEY,
    CLASS_OBJECT,
    LABEL_LEARNER,
    PART_ACCESS,
    PART_CLASS,
    PART_PROGRESS,
    PROGRESS_KEY,
    Learner,
    class_selector,
    labels,
    progress_selector,
)
from labrunner.cluster import writes
from labrunner.cluster.client import Kube
from labrunner.cluster.errors import ClusterError, ErrorKind, NotFound
from labrunner.cluster.informer import Informer

TIMEOUT = 10.0
RBAC = "rbac.authorization.k8s.io"
REVOKED = "labrunner.dev/revoked"
MIN_TOKEN_SECONDS = 600
"""The API server refuses TokenRequests for less than ten minutes."""


class ClassProblem(Exception):
    """Something about the class the instructor must fix (the message says what)."""


@dataclass(frozen=True)
class ClassRef:
    """Where a class lives."""

    name: str
    namespace: str


@dataclass(frozen=True)
class Issuing:
    """How join files are made: the cluster entry they name (the instructor's, perhaps with
    another server URL), how long their tokens last, and where they are written."""

    cluster: Mapping[str, Any]
    token_seconds: int
    out_dir: Path


@dataclass(frozen=True)
class Issued:
    """A join file written for a learner."""

    learner: Learner
    path: Path
    expires: str
    readmitted: bool = False
    """A revoked learner given access again (their old join files stay dead)."""


@dataclass(frozen=True)
class Progress:
    """One learner's progress object as the instructor reads it."""

    learner: str
    doc: Mapping[str, Any]
    revoked: bool
    problem: str = ""


# --------------------------------------------------------------------------- helpers


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _explain(exc: ClusterError, doing: str) -> ClassProblem:
    if exc.kind is ErrorKind.FORBIDDEN:
        return ClassProblem(
            f"{doing}: {exc.message.split(';')[0]}; a class needs admin rights in its namespace "
            "(a namespace admin can run a class in a namespace given with --namespace)"
        )
    return ClassProblem(f"{doing}: {exc}")


def _meta(name: str, ref: ClassRef, part: str, learner: str | None = None) -> dict[str, Any]:
    return {"name": name, "namespace": ref.namespace, "labels": labels(ref.name, part, learner)}


def is_loopback(server: str) -> bool:
    """True for an API server URL on this machine only (learners elsewhere cannot reach it)."""
    host = (urlsplit(server).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


# --------------------------------------------------------------------------- the class object


def read_class(kube: Kube, ref: ClassRef) -> dict[str, Any]:
    """The class record; raises ClassProblem when the namespace holds no such class."""
    try:
        obj = kube.get(writes.item(ref.namespace, "configmaps", CLASS_OBJECT), timeout=TIMEOUT)
    except NotFound:
        raise ClassProblem(
            f"no class {ref.name!r} in namespace {ref.namespace} on {kube.server} "
            "(`labrunner class init` makes one; --namespace if it lives elsewhere)"
        ) from None
    except ClusterError as exc:
        raise _explain(exc, f"reading class {ref.name}") from None
    try:
        data = json.loads((obj.get("data") or {}).get(CLASS_KEY) or "{}")
    except ValueError:
        data = {}
    if not isinstance(data, dict) or data.get("class") != ref.name:
        raise ClassProblem(
            f"namespace {ref.namespace} holds class {data.get('class')!r}, not {ref.name!r}"
        )
    return data


def _ensure_namespace(kube: Kube, ref: ClassRef) -> bool:
    """Make the namespace unless it exists; True when this call made it."""
    path = writes.item(None, "namespaces", ref.namespace)
    try:
        kube.get(path, timeout=TIMEOUT)
        return False
    except NotFound:
        pass
    except ClusterError as exc:
        if exc.kind is not ErrorKind.FORBIDDEN:
            raise _explain(exc, f"looking up namespace {ref.namespace}") from None
    try:
        writes.create(
            kube,
            writes.collection(None, "namespaces"),
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ref.namespace, "labels": labels(ref.name, PART_CLASS)},
            },
            timeout=TIMEOUT,
        )
    except ClusterError as exc:
        if exc.status == 409:
            return False
        if exc.kind is ErrorKind.FORBIDDEN:
            raise ClassProblem(
                f"you may not create namespace {ref.namespace} on {kube.server}; ask for a "
                "namespace you administer and pass it with --namespace"
            ) from None
        raise _explain(exc, f"creating namespace {ref.namespace}") from None
    return True


def init(
    kube: Kube,
    ref: ClassRef,
    learners: Sequence[Learner],
    issuing: Issuing,
    *,
    on_issued: Callable[[Issued], None] | None = None,
) -> list[Issued]:
    """Set up a class and write a join file per learner."""
    made = _ensure_namespace(kube, ref)
    record = {"class": ref.name, "created": _now_iso(), "owns_namespace": made}
    try:
        writes.create(
            kube,
            writes.collection(ref.namespace, "configmaps"),
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": _meta(CLASS_OBJECT, ref, PART_CLASS),
                "data": {CLASS_KEY: json.dumps(record)},
            },
            timeout=TIMEOUT,
        )
    except ClusterError as exc:
        if exc.status == 409:
            raise ClassProblem(
                f"namespace {ref.namespace} holds a class already; add learners with "
                f"`labrunner class add {ref.name}`, or end it first"
            ) from None
        raise _explain(exc, f"creating class {ref.name}") from None
    return add(kube, ref, learners, issuing, on_issued=on_issued)


def add(
    kube: Kube,
    ref: ClassRef,
    learners: Sequence[Learner],
    issuing: Issuing,
    *,
    on_issued: Callable[[Issued], None] | None = None,
) -> list[Issued]:
    """Add learners to an existing class (each gets its objects and a join file)."""
    read_class(kube, ref)
    issued = []
    for learner in learners:
        _make_learner(kube, ref, learner)
        item = _issue(kube, ref, learner, issuing)
        issued.append(item)
        if on_issued is not None:
            on_issued(item)
    return issued


def _make_learner(kube: Kube, ref: ClassRef, learner: Learner) -> None:
    name = learner.name
    ns = ref.namespace
    for path, obj in _learner_objects(ref, learner):
        try:
            writes.create(kube, path, obj, timeout=TIMEOUT)
        except ClusterError as exc:
            kind = obj["kind"]
            if exc.status == 409:
                raise ClassProblem(
                    f"learner {name!r}: a {kind} {obj['metadata']['name']} exists already in "
                    f"{ns}; choose another name (or `class renew` to re-issue a join file)"
                ) from None
            raise _explain(exc, f"learner {name!r}: creating the {kind}") from None


def _restore_access(kube: Kube, ref: ClassRef, learner: Learner) -> bool:
    """Give a revoked learner their ServiceAccount, Role and RoleBinding back and clear the
    revoked mark; True when anything had to be restored."""
    restored = False
    for path, obj in _learner_objects(ref, learner):
        if obj["kind"] == "ConfigMap":
            continue
        try:
            writes.create(kube, path, obj, timeout=TIMEOUT)
            restored = True
        except ClusterError as exc:
            if exc.status != 409:
                raise _explain(
                    exc, f"learner {learner.name!r}: restoring the {obj['kind']}"
                ) from None
    try:
        writes.merge_patch(
            kube,
            writes.item(ref.namespace, "configmaps", learner.progress_object),
            {"metadata": {"annotations": {REVOKED: None}}},
            timeout=TIMEOUT,
        )
    except NotFound:
        raise ClassProblem(f"class {ref.name} has no learner {learner.name!r}") from None
    except ClusterError as exc:
        raise _explain(exc, f"learner {learner.name!r}: clearing the revoked mark") from None
    return restored


def _learner_objects(ref: ClassRef, learner: Learner) -> list[tuple[str, dict[str, Any]]]:
    """Where to create, and what: a learner's ServiceAccount, progress object, Role and
    RoleBinding."""
    name = learner.name
    ns = ref.namespace
    return [
        (
            writes.collection(ns, "serviceaccounts"),
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": _meta(name, ref, PART_ACCESS, name),
            },
        ),
        (
            writes.collection(ns, "configmaps"),
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": _meta(learner.progress_object, ref, PART_PROGRESS, name),
                "data": {
                    PROGRESS_KEY: document.encode(
                        document.new_document(ref.name, name, learner.display)
                    )
                },
            },
        ),
        (
            writes.collection(ns, "roles", group=RBAC),
            {
                "apiVersion": f"{RBAC}/v1",
                "kind": "Role",
                "metadata": _meta(name, ref, PART_ACCESS, name),
                "rules": [
                    {
                        "apiGroups": [""],
                        "resources": ["configmaps"],
                        "resourceNames": [learner.progress_object],
                        "verbs": ["get", "update", "patch"],
                    }
                ],
            },
        ),
        (
            writes.collection(ns, "rolebindings", group=RBAC),
            {
                "apiVersion": f"{RBAC}/v1",
                "kind": "RoleBinding",
                "metadata": _meta(name, ref, PART_ACCESS, name),
                "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
            },
        ),
    ]


def _issue(
    kube: Kube,
    ref: ClassRef,
    learner: Learner,
    issuing: Issuing,
) -> Issued:
    try:
        token, expires = writes.service_account_token(
            kube,
            ref.namespace,
            learner.name,
            seconds=max(issuing.token_seconds, MIN_TOKEN_SECONDS),
            timeout=TIMEOUT,
        )
    except ClusterError as exc:
        raise _explain(exc, f"learner {learner.name!r}: asking for a token") from None
    config = joinfile.build(
        class_name=ref.name,
        learner=learner.name,
        name=learner.display,
        namespace=ref.namespace,
        object_name=learner.progress_object,
        cluster=issuing.cluster,
        token=token,
        expires=expires,
    )
    issuing.out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = joinfile.write(issuing.out_dir / f"{learner.name}.yaml", config)
    return Issued(learner, path, expires)


def learner_names(kube: Kube, ref: ClassRef) -> list[Learner]:
    """The learners of a class, from their progress objects."""
    return [
        Learner(p.learner, str(p.doc.get("name") or p.learner)) for p in class_progress(kube, ref)
    ]


def renew(
    kube: Kube,
    ref: ClassRef,
    learners: Iterable[Learner],
    issuing: Issuing,
) -> list[Issued]:
    """New tokens and join files (the old tokens stay valid until they expire). A revoked
    learner is readmitted: a new ServiceAccount (so only the new token works), Role and
    RoleBinding, and the revoked mark cleared."""
    read_class(kube, ref)
    revoked = {p.learner for p in class_progress(kube, ref) if p.revoked}
    issued = []
    for learner in learners:
        readmitted = learner.name in revoked and _restore_access(kube, ref, learner)
        item = _issue(kube, ref, learner, issuing)
        issued.append(replace(item, readmitted=readmitted))
    return issued


def revoke(kube: Kube, ref: ClassRef, learner: str) -> None:
    """Cut a learner off: their ServiceAccount (and tokens), Role and RoleBinding go."""
    read_class(kube, ref)
    found = False
    for path in (
        writes.item(ref.namespace, "serviceaccounts", learner),
        writes.item(ref.namespace, "rolebindings", learner, group=RBAC),
        writes.item(ref.namespace, "roles", learner, group=RBAC),
    ):
        try:
            found = writes.delete(kube, path, timeout=TIMEOUT) or found
        except ClusterError as exc:
            raise _explain(exc, f"revoking {learner}") from None
    try:
        writes.merge_patch(
            kube,
            writes.item(ref.namespace, "configmaps", f"progress-{learner}"),
            {"metadata": {"annotations": {REVOKED: _now_iso()}}},
            timeout=TIMEOUT,
        )
    except NotFound:
        if not found:
            raise ClassProblem(f"class {ref.name} has no learner {learner!r}") from None
    except ClusterError as exc:
        raise _explain(exc, f"revoking {learner}") from None


def end(kube: Kube, ref: ClassRef, *, wait: float = 60.0) -> str:
    """Remove the class: its namespace if it made it, else every object it made."""
    record = read_class(kube, ref)
    try:
        if record.get("owns_namespace"):
            writes.delete(kube, writes.item(None, "namespaces", ref.namespace), timeout=TIMEOUT)
            gone = _wait_gone(kube, writes.item(None, "namespaces", ref.namespace), wait)
            state = "deleted" if gone else "being deleted"
            return f"namespace {ref.namespace} {state}"
        count = 0
        for resource, group in (
            ("rolebindings", RBAC),
            ("roles", RBAC),
            ("serviceaccounts", ""),
            ("configmaps", ""),
        ):
            listed = kube.get(
                writes.collection(ref.namespace, resource, group=group),
                query=[("labelSelector", class_selector(ref.name))],
                timeout=TIMEOUT,
            )
            for obj in listed.get("items") or []:
                name = str((obj.get("metadata") or {}).get("name") or "")
                path = writes.item(ref.namespace, resource, name, group=group)
                count += writes.delete(kube, path, timeout=TIMEOUT)
        return f"{count} objects of class {ref.name} deleted from {ref.namespace}"
    except ClusterError as exc:
        raise _explain(exc, f"ending class {ref.name}") from None


def _wait_gone(kube: Kube, path: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    pause = 0.1
    while True:
        try:
            kube.get(path, timeout=TIMEOUT)
        except NotFound:
            return True
        if time.monotonic() + pause > deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 2.0)


# --------------------------------------------------------------------------- reading progress


def read_progress(obj: Mapping[str, Any]) -> Progress:
    """A progress ConfigMap as the instructor reads it (a broken document is reported, not
    raised: one learner's bad write must not blank the class)."""
    meta = obj.get("metadata") or {}
    learner = str((meta.get("labels") or {}).get(LABEL_LEARNER) or meta.get("name") or "")
    revoked = REVOKED in (meta.get("annotations") or {})
    text = (obj.get("data") or {}).get(PROGRESS_KEY) or ""
    try:
        doc = document.decode(text)
    except document.BadDocument as exc:
        return Progress(learner, {"learner": learner}, revoked, problem=str(exc))
    doc.setdefault("learner", learner)
    return Progress(learner, doc, revoked)


def class_progress(kube: Kube, ref: ClassRef) -> list[Progress]:
    """Every learner's progress, once (``class status``)."""
    read_class(kube, ref)
    try:
        listed = kube.get(
            writes.collection(ref.namespace, "configmaps"),
            query=[("labelSelector", progress_selector(ref.name))],
            timeout=TIMEOUT,
        )
    except ClusterError as exc:
        raise _explain(exc, f"reading class {ref.name}") from None
    found = [read_progress(obj) for obj in listed.get("items") or [] if isinstance(obj, dict)]
    return sorted(found, key=lambda p: p.learner)


def follow(
    kube: Kube,
    ref: ClassRef,
    *,
    on_sync: Callable[[list[Progress]], None],
    on_change: Callable[[Progress | None, str], None],
    on_error: Callable[[ClusterError], None] | None = None,
) -> Informer:
    """Watch a class's progress objects: ``on_sync`` gets them all (at start and after a
    reconnect), ``on_change`` each change as it happens (None and the learner's name when
    an object is deleted). The caller starts and stops the informer."""

    def synced(items: list[dict[str, Any]]) -> None:
        on_sync([read_progress(obj) for obj in items])

    def changed(kind: str, obj: dict[str, Any]) -> None:
        found = read_progress(obj)
        on_change(None if kind == "DELETED" else found, found.learner)

    return Informer(
        kube,
        writes.collection(ref.namespace, "configmaps"),
        label_selector=progress_selector(ref.name),
        on_sync=synced,
        on_change=changed,
        on_error=on_error,
    )
