"""Every kind of secret labrunner masks, as a lab command would print it: one row each.

A row makes fresh values at test time (nothing secret is committed) and
returns the text a command prints plus the pieces of it that must never be
seen again. Adding a kind is adding one row; the unit tests, the CLI test and
the README check all read this table. ``SAFE`` lists ordinary lab output that
must come through untouched.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

ALNUM = string.ascii_letters + string.digits


def rand(n: int, alphabet: str = ALNUM) -> str:
    """``n`` random characters."""
    return "".join(secrets.choice(alphabet) for _ in range(n))


def b64(data: str | bytes) -> str:
    """Standard base64 of ``data``."""
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def pem_body(size: int = 600) -> list[str]:
    """Random bytes as the 64-column base64 lines of a PEM body."""
    return textwrap.wrap(b64(secrets.token_bytes(size)), 64)


def jwt() -> str:
    """A JWT-shaped token with a random signature."""
    part = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")  # noqa: E731
    sig = base64.urlsafe_b64encode(secrets.token_bytes(64)).decode().rstrip("=")
    return f"{part({'alg': 'RS256', 'kid': rand(8)})}.{part({'sub': rand(12)})}.{sig}"


def hexdump(n: int) -> list[str]:
    """Lines of colon-separated hex as ``openssl pkey -text`` prints them."""
    octets = [secrets.token_hex(1) for _ in range(n)]
    return ["    " + ":".join(octets[i : i + 15]) + ":" for i in range(0, n, 15)]


@dataclass(frozen=True)
class Case:
    """A kind of secret: ``make()`` returns (what a command prints, what must not show)."""

    kind: str
    make: Callable[[], tuple[str, list[str]]]
    tails: bool = False
    """Any tail of the text (what a report keeps of long output) is masked too."""


def _one(template: str, value: Callable[[], str]) -> Callable[[], tuple[str, list[str]]]:
    def make() -> tuple[str, list[str]]:
        v = value()
        return template.format(v), [v]

    return make


def _pem(label: str) -> Callable[[], tuple[str, list[str]]]:
    def make() -> tuple[str, list[str]]:
        body = pem_body()
        text = "\n".join([f"-----BEGIN {label}-----", *body, f"-----END {label}-----"])
        return text, [line for line in body if len(line) >= 16]

    return make


def _pgp() -> tuple[str, list[str]]:
    body = pem_body(900)
    lines = ["-----BEGIN PGP PRIVATE KEY BLOCK-----", "", *body, "=" + rand(4)]
    return "\n".join([*lines, "-----END PGP PRIVATE KEY BLOCK-----"]), body


def _openssl_dump() -> tuple[str, list[str]]:
    priv, pub = hexdump(32), hexdump(65)
    lines = ["Private-Key: (256 bit)", "priv:", *priv, "pub:", *pub, "ASN1 OID: prime256v1"]
    return "\n".join(lines), [line.strip() for line in priv]


def _rsa_dump() -> tuple[str, list[str]]:
    lines = ["Private-Key: (512 bit, 2 primes)", "modulus:", *hexdump(65)]
    lines.append("publicExponent: 65537 (0x10001)")
    hidden: list[str] = []
    for label in ("privateExponent", "prime1", "prime2", "exponent1", "exponent2", "coefficient"):
        dump = hexdump(32)
        hidden += [line.strip() for line in dump]
        lines += [f"{label}:", *dump]
    return "\n".join(lines), hidden


def _block_scalar() -> tuple[str, list[str]]:
    a, b = rand(20), rand(20)
    return f"stringData:\n  password: |\n    {a}\n    {b}\n  username: bob", [a, b]


def _env_pair() -> tuple[str, list[str]]:
    v = rand(18)
    return (
        f"    env:\n    - name: DB_PASSWORD\n      value: {v}\n    - name: NS\n      value: shop",
        [v],
    )


def _basic() -> tuple[str, list[str]]:
    creds = b64(f"admin:{rand(14)}")
    return f"> Authorization: Basic {creds}", [creds]


def _client_key_data() -> tuple[str, list[str]]:
    key = (
        "-----BEGIN EC PRIVATE KEY-----\n"
        + "\n".join(pem_body(120))
        + "\n-----END EC PRIVATE KEY-----\n"
    )
    data = b64(key)
    return f"    client-key-data: {data}", [data[40:80]]


def _secret_data_url() -> tuple[str, list[str]]:
    pw = rand(16)
    return f"  DATABASE_URL: {b64(f'postgres://shop:{pw}@db.shop.svc:5432/shop')}", [
        b64(f"postgres://shop:{pw}@db.shop.svc:5432/shop")
    ]


def _jwt() -> tuple[str, list[str]]:
    token = jwt()
    return f"token is {token}", token.split(".")


def _tls_key() -> tuple[str, list[str]]:
    key = "-----BEGIN PRIVATE KEY-----\n" + "\n".join(pem_body()) + "\n-----END PRIVATE KEY-----\n"
    data = b64(key)
    return f"  tls.key: {data}", [data[30:70]]


def _aws_pair() -> tuple[str, list[str]]:
    key_id = "AKIA" + rand(16, string.ascii_uppercase + string.digits)
    secret = rand(20) + "/" + rand(19)
    return f"{key_id},{secret}", [key_id, secret]


CASES: tuple[Case, ...] = (
    Case("bearer token", _one("Authorization: Bearer {}", lambda: rand(32))),
    Case("JWT", _jwt),
    Case("kubeconfig token", _one("    token: {}", lambda: rand(40))),
    Case("kubeconfig client-key-data", _client_key_data),
    Case("PEM private key", _pem("PRIVATE KEY"), tails=True),
    Case("PEM RSA private key", _pem("RSA PRIVATE KEY"), tails=True),
    Case("OpenSSH private key", _pem("OPENSSH PRIVATE KEY"), tails=True),
    Case("PGP private key block", _pgp, tails=True),
    Case("openssl pkey -text (EC)", _openssl_dump, tails=True),
    Case("openssl rsa -text", _rsa_dump, tails=True),
    Case(
        "AWS access key id",
        _one(
            "export AWS_ACCESS_KEY_ID={}",
            lambda: "AKIA" + rand(16, string.ascii_uppercase + string.digits),
        ),
    ),
    Case(
        "AWS secret access key (credentials file)",
        _one("aws_secret_access_key = {}", lambda: rand(20) + "+" + rand(19)),
    ),
    Case("AWS secret access key (env)", _one("AWS_SECRET_ACCESS_KEY={}", lambda: rand(40))),
    Case("AWS key pair (csv)", _aws_pair),
    Case(
        "https://user:password@",
        _one("git clone https://alice:{}@git.example.com/shop.git", lambda: rand(14)),
    ),
    Case(
        "oauth2:glpat- in a URL",
        _one("remote: https://oauth2:glpat-{}@gitlab.example.com/g/r.git", lambda: rand(20)),
    ),
    Case(
        "token as URL user", _one("https://{}@github.com/acme/shop.git", lambda: "ghp_" + rand(36))
    ),
    Case(
        "curl -u user:password",
        _one("curl -sS -u admin:{} https://api.example.com/v1", lambda: rand(12)),
    ),
    Case(
        "curl --user 'user:password'",
        _one("curl --user 'admin:{}' https://api.example.com", lambda: rand(12)),
    ),
    Case("redis-cli -a", _one("redis-cli -h redis -a {} ping", lambda: rand(16))),
    Case("--password value", _one("mysql --password {} -h db shop", lambda: rand(12))),
    Case("--password=value", _one("helm install shop ./chart --password={}", lambda: rand(12))),
    Case("mysql -pPASSWORD", _one("mysql -uroot -p{} shop", lambda: rand(12))),
    Case(
        "docker login -p", _one("docker login -u bob -p {} registry.example.com", lambda: rand(14))
    ),
    Case(
        "--token",
        _one(
            "kubeadm join 10.0.0.1:6443 --token {}",
            lambda: rand(6).lower() + "." + rand(16).lower(),
        ),
    ),
    Case("GitHub ghp_", _one("GH_TOKEN: ghp_{}", lambda: rand(36))),
    Case("GitHub gho_", _one("using gho_{} for the clone", lambda: rand(36))),
    Case("GitHub github_pat_", _one("github_pat_{}", lambda: rand(22) + "_" + rand(59))),
    Case("GitLab glpat-", _one("PRIVATE-TOKEN glpat-{}", lambda: rand(20))),
    Case(
        "Slack xoxb-",
        _one(
            "SLACK_BOT xoxb-{}",
            lambda: f"{rand(12, string.digits)}-{rand(13, string.digits)}-{rand(24)}",
        ),
    ),
    Case(
        "Slack webhook",
        _one(
            "posting to https://hooks.slack.com/services/{}",
            lambda: f"T{rand(8)}/B{rand(8)}/{rand(24)}",
        ),
    ),
    Case("Authorization: Basic", _basic),
    Case("YAML block scalar password: |", _block_scalar),
    Case("env name/value pair", _env_pair),
    Case("DB_PASSWORD= variable", _one("DB_PASSWORD={}", lambda: rand(16))),
    Case("JSON password", _one('{{"user": "bob", "password": "{}"}}', lambda: rand(16))),
    Case("base64 Secret value holding a URL password", _secret_data_url),
    Case("tls.key in a Secret", _tls_key),
    Case("Google API key", _one("?key=AIza{}", lambda: rand(35))),
    Case("Stripe live key", _one("STRIPE=sk_live_{}", lambda: rand(24))),
    Case("npm token", _one("//registry.npmjs.org/:_authToken=npm_{}", lambda: rand(36))),
    Case("Vault token", _one("export VAULT_TOKEN=hvs.{}", lambda: rand(24))),
    Case(
        "signed URL",
        _one(
            "https://b.s3.amazonaws.com/o?X-Amz-Date=1&X-Amz-Signature={}",
            lambda: rand(64, "0123456789abcdef"),
        ),
    ),
    Case("cookie", _one("< Set-Cookie: session={}; Path=/; HttpOnly", lambda: rand(24))),
)

SAFE: tuple[str, ...] = (
    "NAME                       READY   STATUS    RESTARTS   AGE",
    "web-api-7d5c9f8b6-x2x9z    2/2     Running   0          5m",
    "recommendation-5b8f7c9d4-qq7kz   2/2   Running   1 (3m ago)   12m",
    "secret/web-api-tls created",
    "web-api-tls   kubernetes.io/tls   2      5s",
    "image: docker.io/istio/proxyv2@sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a6",
    "commit 9f2c1e7d5b3a4c8e6f0a1b2c3d4e5f60718293a4",
    "automountServiceAccountToken: false",
    "    - key: app",
    "      secretName: web-api-tls",
    "tls.key:     227 bytes",
    "Token:       <none>",
    "API token: ",
    "Password: ",
    "docker run -p 8080:80 -u 1000:1000 nginx",
    "mkdir -p /tmp/lab && ls -la",
    "DB_PASSWORD=$DB_PASSWORD",
    "PWD=/srv/workshop/labs",
    "Forwarding from 127.0.0.1:8080 -> 80",
    "bearer token authentication is enabled",
    "  namespace: aXN0aW9pbmFjdGlvbg==",
    "istio-token:",
    "SPIFFE URI: spiffe://cluster.local/ns/istioinaction/sa/web-api",
)


def certificate_yaml_line() -> str:
    """``tls.crt`` of a Secret: a certificate is public and stays readable."""
    body = "\n".join(pem_body(700))
    return "  tls.crt: " + b64(f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n")
