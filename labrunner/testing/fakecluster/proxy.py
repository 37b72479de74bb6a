"""Targets for port-forwarding and the Service proxy, registered by tests.

A verifier may reach a workload through the API server: ``portforward`` to a Service's pod, or
``/api/v1/namespaces/{ns}/services/{name}:{port}/proxy/...`` (how Jaeger's query API is read
without exposing it). In tests those workloads are real servers on loopback; this module maps
the Kubernetes address a client uses onto that loopback address and relays HTTP for the proxy.
"""

from __future__ import annotations

import http.client
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .selectors import LabelSelector, labels_match, parse_label_selector

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "authorization",
        "host",
        "content-length",
    }
)


def _looks_like_selector(text: str) -> bool:
    return any(token in text for token in ("=", "!", " in ", " notin ", ","))


@dataclass(frozen=True)
class PortForwardTarget:
    """Forward ``port`` of matching pods in ``namespace`` to ``host:target_port``."""

    namespace: str
    pod_name: str | None
    selector: LabelSelector
    port: int
    host: str
    target_port: int

    def matches(self, namespace: str, pod: Mapping[str, Any], port: int) -> bool:
        """Whether this target serves ``port`` of ``pod``."""
        if namespace != self.namespace or port != self.port:
            return False
        meta = pod.get("metadata") or {}
        if self.pod_name is not None:
            return bool(meta.get("name") == self.pod_name)
        return labels_match(self.selector, meta.get("labels"))


@dataclass(frozen=True)
class ProxyTarget:
    """Relay ``services/{service}[:port]/proxy/...`` in ``namespace`` to ``base_url``."""

    namespace: str
    service: str
    port: str | None
    base_url: str


class Targets:
    """Registered port-forward and service-proxy targets (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._forwards: list[PortForwardTarget] = []
        self._proxies: list[ProxyTarget] = []

    def add_port_forward(
        self,
        namespace: str,
        pod: str | Mapping[str, str],
        port: int,
        host: str,
        target_port: int,
    ) -> PortForwardTarget:
        """Register a target; ``pod`` is a pod name, a selector string or a label map."""
        if isinstance(pod, Mapping):
            selector = parse_label_selector(",".join(f"{k}={v}" for k, v in pod.items()))
            name = None
        elif _looks_like_selector(pod):
            selector, name = parse_label_selector(pod), None
        else:
            selector, name = (), pod
        target = PortForwardTarget(namespace, name, selector, port, host, target_port)
        with self._lock:
            self._forwards.insert(0, target)
        return target

    def port_forward(
        self, namespace: str, pod: Mapping[str, Any], port: int
    ) -> tuple[str, int] | None:
        """Where a forwarded connection to ``pod:port`` should go."""
        with self._lock:
            for t in self._forwards:
                if t.matches(namespace, pod, port):
                    return (t.host, t.target_port)
        return None

    def add_proxy(
        self, namespace: str, service: str, port: int | str | None, base_url: str
    ) -> ProxyTarget:
        """Register where the Service proxy for ``service[:port]`` relays to."""
        target = ProxyTarget(namespace, service, None if port is None else str(port), base_url)
        with self._lock:
            self._proxies.insert(0, target)
        return target

    def proxy(self, namespace: str, service: str, port: str | None) -> ProxyTarget | None:
        """The target for a proxied request (a port-less registration matches any port)."""
        with self._lock:
            for t in self._proxies:
                if t.namespace == namespace and t.service == service and t.port in (port, None):
                    return t
        return None


@dataclass(frozen=True)
class Relayed:
    """The upstream's answer to a proxied request."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


def relay(
    base_url: str,
    method: str,
    path: str,
    query: str,
    *,
    headers: Mapping[str, str],
    body: bytes,
    timeout: float = 30.0,
) -> Relayed:
    """Send one HTTP request to ``base_url`` + ``path`` and return the upstream's answer."""
    parts = urlsplit(base_url)
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(parts.netloc, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(parts.netloc, timeout=timeout)
    target = parts.path.rstrip("/") + "/" + path.lstrip("/")
    if query:
        target += "?" + query
    forwarded = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}
    try:
        conn.request(method, target, body=body or None, headers=forwarded)
        response = conn.getresponse()
        data = response.read()
        kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
        return Relayed(response.status, kept, data)
    finally:
        conn.close()
