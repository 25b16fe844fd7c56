"""Secrets removed from text before it is embedded (leaves the machine) or stored (Qdrant, catalog).

One compiled alternation, one pass per text. A match becomes `[REDACTED:<kind>]`. Keys with a
recognisable shape (`sk-…`, `ghp_…`, `glpat-…`, `AKIA…`, `hf_…`, `npm_…`, `SG.…`, JWTs, PEM private
keys…) go wherever they appear. For assignments (`DB_PASSWORD=…`, `"api_key": "…"`,
`Authorization: Bearer …`), connection strings of any scheme (`postgresql://user:pw@…`,
`mongodb+srv://…`, `redis://:pw@…`, `jdbc:…?password=…`) and command lines (`--password …`,
`mysql -p…`, `curl -u user:…`) only the value goes: the name, separator and quotes stay, so a reader
still sees what was there. Quotes may be JSON-escaped (`\\"password\\": \\"…\\"`), as in a tool call's
input.

Judgement calls, biased toward redacting (a false positive costs a few words of search text, a
false negative leaks a credential):
- Names: any ending in TOKEN, SECRET, PASSWORD, PASSWD or PASSPHRASE, an upper-case `NAME_KEY`,
  `NAME_PASS` or `NAME_PWD` (the env-var convention), or a `…key` with a credential prefix
  (`api_key`, `private-key`, `accessKey`); so `sort_key=lambda x: x` and `partition_key: day` stay.
- Values kept: placeholders (`<your-key>`, `${VAR}`, `$VAR`, `%VAR%`, `{{ x }}`, `xxx`, `***`,
  `changeme`, `your-…`, `none`, `true`); unquoted values shorter than 6 characters (`token: 5`,
  `password: str`) or that read as code (`os.environ["X"]`, `getpass()`, `api_key=settings.api_key`,
  `token=accessToken`). A quoted value or a URL password is a literal its author marked as one, so
  from 3 characters on it goes (`password: 'root'`).
- A bare `Bearer <token>` outside an Authorization header counts only when the token has a digit
  or mixed case, so prose such as "bearer responsibilities" stays.
Idempotent: a `[REDACTED:…]` marker is itself a placeholder, so a second pass changes nothing.

Why hand-kept patterns and not detect-secrets (benchmarks/bench_redaction.py, on the planted set of
indexer_pipeline_tests/planted_secrets.py): these patterns catch 63/63 shapes with 0/35 false positives
at ~7 MB/s; detect-secrets 1.5 with every default plugin catches 30/63 (no connection string without
a user, no JDBC/ADO.NET, unquoted env/YAML values, JSON-escaped text, command lines, headers) with 1/35
false positives at ~0.7 MB/s, and adds nothing on top of ours while making redaction 12x slower. On a
real 94-message Cline task it flagged 3 strings, none a secret.

Speed (this runs on every document): each alternative starts with a literal character or a
character class, so the engine rejects most positions on one comparison; a leading `\\b`, named
group or case-insensitive letter would send every position through the full alternative. Word
boundaries are therefore checked by a look-behind after the literal, kinds are tagged by empty
groups at the end, and no quantifier can rescan a long line from each of its positions (those in
URLs and command lines that could are bounded).
"""

from __future__ import annotations

import re

_WORD_CHAR = "[A-Za-z0-9_]"


def _word_start(prefix: str) -> str:
    """`prefix` (fixed width) only where it begins a word, or follows an escaped `\\n`, `\\t`, `\\r`
    (text inside a JSON string, such as a file a tool call writes)."""
    return f"{prefix}(?:(?<!{_WORD_CHAR}{prefix})|(?<=\\\\[ntr]{prefix}))"


def _ci(word: str) -> str:
    """`word` in any case, its first letter a plain class (see Speed above)."""
    return f"[{word[0].upper()}{word[0].lower()}](?i:{word[1:]})"


# Keys recognisable by their shape alone, wherever they appear.
_SHAPES = {
    "private_key": r"-----BEGIN[A-Z ]{0,20} PRIVATE KEY-----(?s:.*?)(?:-----END[A-Z ]{0,20} PRIVATE KEY-----|\Z)",
    "openai_key": _word_start("sk-") + r"(?=[A-Za-z0-9_\-]{0,200}\d)[A-Za-z0-9_\-]{20,}",
    "github_token": f"{_word_start('gh[pousr]_')}[A-Za-z0-9]{{30,}}|{_word_start('github_pat_')}[A-Za-z0-9_]{{30,}}",
    "aws_access_key": _word_start("A[KS]IA") + r"[A-Z0-9]{16}(?![A-Za-z0-9_])",
    "stripe_key": _word_start("[rs]k_") + r"(?:live|test)_[A-Za-z0-9]{16,}",
    "slack_token": _word_start("xox[abposr]-") + r"[A-Za-z0-9\-]{10,}",
    "google_api_key": _word_start("AIza") + r"[A-Za-z0-9_\-]{35,}",
    "gitlab_token": _word_start("glpat-") + r"[A-Za-z0-9_\-]{20,}",
    "npm_token": _word_start("npm_") + r"[A-Za-z0-9]{36}(?![A-Za-z0-9])",
    "huggingface_token": _word_start("hf_") + r"[A-Za-z0-9]{30,}",
    "sendgrid_key": _word_start("SG") + r"\.[A-Za-z0-9_\-]{16,32}\.[A-Za-z0-9_\-]{16,64}",
    "jwt": _word_start("eyJ") + r"[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]+",
}
_SHAPE = "|".join(f"(?:{pattern})(?P<{kind}>)" for kind, pattern in _SHAPES.items())
_SHAPE_ONLY = re.compile(_SHAPE)

_CREDENTIAL = r"[A-Za-z0-9\-._~+/]"  # RFC 6750 token characters
# `Authorization: Bearer|Basic|Token <credentials>`; elsewhere `Bearer <token>` (checked in _replace).
_AUTH = (
    _ci("authorization") + r"[\"']?[ \t]*[:=][ \t]*[\"']?(?P<scheme>(?i:bearer|basic|token))[ \t]+"
    rf"(?P<auth>{_CREDENTIAL}{{8,}}=*)"
    "|" + _ci("bearer") + rf"[ \t]+(?P<bearer>{_CREDENTIAL}{{16,}}=*)"
)

_SCHEME_KINDS = {"bearer": "bearer_token", "basic": "basic_auth", "token": "auth_token"}

# The match starts at the word that names a credential, not at the start of the name: a prefix of
# unbounded length would be rescanned from every `.` or `-` of a long line.
_KEY_PREFIXES = ("api", "access", "secret", "private", "client", "auth", "master", "signing", "encryption")
_NAME = "|".join(
    [
        _ci("aws_secret_access_key") + "(?P<aws_name>)",
        f"(?:{_ci('password')}|{_ci('passwd')}|{_ci('passphrase')})(?P<password_name>)",
        _ci("token"),
        _ci("secret"),
        "(?:" + "|".join(map(_ci, _KEY_PREFIXES)) + ")[_\\-]?" + _ci("key"),
        "_KEY",
        "_PASS",  # the env-var spellings `DB_PASS`, `SMTP_PWD`
        "_PWD",
    ]
)
# Quotes may be JSON-escaped, at any depth (`\\"`, `\\\\\\"`): a tool call's input holding JSON.
_ASSIGNMENT = (
    rf"(?:{_NAME})(?:\\*[\"'])?[ \t]*(?::=|=>|[:=])[ \t]*"
    r"(?:\\*\"(?P<dquoted>[^\"\n]+?)\\*\"|\\*'(?P<squoted>[^'\n]+?)\\*'|(?P<bare>[^\s\"',;&)\]}>\\]+))"
)
# `scheme://user:password@host` for every scheme. The user may hold `@` (Azure's `admin@server`) and
# the password too (unencoded, as people type it): the last `@` before the host ends it. Both bounded.
_URL_CHARS = r"[^\s:/?#\"'<>\\`]"
_URL = rf"://{_URL_CHARS}{{0,64}}:(?P<url_password>[^\s/?#\"'<>\\`]{{1,256}})@"
# Command-line passwords: `--password VALUE`, `mysql … -pVALUE`, `curl -u user:VALUE`.
_FLAG_VALUE = r"[^\s\"'`;&|)]"
_FLAGS = (
    rf"--(?:{_ci('password')}|{_ci('passwd')}|{_ci('pass')}|{_ci('token')}|{_ci('secret')}|api[-_]key)"
    rf"[ \t]+(?P<flag>{_FLAG_VALUE}+)"
    rf"|m(?:ysql(?:dump|admin)?|ariadb)[ \t][^\n]{{0,200}}?[ \t]-p(?P<mysql_password>{_FLAG_VALUE}+)"
    rf"|-(?:u|-user)[ \t]+[^\s:\"']{{1,64}}:(?P<user_password>{_FLAG_VALUE}{{1,256}})"
)

_REGEX = re.compile(f"{_SHAPE}|{_AUTH}|{_ASSIGNMENT}|{_URL}|{_FLAGS}")

MIN_SECRET_LENGTH = 6
# A quoted value or a URL password is a literal the author marked as such: `password: 'root'` counts.
MIN_QUOTED_SECRET_LENGTH = 3
_QUOTED = frozenset({"dquoted", "squoted", "url_password"})
_PASSWORD_KINDS = frozenset({"url_password", "mysql_password", "user_password"})
_PLACEHOLDER = re.compile(
    r"[<$\[{%]|(?:x+|\*+|\.+|-+|changeme|example|dummy|placeholder|none|null|nil|undefined|true|false"
    r"|required|optional|string|password|secret|token|your[_\-].*)$",
    re.IGNORECASE,
)
# Unquoted values that read as code: a call or subscript, or a snake_case, camelCase or dotted name
# (`api_key`, `accessToken`, `settings.api_key`). With a digit it is more likely a credential.
_CODE = re.compile(r".*[(\[{]|(?=.*(?:[_.]|[a-z][A-Z]))[A-Za-z_][A-Za-z_.]*$")
_RANDOM = re.compile(r".*\d|.+[A-Z].*[a-z]|.+[a-z].*[A-Z]")


def _replace(match: re.Match) -> str:
    kind = match.lastgroup
    if kind in _SHAPES:
        return f"[REDACTED:{kind}]"
    if kind == "auth":
        return _masked(match, "auth", _SCHEME_KINDS[match.group("scheme").lower()])
    if kind == "bearer":
        if not _RANDOM.match(match.group("bearer")):
            return match.group(0)
        return _masked(match, "bearer", "bearer_token")
    value = match.group(kind)
    shortest = MIN_QUOTED_SECRET_LENGTH if kind in _QUOTED else MIN_SECRET_LENGTH
    if len(value) < shortest or _PLACEHOLDER.match(value):
        return match.group(0)
    if kind not in _QUOTED and _CODE.match(value):
        return match.group(0)
    # Name the kind as precisely as the evidence allows.
    shape = _SHAPE_ONLY.fullmatch(value)
    if shape:
        return _masked(match, kind, shape.lastgroup)
    if kind in _PASSWORD_KINDS or match.group("password_name") is not None:
        return _masked(match, kind, "password")
    return _masked(match, kind, "aws_secret_key" if match.group("aws_name") is not None else "secret")


def _masked(match: re.Match, group: str, kind: str) -> str:
    """The match with only `group` replaced, so names, separators and quotes around it stay."""
    start, end = match.start(group) - match.start(), match.end(group) - match.start()
    whole = match.group(0)
    return f"{whole[:start]}[REDACTED:{kind}]{whole[end:]}"


def redact(text: str) -> tuple[str, int]:
    """(text without secrets, how many were replaced). Never logs what it finds."""
    count = 0

    def counted(match: re.Match) -> str:
        nonlocal count
        replacement = _replace(match)
        count += replacement != match.group(0)
        return replacement

    return _REGEX.sub(counted, text), count
