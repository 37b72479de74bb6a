"""Say why a pod is not ready or a rollout is not done, in the words kubectl would use.

"2 of 3 pods ready" tells a learner to wait; "web-api-7d5c-x is Pending:
ImagePullBackOff" tells them the image name has a typo. The STATUS column of
``kubectl get pods`` is what learners already know, so this module derives the
same word from a pod's status the way kubectl's printer does (init containers
first, then the last container with a waiting or terminated reason), and adds
the one detail that usually explains it (scheduling failures, which
containers are not ready, restarts). Native sidecars, init containers with
``restartPolicy: Always`` such as Istio's ``istio-proxy`` on Kubernetes 1.33+,
count as started rather than as unfinished init steps.

A Deployment is done when ``kubectl rollout status`` would say so: the
controller has observed the latest generation, every replica is updated and
available, and no old replica is left. A Deployment whose Progressing
condition says ProgressDeadlineExceeded is stuck, not slow.

Plain functions over the objects' JSON, no client: verifiers, the doctor and
tests share them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from labrunner.cluster.resources import terminating

TYPE_CHECKING = False  # as typing's, without importing typing (a start-up cost)
if TYPE_CHECKING:
    from typing import Any

    Pod = Mapping[str, Any]


def _status(pod: Pod) -> Mapping[str, Any]:
    return pod.get("status") or {}


def condition(obj: Pod, kind: str) -> Mapping[str, Any] | None:
    """The status condition of type ``kind``, if present."""
    for cond in _status(obj).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def is_ready(pod: Pod) -> bool:
    """True when the pod runs and its Ready condition is True."""
    cond = condition(pod, "Ready")
    return _status(pod).get("phase") == "Running" and bool(cond and cond.get("status") == "True")


def _restartable_init(pod: Pod) -> set[str]:
    spec = pod.get("spec") or {}
    return {
        str(c.get("name"))
        for c in spec.get("initContainers") or []
        if c.get("restartPolicy") == "Always"
    }


def display_status(pod: Pod) -> str:
    """The STATUS column of ``kubectl get pods`` for this pod."""
    status = _status(pod)
    reason = str(status.get("reason") or status.get("phase") or "Pending")
    sidecars = _restartable_init(pod)
    init_statuses: Sequence[Mapping[str, Any]] = status.get("initContainerStatuses") or []
    init_total = len((pod.get("spec") or {}).get("initContainers") or []) or len(init_statuses)
    initializing = False
    for index, cs in enumerate(init_statuses):
        state = cs.get("state") or {}
        terminated = state.get("terminated")
        waiting = state.get("waiting")
        if terminated and terminated.get("exitCode") == 0:
            continue
        if cs.get("name") in sidecars and cs.get("started"):
            continue
        if terminated:
            reason = "Init:" + str(
                terminated.get("reason") or f"ExitCode:{terminated.get('exitCode')}"
            )
        elif waiting and waiting.get("reason") and waiting.get("reason") != "PodInitializing":
            reason = "Init:" + str(waiting["reason"])
        else:
            reason = f"Init:{index}/{init_total}"
        initializing = True
        break
    if not initializing:
        running = False
        for cs in reversed(status.get("containerStatuses") or []):
            state = cs.get("state") or {}
            waiting, terminated = state.get("waiting"), state.get("terminated")
            if waiting and waiting.get("reason"):
                reason = str(waiting["reason"])
            elif terminated:
                reason = str(
                    terminated.get("reason") or f"ExitCode:{terminated.get('exitCode', '?')}"
                )
            elif cs.get("ready") and "running" in state:
                running = True
        if reason == "Completed" and running:
            reason = "Running"
    if terminating(pod):
        reason = "Terminating"
    return reason


def _unready_containers(pod: Pod) -> list[str]:
    status = _status(pod)
    names = [
        str(cs.get("name")) for cs in status.get("containerStatuses") or [] if not cs.get("ready")
    ]
    sidecars = _restartable_init(pod)
    names += [
        str(cs.get("name"))
        for cs in status.get("initContainerStatuses") or []
        if cs.get("name") in sidecars and not cs.get("ready")
    ]
    return names


def restarts(pod: Pod) -> int:
    """How often the pod's containers restarted in total."""
    status = _status(pod)
    return sum(
        int(cs.get("restartCount") or 0)
        for key in ("containerStatuses", "initContainerStatuses")
        for cs in status.get(key) or []
    )


def why_not_ready(pod: Pod) -> str:
    """``Pending: ImagePullBackOff``, ``Running, not ready (istio-proxy)``: phase and reason."""
    phase = str(_status(pod).get("phase") or "Pending")
    shown = display_status(pod)
    if shown == "Terminating":
        return "Terminating"
    text = phase if shown == phase else f"{phase}: {shown}"
    if shown == "Pending":
        scheduled = condition(pod, "PodScheduled")
        if scheduled and scheduled.get("status") == "False":
            reason = scheduled.get("reason") or "not scheduled"
            message = str(scheduled.get("message") or "").strip()
            text += f" ({reason}: {message})" if message else f" ({reason})"
    elif shown == "Running":
        unready = _unready_containers(pod)
        text = "Running, not ready" + (f" ({', '.join(unready)})" if unready else "")
    count = restarts(pod)
    if count and ("BackOff" in shown or "Error" in shown or shown == "Running"):
        text += f", {count} restart{'s' if count != 1 else ''}"
    return text


def waiting_messages(pod: Pod) -> list[str]:
    """The kubelet's messages for waiting containers (image pull errors and the like)."""
    status = _status(pod)
    found = []
    for key in ("initContainerStatuses", "containerStatuses"):
        for cs in status.get(key) or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("message"):
                found.append(f"{cs.get('name')}: {waiting['message']}")
    return found


def desired_replicas(deployment: Mapping[str, Any]) -> int:
    """``spec.replicas`` (1 when unset, as the API defaults it)."""
    value = (deployment.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def rollout_problem(deployment: Mapping[str, Any]) -> tuple[str | None, bool]:
    """Why the Deployment's rollout is not done (None when it is), and whether that is final.

    Final means waiting will not help (the progress deadline was exceeded).
    """
    meta = deployment.get("metadata") or {}
    status = deployment.get("status") or {}
    generation = int(meta.get("generation") or 0)
    observed = int(status.get("observedGeneration") or 0)
    desired = desired_replicas(deployment)
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    total = int(status.get("replicas") or 0)
    progressing = condition(deployment, "Progressing")
    if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        said = str(progressing.get("message") or "").strip()
        return f"rollout is stuck: progress deadline exceeded{': ' + said if said else ''}", True
    if observed < generation:
        return f"the controller has not yet seen generation {generation} (saw {observed})", False
    if updated < desired:
        return f"{updated} of {desired} replicas updated", False
    if total > updated:
        old = total - updated
        return f"{old} old replica{'s' if old != 1 else ''} still terminating", False
    if available < updated:
        return f"{available} of {updated} updated replicas available", False
    cond = condition(deployment, "Available")
    if desired > 0 and (cond is None or cond.get("status") != "True"):
        reason = (cond or {}).get("reason") or "not reported"
        return f"condition Available is not True ({reason})", False
    return None, False


def selector_string(selector: Mapping[str, Any] | None) -> str:
    """A ``LabelSelector`` object (matchLabels, matchExpressions) as a query string."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        key, op = expr.get("key"), str(expr.get("operator", ""))
        values = ",".join(str(v) for v in expr.get("values") or [])
        if op == "In":
            parts.append(f"{key} in ({values})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)
