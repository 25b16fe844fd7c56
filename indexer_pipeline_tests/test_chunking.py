"""Token-aware chunking: a whitespace tokenizer for exact expectations, real cl100k for the real thing."""

from __future__ import annotations

import re

import pytest

from indexer_pipeline import tokenizers
from indexer_pipeline.chunking import chunk_document
from indexer_pipeline.models import Document


def words(text: str) -> list[int]:
    """One token per word, the blanks after it included (a tokenizer that is easy to reason about)."""
    return [m.start() for m in re.finditer(r"\S+\s*", text)]


def document(text: str) -> Document:
    return Document("u:a", "u", "docs/a.md", text, {"kind": "tree", "title": "A"})


def spans(text: str, chunks) -> list[tuple[int, int]]:
    """Where each chunk sits in `text`, in order; fails unless each is an exact substring."""
    found, at = [], 0
    for chunk in chunks:
        start = text.find(chunk.text, at)
        assert start >= 0, f"chunk {chunk.chunk_index} is not a slice of the text"
        found.append((start, start + len(chunk.text)))
        at = start + 1
    return found


def assert_covers(text: str, chunks) -> None:
    places = spans(text, chunks)
    assert places[0][0] == 0 and places[-1][1] == len(text)
    for (_, end), (start, _) in zip(places, places[1:]):
        assert start <= end, "a gap between two chunks"


def test_windows_cover_the_text_share_the_overlap_and_carry_the_payload():
    text = " ".join(f"w{i}" for i in range(1000))
    chunks = chunk_document(document(text), words, max_tokens=100, overlap=10)
    assert [c.chunk_index for c in chunks] == list(range(len(chunks))) and len(chunks) == 11
    assert all(c.tokens <= 100 for c in chunks)
    assert_covers(text, chunks)
    for a, b in zip(chunks, chunks[1:]):
        assert a.text.split()[-10:] == b.text.split()[:10]
    assert chunks[3].payload == {
        "kind": "tree",
        "title": "A",
        "unit": "u",
        "doc_id": "u:a",
        "path": "docs/a.md",
        "chunk_index": 3,
    }
    assert {c.doc_id for c in chunks} == {"u:a"} and {c.unit for c in chunks} == {"u"}


def test_without_overlap_the_chunks_join_back_to_the_text():
    text = "  leading blanks, then words.\n" + "lorem ipsum dolor sit amet. " * 300 + "\n"
    chunks = chunk_document(document(text), words, max_tokens=64, overlap=0)
    assert "".join(c.text for c in chunks) == text
    assert sum(c.tokens for c in chunks) == len(words(text))


def test_a_chunk_ends_at_the_best_boundary_in_the_last_15_percent():
    paragraph = " ".join(["alpha"] * 90) + ".\n\n" + " ".join(["beta"] * 90)
    first = chunk_document(document(paragraph), words, max_tokens=100, overlap=0)[0]
    assert first.text.endswith(".\n\n") and first.tokens == 90

    sentence = " ".join(["alpha"] * 88) + ". Beta " + " ".join(["gamma"] * 90)
    first = chunk_document(document(sentence), words, max_tokens=100, overlap=0)[0]
    assert first.text.endswith("alpha. ")

    early = " ".join(["alpha"] * 50) + ".\n\n" + " ".join(["beta"] * 90)  # at 50 %: too early
    first = chunk_document(document(early), words, max_tokens=100, overlap=0)[0]
    assert first.tokens == 100


def test_blank_documents_make_no_chunks():
    assert chunk_document(document(" \n\t\n "), words, 100, 10) == []
    assert chunk_document(document(""), words, 100, 10) == []


@pytest.mark.parametrize("max_tokens, overlap", [(100, 100), (100, 150), (100, -1), (0, 0)])
def test_an_overlap_not_below_the_chunk_size_is_refused(max_tokens, overlap):
    with pytest.raises(ValueError, match=r"overlap.* must be at least 0 and below the chunk size"):
        chunk_document(document("some text"), words, max_tokens, overlap)


def test_a_20000_token_multilingual_text_is_split_never_truncated_with_cl100k():
    text = "".join(f"{i}: Ünïcödé façade — 日本語のテキスト, emoji 🧪🔬 and Ελληνικά.\n" for i in range(1000))
    total = tokenizers.count_tokens(text)
    assert total > 20_000
    calls = []

    def offsets(piece: str) -> list[int]:
        calls.append(piece)
        return tokenizers.token_offsets(piece)

    chunks = chunk_document(document(text), offsets, max_tokens=1000, overlap=100)
    assert len(calls) == 1  # the text is tokenized once, whatever its length
    assert_covers(text, chunks)
    assert all(tokenizers.count_tokens(c.text) <= 1000 for c in chunks)
    assert all(c.text.endswith("\n") for c in chunks)  # every cut found a line end
    assert sum(c.tokens for c in chunks) >= total


@pytest.mark.parametrize("overlap", [0, 5])
def test_cuts_never_split_a_character_between_chunks(overlap):
    text = "🧪" * 3000  # several cl100k tokens per character
    chunks = chunk_document(document(text), tokenizers.token_offsets, 50, overlap)
    assert all(tokenizers.count_tokens(c.text) == c.tokens <= 50 for c in chunks)
    if not overlap:
        assert "".join(c.text for c in chunks) == text
