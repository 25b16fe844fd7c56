"""The embeddings simulator answers like the OpenAI API, as seen through the real `openai` SDK."""

from __future__ import annotations

import base64
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import openai
import pytest

from indexer_pipeline.embeddings.simulator import EmbeddingSimulator

from .conftest import TEST_DIMENSIONS

MODEL = "text-embedding-3-small"


def client(sim: EmbeddingSimulator, api_key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(api_key=api_key or sim.api_key, base_url=sim.base_url, max_retries=0)


def test_float_and_base64_vectors_dimensions_and_usage(simulator):
    raw = client(simulator).embeddings.with_raw_response.create(
        model=MODEL, input=["a cat", "a dog"], encoding_format="float"
    )
    response = raw.parse()
    assert [d.index for d in response.data] == [0, 1] and response.object == "list"
    assert len(response.data[0].embedding) == TEST_DIMENSIONS
    assert response.usage.prompt_tokens == response.usage.total_tokens == 4

    as_base64 = client(simulator).embeddings.create(model=MODEL, input="a cat", encoding_format="base64")
    vector = np.frombuffer(base64.b64decode(as_base64.data[0].embedding), dtype=np.float32)
    assert np.allclose(vector, response.data[0].embedding, atol=1e-6)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)

    small = client(simulator).embeddings.create(model=MODEL, input="a cat", dimensions=16)
    assert len(small.data[0].embedding) == 16
    assert simulator.stats()["texts"] == {"a cat": 3, "a dog": 1}


def test_texts_that_share_words_are_close(simulator):
    cat, kitten, rust = (
        simulator.vector(t, 256)
        for t in ("the cat sat on the mat", "a cat sat on a mat today", "rust borrow checker lifetimes")
    )
    assert float(cat @ kitten) > 0.5 > float(cat @ rust)
    assert np.array_equal(cat, simulator.vector("The CAT sat on the mat", 256))  # deterministic


@pytest.mark.parametrize(
    "inputs, message",
    [
        (["x"] * 2049, "2048"),
        (["word " * 8000] * 40, "300000"),
        (["fine", "word " * 9000], "8192"),
        (["fine", ""], "empty"),
    ],
    ids=["too-many-inputs", "too-many-tokens", "input-too-long", "empty-string"],
)
def test_the_real_apis_400s(simulator, inputs, message):
    with pytest.raises(openai.BadRequestError, match=message) as caught:
        client(simulator).embeddings.create(model=MODEL, input=inputs)
    assert caught.value.body["type"] in ("invalid_request_error", "max_tokens_per_request")
    assert caught.value.body["param"] == "input"


def test_poison_gives_the_400_for_the_whole_batch(simulator):
    simulator.set_faults(poison="POISON")
    with pytest.raises(openai.BadRequestError):
        client(simulator).embeddings.create(model=MODEL, input=["ok", "has POISON in it"])
    assert client(simulator).embeddings.create(model=MODEL, input=["ok"]).data


def test_a_missing_or_wrong_key_gets_401(simulator):
    with pytest.raises(openai.AuthenticationError):
        client(simulator, api_key="wrong").embeddings.create(model=MODEL, input="x")
    answer = httpx.post(f"{simulator.base_url}/embeddings", json={"model": MODEL, "input": "x"})
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "invalid_api_key"
    assert simulator.stats()["status"][401] == 2 and simulator.stats()["inputs"] == 0


def test_rate_limits_answer_429_with_retry_after_and_headers_on_every_response():
    with EmbeddingSimulator(dimensions=TEST_DIMENSIONS, rpm=2, tpm=1_000) as sim:
        api = client(sim).embeddings.with_raw_response
        first = api.create(model=MODEL, input="one two three")
        assert first.headers["x-ratelimit-limit-requests"] == "2"
        assert first.headers["x-ratelimit-remaining-requests"] == "1"
        assert first.headers["x-ratelimit-limit-tokens"] == "1000"
        assert first.headers["x-ratelimit-reset-tokens"].endswith("s")
        api.create(model=MODEL, input="four")
        with pytest.raises(openai.RateLimitError) as caught:
            api.create(model=MODEL, input="five")
        headers = caught.value.response.headers
        assert int(headers["retry-after-ms"]) > 0 and int(headers["retry-after"]) >= 1
        assert headers["x-ratelimit-remaining-requests"] == "0"
        assert sim.stats()["status"] == {200: 2, 429: 1}


def test_faults_look_to_the_sdk_like_the_real_failures(simulator):
    api = client(simulator).embeddings
    simulator.set_faults(next_drop=1)
    with pytest.raises(openai.APIConnectionError):
        api.create(model=MODEL, input="dropped")
    simulator.set_faults(next_500=1)
    with pytest.raises(openai.InternalServerError):
        api.create(model=MODEL, input="error")
    simulator.set_faults(next_429=1, retry_after_ms=1500)
    with pytest.raises(openai.RateLimitError) as caught:
        api.create(model=MODEL, input="limited")
    assert caught.value.response.headers["retry-after-ms"] == "1500"
    simulator.set_faults(next_malformed=1)
    with pytest.raises(ValueError):  # a 200 whose body is not JSON
        api.create(model=MODEL, input="malformed")
    stats = simulator.stats()
    assert stats["faults"] == {"drop": 1, "500": 1, "429": 1, "malformed": 1}
    assert stats["inputs"] == 0 and not stats["texts"]  # nothing counted as embedded

    simulator.reset_stats()
    assert simulator.stats()["requests"] == 0


def test_latency_is_applied_per_request(simulator):
    simulator.latency_ms = 200
    started = time.monotonic()
    client(simulator).embeddings.create(model=MODEL, input="slow")
    assert time.monotonic() - started >= 0.2


@pytest.mark.parametrize(
    "flags, model, size",
    [
        ([], MODEL, 1536),
        (["--model", "nomic-embed-text", "--dimensions", "768", "--tpm", "20000"], "nomic-embed-text", 768),
    ],
    ids=["defaults", "a-768-d-server-model"],
)
def test_runs_as_a_command(flags, model, size):
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "indexer_pipeline.embeddings.simulator",
            "--port",
            str(port),
            "--latency-ms",
            "0",
            *flags,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert f"127.0.0.1:{port}/v1" in process.stdout.readline()
        answer = httpx.post(
            f"http://127.0.0.1:{port}/v1/embeddings",
            json={"model": model, "input": ["hello"]},
            headers={"Authorization": "Bearer sk-simulator-test-key"},
            timeout=10,
        )
        assert answer.status_code == 200 and len(answer.json()["data"][0]["embedding"]) == size
        process.terminate()
        assert process.wait(timeout=30) == 0  # SIGTERM stops it cleanly
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# -- accounts and servers nobody configured -------------------------------------------------------------
def test_a_request_above_the_tpm_limit_gets_request_too_large_without_retry_after():
    with EmbeddingSimulator(dimensions=TEST_DIMENSIONS, rpm=100, tpm=50) as sim:
        api = client(sim).embeddings.with_raw_response
        ok = api.create(model=MODEL, input="one two three")
        assert ok.headers["x-ratelimit-limit-tokens"] == "50" and "x-ratelimit-reset-requests" in ok.headers
        with pytest.raises(openai.RateLimitError) as caught:
            api.create(model=MODEL, input=" ".join(["word"] * 60))
        error = caught.value
        assert error.body["message"].startswith(f"Request too large for {MODEL} in organization ")
        assert (
            "on tokens per min (TPM): Limit 50, Requested 60. The input or output tokens must be "
            in (error.body["message"])
        )
        headers = error.response.headers
        assert "retry-after" not in headers and "retry-after-ms" not in headers  # waiting never helps
        for name in ("limit", "remaining", "reset"):
            assert f"x-ratelimit-{name}-tokens" in headers and f"x-ratelimit-{name}-requests" in headers
        sim.too_large_429 = False  # the old behaviour, switchable: such a request waits like any other
        with pytest.raises(openai.RateLimitError) as caught:
            api.create(model=MODEL, input=" ".join(["word"] * 60))
        assert "retry-after-ms" in caught.value.response.headers


@pytest.mark.parametrize("mode", ["accept", "reject", "ignore"])
def test_a_server_model_of_its_own_size_and_dimensions_behaviour(mode):
    with EmbeddingSimulator(dimensions=48, model="nomic-embed-text", dimensions_param=mode) as sim:
        api = client(sim).embeddings
        assert len(api.create(model="nomic-embed-text", input="native").data[0].embedding) == 48
        with pytest.raises(openai.BadRequestError, match="The model 'text-embedding-3-small' does not exist"):
            api.create(model=MODEL, input="wrong model")
        if mode == "reject":  # vLLM, for a model without matryoshka training
            with pytest.raises(openai.BadRequestError, match="does not support matryoshka representation"):
                api.create(model="nomic-embed-text", input="shorter", dimensions=16)
        else:
            size = len(api.create(model="nomic-embed-text", input="shorter", dimensions=16).data[0].embedding)
            assert size == (16 if mode == "accept" else 48)
    with (
        EmbeddingSimulator(dimensions=48, model="m", unknown_model_status=404) as sim,
        pytest.raises(openai.NotFoundError),
    ):
        client(sim).embeddings.create(model="other", input="x")


def test_413_above_the_batch_limit_422_for_poison_and_a_key_revoked_after_n_requests():
    with EmbeddingSimulator(dimensions=TEST_DIMENSIONS, max_batch=4, revoke_key_after=5) as sim:
        api = client(sim).embeddings
        with pytest.raises(openai.APIStatusError, match="batch size 5 > maximum allowed batch size 4") as big:
            api.create(model=MODEL, input=["a"] * 5)
        assert big.value.status_code == 413
        sim.set_faults(poison="POISON", poison_status=422)
        with pytest.raises(openai.UnprocessableEntityError):
            api.create(model=MODEL, input=["fine", "POISON"])
        for _ in range(3):
            api.create(model=MODEL, input=["fine"])
        with pytest.raises(openai.AuthenticationError):  # revoked after five admitted requests
            api.create(model=MODEL, input=["fine"])
        assert sim.stats()["status"] == {413: 1, 422: 1, 200: 3, 401: 1}
