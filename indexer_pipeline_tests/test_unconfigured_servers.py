"""The engine on accounts and servers it was told nothing about, through the real `openai` SDK against
the simulator: a TPM limit below its requests, a model of unknown size, a request refused whatever it
carries, 413 and 422 answers, a key revoked mid-run. Every embed runs in a thread joined with a
timeout, so an engine that hangs fails the test instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
import shutil
import threading

import pytest

from indexer_pipeline.config import SAMPLE_CORPUS, Settings
from indexer_pipeline.embeddings.base import EmbeddingAuthError, EmbeddingRequestError
from indexer_pipeline.embeddings.limiter import AdaptiveLimiter
from indexer_pipeline.embeddings.openai_provider import OpenAIEmbedder
from indexer_pipeline.embeddings.simulator import EmbeddingSimulator
from indexer_pipeline.integrity import verify_units
from indexer_pipeline.pipeline import Indexer

from .conftest import TEST_DIMENSIONS
from .test_openai_provider import assert_each_embedded_once, texts

BOUND_S = 120  # far above what each case needs; reached only by an engine that hangs


def bounded(call):
    """call() in a thread; its result, or its exception re-raised; a failed test if it never returns."""
    result = {}

    def target():
        try:
            result["value"] = call()
        except BaseException as exc:  # handed to the test thread
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(BOUND_S)
    assert not thread.is_alive(), f"still running after {BOUND_S} s: the engine hangs"
    if "error" in result:
        raise result["error"]
    return result["value"]


def embedder(sim: EmbeddingSimulator, **kwargs) -> OpenAIEmbedder:
    return OpenAIEmbedder(api_key=sim.api_key, base_url=sim.base_url, **kwargs)


# -- a tokens-per-minute limit below the request size ------------------------------------------------
def test_a_tpm_limit_below_the_request_is_learned_and_the_run_goes_on():
    # The engine believes the default 1 M TPM and packs one request of ~2,300 tokens; the account
    # allows 2,000 a minute and says so only in its 429 "Request too large" (no retry-after).
    with EmbeddingSimulator(dimensions=TEST_DIMENSIONS, tpm=2_000, rpm=10_000) as sim:
        inputs = texts(100, words=12)[:70]  # ~1,600 tokens: fits in the first full bucket
        huge = "this input alone " + " ".join(f"w{j % 700}" for j in range(2_100))  # > 2,000 tokens
        inputs.insert(10, huge)
        e = embedder(sim, dimensions=TEST_DIMENSIONS)
        outcome = bounded(lambda: e.embed(inputs))
        big = outcome.errors.pop(10)
        assert "larger than the account's limit of 2000 tokens per minute" in big and "429" in big
        outcome.vectors.pop(10)
        inputs.pop(10)
        assert_each_embedded_once(outcome, inputs, sim)
        assert sim.stats()["status"][429] == 1  # the one refusal that taught the limit
        assert max(tokens for _, tokens in sim.request_sizes) <= 2_000 // 20  # re-packed below it
        assert outcome.stats.rejected_requests == 1 and outcome.stats.failed_requests == 0
        assert e.limiter.server_token_limit == 2_000  # learned from the answer


def test_a_request_larger_than_a_shrunken_bucket_does_not_wait_forever():
    # A request waits for tokens; meanwhile another answer shows the bucket is far smaller than
    # configured. It must go when the (smaller) bucket is full, not wait for a level never reached.
    limiter = AdaptiveLimiter(rpm=1_000_000, tpm=1_000_000)
    limiter.tokens.level = 0

    async def scenario():
        waiting = asyncio.ensure_future(limiter.acquire(60_000))
        await asyncio.sleep(0.05)
        limiter.tokens.capacity = 500  # as a header lowering the capacity leaves it, refill unchanged
        await asyncio.wait_for(waiting, timeout=10)

    asyncio.run(scenario())
    assert limiter.tokens.level <= 0


# -- a server model of a size nobody told the product --------------------------------------------------
def test_a_server_model_of_unknown_size_is_learned_recorded_and_used_by_the_write_stage(tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(SAMPLE_CORPUS / "docs", corpus / "docs")
    with EmbeddingSimulator(dimensions=48, model="nomic-embed-text", dimensions_param="reject") as sim:
        settings = Settings(
            corpus_dirs=[corpus],
            data_dir=tmp_path / "data",
            embedding_provider="openai",
            embedding_model="nomic-embed-text",  # EMBEDDING_DIMENSIONS unset: nobody knows it is 48-d
            openai_api_key=sim.api_key,
            openai_base_url=sim.base_url,
        )
        with Indexer(settings) as ix:
            units = ix.units()
            keys = [u.key for u in units]
            bounded(lambda: ix.read_units(units))
            report = bounded(lambda: ix.embed_units(keys))
        assert report.failed == 0 and report.embedded == report.chunks > 0
        meta = report.metadata()
        assert meta["dimensions"] == 48 and meta["dimension_source"] == "learned from the server's answer"
        assert sim.stats()["status"] == {200: sim.stats()["requests"]}  # `dimensions` never sent
    # The write stage, in a fresh process as a Dagster step would be, with the server gone.
    with Indexer(settings) as ix:
        written = ix.write_units(keys)
        assert written.upserted == report.chunks and ix.embedder.dimensions == 48
        integrity = verify_units(ix.catalog, ix.store(), keys, ix.embedder.dimensions)
        assert integrity.complete and not integrity.bad_dimension and integrity.sampled > 0


def test_dimensions_the_server_refuses_fail_at_once_and_say_so(tmp_path):
    with EmbeddingSimulator(dimensions=48, model="nomic-embed-text", dimensions_param="reject") as sim:
        e = embedder(sim, model="nomic-embed-text", dimensions=32)
        with pytest.raises(EmbeddingRequestError) as caught:
            bounded(lambda: e.embed(texts(64)))
        message = str(caught.value)
        assert "dimensions=32" in message and "matryoshka" in message and "EMBEDDING_DIMENSIONS" in message
        assert sim.stats()["requests"] == 2  # the batch and one probe, not 2N-1 bisection requests


def test_dimensions_the_server_ignores_fail_at_once_and_say_so():
    with EmbeddingSimulator(dimensions=48, model="nomic-embed-text", dimensions_param="ignore") as sim:
        e = embedder(sim, model="nomic-embed-text", dimensions=32)
        with pytest.raises(EmbeddingRequestError, match=r"ignores the `dimensions` parameter.*=48"):
            bounded(lambda: e.embed(texts(64)))
        assert sim.stats()["requests"] == 1  # an answer of the wrong size is not retried


# -- refused whatever it carries; 413 and 422 -------------------------------------------------------------
@pytest.mark.parametrize("status", [400, 404])
def test_an_unknown_model_costs_one_request_not_a_bisection(status):
    with EmbeddingSimulator(dimensions=TEST_DIMENSIONS, model="served", unknown_model_status=status) as sim:
        e = embedder(sim, model="no-such-model", dimensions=TEST_DIMENSIONS)
        with pytest.raises(
            EmbeddingRequestError, match=r"The model 'no-such-model' does not exist.*EMBEDDING_MODEL"
        ):
            bounded(lambda: e.embed(texts(64)))
        assert sim.stats()["requests"] == 1


def test_a_413_batch_limit_is_bisected_and_learned_never_retried():
    with EmbeddingSimulator(dimensions=TEST_DIMENSIONS, max_batch=8) as sim:
        inputs = texts(200)
        e = embedder(sim, dimensions=TEST_DIMENSIONS, max_inputs_per_request=40)
        outcome = bounded(lambda: e.embed(inputs))
        assert_each_embedded_once(outcome, inputs, sim)
        assert outcome.stats.retries == 0 and outcome.stats.failed_requests == 0
        # The first batch of 40 halves down to 5 (40 → 20 → 10 → 5), while the other batches wait;
        # then every batch is packed at the learned size and goes through at once.
        assert sim.stats()["status"][413] == 3 and e.max_inputs == 5
        assert sim.stats()["requests"] == 3 + len(inputs) // 5


def test_a_422_is_isolated_like_a_400():
    with EmbeddingSimulator(dimensions=TEST_DIMENSIONS) as sim:
        sim.set_faults(poison="POISON", poison_status=422)
        inputs = texts(40)
        inputs[17] = "this one carries POISON inside"
        outcome = bounded(lambda: embedder(sim, dimensions=TEST_DIMENSIONS).embed(inputs))
        assert set(outcome.errors) == {17} and "422" in outcome.errors[17]
        assert sum(v is not None for v in outcome.vectors) == 39
        assert outcome.stats.retries == 0 and outcome.stats.failed_requests == 0


# -- a key revoked mid-run ------------------------------------------------------------------------------
def test_a_key_revoked_mid_run_fails_loudly_with_requests_in_flight():
    with EmbeddingSimulator(dimensions=TEST_DIMENSIONS, latency_ms=30, revoke_key_after=5) as sim:
        e = embedder(sim, dimensions=TEST_DIMENSIONS, max_inputs_per_request=4, max_concurrency=8)
        with pytest.raises(EmbeddingAuthError, match=r"401.*OPENAI_API_KEY"):
            bounded(lambda: e.embed(texts(400)))  # 100 requests' worth
        stats = sim.stats()
        # Those in flight when the key was revoked got their 401; none was retried, no more were sent.
        assert stats["admitted"] == 5 and 1 <= stats["status"][401] <= 8


def test_the_assets_learn_the_size_say_it_and_write_without_the_api(corpus_env, simulator, monkeypatch):
    import dagster as dg

    from indexer_pipeline.definitions import defs

    from .test_assets import ASSETS, INDEX, checks, metadata

    monkeypatch.delenv("EMBEDDING_DIMENSIONS")  # nobody tells the product the model's size
    monkeypatch.setenv("EMBEDDING_MODEL", "nomic-embed-text")
    simulator.model, simulator.dimensions_param = "nomic-embed-text", "reject"
    resources = {"indexer": defs.resources["indexer"]}
    unit = "doc-handbook"
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("source_units", [unit])
        embedded = dg.materialize(ASSETS[:2], instance=instance, resources=resources, partition_key=unit)
        meta = metadata(embedded, "document_embeddings")
        assert meta["embedding_failures"] == 0 and meta["embedded"] > 0
        assert meta["dimensions"] == TEST_DIMENSIONS and "64-d" in meta["model"]
        simulator.api_key = "sk-revoked"  # the write step must not need the API to know the size
        written = dg.materialize(
            INDEX,
            instance=instance,
            resources=resources,
            partition_key=unit,
            selection=dg.AssetSelection.assets(ASSETS[2]) | dg.AssetSelection.checks_for_assets(ASSETS[2]),
        )
        assert written.success and checks(written)["vectors_valid"].passed
        assert checks(written)["points_match_chunks"].passed
        assert metadata(written, "qdrant_collection")["points_upserted"] == meta["chunks"]
