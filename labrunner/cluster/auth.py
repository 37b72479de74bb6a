"""Who a kubeconfig user is to the API server: tokens, client certificates, exec plugins.

Token and client-certificate kubeconfigs (kind, k3d, minikube, a ServiceAccount
join file) need nothing but the standard library, so that is all they get.
Cloud logins (EKS's ``aws eks get-token``, GKE's ``gke-gcloud-auth-plugin``,
``kubelogin``) use *exec plugins*, which this module runs itself, following
the ``client.authentication.k8s.io`` ExecCredential protocol (v1 and
v1beta1) as client-go does:

* the plugin runs with its ``args`` and with its ``env`` added to ours, and
  ``KUBERNETES_EXEC_INFO`` set to an ExecCredential whose ``spec`` says
  whether it may talk to the user (never here: checks run without a
  terminal) and, with ``provideClusterInfo``, which cluster it is for;
* ``interactiveMode: Always`` therefore cannot work, and says so (log in
  first); v1 requires ``interactiveMode``, v1beta1 defaults it;
* its answer is a token, or a client certificate and key, with an optional
  ``expirationTimestamp``; the credential is reused until then (and a 401
  asks the plugin again), so a check that polls does not run ``aws`` every
  time;
* a plugin that is missing, fails, hangs past the deadline or answers
  something else is a ``ClusterError`` (kind ``credentials``) that names
  the plugin, its ``installHint``, and the last line it printed.

Only ``auth-provider`` users (the legacy gcp/azure/oidc providers kubectl
itself dropped in 1.26) fall back to the official ``kubernetes`` client,
imported then and only then. See the README's design notes for why.
"""

from __future__ import annotations

import binascii
import json
import os
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from labrunner.cluster.errors import ClusterError, ErrorKind

TYPE_CHECKING = False  # as typing's, without importing typing (a start-up cost)
if TYPE_CHECKING:
    import subprocess
    from typing import Any

EXEC_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
EXEC_TIMEOUT = 60.0
"""The longest an exec plugin may run when the caller's deadline allows more."""
EXPIRY_MARGIN = 5.0
"""Ask the plugin again this long before its credential expires."""


def _credentials_error(message: str) -> ClusterError:
    return ClusterError(message, kind=ErrorKind.CREDENTIALS)


def _kubeconfig_error(message: str) -> ClusterError:
    return ClusterError(message, kind=ErrorKind.KUBECONFIG)


def decode_data(value: Any, *, what: str) -> bytes:
    """The bytes of a kubeconfig ``*-data`` field (base64); raises ClusterError."""
    try:
        # base64.b64decode(value) without the base64 module's import (start-up speed)
        return binascii.a2b_base64(str(value))
    except (binascii.Error, ValueError):
        raise _kubeconfig_error(f"the kubeconfig's {what} is not valid base64") from None


@dataclass(frozen=True)
class ClientCert:
    """A client certificate and key, as PEM bytes."""

    cert: bytes
    key: bytes


@dataclass(frozen=True)
class ExecCredential:
    """What an exec plugin answered."""

    token: str | None
    cert: ClientCert | None
    expires: float | None
    """Seconds since the epoch, or None when the plugin gave no expiry."""


def _parse_expiry(value: Any, plugin: str) -> float | None:
    if value in (None, ""):
        return None
    import datetime as dt  # lazy: only exec plugins' credentials carry an expiry

    try:
        when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise _credentials_error(
            f"exec plugin {plugin} answered an expirationTimestamp that is not a time: {value!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class ExecPlugin:
    """An exec credential plugin of one kubeconfig user, with its cached answer."""

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        env: Mapping[str, str],
        cluster: Mapping[str, Any] | None = None,
    ) -> None:
        self.config = dict(config)
        self.api_version = str(config.get("apiVersion") or "")
        self.command = str(config.get("command") or "")
        self.name = Path(self.command).name or "the exec plugin"
        if not self.command:
            raise _kubeconfig_error("the kubeconfig's exec plugin has no command")
        if self.api_version not in EXEC_VERSIONS:
            shown = self.api_version or "no apiVersion"
            raise _kubeconfig_error(
                f"exec plugin {self.name}: {shown} is not supported "
                f"(use {' or '.join(EXEC_VERSIONS)})"
            )
        mode = config.get("interactiveMode")
        if mode is None and self.api_version.endswith("/v1"):
            raise _kubeconfig_error(
                f"exec plugin {self.name}: interactiveMode must be set for {self.api_version}"
            )
        self.mode = str(mode or "IfAvailable")
        if self.mode not in ("Never", "IfAvailable", "Always"):
            raise _kubeconfig_error(
                f"exec plugin {self.name}: interactiveMode {self.mode!r} is not one of "
                "Never, IfAvailable, Always"
            )
        self.env = dict(env)
        self.cluster = dict(cluster) if cluster is not None else None
        self._lock = threading.Lock()
        self._cached: ExecCredential | None = None

    def exec_info(self) -> str:
        """The ``KUBERNETES_EXEC_INFO`` the plugin gets."""
        spec: dict[str, Any] = {"interactive": False}
        if self.config.get("provideClusterInfo") and self.cluster is not None:
            spec["cluster"] = self.cluster
        return json.dumps({"kind": "ExecCredential", "apiVersion": self.api_version, "spec": spec})

    def invalidate(self) -> None:
        """Forget the cached credential (the server said 401)."""
        with self._lock:
            self._cached = None

    def credential(self, *, deadline: float) -> ExecCredential:
        """The cached credential while it is valid, else a fresh one from the plugin."""
        with self._lock:
            cached = self._cached
            if cached is not None and (
                cached.expires is None or cached.expires - EXPIRY_MARGIN > time.time()
            ):
                return cached
            fresh = self._run(deadline)
            self._cached = fresh
            return fresh

    def _run(self, deadline: float) -> ExecCredential:
        if self.mode == "Always":
            raise _credentials_error(
                f"exec plugin {self.name} needs an interactive terminal (interactiveMode: "
                "Always), which checks never have; log in first in your own shell, then run "
                "labrunner again"
            )
        env = dict(self.env)
        for item in self.config.get("env") or []:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                env[item["name"]] = str(item.get("value", ""))
        env["KUBERNETES_EXEC_INFO"] = self.exec_info()
        argv = [self.command, *(str(a) for a in self.config.get("args") or [])]
        timeout = min(max(deadline - time.monotonic(), 0.5), EXEC_TIMEOUT)
        import subprocess  # only exec-plugin kubeconfigs start a process (start-up speed)

        try:
            proc = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except FileNotFoundError:
            hint = str(self.config.get("installHint") or "").strip()
            raise _credentials_error(
                f"exec plugin {self.command} not found (the kubeconfig's user runs it to log "
                "in)" + (f"; {hint}" if hint else "; install it or add it to PATH")
            ) from None
        except OSError as exc:
            raise _credentials_error(
                f"exec plugin {self.command} cannot run: {exc.strerror or exc}"
            ) from None
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            raise _credentials_error(
                f"exec plugin {self.name} did not answer within {timeout:.0f}s"
            ) from None
        finally:
            if proc.poll() is None:  # pragma: no cover - interrupted by an exception
                _kill_group(proc)
                proc.wait()
        said = err.decode("utf-8", "replace").strip().splitlines()
        last = said[-1][:200] if said else ""
        if proc.returncode != 0:
            raise _credentials_error(
                f"exec plugin {self.name} failed (exit {proc.returncode})"
                + (f": {last}" if last else "")
            )
        return self._parse(out)

    def _parse(self, out: bytes) -> ExecCredential:
        try:
            doc = json.loads(out)
        except ValueError:
            raise _credentials_error(
                f"exec plugin {self.name} did not answer an ExecCredential (not JSON)"
            ) from None
        if not isinstance(doc, dict) or doc.get("kind") != "ExecCredential":
            raise _credentials_error(f"exec plugin {self.name} did not answer an ExecCredential")
        if doc.get("apiVersion") != self.api_version:
            raise _credentials_error(
                f"exec plugin {self.name} answered {doc.get('apiVersion')!r}, "
                f"not the {self.api_version} it was asked for"
            )
        status = doc.get("status")
        if not isinstance(status, dict):
            raise _credentials_error(f"exec plugin {self.name} answered no status")
        token = status.get("token") or None
        cert_data, key_data = status.get("clientCertificateData"), status.get("clientKeyData")
        if bool(cert_data) != bool(key_data):
            raise _credentials_error(
                f"exec plugin {self.name} answered a client certificate without its key "
                "(or a key without its certificate)"
            )
        cert = (
            ClientCert(str(cert_data).encode(), str(key_data).encode())
            if cert_data and key_data
            else None
        )
        if token is None and cert is None:
            raise _credentials_error(
                f"exec plugin {self.name} answered neither a token nor a client certificate"
            )
        return ExecCredential(
            str(token) if token else None,
            cert,
            _parse_expiry(status.get("expirationTimestamp"), self.name),
        )


class _TokenFile:
    """A ``tokenFile`` read again whenever it changes (projected tokens rotate)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._token = ""

    def token(self) -> str:
        try:
            info = self.path.stat()
            stamp = (info.st_mtime_ns, info.st_size)
            if stamp != self._stamp:
                self._token = self.path.read_text(encoding="utf-8").strip()
                self._stamp = stamp
        except OSError as exc:
            raise _kubeconfig_error(
                f"cannot read the kubeconfig's tokenFile {self.path}: {exc.strerror or exc}"
            ) from None
        return self._token


class UserAuth:
    """The credentials of one kubeconfig user, as headers and a TLS client certificate.

    Precedence follows client-go: a static token (or ``tokenFile``) wins over
    an exec plugin; a static client certificate wins over the plugin's.
    """

    def __init__(
        self,
        user: Mapping[str, Any],
        *,
        env: Mapping[str, str],
        cluster_info: Mapping[str, Any] | None = None,
        provider_token: Any = None,
    ) -> None:
        self.user = dict(user)
        self._token = str(user["token"]) if user.get("token") else None
        token_file = user.get("tokenFile")
        self._token_file = _TokenFile(Path(str(token_file))) if token_file else None
        self._basic: str | None = None
        if user.get("username") or user.get("password"):
            pair = f"{user.get('username', '')}:{user.get('password', '')}".encode()
            self._basic = binascii.b2a_base64(pair, newline=False).decode()
        self.static_cert = self._static_cert(user)
        self.exec: ExecPlugin | None = None
        if isinstance(user.get("exec"), dict) and self._token is None and self._token_file is None:
            self.exec = ExecPlugin(user["exec"], env=env, cluster=cluster_info)
        self._provider = provider_token
        self._impersonate: list[tuple[str, str]] = []
        if user.get("as"):
            self._impersonate.append(("Impersonate-User", str(user["as"])))
        if user.get("as-uid"):
            self._impersonate.append(("Impersonate-Uid", str(user["as-uid"])))
        for group in user.get("as-groups") or []:
            self._impersonate.append(("Impersonate-Group", str(group)))
        for key, values in (user.get("as-user-extra") or {}).items():
            for value in values or []:
                self._impersonate.append((f"Impersonate-Extra-{key}", str(value)))

    @staticmethod
    def _static_cert(user: Mapping[str, Any]) -> ClientCert | tuple[str, str] | None:
        cert_data, key_data = user.get("client-certificate-data"), user.get("client-key-data")
        cert_file, key_file = user.get("client-certificate"), user.get("client-key")
        if cert_data or key_data:
            if not (cert_data or cert_file) or not (key_data or key_file):
                raise _kubeconfig_error(
                    "the kubeconfig's user has a client certificate without a key (or a key "
                    "without a certificate)"
                )
            cert = (
                decode_data(cert_data, what="client-certificate-data")
                if cert_data
                else _read_file(str(cert_file), "client-certificate")
            )
            key = (
                decode_data(key_data, what="client-key-data")
                if key_data
                else _read_file(str(key_file), "client-key")
            )
            return ClientCert(cert, key)
        if cert_file or key_file:
            if not cert_file or not key_file:
                raise _kubeconfig_error(
                    "the kubeconfig's user names a client certificate without a key (or a key "
                    "without a certificate)"
                )
            return (str(cert_file), str(key_file))
        return None

    @property
    def refreshable(self) -> bool:
        """True when a 401 may be cured by asking for a fresh credential."""
        return self.exec is not None or self._token_file is not None

    def invalidate(self) -> None:
        """Forget a cached credential after the server rejected it."""
        if self.exec is not None:
            self.exec.invalidate()

    def current(
        self, *, deadline: float
    ) -> tuple[list[tuple[str, str]], ClientCert | tuple[str, str] | None]:
        """For one request: the Authorization and Impersonate-* headers, and the TLS client
        certificate (static, else the exec plugin's), from one look at the credential."""
        credential = self.exec.credential(deadline=deadline) if self.exec is not None else None
        cert = self.static_cert
        if cert is None and credential is not None:
            cert = credential.cert
        out = list(self._impersonate)
        token = self._token
        if token is None and self._token_file is not None:
            token = self._token_file.token()
        if token is None and credential is not None:
            token = credential.token
        if token is None and self._provider is not None:
            token = self._provider()
        if token:
            out.insert(0, ("Authorization", f"Bearer {token}"))
        elif self._basic is not None:
            out.insert(0, ("Authorization", f"Basic {self._basic}"))
        return out, cert


def _read_file(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise _kubeconfig_error(
            f"cannot read the kubeconfig's {what} {path}: {exc.strerror or exc}"
        ) from None


def auth_provider_token(config: Mapping[str, Any], context: str) -> Any:
    """A callable giving the bearer token of an ``auth-provider`` user (gcp, azure, oidc).

    These legacy providers are the one case handed to the official client:
    it refreshes their tokens (and writes them back, here into the run's
    private copy of the kubeconfig, never the user's own file).
    """
    try:
        from kubernetes import config as kconfig  # lazy: only auth-provider kubeconfigs pay

        api = kconfig.new_client_from_config_dict(dict(config), context=context)  # type: ignore[no-untyped-call]
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _credentials_error(
            f"the kubeconfig's auth-provider for context {context!r} is unusable: {message}"
        ) from None

    def token() -> str | None:
        for entry in (api.configuration.auth_settings() or {}).values():
            value = str(entry.get("value") or "")
            if entry.get("key") == "authorization" and value:
                return value.removeprefix("Bearer ").strip()
        return None

    return token
