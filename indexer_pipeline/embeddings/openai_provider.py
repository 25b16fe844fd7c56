"""Embeddings from OpenAI or any OpenAI-compatible server, at the account's rate-limit ceiling.

Built on the official SDK's `AsyncOpenAI`, with the SDK's own retries off (`max_retries=0`): we
retry ourselves because we must honour retry-after beyond the SDK's 120 s cap, count every retry and
429 for the run's metadata, feed the limiter from each response's headers, and bisect a batch that
the API rejects with a 400 so one bad input does not fail its neighbours.
"""

from __future__ import annotations

import asyncio
import base64
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import openai

from .. import tokenizers
from ..config import Settings
from .base import EmbeddingAuthError, EmbeddingOutcome, EmbeddingStats
from .limiter import AdaptiveLimiter

DEFAULT_MODEL = "text-embedding-3-small"
MODEL_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
USD_PER_MILLION_TOKENS = {
    "text-embedding-3-small": 0.02,
    "text-embedding-3-large": 0.13,
    "text-embedding-ada-002": 0.10,
}
MAX_INPUT_TOKENS = 8192
BACKOFF_BASE_S, BACKOFF_CAP_S = 0.25, 20.0


class _Malformed(Exception):
    """A 2xx answer we cannot use (not JSON, wrong number of vectors): retried like a 5xx."""


@dataclass
class _Batch:
    indexes: list[int]
    tokens: int


def _retry_after(headers) -> float | None:
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return float(value) * scale
            except ValueError:
                pass
    return None


class OpenAIEmbedder:
    provider = "openai"
    max_input_tokens = MAX_INPUT_TOKENS

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None = None,
        model: str = DEFAULT_MODEL,
        dimensions: int | None = None,
        max_inputs_per_request: int = 2048,
        max_tokens_per_request: int = 300_000,
        max_concurrency: int = 8,
        rpm: int = 3_000,
        tpm: int = 1_000_000,
        timeout_s: float = 60.0,
        max_retries: int = 6,
        max_retry_wait_s: float = 300.0,
    ):
        if not api_key:
            raise EmbeddingAuthError("no OpenAI API key: set OPENAI_API_KEY, or EMBEDDING_PROVIDER=local")
        self._api_key = api_key
        self.base_url = base_url
        self.model = model
        self._send_dimensions = dimensions
        self.dimensions = dimensions or MODEL_DIMENSIONS.get(model, 1536)
        self.max_inputs = max_inputs_per_request
        self.max_tokens = max_tokens_per_request
        self.concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.max_retry_wait_s = max_retry_wait_s
        # One limiter for the embedder's life: its buckets carry over between embed() calls.
        self.limiter = AdaptiveLimiter(rpm, tpm)
        self.key_checked = False  # True once the server answered a request without a 401/403

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIEmbedder:
        return cls(
            api_key=settings.openai_api_key,
            base_url=settings.openai_base_url,
            model=settings.embedding_model or DEFAULT_MODEL,
            dimensions=settings.embedding_dimensions,
            max_inputs_per_request=settings.max_inputs_per_request,
            max_tokens_per_request=settings.max_tokens_per_request,
            max_concurrency=settings.max_concurrency,
            rpm=settings.rpm_limit,
            tpm=settings.tpm_limit,
            timeout_s=settings.request_timeout_s,
            max_retries=settings.max_retries,
            max_retry_wait_s=settings.max_retry_wait_s,
        )

    def __repr__(self) -> str:  # never the key
        return (
            f"OpenAIEmbedder(model={self.model!r}, dimensions={self.dimensions}, base_url={self.base_url!r})"
        )

    def count_tokens(self, text: str) -> int:
        return tokenizers.count_tokens(text)

    def token_offsets(self, text: str) -> list[int]:
        return tokenizers.token_offsets(text)

    def estimated_cost_usd(self, tokens: int) -> float:
        return tokens * USD_PER_MILLION_TOKENS.get(self.model, 0.0) / 1e6

    def close(self) -> None:
        pass

    # -- embedding ------------------------------------------------------------------------------
    def embed(self, texts: list[str]) -> EmbeddingOutcome:
        """Synchronous for callers; runs its own event loop (in a thread if one is already running)."""
        outcome = EmbeddingOutcome([None] * len(texts), {}, EmbeddingStats(inputs=len(texts)))
        # The coroutine fills `outcome` and returns None: on Python 3.11, asyncio.run formats its
        # task's repr, result included, when it restores the SIGINT handler, and formatting a
        # thousand vectors took 0.5 s.
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(self._embed_into(texts, outcome))
        else:
            with ThreadPoolExecutor(1) as pool:
                pool.submit(asyncio.run, self._embed_into(texts, outcome)).result()
        return outcome

    def pack(self, counts: list[int], indexes: list[int]) -> list[_Batch]:
        """Consecutive inputs grouped up to the request limits on count and tokens.

        A request also stays within 1/20 of a minute's token budget: the API refuses a request larger
        than the budget, and small requests let the limiter pace smoothly near the ceiling."""
        token_cap = min(self.max_tokens, max(1, int(self.limiter.tokens.capacity // 20)))
        batches: list[_Batch] = []
        current, tokens = [], 0
        for i in indexes:
            if current and (len(current) >= self.max_inputs or tokens + counts[i] > token_cap):
                batches.append(_Batch(current, tokens))
                current, tokens = [], 0
            current.append(i)
            tokens += counts[i]
        if current:
            batches.append(_Batch(current, tokens))
        return batches

    async def _embed_into(self, texts: list[str], outcome: EmbeddingOutcome) -> None:
        vectors, errors, stats = outcome.vectors, outcome.errors, outcome.stats
        counts = [tokenizers.count_tokens(t) for t in texts]
        sendable = []
        for i, (text, n) in enumerate(zip(texts, counts)):
            if not text:
                errors[i] = "empty input: the embeddings API rejects empty strings"
            elif n > MAX_INPUT_TOKENS:
                errors[i] = f"input has {n} tokens, above the model's limit of {MAX_INPUT_TOKENS}"
            else:
                sendable.append(i)
        if sendable:
            gate = asyncio.Semaphore(self.concurrency)
            async with openai.AsyncOpenAI(
                api_key=self._api_key, base_url=self.base_url, max_retries=0, timeout=self.timeout_s
            ) as client:
                job = _Job(self, client, texts, counts, vectors, errors, stats, gate)
                first, *rest = self.pack(counts, sendable)
                await asyncio.gather(job.run(first, first=True), *(job.run(batch) for batch in rest))


class _Job:
    """The state of one embed() call, shared by its concurrent requests."""

    def __init__(self, embedder, client, texts, counts, vectors, errors, stats, gate):
        self.e = embedder
        self.client = client
        self.texts, self.counts = texts, counts
        self.vectors, self.errors, self.stats = vectors, errors, stats
        self.gate = gate
        # Until the key is known to work, one request goes alone: a wrong key costs a single 401.
        self.key_checked = asyncio.Event()
        if embedder.key_checked:
            self.key_checked.set()

    def _key_works(self) -> None:
        self.e.key_checked = True
        self.key_checked.set()

    async def run(self, batch: _Batch, first: bool = False) -> None:
        if not first:
            await self.key_checked.wait()
        async with self.gate:
            failure = await self._send_with_retries(batch)
        self._key_works()  # or its request never reached the server: let the others try
        if failure is None:
            return
        status, message = failure
        if status == 400 and len(batch.indexes) > 1:
            # Bisect: the API names no input in its 400, so halve until the bad one stands alone.
            half = len(batch.indexes) // 2
            parts = (batch.indexes[:half], batch.indexes[half:])
            await asyncio.gather(*(self.run(_Batch(p, sum(self.counts[i] for i in p))) for p in parts))
            return
        for i in batch.indexes:
            self.errors[i] = message

    async def _send_with_retries(self, batch: _Batch) -> tuple[int | None, str] | None:
        """None when embedded; else (status, reason) once retrying is pointless or exhausted."""
        last = "no attempt made"
        for attempt in range(self.e.max_retries + 1):
            if attempt:
                self.stats.retries += 1
            await self.e.limiter.acquire(batch.tokens)
            self.stats.requests += 1
            wait = None
            started = time.perf_counter()
            try:
                raw = await self.client.embeddings.with_raw_response.create(
                    model=self.e.model,
                    input=[self.texts[i] for i in batch.indexes],
                    encoding_format="base64",
                    **({"dimensions": self.e._send_dimensions} if self.e._send_dimensions else {}),
                )
                self.e.limiter.observe(raw.headers)
                self._store(batch, raw.http_response.json())
                self.stats.latencies_ms.append((time.perf_counter() - started) * 1000)
                self.e.limiter.on_success()
                return None
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                self.stats.failed_requests += 1
                raise EmbeddingAuthError(
                    f"the embeddings API at {self.e.base_url or 'api.openai.com'} rejected the API key "
                    f"({exc.status_code}); check OPENAI_API_KEY"
                ) from None
            except openai.APIStatusError as exc:
                self._key_works()
                self.stats.failed_requests += 1
                status = exc.status_code
                wait = _retry_after(exc.response.headers)
                if wait is not None:  # honoured beyond the SDK's 120 s, up to our own maximum
                    wait = min(wait, self.e.max_retry_wait_s)
                if status == 429:
                    self.stats.rate_limited += 1
                    self.e.limiter.on_rate_limited(wait if wait is not None else 1.0)
                    last = f"rate limited (429): {_message(exc)}"
                elif status >= 500 or status in (408, 409):
                    last = f"server error ({status}): {_message(exc)}"
                else:  # 400 and the like: the request itself is wrong, sending it again cannot help
                    return status, f"rejected by the API ({status}): {_message(exc)}"
            # Timeouts and dropped connections are APIConnectionErrors; a body that is not JSON is a ValueError.
            except (openai.APIConnectionError, _Malformed, ValueError) as exc:
                self.stats.failed_requests += 1
                last = f"{type(exc).__name__}: {exc}"
            if attempt < self.e.max_retries:
                if wait is None:  # exponential backoff with full jitter
                    wait = random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt))
                await asyncio.sleep(wait)
        return None, f"gave up after {self.e.max_retries + 1} attempts: {last}"

    def _store(self, batch: _Batch, body) -> None:
        """Vectors from the JSON body. Read by hand rather than through `raw.parse()`: the SDK builds a
        pydantic object per vector, which cost 0.36 ms each, the biggest client-side cost per input."""
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or len(data) != len(batch.indexes):
            raise _Malformed(f"expected a list of {len(batch.indexes)} embeddings in the answer")
        try:
            decoded = {item["index"]: _vector(item["embedding"]) for item in data}
        except (KeyError, TypeError, ValueError) as exc:
            raise _Malformed(f"unreadable embedding in the answer: {exc!r}") from None
        if sorted(decoded) != list(range(len(batch.indexes))):
            raise _Malformed("response indexes do not match the inputs")
        if any(v.shape != (self.e.dimensions,) for v in decoded.values()):
            raise _Malformed(f"expected {self.e.dimensions}-d vectors")
        usage = body.get("usage")
        self.stats.tokens += (usage.get("total_tokens") if isinstance(usage, dict) else None) or batch.tokens
        for position, i in enumerate(batch.indexes):
            self.vectors[i] = decoded[position]


def _vector(embedding) -> np.ndarray:
    if isinstance(embedding, str):  # base64 of little-endian float32, what we ask for
        return np.frombuffer(base64.b64decode(embedding), dtype="<f4").astype(np.float32, copy=False)
    return np.asarray(embedding, dtype=np.float32)


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    return str(body.get("message") or exc.message)[:500]
