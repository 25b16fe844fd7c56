"""Token-aware chunking: redacted text cut into windows of at most `max_tokens` tokens, with overlap.

Chunks are slices of the original text at token boundaries (from the model's tokenizer offsets),
never decoded tokens: the local model's tokenizer lowercases, and a decode could change the text.
A text longer than one input is split; nothing is truncated or dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .models import Chunk, Document
from .redaction import redact

TokenOffsets = Callable[[str], list[int]]

# A chunk may end this far before the window's end, to stop at a paragraph, line, sentence or space.
BOUNDARY_SLACK = 0.15
_BOUNDARIES = ("\n\n", "\n", ". ", " ")


@dataclass
class ChunkedDocument:
    chunks: list[Chunk]
    redactions: int


def _cut(text: str, offsets: list[int], start: int, end: int) -> int:
    """The token index to end a window [start, end) at: the latest boundary in its last stretch."""
    if end >= len(offsets):
        return len(offsets)
    lowest = max(start + 1, end - int((end - start) * BOUNDARY_SLACK))
    for boundary in _BOUNDARIES:
        for token in range(end, lowest - 1, -1):
            # A token that starts right after the boundary text is a clean place to cut.
            if text.endswith(boundary, 0, offsets[token]):
                return token
    return end


def chunk_document(
    doc: Document, token_offsets: TokenOffsets, max_tokens: int, overlap: int
) -> ChunkedDocument:
    if max_tokens < 1 or not 0 <= overlap < max_tokens:
        raise ValueError(
            f"chunk overlap ({overlap}) must be at least 0 and below the chunk size ({max_tokens})"
        )
    text, redactions = redact(doc.text)
    if not text.strip():
        return ChunkedDocument([], redactions)
    offsets = token_offsets(text)
    base = {**doc.metadata, "unit": doc.unit, "doc_id": doc.doc_id, "path": doc.path}
    chunks: list[Chunk] = []
    start = 0
    while start < len(offsets):
        end = _cut(text, offsets, start, min(start + max_tokens, len(offsets)))
        first = 0 if start == 0 else offsets[start]
        last = len(text) if end >= len(offsets) else offsets[end]
        piece = text[first:last]
        if piece.strip():
            index = len(chunks)
            chunks.append(
                Chunk(doc.unit, doc.doc_id, index, piece, end - start, {**base, "chunk_index": index})
            )
        if end >= len(offsets):
            break
        start = max(end - overlap, start + 1)
    return ChunkedDocument(chunks, redactions)
