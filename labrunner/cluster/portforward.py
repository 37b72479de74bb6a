"""Reach a Service from the runner: a port-forward, or the API server's service proxy.

On kind and minikube the ingress gateway's LoadBalancer never gets an
external address, so checks cannot call it the way a cloud user would. They
go through the Kubernetes API instead, the way ``kubectl port-forward`` does:
``ServiceForward`` listens on 127.0.0.1 on an ephemeral port and relays each
connection it accepts, over the pod ``portforward`` websocket, to a ready pod
behind the Service (selector → pods → targetPort, named ports included). One
forward per Service port is cached for the whole lab run and closed with it,
so repeated polls reuse it, and nothing listens after the run.

``proxy_get`` is the lighter path for plain HTTP reads such as the Jaeger
query API: ``/api/v1/namespaces/{ns}/services/{name}:{port}/proxy/...``.

Problems are ``ClusterError`` kinds: ``NotFound`` (no such Service, port or
named container port), ``NO_PODS`` (no ready pod behind the Service yet,
transient), and whatever the API server said. The websocket of a
port-forward is the one request that still goes through the official
``kubernetes`` client, imported inside ``ServiceForward`` only: checks that
never forward never load it.
"""

from __future__ import annotations

import selectors
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from labrunner.cluster.client import Kube, quote_path
from labrunner.cluster.errors import ClusterError, ErrorKind, NotFound
from labrunner.cluster.resources import terminating
from labrunner.cluster.status import is_ready

_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Backend:
    """The pod and container port a Service port currently leads to."""

    pod: str
    port: int


def _get_json(conn: Kube, path: str, *, what: str, timeout: float, **query: str) -> Any:
    try:
        return conn.get(path, query=list(query.items()), timeout=timeout)
    except NotFound:
        raise NotFound(f"{what} not found") from None


def _container_port(pod: dict[str, Any], name: str) -> int | None:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == name:
                return int(port["containerPort"])
    return None


def resolve_backend(
    conn: Kube, *, namespace: str, service: str, port: int | str, timeout: float = 10.0
) -> Backend:
    """A ready pod behind ``service`` and the container port its ``port`` targets."""
    what = f"service {namespace}/{service}"
    base = f"/api/v1/namespaces/{quote_path(namespace)}"
    svc = _get_json(conn, f"{base}/services/{quote_path(service)}", what=what, timeout=timeout)
    spec = svc.get("spec") or {}
    ports = spec.get("ports") or []
    entry = next(
        (p for p in ports if p.get("port") == port or (p.get("name") and p.get("name") == port)),
        None,
    )
    if entry is None:
        have = ", ".join(str(p.get("port")) for p in ports) or "none"
        raise NotFound(f"{what} has no port {port} (ports: {have})")
    selector = spec.get("selector") or {}
    if not selector:
        raise NotFound(f"{what} has no selector, so no pods to forward to")
    label_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    pods = _get_json(
        conn,
        f"{base}/pods",
        what=f"pods of {what}",
        timeout=timeout,
        labelSelector=label_selector,
    )
    items = pods.get("items") or []
    ready = [p for p in items if is_ready(p) and not terminating(p)]
    if not ready:
        raise ClusterError(
            f"no ready pod behind {what} yet ({len(items)} pod(s) match {label_selector})",
            transient=True,
            kind=ErrorKind.NO_PODS,
        )
    pod = sorted(ready, key=lambda p: p["metadata"]["name"])[0]
    target = entry.get("targetPort", entry.get("port"))
    if isinstance(target, str) and not target.isdigit():
        number = _container_port(pod, target)
        if number is None:
            raise NotFound(f"pod {pod['metadata']['name']} has no container port named {target!r}")
        return Backend(pod["metadata"]["name"], number)
    return Backend(pod["metadata"]["name"], int(target))


class ServiceForward:
    """A local listener relaying each connection to a ready pod behind a Service."""

    def __init__(self, conn: Kube, *, namespace: str, service: str, port: int | str) -> None:
        from kubernetes import client, config  # lazy: see the module docstring

        # A private ApiClient, built from the same one-context kubeconfig as ``conn``:
        # kubernetes.stream swaps call_api on the client it is given while it opens a
        # websocket, which must not disturb other checks.
        try:
            self._client: Any = config.new_client_from_config_dict(  # type: ignore[no-untyped-call]
                conn.config_dict, context=conn.context
            )
        except Exception as exc:  # a failing exec plugin, an unreadable certificate
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ClusterError(
                f"cannot open a port-forward with context {conn.context!r}: {message}",
                kind=ErrorKind.KUBECONFIG,
            ) from None
        self._core = client.CoreV1Api(self._client)
        self._conn = conn
        self._namespace, self._service, self._port = namespace, service, port
        self._lock = threading.Lock()
        self._open_lock = threading.Lock()
        self._backend = resolve_backend(conn, namespace=namespace, service=service, port=port)
        self._closed = threading.Event()
        self._closer_claimed = False
        self._conns: set[socket.socket] = set()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(32)
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._thread = threading.Thread(
            target=self._accept_loop, name=f"port-forward {namespace}/{service}", daemon=True
        )
        self._thread.start()

    def claim_closer(self) -> bool:
        """True exactly once: the caller registers ``close`` with the run."""
        with self._lock:
            claimed, self._closer_claimed = self._closer_claimed, True
            return not claimed

    @property
    def backend(self) -> Backend:
        """The pod and port currently forwarded to."""
        return self._backend

    def _open(self) -> Any:
        from kubernetes.stream import portforward  # lazy: see the module docstring

        with self._open_lock:
            backend = self._backend
            try:
                pf = portforward(
                    self._core.connect_get_namespaced_pod_portforward,
                    backend.pod,
                    self._namespace,
                    ports=str(backend.port),
                )
            except Exception:
                # The pod may have gone away: pick a ready one again, try once more.
                self._backend = backend = resolve_backend(
                    self._conn, namespace=self._namespace, service=self._service, port=self._port
                )
                pf = portforward(
                    self._core.connect_get_namespaced_pod_portforward,
                    backend.pod,
                    self._namespace,
                    ports=str(backend.port),
                )
            return pf, backend.port

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            if self._closed.is_set():
                conn.close()
                return
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.add(conn)
        pf = None
        try:
            try:
                pf, port = self._open()
            except Exception:
                return  # the client sees the connection close without a reply
            remote = pf.socket(port)
            remote.setblocking(True)
            _pump([conn, remote], self._closed)
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()
            if pf is not None:
                try:
                    pf.close()
                except Exception:  # closing a broken websocket may raise anything
                    return

    def close(self) -> None:
        """Stop listening and drop open connections; safe to call twice."""
        if self._closed.is_set():
            return
        self._closed.set()
        try:
            # shutdown wakes the thread blocked in accept(); close alone would not.
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        self._thread.join(timeout=2)
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._client.close()


def _pump(pair: Sequence[Any], closed: threading.Event) -> None:
    """Copy bytes both ways between two sockets until either side closes."""
    first, second = pair
    peer = {first.fileno(): second, second.fileno(): first}
    with selectors.DefaultSelector() as sel:
        sel.register(first, selectors.EVENT_READ)
        sel.register(second, selectors.EVENT_READ)
        while not closed.is_set():
            for key, _ in sel.select(timeout=0.5):
                try:
                    data = key.fileobj.recv(_CHUNK)  # type: ignore[union-attr]
                except OSError:
                    return
                if not data:
                    return
                try:
                    peer[key.fd].sendall(data)
                except OSError:
                    return


def proxy_get(
    conn: Kube,
    *,
    namespace: str,
    service: str,
    port: int | str,
    path: str,
    query: Sequence[tuple[str, str]] = (),
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """GET ``path`` on a Service through the API server's proxy: (status, body).

    Raises ClusterError when the API server cannot be reached; HTTP errors
    from the proxy or the Service (404, 503 "no endpoints") come back as the
    status.
    """
    resource = (
        f"/api/v1/namespaces/{quote_path(namespace)}/services/"
        f"{quote_path(service)}:{quote_path(str(port))}/proxy/{path.lstrip('/')}"
    )
    response = conn.open(resource, query=query, timeout=timeout)
    return int(response.status), bytes(response.data or b"")
