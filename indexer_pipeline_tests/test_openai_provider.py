"""The OpenAI embedding engine, through the real `openai` SDK, against the simulator on 127.0.0.1."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from indexer_pipeline.config import Settings
from indexer_pipeline.embeddings.base import EmbeddingAuthError
from indexer_pipeline.embeddings.limiter import AdaptiveLimiter, parse_duration
from indexer_pipeline.embeddings.openai_provider import PROBE_TEXT, OpenAIEmbedder
from indexer_pipeline.embeddings.simulator import EmbeddingSimulator

from .conftest import TEST_DIMENSIONS


def embedder(sim: EmbeddingSimulator, **kwargs) -> OpenAIEmbedder:
    return OpenAIEmbedder(api_key=sim.api_key, base_url=sim.base_url, dimensions=TEST_DIMENSIONS, **kwargs)


def texts(n: int, words: int = 12) -> list[str]:
    return [f"document {i} " + " ".join(f"w{(i * 7 + j) % 500}" for j in range(words)) for i in range(n)]


def assert_each_embedded_once(outcome, inputs, sim):
    assert outcome.errors == {}
    assert all(
        v is not None and v.dtype == np.float32 and v.shape == (TEST_DIMENSIONS,) for v in outcome.vectors
    )
    assert sim.stats()["texts"] == dict.fromkeys(inputs, 1)  # nothing lost, nothing sent twice
    for text, vector in list(zip(inputs, outcome.vectors))[:20]:  # each vector is its own text's
        assert np.allclose(vector, sim.vector(text, TEST_DIMENSIONS), atol=1e-6)


def test_settings_and_model_defaults():
    settings = Settings(openai_api_key="sk-x", embedding_model="text-embedding-3-large", max_concurrency=3)
    large = OpenAIEmbedder.from_settings(settings)
    assert (large.provider, large.model, large.dimensions, large.concurrency) == (
        "openai",
        "text-embedding-3-large",
        3072,
        3,
    )
    assert large.estimated_cost_usd(1_000_000) == pytest.approx(0.13)
    small = OpenAIEmbedder(api_key="sk-x")
    assert (small.model, small.dimensions, small.max_input_tokens) == ("text-embedding-3-small", 1536, 8192)
    assert small.estimated_cost_usd(1_000_000) == pytest.approx(0.02)
    assert OpenAIEmbedder(api_key="sk-x", model="text-embedding-3-small", dimensions=256).dimensions == 256
    text = "naïve café 日本語"
    offsets = small.token_offsets(text)
    assert len(offsets) == small.count_tokens(text) and offsets[0] == 0 and offsets == sorted(offsets)
    assert "sk-x" not in repr(small)


def test_inputs_are_packed_by_count_and_by_tokens(simulator):
    inputs = texts(100)
    outcome = embedder(simulator, max_inputs_per_request=30).embed(inputs)
    assert_each_embedded_once(outcome, inputs, simulator)
    assert [n for n, _ in simulator.request_sizes] == [30, 30, 30, 10]
    assert (
        outcome.stats.requests == 4 and outcome.stats.inputs == 100 and len(outcome.stats.latencies_ms) == 4
    )

    simulator.reset_stats()
    outcome = embedder(simulator, max_tokens_per_request=200).embed(inputs)
    assert_each_embedded_once(outcome, inputs, simulator)
    assert len(simulator.request_sizes) > 1 and max(t for _, t in simulator.request_sizes) <= 200
    assert outcome.stats.tokens == simulator.stats()["tokens"]  # the billed usage


def test_inputs_the_api_would_refuse_fail_alone_with_their_reason(simulator):
    inputs = ["fine text", "word " * 9000, "also fine", ""]
    outcome = embedder(simulator).embed(inputs)
    assert outcome.vectors[0] is not None and outcome.vectors[2] is not None
    assert "8192" in outcome.errors[1] and "empty" in outcome.errors[3]
    assert simulator.stats()["status"] == {200: 1}  # refused locally, never sent


def test_a_rejected_input_is_isolated_by_bisection(simulator):
    simulator.set_faults(poison="POISON")
    inputs = texts(40)
    inputs[17] = "this one carries POISON inside"
    outcome = embedder(simulator).embed(inputs)
    assert set(outcome.errors) == {17}
    assert "400" in outcome.errors[17] and "could not be processed" in outcome.errors[17]  # the API's message
    assert sum(v is not None for v in outcome.vectors) == 39
    # The first refusal is checked with a one-word probe: accepted, so the refusal was an input's.
    assert simulator.stats()["texts"] == {**dict.fromkeys(inputs[:17] + inputs[18:], 1), PROBE_TEXT: 1}
    assert outcome.stats.rejected_requests > 0 and outcome.stats.failed_requests == 0


def test_retry_after_is_honoured(simulator):
    simulator.set_faults(next_429=1, retry_after_ms=600)
    start = time.monotonic()
    outcome = embedder(simulator).embed(["one text"])
    assert outcome.errors == {} and outcome.stats.rate_limited == 1 and outcome.stats.retries == 1
    assert time.monotonic() - start >= 0.6


def test_a_long_retry_after_is_capped_by_the_configured_maximum(simulator):
    simulator.set_faults(next_429=1, retry_after_ms=200_000)  # beyond the SDK's own 120 s cut-off
    start = time.monotonic()
    outcome = embedder(simulator, max_retry_wait_s=0.5).embed(["one text"])
    assert outcome.errors == {} and time.monotonic() - start >= 0.5


def test_dropped_connections_malformed_bodies_and_500s_are_retried(simulator):
    simulator.set_faults(next_drop=1, next_malformed=1, next_500=1)
    inputs = texts(5)
    outcome = embedder(simulator, max_concurrency=1).embed(inputs)
    assert_each_embedded_once(outcome, inputs, simulator)
    assert simulator.stats()["faults"] == {"drop": 1, "malformed": 1, "500": 1}
    assert outcome.stats.retries == outcome.stats.failed_requests == 3 and outcome.stats.requests == 4


def test_a_timeout_is_retried(simulator):
    simulator.set_faults(next_slow=1, slow_ms=1500)
    outcome = embedder(simulator, timeout_s=0.5).embed(["slow to answer"])
    assert outcome.errors == {} and outcome.stats.retries == 1


def test_retries_exhausted_fail_the_inputs_with_the_last_reason(simulator):
    simulator.set_faults(error_500=1.0)
    outcome = embedder(simulator, max_retries=2).embed(["a", "b"])
    assert outcome.vectors == [None, None]
    assert all("gave up after 3 attempts" in r and "500" in r for r in outcome.errors.values())
    assert outcome.stats.requests == 3


def test_a_wrong_key_fails_at_once_with_one_request_and_without_the_key(simulator):
    key = "sk-this-is-wrong-123456"
    bad = OpenAIEmbedder(api_key=key, base_url=simulator.base_url, max_inputs_per_request=2)
    with pytest.raises(EmbeddingAuthError) as caught:
        bad.embed(texts(40))  # 20 requests' worth, several of them could be in flight
    assert key not in str(caught.value) and "401" in str(caught.value)
    assert simulator.stats()["requests"] == 1
    with pytest.raises(EmbeddingAuthError, match="OPENAI_API_KEY"):
        OpenAIEmbedder(api_key=None)


def test_embed_works_inside_a_running_event_loop(simulator):
    async def from_async_code():
        return embedder(simulator).embed(["called from a coroutine"])

    assert asyncio.run(from_async_code()).errors == {}


def test_nothing_lost_or_duplicated_under_faults(simulator):
    simulator.set_faults(error_500=0.02, drop=0.01, spurious_429=0.02, retry_after_ms=50)
    inputs = texts(600)
    outcome = embedder(simulator, max_inputs_per_request=8, max_retries=8).embed(inputs)
    assert_each_embedded_once(outcome, inputs, simulator)
    assert outcome.stats.retries == outcome.stats.failed_requests > 0
    assert outcome.stats.rate_limited == simulator.stats()["status"][429]


# -- the limiter: a bucket starts full, so a test can only afford about one refill (60 s per bucket);
# the work below is 1.15 buckets: the last 0.15 (9 s) must be paced by the client.
def test_the_limiter_paces_requests_under_a_low_tpm():
    with EmbeddingSimulator(dimensions=TEST_DIMENSIONS, tpm=6_000, rpm=10_000) as sim:
        inputs = texts(300, words=10)  # 6,900 tokens
        outcome = embedder(sim, tpm=6_000, rpm=10_000, max_inputs_per_request=10).embed(inputs)
        assert_each_embedded_once(outcome, inputs, sim)
        assert outcome.stats.tokens > 6_000
        assert sim.stats()["status"][429] <= 2, sim.stats()["status"]


def test_the_limiter_follows_the_servers_headers_when_configured_too_high():
    with EmbeddingSimulator(dimensions=TEST_DIMENSIONS, tpm=6_000, rpm=10_000) as sim:
        inputs = texts(300, words=10)
        outcome = embedder(sim, max_inputs_per_request=10).embed(inputs)  # believes in 1 M TPM
        assert_each_embedded_once(outcome, inputs, sim)
        assert sim.stats()["status"][429] <= 2, sim.stats()["status"]


def test_limiter_headers_correct_downward_only():
    now = [0.0]
    limiter = AdaptiveLimiter(rpm=3_000, tpm=1_000_000, clock=lambda: now[0])
    limiter.observe(
        {
            "x-ratelimit-limit-tokens": "60000",
            "x-ratelimit-remaining-tokens": "30000",
            "x-ratelimit-reset-tokens": "30s",  # 30,000 tokens in 30 s: the server refills 60,000/min
            "x-ratelimit-remaining-requests": "5000",  # more than ours: ignored
        }
    )
    assert limiter.tokens.level == 30_000 and limiter.tokens.per_minute == 60_000
    assert limiter.tokens.capacity == 60_000 and limiter.requests.level == 3_000
    assert parse_duration("6m0s") == 360 and parse_duration("120ms") == pytest.approx(0.12)
    assert parse_duration("1.5s") == 1.5 and parse_duration(None) is None


def test_a_429_pauses_everyone_and_slows_down_then_recovers():
    limiter = AdaptiveLimiter(rpm=60_000, tpm=1_000_000)
    limiter.on_rate_limited(0.3)
    assert limiter.factor == pytest.approx(0.9)
    started = time.monotonic()
    asyncio.run(limiter.acquire(10))
    assert time.monotonic() - started >= 0.3
    for _ in range(20):
        limiter.on_success()
    assert limiter.factor == 1.0


def test_the_embed_stage_sends_each_chunks_token_count_without_counting_again(corpus_env, monkeypatch):
    """Issue 12, item 4: the chunker's count (`Chunk.tokens`) packs the requests; the OpenAI engine
    does not tokenize every text a second time (the old code did), and the count is the one the
    server bills."""
    from indexer_pipeline import tokenizers
    from indexer_pipeline.pipeline import Indexer

    with Indexer(corpus_env) as ix:
        ix.read_units(ix.units())
        keys = [u.key for u in ix.units()]
        distinct = {c.text: c.tokens for k in keys for c in ix.catalog.chunks(k)}
        counted: list[str] = []
        real_count = tokenizers.count_tokens

        def counting(text: str) -> int:
            if threading.current_thread().name != "embedding-simulator":  # the server counts its own
                counted.append(text)
            return real_count(text)

        monkeypatch.setattr(tokenizers, "count_tokens", counting)
        report = ix.embed_units(keys)
    assert report.embedded == report.chunks > 0 and not report.failed
    assert counted == []
    # The simulator counts each input it is sent: the bill equals the chunker's counts.
    assert report.stats.tokens == sum(distinct.values())


def test_calls_reuse_the_engines_connections(simulator):
    """One client for the engine's life: twenty separate calls (search queries, embed groups) come on as
    few connections as run at once, not one new connection (and TLS context) each; close() ends it."""
    e = embedder(simulator, max_concurrency=2)
    for i in range(20):
        assert e.embed([f"query {i}"]).errors == {}
    assert simulator.stats()["requests"] == 20 and simulator.stats()["connections"] == 1
    e.close()
    assert e.embed(["after close, a new client"]).errors == {}  # usable again, on a fresh connection
    assert simulator.stats()["connections"] == 2
    e.close()


def test_close_ends_an_embed_waiting_in_another_thread():
    """The pipeline embeds in a thread of its own: an interrupted run closes the engine, and the call in
    flight ends (CancelledError) instead of waiting for an answer nobody will use."""
    from concurrent.futures import CancelledError

    with EmbeddingSimulator(dimensions=TEST_DIMENSIONS, latency_ms=3_000) as sim:
        e = embedder(sim)
        failures: list[BaseException] = []

        def call() -> None:
            try:
                e.embed(["an answer that takes three seconds"])
            except BaseException as exc:
                failures.append(exc)

        thread = threading.Thread(target=call, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while sim.stats()["requests"] == 0 and time.monotonic() < deadline:  # wait until it is in flight
            time.sleep(0.02)
        e.close()
        thread.join(timeout=10)
    assert not thread.is_alive(), "the call kept waiting after close()"
    assert len(failures) == 1 and isinstance(failures[0], CancelledError)


def test_search_queries_share_one_connection(corpus_env, simulator):
    from indexer_pipeline.pipeline import Indexer
    from indexer_pipeline.search import SearchRequest, search

    with Indexer(corpus_env) as ix:
        ix.index(ix.units())
        simulator.reset_stats()
        for i in range(10):
            assert search(ix, SearchRequest(f"retry cache {i}")).mode == "hybrid"
    assert simulator.stats()["requests"] == 10 and simulator.stats()["connections"] == 1
