"""manifests/jwt/make-jwt.sh: real RS256 tokens from bash and openssl, and no committed key."""

from __future__ import annotations

import base64
import json
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.workshop.conftest import MANIFESTS_DIR, REPO

SCRIPT = MANIFESTS_DIR / "jwt" / "make-jwt.sh"
ISSUER = "https://auth.istioinaction.io"


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _make(out: Path) -> None:
    subprocess.run(["bash", str(SCRIPT), str(out)], check=True, capture_output=True, timeout=60)


def _public_key(out: Path) -> rsa.RSAPublicKey:
    (key,) = json.loads((out / "jwks.json").read_text())["keys"]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig"
    numbers = rsa.RSAPublicNumbers(
        int.from_bytes(_b64(key["e"]), "big"), int.from_bytes(_b64(key["n"]), "big")
    )
    return numbers.public_key()


def _verify(token: str, key: rsa.RSAPublicKey) -> dict[str, Any]:
    header, claims, signature = token.strip().split(".")
    key.verify(_b64(signature), f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
    assert json.loads(_b64(header)) == {"alg": "RS256", "typ": "JWT", "kid": "workshop-signing-key"}
    result: dict[str, Any] = json.loads(_b64(claims))
    return result


@pytest.fixture(scope="module")
def jwt_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("jwt") / "work" / "jwt"  # the script creates it
    _make(out)
    return out


def test_token_verifies_against_the_published_key_set(jwt_dir: Path) -> None:
    claims = _verify((jwt_dir / "token.jwt").read_text(), _public_key(jwt_dir))
    assert claims["iss"] == ISSUER
    assert claims["aud"] == "istioinaction.io"
    assert claims["sub"] == "learner"
    now = time.time()
    assert claims["iat"] <= now + 5 < claims["exp"]
    assert claims["exp"] - claims["iat"] == 7 * 24 * 3600


def test_forged_token_does_not_verify(jwt_dir: Path) -> None:
    with pytest.raises(InvalidSignature):
        _verify((jwt_dir / "forged.jwt").read_text(), _public_key(jwt_dir))


def test_private_keys_are_private(jwt_dir: Path) -> None:
    for name in ("signing.key", "forged.key"):
        mode = stat.S_IMODE((jwt_dir / name).stat().st_mode)
        assert mode == 0o600, f"{name} has mode {mode:o}"


def test_request_authentication_carries_the_key_set(jwt_dir: Path) -> None:
    doc = yaml.safe_load((jwt_dir / "request-authentication.yaml").read_text())
    (rule,) = doc["spec"]["jwtRules"]
    assert rule["issuer"] == ISSUER
    assert json.loads(rule["jwks"]) == json.loads((jwt_dir / "jwks.json").read_text())
    assert "jwksUri" not in rule, "inline keys, so air-gapped clusters work"


def test_rerunning_keeps_the_key_and_mints_new_tokens(tmp_path: Path) -> None:
    _make(tmp_path)
    jwks = (tmp_path / "jwks.json").read_text()
    key = (tmp_path / "signing.key").read_bytes()
    _make(tmp_path)
    assert (tmp_path / "jwks.json").read_text() == jwks
    assert (tmp_path / "signing.key").read_bytes() == key
    _verify((tmp_path / "token.jwt").read_text(), _public_key(tmp_path))


def test_no_private_key_or_token_is_committed() -> None:
    for root in (REPO / "manifests", REPO / "labs"):
        for path in root.rglob("*"):
            if path.is_file():
                text = path.read_text(errors="replace")
                assert "PRIVATE KEY-----" not in text, f"{path} holds a private key"
                assert not any(
                    len(part) > 40 and part.startswith("eyJ") for part in text.split()
                ), f"{path} holds a token"


def test_output_folder_is_private_and_git_ignored(jwt_dir: Path) -> None:
    assert (jwt_dir / ".gitignore").read_text().strip() == "*"
    assert stat.S_IMODE(jwt_dir.stat().st_mode) & 0o077 == 0


def _claims_preview_command() -> str:
    lab = yaml.safe_load((REPO / "labs" / "14-end-user-jwt.yaml").read_text())
    step = next(s for s in lab["steps"] if s["id"] == "make-tokens")
    (command,) = [c for c in step["run"] if isinstance(c, str) and "base64 -d" in c]
    return command


@pytest.mark.parametrize("extra", ["", "x", "xy", "xyz"], ids=["pad0", "pad1", "pad2", "pad3"])
def test_claims_preview_decodes_every_padding(tmp_path: Path, extra: str) -> None:
    """base64url drops the `=` padding; the lab's preview must restore it, or openssl stops
    short and the learner sees truncated JSON."""
    claims = {"iss": ISSUER, "sub": "learner" + extra, "groups": ["shoppers"]}
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    (tmp_path / "token.jwt").write_text(f"eyJhbGciOiJSUzI1NiJ9.{body}.c2ln\n")
    shown = subprocess.run(
        ["bash", "-c", _claims_preview_command()],
        env={"JWT_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert json.loads(shown) == claims
