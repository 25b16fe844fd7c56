"""Token-aware chunking: a document's text cut into windows of at most `max_tokens` tokens.

The text arrives redacted: the reader clears every string it returns (readers.read_unit).

Chunks are slices of the text at token boundaries (from the embedder's own tokenizer offsets),
never decoded tokens: the local model's tokenizer lowercases, so a decode would change the text.
A text longer than one model input is split; nothing is truncated or dropped: every character is
in at least one chunk. Work is linear in the text: each cut looks back over at most the last 15 %
of its window, each overlap over at most `overlap` tokens.
"""

from __future__ import annotations

from collections.abc import Callable

from .models import Chunk, Document

TokenOffsets = Callable[[str], list[int]]  # character offset where each token starts

# A chunk may end this much of its window early, to stop at a paragraph, line, sentence or word.
BOUNDARY_SLACK = 0.15
PARAGRAPH, LINE, SENTENCE, WORD, NONE = 4, 3, 2, 1, 0


def _boundary(text: str, pos: int) -> int:
    """How clean a cut before character `pos` is; the two characters on either side decide."""
    before, after = text[max(pos - 2, 0) : pos], text[pos : pos + 2]
    if "\n\n" in before + after:
        return PARAGRAPH
    if "\n" in before[-1:] + after[:1]:
        return LINE
    if not (before[-1:].isspace() or after[:1].isspace()):
        return NONE
    # `end.| Next` or `end. |Next`: tokenizers put the space before or after the cut.
    return SENTENCE if before.rstrip()[-1:] in (".", "!", "?") else WORD


def _splits_character(offsets: list[int], token: int) -> bool:
    """A byte-level BPE token inside a multi-byte character starts at that character, like its neighbour."""
    return offsets[token] == offsets[token - 1]


def _cut(text: str, offsets: list[int], start: int, end: int) -> int:
    """Where the window [start, end) should end: the cleanest boundary in its last stretch, latest first."""
    if end >= len(offsets):
        return len(offsets)
    best, best_level = end, NONE
    for token in range(end, max(start + 1, end - int((end - start) * BOUNDARY_SLACK)) - 1, -1):
        if _splits_character(offsets, token):
            continue
        level = _boundary(text, offsets[token])
        if level > best_level:
            best, best_level = token, level
            if level == PARAGRAPH:
                break
    while best_level == NONE and best > start + 1 and _splits_character(offsets, best):
        best -= 1
    return best


def _next_start(text: str, offsets: list[int], start: int, end: int, overlap: int) -> int:
    """The first token of the next window: `overlap` tokens back, moved forward to a word start."""
    back = max(end - overlap, start + 1)
    for token in range(back, end):
        if not _splits_character(offsets, token) and _boundary(text, offsets[token]) != NONE:
            return token
    # No word start in the overlap: at least start on a character's first token, so the chunk
    # holds every token its text encodes and `Chunk.tokens` stays exact.
    while back > start + 1 and _splits_character(offsets, back):
        back -= 1
    return back


def chunk_document(doc: Document, token_offsets: TokenOffsets, max_tokens: int, overlap: int) -> list[Chunk]:
    """`doc` cut into chunks of at most `max_tokens` tokens, consecutive chunks sharing up to `overlap`
    tokens (fewer when that keeps the next chunk from starting inside a word)."""
    if max_tokens < 1 or not 0 <= overlap < max_tokens:
        raise ValueError(
            f"chunk overlap ({overlap}) must be at least 0 and below the chunk size ({max_tokens})"
        )
    text = doc.text
    if not text.strip():
        return []
    # Text the tokenizer reads as nothing (only control characters) still becomes one chunk.
    offsets = token_offsets(text) or [0]
    base = {**doc.metadata, "unit": doc.unit, "doc_id": doc.doc_id, "path": doc.path}
    chunks: list[Chunk] = []
    start = 0
    while True:
        end = _cut(text, offsets, start, start + max_tokens)
        # The first chunk takes what precedes the first token, the last what follows its last.
        piece = text[offsets[start] if start else 0 : offsets[end] if end < len(offsets) else len(text)]
        if piece.strip():
            index = len(chunks)
            chunks.append(
                Chunk(doc.unit, doc.doc_id, index, piece, end - start, {**base, "chunk_index": index})
            )
        if end == len(offsets):
            return chunks
        start = _next_start(text, offsets, start, end, overlap)
