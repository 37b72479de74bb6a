"""One rule set that keeps secrets out of everything that leaves the learner's screen.

Lab commands print credentials as a matter of course: a kubeconfig with its
token, a Secret read back with ``kubectl get -o yaml``, a key fresh from
``openssl genpkey``, a ``curl -u admin:…`` line, cloud keys in an ``env``
dump. Headless stdout and stderr, the JUnit and JSON reports, the messages
kept in the progress file and every ``labrunner: …`` diagnostic pass through
here first, and so must any later way out (CI annotations, class events).
There are two entry points:

- ``redact(text)`` for one complete piece of text: a check message, a
  command, the output tail of one command;
- ``LineRedactor`` for a stream of output lines. Keys, hex dumps and YAML
  block scalars span lines, so it keeps state; call ``reset()`` between
  commands, so a BEGIN without its END (``head -1 key.pem``) masks at most to
  the end of that command's output, never the rest of the run.

The rules come in three families: tokens that give themselves away (vendor
prefixes, JWTs, AWS key ids, base64 of a PEM private key); values known by
what names them (``password:``, ``--token``, ``curl -u``, URL userinfo,
Authorization headers); and blocks spread over lines (PEM and PGP private
keys, ``openssl … -text`` dumps, YAML block scalars under a sensitive key,
an ``env`` entry whose ``name`` is sensitive followed by its ``value``).
Certificates are public and are left alone, so ``tls.crt`` stays readable
while ``tls.key`` is masked. A bare random string with nothing around it
that says "secret" cannot be told from a digest or a pod hash, so it is not
masked: this is a safety net, not a guarantee (the README says what is not
covered).

The rules are our own, written from the token formats the providers
document. A secret scanner such as detect-secrets was measured instead: it
finds the value rather than its place in the line (for ``ghp_…`` and
``glpat-…`` it reports only the prefix), misses most of the command-line and
multi-line kinds above, costs about 100 ms to import and ~90 µs per output
line; this module costs well under 1 ms to import (the patterns compile, in
a few ms, on the first text that needs them) and 1–2 µs per ordinary line of
kubectl output, because one scan for trigger words decides whether any rule
runs at all (``bench/redaction.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

MASK = "[REDACTED]"

# What names a secret when it is the last word of a key, an option or a variable
# (``DB_PASSWORD=``, ``"token":``, ``client-key-data:``, ``adminPassword=``).
_SENSITIVE = (
    r"(?:password|passwd|passphrase|secret|token|api[-_]?key|apikey|access[-_]?key"
    r"|secret[-_]?(?:access[-_]?)?key|private[-_]?key|client[-_]?secret|client-key-data"
    r"|tls\.key|account[-_]?key|session[-_]?key|signing[-_]?key|encryption[-_]?key"
    r"|master[-_]?key|auth|credentials?|dockerconfigjson|dockercfg|connection[-_]?string)"
)
# A value: quoted (kept with its quotes) or one shell word.
_VALUE = r"(?:\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*'|[^\s\"',;&|}\]]+)"
_PLACEHOLDERS = frozenset(
    {
        "true",
        "false",
        "null",
        "nil",
        "none",
        "yes",
        "no",
        "~",
        "redacted",
        MASK.lower(),
        "<none>",
        "<unset>",
        "<redacted>",
        "<hidden>",
        "xxx",
        "required",
        "optional",
    }
)


def _plausible(value: str) -> bool:
    """A value that could be a secret: not empty, a placeholder or a variable reference."""
    inner = value.strip("\"'")
    if len(inner) < 3 or inner.lower() in _PLACEHOLDERS:
        return False
    return inner[0] not in "$<{[(*%|>" and not inner.startswith(MASK)


def _tokenish(value: str) -> bool:
    """Looks like a credential rather than a word: a digit in it, or long."""
    return len(value) >= 8 and (any(c.isdigit() for c in value) or len(value) >= 24)


def _b64_decode(text: str) -> bytes | None:
    # lazy: only lines that look base64-encoded pay for these
    import base64
    import binascii

    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=False)
    except (binascii.Error, ValueError):
        return None


def _b64_private_key(value: str) -> bool:
    decoded = _b64_decode(value)
    return decoded is not None and b"PRIVATE KEY" in decoded


def _b64_userpass(value: str) -> bool:
    decoded = _b64_decode(value)
    return decoded is not None and b":" in decoded and decoded.isascii()


def _password_not_gid(value: str) -> bool:
    return _plausible(value) and not value.isdigit()  # docker run -u 1000:1000


class Rule:
    """One kind of secret in one line: mask ``group`` of every match of ``pattern``.

    ``triggers`` are lower-case substrings of which one must be in the line for
    the pattern to run at all (the cheap test that keeps ordinary lines fast);
    ``requires`` are literals the pattern cannot match without, all of which must
    be there too (so a URL without an ``@`` never compiles the URL patterns);
    ``accept`` vetoes a match whose masked text is not a credential after all.
    """

    __slots__ = ("_regex", "accept", "group", "kind", "pattern", "requires", "triggers")

    def __init__(
        self,
        kind: str,
        triggers: tuple[str, ...],
        pattern: str,
        group: int = 0,
        accept: Callable[[str], bool] | None = None,
        requires: tuple[str, ...] = (),
    ) -> None:
        self.kind = kind
        self.triggers = triggers
        self.requires = requires
        self.pattern = pattern
        self.group = group
        self.accept = accept
        self._regex: re.Pattern[str] | None = None

    def may_match(self, low: str) -> bool:
        """Whether the pattern can match the line ``low`` (lower-cased) at all."""
        return any(map(low.__contains__, self.triggers)) and all(
            map(low.__contains__, self.requires)
        )

    @property
    def regex(self) -> re.Pattern[str]:
        """The compiled pattern (compiled on first use, not at import)."""
        if self._regex is None:
            self._regex = re.compile(self.pattern)
        return self._regex

    def apply(self, line: str) -> str:
        """``line`` with this rule's secrets masked."""
        return self.regex.sub(self._mask, line)

    def _mask(self, match: re.Match[str]) -> str:
        start, end = match.span(self.group)
        if start < 0:
            return match.group(0)
        value = match.string[start:end]
        if self.accept is not None and not self.accept(value):
            return match.group(0)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            start, end = start + 1, end - 1  # keep the quotes: "token": "[REDACTED]"
        return match.string[match.start() : start] + MASK + match.string[end : match.end()]


_KEYED_PREFIX = r"(?:^|(?<=[\s\"'{,=?&;(]))"

RULES: tuple[Rule, ...] = (
    Rule(
        "private key (PEM, OpenSSH, PGP)",
        ("private key",),
        r"(-----BEGIN ([A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?)-----)(.*?)(-----END \2-----)",
        3,
    ),
    Rule(
        "private key, base64-encoded (a Secret's tls.key, client-key-data)",
        ("ls0tls1crudjti",),
        r"LS0tLS1CRUdJTi[A-Za-z0-9+/=]{16,}",
        accept=_b64_private_key,
    ),
    Rule(
        "JWT (service account and ID tokens), also cut short",
        ("eyj",),
        r"\beyJ[A-Za-z0-9_-]{8,}\.(?:[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}|eyJ[A-Za-z0-9_-]*)",
    ),
    Rule(
        "GitHub token (ghp_, gho_, ghu_, ghs_, ghr_, github_pat_)",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        r"\b(?:gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{20,255})",
    ),
    Rule(
        "GitLab token (glpat-, gldt-, glrt-, glptt-, … and runner tokens)",
        (
            "glpat-",
            "gloas-",
            "gldt-",
            "glrt-",
            "glcbt-",
            "glptt-",
            "glft-",
            "glimt-",
            "glagent-",
            "glsoat-",
            "glffct-",
            "glwt-",
            "gr1348941",
        ),
        r"\b(?:gl(?:pat|oas|dt|rt|cbt|ptt|ft|imt|agent|soat|ffct|wt)-[A-Za-z0-9_-]{20,}"
        r"|GR1348941[A-Za-z0-9_-]{20,})",
    ),
    Rule(
        "Slack token (xoxb-, xoxp-, xapp-, …) and webhook URL",
        ("xox", "xapp-", "hooks.slack.com"),
        r"\bxox[abposre]-[A-Za-z0-9-]{10,}|\bxapp-\d-[A-Za-z0-9-]{10,}"
        r"|(?<=hooks\.slack\.com/services/)[A-Za-z0-9/]+",
    ),
    Rule(
        "AWS access key id (AKIA…, ASIA…)",
        ("akia", "asia", "abia", "acca"),
        r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b",
    ),
    Rule(
        "other provider tokens (Google, Stripe, OpenAI, npm, PyPI, Docker Hub, Vault, "
        "Hugging Face, SendGrid, age)",
        (
            "aiza",
            "ya29.",
            "sk_live_",
            "sk_test_",
            "rk_live_",
            "rk_test_",
            "sk-",
            "npm_",
            "pypi-age",
            "dckr_pat_",
            "hvs.",
            "hvb.",
            "hvr.",
            "hf_",
            "sg.",
            "age-secret-key-",
        ),
        r"\bAIza[0-9A-Za-z_-]{35}|\bya29\.[0-9A-Za-z_-]{20,}|\b[rs]k_(?:live|test)_[0-9A-Za-z]{16,}"
        r"|\bsk-(?:[a-z0-9]+-){0,3}[A-Za-z0-9_]{20,}[A-Za-z0-9_-]*|\bnpm_[A-Za-z0-9]{36}"
        r"|\bpypi-AgE[A-Za-z0-9_-]{50,}|\bdckr_pat_[A-Za-z0-9_-]{20,}|\bhv[sbr]\.[A-Za-z0-9_-]{20,}"
        r"|\bhf_[A-Za-z0-9]{30,}|\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}"
        r"|\bAGE-SECRET-KEY-1[0-9A-Z]{50,}",
    ),
    Rule(
        "credentials in a URL (https://user:password@, oauth2:TOKEN@)",
        ("://",),
        r"(?i)\b[a-z][a-z0-9+.-]*://[^\s:/@'\"]*:([^\s/@'\"]+)@",
        1,
        requires=("@",),
    ),
    Rule(
        "a token as the user of a URL (https://TOKEN@host)",
        ("://",),
        r"(?i)\b[a-z][a-z0-9+.-]*://([A-Za-z0-9_-]{20,})@",
        1,
        requires=("@",),
    ),
    Rule(
        "signatures and tokens in a URL query (?sig=, X-Amz-Signature=, access_token=)",
        ("sig=", "signature=", "credential=", "token=", "key=", "secret="),
        r"(?i)[?&](?:sig|signature|x-amz-signature|x-goog-signature|x-amz-credential"
        r"|x-goog-credential|x-amz-security-token|access_token|id_token|refresh_token|token"
        r"|key|api_key|apikey|client_secret|secret)=([^&\s#\"']+)",
        1,
        accept=_plausible,
    ),
    Rule(
        "Authorization header (Basic, Bearer, Digest, any scheme)",
        ("authorization",),
        r"(?i)\b(?:proxy-)?authorization[\"']?[ \t]*[:=][ \t]*[\"']?"
        r"(?:(?:basic|bearer|token|digest|negotiate|ntlm|aws4-hmac-sha256|apikey|sso-key)[ \t]+)?"
        r"([^\"'\n]+)",
        1,
        accept=_plausible,
    ),
    Rule(
        "Bearer token",
        ("bearer",),
        r"\b(?:[Bb]earer|BEARER)[ \t]+([A-Za-z0-9._~+/=-]+)",
        1,
        accept=_tokenish,
    ),
    Rule(
        "Basic credentials (base64 user:password)",
        ("basic ",),
        r"\bBasic[ \t]+([A-Za-z0-9+/]{8,}={0,2})",
        1,
        accept=_b64_userpass,
    ),
    Rule(
        "cookies (Cookie:, Set-Cookie:)",
        ("cookie",),
        r"(?i)\b(?:set-)?cookie[\"']?[ \t]*:[ \t]*[\"']?([^\"'\n]+)",
        1,
    ),
    Rule(
        "option values (--password PW, --password=PW, --token, --client-secret, …)",
        ("pass", "token", "secret", "key"),
        r"(?i)(?<![\w-])--[a-z0-9-]*(?:password|passwd|pass|token|secret|api-?key|access-key"
        r"|secret-key|private-key)(?:[ \t]*=[ \t]*|[ \t]+)(?!-)(" + _VALUE + ")",
        1,
        accept=_plausible,
    ),
    Rule(
        "curl -u / --user user:password",
        ("-u", "--user", "--proxy-user"),
        r"(?<![\w-])(?:-u|-U|--user|--proxy-user)(?:[ \t]*=[ \t]*|[ \t]*)[\"']?[^\s:'\"]*:"
        r"([^\s'\"]+)",
        1,
        accept=_password_not_gid,
    ),
    Rule(
        "redis-cli -a PASSWORD",
        ("redis-cli",),
        r"\bredis-cli\b[^\n|;&]*?[ \t]-a[ \t]*(?!-)(" + _VALUE + ")",
        1,
        accept=_plausible,
    ),
    Rule(
        "-p PASSWORD where -p is a password (mysql -pPW, docker/podman/oc/az login -p, "
        "sshpass -p, mongosh -p)",
        ("mysql", "mariadb", "login", "sshpass", "mongo"),
        r"(?:\b(?:mysql|mysqldump|mysqladmin|mysqlsh|mariadb|mariadb-dump)\b[^\n|;&]*?[ \t]-p"
        r"|\b(?:(?:docker|podman|nerdctl|buildah|skopeo|oras|oc|az|helm[ \t]+registry)[ \t]+login"
        r"|sshpass|mongo|mongosh|mongodump|mongorestore|mongoexport|mongoimport)\b[^\n|;&]*?"
        r"[ \t]-p[ \t]*)(?![\s-])(" + _VALUE + ")",
        1,
        accept=_plausible,
    ),
    Rule(
        "values of sensitive keys and variables (password:, token:, DB_PASSWORD=, "
        "client-key-data:, tls.key:, AWS_SECRET_ACCESS_KEY=, …)",
        (
            "passw",
            "secret",
            "token",
            "key",
            "auth",
            "credential",
            "dockercfg",
            "dockerconfig",
            "connection",
        ),
        r"(?i)" + _KEYED_PREFIX + r"[A-Za-z0-9_.-]*" + _SENSITIVE + r"[\"']?[ \t]*[:=][ \t]*"
        r"(?!\d+[ \t]+bytes\b)(" + _VALUE + ")",
        1,
        accept=_plausible,
    ),
    Rule(
        "AWS secret access key beside its key id",
        ("akia", "asia", "aws"),
        r"(?<![A-Za-z0-9/+=])([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
        1,
        accept=lambda v: any(c.isupper() for c in v) and any(c.islower() for c in v),
    ),
)

# Multi-line kinds, and what ``redact`` needs besides the rules. Compiled on first
# use, like the rules: a CLI that only prints a diagnostic pays for none of it.
_PATTERNS = {
    "pem_begin": r"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?)-----",
    "pem_end": r"-----END ([A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?)-----",
    "b64_line": r"^\s*[A-Za-z0-9+/=]{16,}\s*$",
    "armor_sum": r"^\s*=[A-Za-z0-9+/]{4}\s*$",
    "sensitive_name": r"(?i)[A-Za-z0-9_.-]*" + _SENSITIVE,
    # a YAML or JSON value that is all base64: decoded, it may hold any of the above
    # (a Secret's data: a URL with a password, a kubeconfig, a JWT)
    "b64_value": r"^\s*[\"']?[\w.-]+[\"']?\s*:\s*[\"']?([A-Za-z0-9+/]{24,}={0,2})[\"']?,?\s*$",
    "block_scalar": r"(?i)^(\s*(?:-\s+)?)[\"']?[A-Za-z0-9_.-]*"
    + _SENSITIVE
    + r"[\"']?\s*:\s*[|>][-+0-9]*\s*(?:#.*)?$",
    "env_name": r"^\s*(?:-\s+)?[\"']?name[\"']?\s*:\s*[\"']?([A-Za-z_][\w.-]*)[\"']?,?\s*$",
    "env_value": r"^(\s*[\"']?value[\"']?\s*:\s*)(" + _VALUE + ")",
    # ``openssl pkey|rsa|ec -text``: a header, labels, and colon-separated hex
    "dump_start": r"^\s*(?:[A-Z0-9-]+ )?Private-Key:.*$"
    r"|^\s*(?:priv|privateExponent|prime1|prime2|exponent1|exponent2|coefficient):\s*$",
    "dump_hex": r"^\s+[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2})*:?\s*$",
    "dump_label": r"^[A-Za-z][A-Za-z0-9 ]*:(?: .*)?$",
}
_DUMP_TRIGGERS = ("private-key", "priv:", "privateexponent", "prime", "exponent", "coefficient")
_TRIGGERS = tuple(
    dict.fromkeys([*(t for rule in RULES for t in rule.triggers), "private key", *_DUMP_TRIGGERS])
)
_LONG_LINE = 400
"""Past this length the substring tests beat one regex scan of the line."""
_PUNCTUATION = (" ", ":", "=", "-", "_", ".", "@", "/", "?", "&", "\t", '"', "'", "+")
# What a secret can be when a line has none of the punctuation above (a long run of
# base64, say): every other rule needs a separator, a prefix with one, or a key.
_BARE_A = ("AKIA", "ASIA", "ABIA", "ACCA", "AIza")


def _bare(line: str) -> bool:
    """A long line with no separator and no self-evident token in it: nothing to mask.

    Single-character tests run at memory speed, so a flood of long lines (a
    base64 blob, 64 KiB pieces of a line with no end) costs next to nothing.
    """
    if any(map(line.__contains__, _PUNCTUATION)):
        return False
    if "A" in line and any(map(line.__contains__, _BARE_A)):
        return False
    return "LS0tLS1CRUdJTi" not in line


def _trie(words: list[str]) -> str:
    """One alternation of ``words``, grouped by first letter (a much shorter scan per
    position than a flat list of 80 alternatives)."""
    heads: dict[str, list[str]] = {}
    for word in words:
        heads.setdefault(word[0], []).append(word[1:])
    parts = []
    for head, rests in sorted(heads.items()):
        if "" in rests:
            parts.append(re.escape(head))
        elif len(rests) == 1:
            parts.append(re.escape(head + rests[0]))
        else:
            parts.append(re.escape(head) + "(?:" + _trie(rests) + ")")
    return "|".join(parts)


class _Compiled:
    """The patterns above, each compiled once, on first use.

    Most text takes the fast path, which needs three of the thirteen; compiling
    the others only when a line calls for them keeps a short command's first
    message cheap.
    """

    def __getattr__(self, name: str) -> re.Pattern[str]:
        if name == "gate":
            pattern = _trie(sorted(_TRIGGERS))
        elif name in _PATTERNS:
            pattern = _PATTERNS[name]
        else:
            raise AttributeError(name)
        compiled = re.compile(pattern)
        setattr(self, name, compiled)
        return compiled

    pem_begin: re.Pattern[str]
    pem_end: re.Pattern[str]
    b64_line: re.Pattern[str]
    armor_sum: re.Pattern[str]
    sensitive_name: re.Pattern[str]
    b64_value: re.Pattern[str]
    block_scalar: re.Pattern[str]
    env_name: re.Pattern[str]
    env_value: re.Pattern[str]
    dump_start: re.Pattern[str]
    dump_hex: re.Pattern[str]
    dump_label: re.Pattern[str]
    gate: re.Pattern[str]


_compiled: _Compiled | None = None


def _p() -> _Compiled:
    global _compiled
    if _compiled is None:
        _compiled = _Compiled()
    return _compiled


KINDS: tuple[str, ...] = (
    *(rule.kind for rule in RULES),
    "base64 values (a Secret's data) whose decoded text holds any of the above",
    "YAML block scalar under a sensitive key (password: |)",
    "env entry whose name is sensitive: the value on the next line",
    "openssl pkey/rsa/ec -text hex dump of a private key",
    "answers to prompts marked expect: {secret: true}, and their echo",
)
"""Every kind of secret masked, for the README and the tests."""


_GATE_AFTER = 64
"""Short lines tested with substring scans before the gate (one regex of every trigger) is
compiled: compiling it costs as much as scanning a few hundred lines, and a short command
(``check`` says which cluster it uses) redacts only a few."""
_scanned = 0


def _suspect(low: str) -> bool:
    """Whether any rule might match ``low`` (the lower-cased line): the fast path."""
    global _scanned
    if len(low) > _LONG_LINE:
        return any(map(low.__contains__, _TRIGGERS))
    if _scanned < _GATE_AFTER:
        _scanned += 1
        return any(map(low.__contains__, _TRIGGERS))
    return _p().gate.search(low) is not None


def _rules(line: str, low: str, depth: int = 0) -> str:
    for rule in RULES:
        if rule.may_match(low):
            line = rule.apply(line)
    if depth == 0:
        line = _decoded(line)
    return line


def _decoded(line: str) -> str:
    if len(line) < 26 or ":" not in line:
        return line
    match = _p().b64_value.match(line)
    if match is None:
        return line
    raw = _b64_decode(match.group(1))
    if raw is None:
        return line
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return line
    if not _suspect(text.lower()) or _redact_text(text, depth=1) == text:
        return line
    return line[: match.start(1)] + MASK + line[match.end(1) :]


class LineRedactor:
    """Redacts a stream of output lines, masking blocks that span lines.

    Call ``reset()`` when a command ends, so an unfinished block never
    reaches into the next command's output.
    """

    def __init__(self) -> None:
        self._mode = ""
        self._indent = 0
        self._env_value_next = False
        self._depth = 0
        self._unanswered = ""

    def reset(self) -> None:
        """Forget any open block: the next line starts a new command's output."""
        self._mode = ""
        self._env_value_next = False
        self._unanswered = ""

    def unanswered(self, prompt: str) -> None:
        """``prompt`` got no answer (a headless run gives end-of-file): when the line
        that carries it comes, what follows the prompt is later output, not an answer,
        so it is redacted on its own rather than as the value of ``API token:``."""
        self._unanswered = prompt.strip()

    def __call__(self, line: str) -> str:
        prompt, self._unanswered = self._unanswered, ""
        if prompt and line.startswith(prompt) and len(line) > len(prompt):
            return self(line[: len(prompt)]) + self(line[len(prompt) :])
        if self._mode:
            out = self._in_block(line)
            if out is not None:
                return out
        p = _p()
        if self._env_value_next:
            self._env_value_next = False
            match = p.env_value.match(line)
            if match and _plausible(match.group(2)):
                value = match.group(2)
                quoted = len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'"
                masked = f"{value[0]}{MASK}{value[0]}" if quoted else MASK
                return match.group(1) + masked + line[match.end() :]
        if len(line) > _LONG_LINE and _bare(line):
            return line
        if "name" in line:
            named = p.env_name.match(line)
            if named and p.sensitive_name.fullmatch(named.group(1)):
                self._env_value_next = True
                return line
        low = line.lower()
        if not _suspect(low):
            return _decoded(line) if self._depth == 0 else line
        if "private key" in low:
            begin = p.pem_begin.search(line)
            if begin and not p.pem_end.search(line, begin.end()):
                self._mode = "pem"
                return _rules(line[: begin.end()], low[: begin.end()], self._depth)
        if any(map(low.__contains__, _DUMP_TRIGGERS)) and p.dump_start.match(line):
            self._mode = "dump"
            return line
        block = p.block_scalar.match(line) if "|" in line or ">" in line else None
        if block:
            self._mode = "yaml"
            self._indent = len(block.group(1))
            return line
        return _rules(line, low, self._depth)

    def _in_block(self, line: str) -> str | None:
        """The masked line while a block is open, or None once the block has ended."""
        p = _p()
        indent = line[: len(line) - len(line.lstrip())]
        if self._mode == "pem":
            end = p.pem_end.search(line)
            if end is None:
                return indent + MASK if line.strip() else line
            self._mode = ""
            rest = line[end.start() :]
            return rest if not line[: end.start()].strip() else indent + MASK + rest
        if self._mode == "dump":
            if p.dump_hex.match(line):
                return indent + MASK
            if p.dump_label.match(line) and not p.pem_begin.search(line):
                return line
            self._mode = ""
            return None
        # a YAML block scalar: every line indented past its key belongs to it
        if not line.strip():
            return line
        if len(indent) > self._indent:
            return indent + MASK
        self._mode = ""
        return None


def redact(text: str) -> str:
    """``text`` (one message, command or output tail) with every secret masked.

    Blocks that span lines end with the text: a BEGIN without END masks to the
    end of ``text``. A key whose BEGIN line was cut off (an output tail that
    starts inside it) is masked from the start of ``text`` up to its END line.
    """
    return _redact_text(text, depth=0)


def _redact_text(text: str, *, depth: int) -> str:
    low = text.lower()
    cut_dump = _p().dump_hex.match(text.split("\n", 1)[0]) is not None
    if not (_suspect(low) or cut_dump or (depth == 0 and _maybe_b64_value(text))):
        return text
    redactor = LineRedactor()
    redactor._depth = depth
    lines = [redactor(line) for line in text.split("\n")]
    if "private key" in low or cut_dump:
        _mask_orphans(lines)
    # a masked block reads as one line: a key's 26 lines of base64 say nothing more
    kept = [
        line
        for i, line in enumerate(lines)
        if not (i and line == lines[i - 1] and line.strip() == MASK)
    ]
    return "\n".join(kept)


def _maybe_b64_value(text: str) -> bool:
    if ":" not in text:
        return False
    match = _p().b64_value.match
    return any(match(line) for line in text.split("\n") if len(line) >= 26)


def _mask_orphans(lines: list[str]) -> None:
    """Mask what a cut-off text shows of a key without the line that announced it:
    the base64 lines above an END whose BEGIN is not in the text, and the hex lines
    at the top of a text whose ``openssl -text`` header was cut off."""
    p = _p()
    open_block = False
    for i, line in enumerate(lines):
        if p.pem_begin.search(line):
            open_block = not p.pem_end.search(line)
            continue
        if p.pem_end.search(line):
            if not open_block:
                j = i - 1
                while j >= 0 and (p.b64_line.match(lines[j]) or p.armor_sum.match(lines[j])):
                    lines[j] = MASK
                    j -= 1
            open_block = False
    top = 0
    while top < len(lines) and p.dump_hex.match(lines[top]):
        top += 1
    if top and any(p.dump_label.match(line) for line in lines[top : top + 3]):
        lines[:top] = [MASK] * top  # hex lines, then a label (pub:, exponent2:, ASN1 OID:)


MIN_LITERAL = 4
"""Known secrets shorter than this are not masked wherever they occur: masking
every ``y`` or ``42`` would blank out ordinary output."""


def mask_values(text: str, values: Iterable[str]) -> str:
    """``text`` with every occurrence of the given known secrets masked."""
    for value in values:
        if len(value) >= MIN_LITERAL and value in text:
            text = text.replace(value, MASK)
    return text


def split_point(text: str, limit: int, *, window: int = 4096) -> int:
    """Where to cut ``text`` (longer than ``limit``) so no secret is cut in two.

    The cut is at most ``limit`` and at least ``limit - window``: after the last
    space or tab in that window that no secret spans, else before the secret
    that spans ``limit``, else at ``limit`` itself.
    """
    lo = max(0, limit - window)
    region = text[lo : limit + 512]
    low = region.lower()
    spans: list[tuple[int, int]] = []
    if _suspect(low):
        for rule in RULES:
            if rule.may_match(low):
                spans.extend(m.span() for m in rule.regex.finditer(region))

    def crossed(pos: int) -> tuple[int, int] | None:
        return next(((s, e) for s, e in spans if s < pos < e), None)

    cut = limit - lo
    pos = cut
    while pos > 0:
        blank = max(region.rfind(" ", 0, pos), region.rfind("\t", 0, pos))
        if blank < 0:
            break
        pos = blank + 1
        if crossed(pos) is None:
            return lo + pos
        pos = blank
    span = crossed(cut)
    if span is not None and span[0] > 0:
        return lo + span[0]
    return limit
