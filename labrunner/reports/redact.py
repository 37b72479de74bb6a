"""Keep secrets out of reports and logs.

Lab commands print things learners should never paste into a CI log: bearer
tokens, kubeconfig credentials, PEM private keys (plain, or base64 inside a
Secret's YAML), JWTs. Everything that leaves the process through a report or
a log line passes through here first. The line-by-line redactor keeps state,
because a PEM key spans many lines of streamed output.
"""

from __future__ import annotations

import base64
import binascii
import re

MASK = "[REDACTED]"

_PEM = re.compile(r"-----BEGIN ((?:[A-Z]+ )*PRIVATE KEY)-----.*?(?:-----END \1-----|\Z)", re.DOTALL)
# The body of a key whose BEGIN line was cut off (an output tail starts mid-key).
_PEM_TAIL = re.compile(
    r"(?:^[ \t]*[A-Za-z0-9+/=]{16,}[ \t]*\r?\n)+(?=[ \t]*-----END (?:[A-Z]+ )*PRIVATE KEY-----)",
    re.MULTILINE,
)
_PEM_BEGIN = re.compile(r"-----BEGIN ((?:[A-Z]+ )*PRIVATE KEY)-----")
_PEM_END = re.compile(r"-----END ((?:[A-Z]+ )*PRIVATE KEY)-----")
_BEARER = re.compile(r"(?i)(\bbearer[ \t]+)[A-Za-z0-9._~+/=-]{6,}")
_AUTH_HEADER = re.compile(r"(?i)(\bauthorization[ \t]*[:=][ \t]*)(?!bearer\b)[^\s\"',]{6,}")
_KEYED = re.compile(
    r"(?i)((?:^|[\s\"'{,])[A-Za-z0-9_.-]*(?:token|client-key-data|password|passwd|secret|"
    r"api[-_]?key|tls\.key)\"?[ \t]*[:=][ \t]*\"?)([^\s\"',;&|}]{4,})"
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
# A JWT cut short (a clipped message): header and the start of the claims.
_JWT_PART = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]*")
_B64_PEM = re.compile(r"LS0tLS1CRUdJTi[A-Za-z0-9+/=]{16,}")
_TRIGGERS = (
    "PRIVATE KEY",
    "earer",
    "EARER",
    "oken",
    "OKEN",
    "assw",
    "ASSW",
    "key-data",
    "eyJ",
    "LS0tLS1CRUdJTi",
    "ecret",
    "ECRET",
    "uthorization",
    "UTHORIZATION",
    "pi_key",
    "pi-key",
    "tls.key",
)


def _b64_pem(match: re.Match[str]) -> str:
    text = match.group(0)
    try:
        decoded = base64.b64decode(text + "=" * (-len(text) % 4), validate=False)
    except (binascii.Error, ValueError):
        return text
    return MASK if b"PRIVATE KEY" in decoded else text


def redact(text: str) -> str:
    """``text`` with credentials and private keys replaced by a mask."""
    if not any(t in text for t in _TRIGGERS):
        return text
    text = _PEM.sub(
        lambda m: f"-----BEGIN {m.group(1)}-----\n{MASK}\n-----END {m.group(1)}-----", text
    )
    text = _PEM_TAIL.sub(MASK + "\n", text)
    text = _B64_PEM.sub(_b64_pem, text)
    text = _JWT.sub(MASK, text)
    text = _JWT_PART.sub(MASK, text)
    text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
    text = _AUTH_HEADER.sub(lambda m: m.group(1) + MASK, text)
    text = _KEYED.sub(lambda m: m.group(1) + MASK, text)
    return text


class LineRedactor:
    """Redacts a stream of lines, masking every line inside a PEM private key."""

    def __init__(self) -> None:
        self._in_key = False

    def __call__(self, line: str) -> str:
        if self._in_key:
            if _PEM_END.search(line):
                self._in_key = False
                return line[line.find("-----END") :]
            return MASK
        begin = _PEM_BEGIN.search(line)
        if begin and not _PEM_END.search(line, begin.end()):
            self._in_key = True
            return line[: begin.end()]
        return redact(line)
