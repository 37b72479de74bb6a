"""Parsing the distinguished names lab authors write, without loading ``cryptography``.

Lab files say ``issuer: O=cluster.local`` or, copying OpenSSL's output,
``/O=cluster.local``. The loader lints these when a lab is loaded, which must
stay cheap, so the parser lives apart from the certificate toolbox.
"""

from __future__ import annotations

import re

_ALIASES = {
    "COMMONNAME": "CN",
    "ORGANIZATIONNAME": "O",
    "ORGANIZATION": "O",
    "ORGANIZATIONALUNITNAME": "OU",
    "COUNTRYNAME": "C",
    "STATEORPROVINCENAME": "ST",
    "LOCALITYNAME": "L",
    "E": "EMAILADDRESS",
    "EMAIL": "EMAILADDRESS",
    "DOMAINCOMPONENT": "DC",
}


def parse_name_spec(spec: str) -> list[tuple[str, str]]:
    """Parse an expected name: ``CN=a, O=b``, ``O = b`` or OpenSSL's ``/O=b/CN=a``."""
    text = spec.strip()
    if not text:
        return []
    parts = text[1:].split("/") if text.startswith("/") else re.split(r"(?<!\\)[,+]", text)
    pairs: list[tuple[str, str]] = []
    for part in parts:
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"{part.strip()!r} in {spec!r} is not ATTRIBUTE=value")
        short = key.strip().upper()
        short = _ALIASES.get(short, short)
        pairs.append((short, value.strip().replace("\\,", ",").replace("\\+", "+")))
    return pairs
