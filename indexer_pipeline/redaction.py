"""Secrets removed from text before it is embedded (leaves the machine) or stored (Qdrant, catalog).

One compiled alternation, one pass per text. A match is replaced by `[REDACTED:<kind>]`; for
assignments (`DB_PASSWORD=…`, `"api_key": "…"`, `Authorization: Bearer …`) the name stays, so a
reader still sees what was there. Placeholders (`<your-key>`, `${VAR}`, `$VAR`) are not secrets.
"""

from __future__ import annotations

import re

_PATTERNS = {
    # Named groups: `keep` (prefix kept as is) and `secret` (replaced).
    "openai_key": r"(?P<openai_key>\bsk-(?:proj-|ant-(?:api\d\d-)?|svcacct-|admin-)?[A-Za-z0-9_\-]{20,})",
    "github_token": r"(?P<github_token>\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}))",
    "aws_access_key": r"(?P<aws_access_key>\b(?:AKIA|ASIA)[A-Z0-9]{16}\b)",
    "bearer": r"(?P<bearer>(?i:\bbearer)\s+)(?P<bearer_secret>[A-Za-z0-9_\-\.=+/~]{16,})",
    # NAME_KEY=…, export FOO_SECRET="…", password: …, "api_key": "…"
    "assignment": (
        r"(?P<assignment>(?i:[\"']?\b[A-Za-z0-9_.\-]*"
        r"(?:[_\-]key|api[_\-]?key|secret(?:[_\-]?key)?|token|passw(?:or)?d|passwd|access[_\-]?key|private[_\-]?key)"
        r"[\"']?\s*[:=]\s*[\"']?))"
        r"(?P<assignment_secret>(?![<$\[{])[^\s\"',;]{6,})"
    ),
}
_REGEX = re.compile("|".join(_PATTERNS.values()))
_PLACEHOLDER = re.compile(
    r"^(?:x+|\*+|\.+|changeme|example|none|null|true|false|redacted\b.*)$", re.IGNORECASE
)


def _replace(match: re.Match) -> str:
    kind = match.lastgroup
    if match.group("bearer_secret"):
        return f"{match.group('bearer')}[REDACTED:bearer_token]"
    if match.group("assignment_secret"):
        value = match.group("assignment_secret")
        if _PLACEHOLDER.match(value) or value.startswith("[REDACTED"):
            return match.group(0)
        return f"{match.group('assignment')}[REDACTED:secret]"
    return f"[REDACTED:{kind}]"


def redact(text: str) -> tuple[str, int]:
    """(text without secrets, how many were replaced). Idempotent: markers are never matched again."""
    count = 0

    def counted(match: re.Match) -> str:
        nonlocal count
        replacement = _replace(match)
        if replacement != match.group(0):
            count += 1
        return replacement

    return _REGEX.sub(counted, text), count
