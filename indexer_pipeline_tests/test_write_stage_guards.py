"""What the write stage and the catalog refuse to keep: a cached vector of the wrong size, and an API
error reason that quotes a secret back."""

from __future__ import annotations

import numpy as np

from indexer_pipeline.embeddings import EmbeddingOutcome, EmbeddingStats
from indexer_pipeline.integrity import verify_units
from indexer_pipeline.pipeline import Indexer

from .conftest import TEST_DIMENSIONS
from .test_cache_expiry import world  # noqa: F401 - the fixture


def test_a_cached_vector_of_another_size_is_never_written(world, simulator):  # noqa: F811
    settings, _, _ = world
    with Indexer(settings) as ix:
        ix.index(ix.units())
        [key] = [u.key for u in ix.units()]
        chunks = ix.catalog.chunks(key)
        ix.store().delete(list(ix.store().unit_hashes(key)))  # another client removed the points
        ix.store().flush()
        # Another model served under the same name left vectors of another size in the cache.
        ix.cache.put_many({ix.cache_key(c.text): np.ones(TEST_DIMENSIONS // 2, np.float32) for c in chunks})
        ix.write_units([key])
        report = verify_units(ix.catalog, ix.store(), [key], TEST_DIMENSIONS, sample=len(chunks))
    assert report.complete and not report.bad_dimension and report.sampled == len(chunks)


SECRET_IN_REASON = "sk-proj-EchoedBack0000SecretValue1234567890abcd"


class _RefusingEmbedder:
    """An API that refuses every input with a reason carrying a key (a proxy echoing its config)."""

    provider, model, dimensions, max_input_tokens = "openai", "refusing", TEST_DIMENSIONS, 8192
    remote = True

    def __init__(self, real):
        self.token_offsets, self.count_tokens = real.token_offsets, real.count_tokens

    def embed(self, texts: list[str], token_counts: list[int] | None = None) -> EmbeddingOutcome:
        errors = {
            i: f"upstream rejected the request made with key {SECRET_IN_REASON}" for i in range(len(texts))
        }
        return EmbeddingOutcome([None] * len(texts), errors, EmbeddingStats(inputs=len(texts)))

    def close(self) -> None:
        pass


def test_an_error_reason_that_carries_a_secret_is_stored_redacted(world):  # noqa: F811
    settings, _, _ = world
    with Indexer(settings) as real:
        embedder = _RefusingEmbedder(real.embedder)
        with Indexer(settings, embedder=embedder) as ix:
            ix.read_units(ix.units())
            [key] = [u.key for u in ix.units()]
            report = ix.embed_units([key])
            reasons = ix.catalog.chunk_errors(key)
    assert report.failed == len(reasons) > 0
    assert all(SECRET_IN_REASON not in reason and "[REDACTED" in reason for reason in reasons.values())
