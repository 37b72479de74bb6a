"""What masking secrets costs: per output line, and at start-up.

Every line a lab command prints in a headless run goes through
``labrunner.redact.LineRedactor`` twice (the run log and the report), so its
cost per line must stay far below what printing the line costs. Measured on
what workshops print most: ``kubectl get`` tables, ``kubectl get -o yaml`` of
Deployments and of a TLS Secret (a long base64 certificate, which must stay,
and a key, which must go), and ``kubectl describe`` output. The import cost
is measured in a fresh interpreter with ``-X importtime``, and the one-time
cost of compiling the patterns on the first line that needs them separately.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import subprocess
import sys
import time

from _common import REPO, Figure, report

from labrunner.redact import LineRedactor

TABLE = [
    "NAME                       READY   STATUS    RESTARTS   AGE   IP           NODE",
    "web-api-7d5c9f8b6-x2x9z    2/2     Running   0          5m    10.244.0.7   kind-worker",
    "recommendation-5b8f7-qq7k  2/2     Running   1 (3m ago) 12m   10.244.0.9   kind-worker2",
    "istio-ingressgateway-6c9b  1/1     Running   0          20m   10.244.0.3   kind-control",
]
DEPLOYMENT_YAML = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  annotations:
    deployment.kubernetes.io/revision: "1"
  creationTimestamp: "2026-11-23T10:00:00Z"
  labels:
    app: web-api
  name: web-api
  namespace: istioinaction
  resourceVersion: "48213"
  uid: 4b8f2c1e-7d5c-4e8a-9b6f-0a1b2c3d4e5f
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web-api
  template:
    spec:
      containers:
      - env:
        - name: LISTEN_ADDR
          value: 0.0.0.0:8080
        image: nicholasjackson/fake-service@sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f7
        name: web-api
        ports:
        - containerPort: 8080
          protocol: TCP
status:
  availableReplicas: 2
  readyReplicas: 2""".splitlines()
DESCRIBE = """\
Name:             web-api-7d5c9f8b6-x2x9z
Namespace:        istioinaction
Node:             kind-worker/172.18.0.3
Labels:           app=web-api
                  pod-template-hash=7d5c9f8b6
Status:           Running
IP:               10.244.0.7
Containers:
  web-api:
    Image:          nicholasjackson/fake-service:v0.26.2
    Port:           8080/TCP
    State:          Running
      Started:      Mon, 23 Nov 2026 10:00:05 +0000
    Ready:          True
Events:
  Type    Reason     Age   From               Message
  ----    ------     ----  ----               -------
  Normal  Scheduled  5m    default-scheduler  Successfully assigned shop/web-api""".splitlines()


def _secret_yaml() -> list[str]:
    """A TLS Secret as ``kubectl get -o yaml`` prints it (random bytes, PEM-framed)."""

    def pem(kind: str, size: int) -> str:
        body = base64.encodebytes(secrets.token_bytes(size)).decode()
        return f"-----BEGIN {kind}-----\n{body}-----END {kind}-----\n"

    crt = base64.b64encode(pem("CERTIFICATE", 900).encode()).decode()
    key = base64.b64encode(pem("PRIVATE KEY", 120).encode()).decode()
    return [
        "apiVersion: v1",
        "data:",
        f"  tls.crt: {crt}",
        f"  tls.key: {key}",
        "kind: Secret",
        "metadata:",
        "  name: web-api-tls",
        "  namespace: istio-system",
        "type: kubernetes.io/tls",
    ]


def _per_line(lines: list[str], rounds: int) -> float:
    """Nanoseconds per line through a LineRedactor (warm: patterns already compiled)."""
    redactor = LineRedactor()
    for line in lines:
        redactor(line)
    start = time.perf_counter_ns()
    for _ in range(rounds):
        redactor.reset()
        for line in lines:
            redactor(line)
    return (time.perf_counter_ns() - start) / (rounds * len(lines))


def _env() -> dict[str, str]:
    # with bytecode cached, as an installed labrunner runs (a first run writes it)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _import_us() -> float:
    """Cumulative import time of labrunner.redact in a fresh interpreter, in µs."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import labrunner.redact"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=_env(),
        check=True,
    )
    for line in proc.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| labrunner\.redact$", line)
        if match:
            return float(match.group(1))
    raise RuntimeError("labrunner.redact not in the import-time report:\n" + proc.stderr)


def _first_use_ms() -> float:
    """Compiling the patterns on the first line that needs them, in a fresh interpreter."""
    code = (
        "import time, labrunner.redact as r\n"
        "t = time.perf_counter(); r.redact('password: x1y2z3 Bearer abc123def456 '"
        " 'https://u:p4ss@h AKIAABCDEFGHIJKLMNOP ghp_' + 'a' * 36)\n"
        "print((time.perf_counter() - t) * 1000)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=_env(),
        check=True,
    )
    return float(proc.stdout.strip())


def run(rounds: int = 2000) -> list[Figure]:
    """Measure per-line cost on each kind of output, and the start-up costs."""
    secret = _secret_yaml()
    figures = [
        Figure("redact: kubectl get table, per line", _per_line(TABLE, rounds), "ns/line"),
        Figure(
            "redact: kubectl get -o yaml (Deployment), per line",
            _per_line(DEPLOYMENT_YAML, rounds),
            "ns/line",
        ),
        Figure("redact: kubectl describe pod, per line", _per_line(DESCRIBE, rounds), "ns/line"),
        Figure(
            "redact: kubectl get secret -o yaml (TLS), per line",
            _per_line(secret, max(1, rounds // 10)),
            "ns/line",
            note="tls.crt is decoded and kept, tls.key masked",
        ),
    ]
    _import_us()  # writes the bytecode
    imports = [_import_us() for _ in range(5)]
    figures.append(
        Figure("redact: import labrunner.redact (median)", sorted(imports)[2] / 1000, "ms")
    )
    first = [_first_use_ms() for _ in range(5)]
    figures.append(
        Figure("redact: first use, compiling the patterns (median)", sorted(first)[2], "ms")
    )
    return figures


def main() -> None:
    """Print the figures."""
    report(run())


if __name__ == "__main__":
    main()
