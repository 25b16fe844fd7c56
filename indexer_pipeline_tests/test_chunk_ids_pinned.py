"""Chunk boundaries and point ids are pinned: a changed id re-writes every user's whole index.

The expected digests were computed with the code of main before the throughput work of issue 12
(per-token `decode_with_offsets`); any change to where chunks cut, what they hold, their payload or
their point ids fails here. Token offsets are also checked against tiktoken's own
`decode_with_offsets`, the reference they replace.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from indexer_pipeline import tokenizers
from indexer_pipeline.chunking import chunk_document
from indexer_pipeline.models import Document


def pinned_documents() -> dict[str, str]:
    prose = " ".join(f"Sentence {i} says the index is fresh and the cache is warm." for i in range(60))
    paragraphs = "\n\n".join(
        f"Paragraph {i}.\nIt has a line, then another one with café and naïve words." for i in range(25)
    )
    multibyte = "".join(
        f"日本語のテキスト{i}。 emoji 🧪🚀 and Ελληνικά κείμενο, ümlaut {i}! " for i in range(40)
    )
    code = "\n".join(f"def f{i}(x):\n    return x * {i}  # comment with\ttabs" for i in range(50))
    return {
        "prose": prose,
        "paragraphs": paragraphs,
        "multibyte": multibyte,
        "code": code,
        "no_spaces": "x" * 700 + "🚀" * 50 + "y" * 300,
        "short": "A short note of a few words.",
        "control": "\x00\x01\x02",
    }


# (name, max_tokens) -> (chunks, sha256 prefix of every chunk's unit, doc id, index, tokens, text,
# payload and point id), as main computed them before issue 12.
PINNED = {
    ("prose", 64): (20, "fabecfe0422853763feb1d86"),
    ("prose", 8191): (1, "9d3c878472d227f8058285f3"),
    ("paragraphs", 64): (11, "4fa9244112f767e7d4392b1d"),
    ("paragraphs", 8191): (1, "fdfe99eafde12edf9670a6c5"),
    ("multibyte", 64): (40, "b304bb2b6bddebdc619995f8"),
    ("multibyte", 8191): (1, "973a9087d9b3bc0457be38a6"),
    ("code", 64): (20, "950562a175c8912dd1950b50"),
    ("code", 8191): (1, "18366e52581f622daba400e3"),
    ("no_spaces", 64): (7, "7ed8bd62bb2ecaff4776fcce"),
    ("no_spaces", 8191): (1, "08d2e4e87fe425b6c25f9713"),
    ("short", 64): (1, "c0a044eb91111db865b32717"),
    ("short", 8191): (1, "c0a044eb91111db865b32717"),
    ("control", 64): (1, "982135821d41e311d92ab6f0"),
    ("control", 8191): (1, "982135821d41e311d92ab6f0"),
}
FIRST_IDS = {  # the first point ids at 64 tokens, spelled out
    "prose": ["5f953b18-c561-51de-bf88-fa5686d0ad4d", "809216a9-7ad4-5fb4-bd2c-62d51ccb98aa"],
    "multibyte": ["c084d5d4-ff64-5bc0-879a-d8f214a53866", "4cb85447-31ed-59a9-b8f4-06525553af9c"],
    "short": ["2a3388ce-07f6-52a2-bb1e-324a7a2eb76e"],
}
OVERLAP = {64: 16, 8191: 200}


def chunks_of(name: str, max_tokens: int):
    doc = Document(f"u:{name}", "u", f"docs/{name}.txt", pinned_documents()[name], {"kind": "tree"})
    return chunk_document(doc, tokenizers.token_offsets, max_tokens=max_tokens, overlap=OVERLAP[max_tokens])


@pytest.mark.parametrize(("name", "max_tokens"), sorted(PINNED))
def test_chunks_and_point_ids_are_as_before(name, max_tokens):
    chunks = chunks_of(name, max_tokens)
    rows = [[c.unit, c.doc_id, c.chunk_index, c.tokens, c.text, c.payload, c.point_id] for c in chunks]
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True).encode("utf-8", "surrogatepass")).hexdigest()
    assert (len(chunks), digest[:24]) == PINNED[name, max_tokens]


@pytest.mark.parametrize("name", sorted(FIRST_IDS))
def test_first_point_ids_are_as_before(name):
    assert [c.point_id for c in chunks_of(name, 64)][: len(FIRST_IDS[name])] == FIRST_IDS[name]


@pytest.mark.parametrize(
    "text",
    [
        *pinned_documents().values(),
        "",
        " leading and trailing blanks \n",
        "é" * 33 + "\u0301" * 5 + "🧑‍🤝‍🧑 family",
        "lone surrogate \udcff in a file name",
        "<|endoftext|> is read as text",
    ],
)
def test_token_offsets_match_tiktoken_reference(text):
    tokens = tokenizers.encode(text)
    expected = tokenizers.cl100k().decode_with_offsets(tokens)[1] if tokens else []
    assert tokenizers.token_offsets(text) == expected
