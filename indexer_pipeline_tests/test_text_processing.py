"""Redaction of secrets, and token-aware chunking (with a toy tokenizer and with cl100k)."""

from __future__ import annotations

import re

import pytest

from indexer_pipeline import tokenizers
from indexer_pipeline.chunking import chunk_document
from indexer_pipeline.models import Document
from indexer_pipeline.redaction import redact

SECRETS = {
    "openai": "sk-proj-FAKEfakeFAKE0000EXAMPLEexampleNOTaREALkey0123456789abcdEF",
    "anthropic": "sk-ant-api03-abcdefghijklmnopqrstuvwxyz012345",
    "github": "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "github_pat": "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    "aws": "AKIAIOSFODNN7EXAMPLE",
}


@pytest.mark.parametrize("name", SECRETS)
def test_each_kind_of_key_is_redacted(name):
    text, count = redact(f"here it is: {SECRETS[name]} and more")
    assert SECRETS[name] not in text and count == 1 and "[REDACTED:" in text


@pytest.mark.parametrize(
    "line, secret",
    [
        (
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.signature",
            "eyJhbGciOiJIUzI1NiJ9.payload.signature",
        ),
        ("export STRIPE_SECRET=rk_live_0123456789abcdef", "rk_live_0123456789abcdef"),
        ("DATABASE_PASSWORD=correct-horse-battery", "correct-horse-battery"),
        ('{"api_key": "abcd1234efgh5678"}', "abcd1234efgh5678"),
        ("github_token: 0123456789abcdef0123", "0123456789abcdef0123"),
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
    ],
)
def test_assignments_keep_the_name_and_lose_the_value(line, secret):
    text, count = redact(line)
    assert secret not in text and count == 1
    assert text.split("[REDACTED")[0].strip(" \"'") and "[REDACTED:" in text


@pytest.mark.parametrize(
    "text",
    [
        "Reset your password from the settings page; the key is in the drawer.",
        "value = cache.get(key)  # the primary key of the row",
        "commit 3f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39 and task 5528dbd6-d7dc-4d52-884c-abe5a78e2c31",
        "password: <your-password>   API_KEY=${OPENAI_API_KEY}",
        "sk-short is not a key",
    ],
)
def test_ordinary_text_is_untouched(text):
    assert redact(text) == (text, 0)


def test_redaction_is_idempotent():
    once, count = redact(" ".join(f"TOKEN={v}" for v in SECRETS.values()))
    assert count == len(SECRETS)
    assert redact(once) == (once, 0)


def whitespace_offsets(text: str) -> list[int]:
    return [m.start() for m in re.finditer(r"\S+\s*", text)]


def doc(text: str) -> Document:
    return Document("u:doc", "u", "docs/a.md", text, {"kind": "tree", "title": "A"})


def test_chunks_cover_every_character_with_the_asked_overlap():
    words = [f"w{i}" for i in range(1000)]
    chunks = chunk_document(doc(" ".join(words)), whitespace_offsets, max_tokens=100, overlap=10).chunks
    assert [c.chunk_index for c in chunks] == list(range(len(chunks)))
    assert all(c.tokens <= 100 for c in chunks)
    seen = [w for c in chunks for w in c.text.split()]
    assert set(seen) == set(words)  # nothing dropped
    for a, b in zip(chunks, chunks[1:]):
        assert a.text.split()[-10:] == b.text.split()[:10]  # 10 tokens shared
    assert chunks[0].payload == {
        "kind": "tree",
        "title": "A",
        "unit": "u",
        "doc_id": "u:doc",
        "path": "docs/a.md",
        "chunk_index": 0,
    }


def test_chunks_prefer_to_end_at_a_paragraph():
    text = ("alpha " * 90).strip() + ".\n\n" + ("beta " * 90).strip()
    first = chunk_document(doc(text), whitespace_offsets, max_tokens=100, overlap=0).chunks[0]
    assert first.text.rstrip().endswith(".") and "beta" not in first.text


def test_a_long_text_is_split_not_truncated_with_cl100k():
    text = "Ünïcödé façade — 日本語のテキスト. " * 2500  # ~20,000 tokens of multi-byte text
    result = chunk_document(doc(text), tokenizers.token_offsets, max_tokens=8192, overlap=100)
    assert len(result.chunks) >= 3
    assert all(tokenizers.count_tokens(c.text) <= 8192 + 2 for c in result.chunks)
    assert result.chunks[0].text.startswith("Ünïcödé") and result.chunks[-1].text.endswith("テキスト. ")
    assert sum(c.tokens for c in result.chunks) >= tokenizers.count_tokens(text)


def test_chunking_redacts_first_and_counts():
    text = "Deploy with OPENAI_API_KEY=" + SECRETS["openai"] + " set in the shell."
    result = chunk_document(doc(text), tokenizers.token_offsets, max_tokens=400, overlap=40)
    assert result.redactions == 1 and SECRETS["openai"] not in result.chunks[0].text


def test_whitespace_only_documents_make_no_chunks_and_bad_overlap_is_refused():
    assert chunk_document(doc(" \n\t "), whitespace_offsets, 100, 10).chunks == []
    with pytest.raises(ValueError, match="overlap"):
        chunk_document(doc("text"), whitespace_offsets, 100, 100)
