"""The OpenAI embedding engine through the real `openai` SDK against the simulator on 127.0.0.1."""

from __future__ import annotations

import time

import numpy as np
import openai
import pytest

from indexer_pipeline.embeddings.base import EmbeddingAuthError
from indexer_pipeline.embeddings.limiter import parse_duration
from indexer_pipeline.embeddings.openai_provider import OpenAIEmbedder
from indexer_pipeline.embeddings.simulator import EmbeddingSimulator

from .conftest import TEST_DIMENSIONS


def embedder(sim: EmbeddingSimulator, **kwargs) -> OpenAIEmbedder:
    return OpenAIEmbedder(api_key=sim.api_key, base_url=sim.base_url, dimensions=TEST_DIMENSIONS, **kwargs)


def texts(n: int, words: int = 12) -> list[str]:
    return [f"document {i} " + " ".join(f"w{(i * 7 + j) % 500}" for j in range(words)) for i in range(n)]


def assert_each_embedded_once(outcome, inputs, sim):
    assert outcome.errors == {}
    assert all(v is not None and v.shape == (TEST_DIMENSIONS,) for v in outcome.vectors)
    assert sum(sim.embedded_texts.values()) == len(inputs) == len(sim.embedded_texts)
    # Vectors are where they belong: each equals the simulator's vector for its own text.
    for text, vector in list(zip(inputs, outcome.vectors))[:20]:
        assert np.allclose(vector, sim.vector(text, TEST_DIMENSIONS), atol=1e-6)


def test_the_simulator_speaks_the_openai_api(simulator):
    client = openai.OpenAI(api_key=simulator.api_key, base_url=simulator.base_url, max_retries=0)
    raw = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input=["a cat", "a dog"])
    response = raw.parse()
    assert [d.index for d in response.data] == [0, 1] and len(response.data[0].embedding) == TEST_DIMENSIONS
    assert response.usage.total_tokens == 4
    with pytest.raises(openai.BadRequestError, match="empty"):
        client.embeddings.create(model="m", input=["ok", ""])
    with pytest.raises(openai.BadRequestError, match="2048"):
        client.embeddings.create(model="m", input=["x"] * 2049)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(api_key="wrong", base_url=simulator.base_url, max_retries=0).embeddings.create(
            model="m", input="x"
        )


def test_similar_texts_are_close_in_the_simulator(simulator):
    cat, kitten, rust = (
        simulator.vector(t, 256)
        for t in ("the cat sat on the mat", "a cat sat on a mat today", "rust borrow checker lifetimes")
    )
    assert float(cat @ kitten) > 0.5 > float(cat @ rust)


def test_inputs_are_packed_by_count_and_by_tokens(simulator):
    inputs = texts(100)
    outcome = embedder(simulator, max_inputs_per_request=30).embed(inputs)
    assert_each_embedded_once(outcome, inputs, simulator)
    assert [n for n, _ in simulator.request_sizes] and max(n for n, _ in simulator.request_sizes) <= 30
    assert len(simulator.request_sizes) == 4

    simulator.reset_stats()
    token_limited = embedder(simulator, max_tokens_per_request=200)
    outcome = token_limited.embed(inputs)
    assert_each_embedded_once(outcome, inputs, simulator)
    assert max(t for _, t in simulator.request_sizes) <= 200
    assert outcome.stats.tokens == simulator.stats()["tokens"]


def test_an_input_over_the_model_limit_fails_alone_with_its_reason(simulator):
    inputs = ["fine text", "word " * 9000, "also fine"]
    outcome = embedder(simulator).embed(inputs)
    assert outcome.vectors[0] is not None and outcome.vectors[2] is not None
    assert outcome.vectors[1] is None and "8192" in outcome.errors[1]


def test_a_rejected_input_is_isolated_by_bisection(simulator):
    simulator.set_faults(poison="POISON")
    inputs = texts(40)
    inputs[17] = "this one carries POISON inside"
    outcome = embedder(simulator).embed(inputs)
    assert set(outcome.errors) == {17} and "400" in outcome.errors[17]
    assert sum(v is not None for v in outcome.vectors) == 39


def test_retry_after_is_honoured(simulator):
    simulator.set_faults(next_429=1, retry_after_ms=600)
    start = time.monotonic()
    outcome = embedder(simulator).embed(["one text"])
    assert outcome.errors == {} and outcome.stats.rate_limited == 1 and outcome.stats.retries == 1
    assert time.monotonic() - start >= 0.6  # a lower bound by construction: it waited as told


def test_dropped_connections_and_malformed_bodies_are_retried(simulator):
    simulator.set_faults(next_drop=2, next_malformed=2, next_500=1)
    inputs = texts(5)
    outcome = embedder(simulator, max_inputs_per_request=5, max_concurrency=1).embed(inputs)
    assert outcome.errors == {}
    faults = simulator.stats()["faults"]
    assert faults["drop"] == 2 and faults["malformed"] == 2 and faults["500"] == 1
    assert outcome.stats.retries == 5 and outcome.stats.failed_requests == 5


def test_retries_exhausted_fail_the_inputs_loudly(simulator):
    simulator.set_faults(error_500=1.0)
    outcome = embedder(simulator, max_retries=2).embed(["a", "b"])
    assert outcome.vectors == [None, None]
    assert all("gave up after 3 attempts" in r and "500" in r for r in outcome.errors.values())


def test_a_wrong_key_fails_at_once_without_showing_the_key(simulator):
    bad = OpenAIEmbedder(
        api_key="sk-this-is-wrong-123456", base_url=simulator.base_url, dimensions=TEST_DIMENSIONS
    )
    with pytest.raises(EmbeddingAuthError) as caught:
        bad.embed(texts(10))
    assert "sk-this-is-wrong-123456" not in str(caught.value) and "401" in str(caught.value)
    assert simulator.stats()["status"][401] == 1
    with pytest.raises(EmbeddingAuthError, match="OPENAI_API_KEY"):
        OpenAIEmbedder(api_key=None)


def test_nothing_lost_or_duplicated_under_faults(simulator):
    simulator.set_faults(error_500=0.02, drop=0.01, spurious_429=0.02, retry_after_ms=50)
    inputs = texts(600)
    outcome = embedder(simulator, max_inputs_per_request=8, max_retries=8).embed(inputs)
    assert_each_embedded_once(outcome, inputs, simulator)
    assert outcome.stats.retries == outcome.stats.failed_requests


def test_the_limiter_paces_requests_under_a_low_tpm():
    # 6,000 tokens/min (100 tokens/s) and more work than one full bucket: the rest must wait for refill.
    with EmbeddingSimulator(dimensions=TEST_DIMENSIONS, tpm=6_000, rpm=10_000) as sim:
        inputs = texts(300, words=10)
        client = embedder(sim, tpm=6_000, rpm=10_000, max_inputs_per_request=10)
        outcome = client.embed(inputs)
        assert_each_embedded_once(outcome, inputs, sim)
        assert outcome.stats.tokens > 6_000
        # The client set the pace: at most a couple of 429s (the two buckets drift by a request or so).
        assert sim.stats()["status"][429] <= 2, sim.stats()["status"]


def test_parse_duration():
    assert parse_duration("6m0s") == 360 and parse_duration("120ms") == pytest.approx(0.12)
    assert parse_duration("1.5s") == 1.5 and parse_duration(None) is None
