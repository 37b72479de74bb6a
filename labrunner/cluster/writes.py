"""Write to the API server: create, merge-patch, delete, and ask for a token.

Checks only read; the classroom writes (an instructor sets up a class, a
learner publishes progress). The same connection serves both: every request
has a bounded timeout and fails as a ``ClusterError`` whose ``status`` tells
the caller what happened (409 when an object exists already, 404 when it is
gone), so callers decide what an existing or missing object means to them.

A write is not retried here, except once on a kept-alive connection the
server had closed (``Kube.open`` does that, before anything was sent).
Retrying a failed write with backoff is the caller's business: only it knows
whether the write is idempotent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from labrunner.cluster.client import Kube, quote_path
from labrunner.cluster.errors import ClusterError, NotFound, http_error

MERGE_PATCH = "application/merge-patch+json"


def request(
    kube: Kube,
    method: str,
    path: str,
    *,
    body: Mapping[str, Any] | None = None,
    timeout: float,
    content_type: str = "application/json",
) -> dict[str, Any]:
    """Send ``body`` as JSON and decode the JSON answer; raises ClusterError (NotFound on 404)."""
    data = json.dumps(body, separators=(",", ":")).encode() if body is not None else None
    response = kube.open(path, method=method, body=data, content_type=content_type, timeout=timeout)
    status = int(response.status)
    payload = response.data
    if 200 <= status < 300:
        try:
            decoded = json.loads(payload) if payload else {}
        except ValueError:
            raise ClusterError(
                f"the API server at {kube.server} answered {method} {path} with something "
                "that is not JSON"
            ) from None
        return decoded if isinstance(decoded, dict) else {}
    if status == 404:
        raise NotFound(f"{path} not found")
    raise http_error(
        status,
        payload,
        method=method,
        path=path,
        retry_after=response.headers.get("Retry-After"),
    )


def collection(
    namespace: str | None, resource: str, *, group: str = "", version: str = "v1"
) -> str:
    """The API path of a collection (``/api/v1/namespaces/NS/configmaps``, say)."""
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    if namespace is None:
        return f"{base}/{quote_path(resource)}"
    return f"{base}/namespaces/{quote_path(namespace, resource)}"


def item(
    namespace: str | None, resource: str, name: str, *, group: str = "", version: str = "v1"
) -> str:
    """The API path of one object."""
    return f"{collection(namespace, resource, group=group, version=version)}/{quote_path(name)}"


def create(kube: Kube, path: str, obj: Mapping[str, Any], *, timeout: float) -> dict[str, Any]:
    """POST ``obj`` to the collection ``path``; raises ClusterError (status 409: it exists)."""
    return request(kube, "POST", path, body=obj, timeout=timeout)


def merge_patch(
    kube: Kube, path: str, patch: Mapping[str, Any], *, timeout: float
) -> dict[str, Any]:
    """Apply a JSON merge patch (RFC 7386) to the object at ``path``."""
    return request(kube, "PATCH", path, body=patch, timeout=timeout, content_type=MERGE_PATCH)


def delete(kube: Kube, path: str, *, timeout: float) -> bool:
    """Delete the object at ``path`` (in the background); False when it did not exist."""
    try:
        request(
            kube,
            "DELETE",
            path,
            body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
            timeout=timeout,
        )
    except NotFound:
        return False
    return True


def service_account_token(
    kube: Kube, namespace: str, name: str, *, seconds: int, timeout: float
) -> tuple[str, str]:
    """A token for ServiceAccount ``namespace/name`` from the TokenRequest API.

    Returns the token and its expiry (RFC 3339) as the server granted it: a
    cluster may shorten the lifetime asked for (its
    ``--service-account-max-token-expiration``).
    """
    answer = request(
        kube,
        "POST",
        item(namespace, "serviceaccounts", name) + "/token",
        body={
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": int(seconds)},
        },
        timeout=timeout,
    )
    status = answer.get("status") or {}
    token = status.get("token")
    if not isinstance(token, str) or not token:
        raise ClusterError(
            f"the API server at {kube.server} answered the TokenRequest for "
            f"{namespace}/{name} without a token"
        )
    return token, str(status.get("expirationTimestamp") or "")
