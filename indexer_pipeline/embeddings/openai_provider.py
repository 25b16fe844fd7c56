"""Embeddings from OpenAI or any OpenAI-compatible server, at the account's rate-limit ceiling.

Built on the official SDK's `AsyncOpenAI`, with the SDK's own retries off (`max_retries=0`): we
retry ourselves because we must honour retry-after beyond the SDK's 120 s cap, count every retry and
429 for the run's metadata, feed the limiter from each response's headers, and bisect a batch that
the API rejects with a 400, 413 or 422 so one bad input does not fail its neighbours.

It also works on accounts and servers it was told nothing about:
- a tokens-per-minute limit below its requests (`429 Request too large … Limit N`, no retry-after):
  the limit is learned, the refused batch and every later one are re-packed below it, and an input
  larger than the limit fails alone with that reason;
- a model of unknown size (vLLM, Ollama, TEI): the size is learned from the first answer and
  recorded beside the cache, `dimensions` is sent only when EMBEDDING_DIMENSIONS is set, and an
  answer of another size than asked fails the run with what to change;
- a request the API refuses whatever it carries (an unknown model, a `dimensions` the model does not
  take): until a request of this shape has succeeded, a refusal is checked with a one-word probe, and
  a refused probe fails the run at once (EmbeddingRequestError) instead of bisecting 2N−1 requests.
"""

from __future__ import annotations

import asyncio
import base64
import random
import re
import threading
import time
from dataclasses import dataclass

import numpy as np
import openai

from .. import tokenizers
from ..config import Settings
from .base import EmbeddingAuthError, EmbeddingError, EmbeddingOutcome, EmbeddingRequestError, EmbeddingStats
from .cache import DimensionRecord
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
PROBE_TEXT = "probe"  # one token: asks whether a request of this shape is accepted, and the vectors' size
REJECTED = (400, 413, 422)  # the request refused for what it carried: an input, its size, or its shape
# Parameters that are the same in every request: a 400 naming one of them is never an input's fault.
REQUEST_PARAMS = ("model", "dimensions", "encoding_format")
_LIMIT = re.compile(r"\bLimit (\d+)\b.*?\bRequested (\d+)\b", re.S)


class _Malformed(Exception):
    """A 2xx answer we cannot use (not JSON, wrong number of vectors): retried like a 5xx."""


@dataclass
class _Batch:
    indexes: list[int]
    tokens: int


@dataclass
class _Failure:
    """Why a request gave no vectors, once retrying was pointless or exhausted."""

    kind: str  # "rejected" (400/413/422), "request" (refused whatever it carries), "too_large", "gave_up"
    message: str
    status: int | None = None
    limit: int | None = None  # "too_large": the account's tokens per minute, as the API stated it


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
    remote = True
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
        dimension_record: DimensionRecord | None = None,
    ):
        if not api_key:
            raise EmbeddingAuthError("no OpenAI API key: set OPENAI_API_KEY, or EMBEDDING_PROVIDER=local")
        self._api_key = api_key
        self.base_url = base_url
        self.where = base_url or "api.openai.com"
        self.model = model
        self.requested_dimensions = dimensions  # sent as `dimensions` only when the user set it
        # A published size is trusted only from OpenAI itself: another server may serve any model
        # under an OpenAI name (proxies, aliases).
        published = MODEL_DIMENSIONS.get(model) if base_url is None or "api.openai.com" in base_url else None
        self._dimensions = dimensions or published
        self.dimension_source = (
            "EMBEDDING_DIMENSIONS" if dimensions else "published for the model" if published else None
        )
        self._record = dimension_record
        self.max_inputs = max_inputs_per_request  # lowered when a server answers 413
        self.max_tokens = max_tokens_per_request
        self.concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.max_retry_wait_s = max_retry_wait_s
        # One limiter for the embedder's life: its buckets carry over between embed() calls.
        self.limiter = AdaptiveLimiter(rpm, tpm)
        # One client for the embedder's life, on an event loop of its own in a daemon thread: its
        # connections are kept alive between calls. A client per call cost a new TLS context (~20 ms
        # of certificate loading) and a new connection for every search query.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: openai.AsyncOpenAI | None = None
        self._loop_lock = threading.Lock()
        self.key_checked = False  # True once the server answered a request without a 401/403
        self.shape_ok = False  # True once a request of this model and dimensions was answered 200

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
            dimension_record=DimensionRecord(settings.cache_path),
        )

    def __repr__(self) -> str:  # never the key
        return (
            f"OpenAIEmbedder(model={self.model!r}, dimensions={self._dimensions}, base_url={self.base_url!r})"
        )

    @property
    def dimensions(self) -> int:
        """The vectors' size. Unless configured or published, it is read from the record of an earlier
        answer, or learned from a one-word request and recorded."""
        if self._dimensions is None and self._record is not None:
            recorded = self._record.get(self.provider, self.model, self.requested_dimensions)
            if recorded:
                self._dimensions, self.dimension_source = recorded, "recorded from the server's answer"
        if self._dimensions is None:
            outcome = self.embed([PROBE_TEXT])  # its answer's size is adopted by _Job._store
            if self._dimensions is None:
                raise EmbeddingError(
                    f"could not learn the vector size of model {self.model!r} from {self.where}: "
                    f"{outcome.errors.get(0, 'no answer')}"
                )
        return self._dimensions

    def _adopt_dimensions(self, size: int) -> None:
        """The first answer's size, for a model whose size nobody told us."""
        self._dimensions, self.dimension_source = size, "learned from the server's answer"
        if self._record is not None:
            self._record.put(self.provider, self.model, self.requested_dimensions, size)

    def _wrong_size(self, size: int) -> str:
        if self.requested_dimensions:
            return (
                f"EMBEDDING_DIMENSIONS={self.requested_dimensions}, but {self.where} answered {size}-d "
                f"vectors for model {self.model!r}: the server ignores the `dimensions` parameter; set "
                f"EMBEDDING_DIMENSIONS={size}, or unset it"
            )
        return (
            f"{self.where} answered {size}-d vectors for model {self.model!r}, where {self._dimensions}-d "
            f"were {self.dimension_source}: set EMBEDDING_DIMENSIONS={size} (and use a new "
            "QDRANT_COLLECTION), or check EMBEDDING_MODEL"
        )

    def count_tokens(self, text: str) -> int:
        return tokenizers.count_tokens(text)

    def token_offsets(self, text: str) -> list[int]:
        return tokenizers.token_offsets(text)

    def estimated_cost_usd(self, tokens: int) -> float:
        return tokens * USD_PER_MILLION_TOKENS.get(self.model, 0.0) / 1e6

    def close(self) -> None:
        """End the requests in flight (an embed() waiting in another thread raises CancelledError), close
        the client and end its loop's thread; a later embed() starts them again."""
        with self._loop_lock:
            loop, self._loop = self._loop, None
        if loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)

    async def _shutdown(self) -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.close()
            self._client = None

    def _run(self, coroutine) -> None:
        """Run `coroutine` on the embedder's own loop and wait for it: callable from any thread, with or
        without a running loop of its own (the MCP server calls from inside one)."""
        with self._loop_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=_serve, args=(loop,), name="openai-embedder", daemon=True).start()
                self._loop = loop
            loop = self._loop
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        try:
            future.result()
        except BaseException:
            future.cancel()  # Ctrl-C or an error: requests still in flight end too
            raise

    def client(self) -> openai.AsyncOpenAI:
        """The embedder's client, made on its loop at first use."""
        if self._client is None:
            self._client = openai.AsyncOpenAI(
                api_key=self._api_key, base_url=self.base_url, max_retries=0, timeout=self.timeout_s
            )
        return self._client

    # -- embedding ------------------------------------------------------------------------------
    def embed(self, texts: list[str], token_counts: list[int] | None = None) -> EmbeddingOutcome:
        """Synchronous for callers. `token_counts` (cl100k tokens of each text, e.g. `Chunk.tokens`)
        spares counting them again."""
        outcome = EmbeddingOutcome([None] * len(texts), {}, EmbeddingStats(inputs=len(texts)))
        self._run(self._embed_into(texts, outcome, token_counts))
        return outcome

    def request_token_cap(self) -> int:
        """The most tokens one request carries: the API's limit, and 1/20 of a minute's token budget (the
        API refuses a request larger than the budget, and small requests let the limiter pace smoothly
        near the ceiling)."""
        return min(self.max_tokens, max(1, int(self.limiter.tokens.capacity // 20)))

    def pack(self, counts: list[int], indexes: list[int], token_cap: int | None = None) -> list[_Batch]:
        """Consecutive inputs grouped up to the request limits on count and tokens."""
        token_cap = min(token_cap or self.max_tokens, self.request_token_cap())
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

    async def _embed_into(
        self, texts: list[str], outcome: EmbeddingOutcome, token_counts: list[int] | None = None
    ) -> None:
        vectors, errors, stats = outcome.vectors, outcome.errors, outcome.stats
        counts = token_counts if token_counts is not None else [tokenizers.count_tokens(t) for t in texts]
        if len(counts) != len(texts):
            raise ValueError(f"{len(counts)} token counts for {len(texts)} texts")
        sendable = []
        for i, (text, n) in enumerate(zip(texts, counts)):
            if not text:
                errors[i] = "empty input: the embeddings API rejects empty strings"
            elif n > MAX_INPUT_TOKENS:
                errors[i] = f"input has {n} tokens, above the model's limit of {MAX_INPUT_TOKENS}"
            else:
                sendable.append(i)
        if not sendable:
            return
        gate = asyncio.Semaphore(self.concurrency)
        job = _Job(self, self.client(), texts, counts, vectors, errors, stats, gate)
        first, *rest = self.pack(counts, sendable)
        tasks = [asyncio.ensure_future(job.run(first, first=True))]
        tasks += [asyncio.ensure_future(job.run(batch)) for batch in rest]
        try:
            await asyncio.gather(*tasks)
        finally:
            # A fatal answer (a revoked key, a refused model) ends every request still waiting or in
            # flight, so none outlives this call.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


class _Job:
    """The state of one embed() call, shared by its concurrent requests."""

    def __init__(self, embedder, client, texts, counts, vectors, errors, stats, gate):
        self.e = embedder
        self.client = client
        self.texts, self.counts = texts, counts
        self.vectors, self.errors, self.stats = vectors, errors, stats
        self.gate = gate
        # Until a request has succeeded, one goes alone: a wrong key costs a single 401, and a refused
        # model or dimension a single 400 and its probe.
        self.ready = asyncio.Event()
        if embedder.key_checked and embedder.shape_ok:
            self.ready.set()
        self.probing = asyncio.Lock()

    def _proven(self) -> None:
        self.e.key_checked = self.e.shape_ok = True
        self.ready.set()

    async def run(self, batch: _Batch, first: bool = False) -> None:
        await self._run(batch, first)
        if first:  # whatever became of it, let the others try; a raise ends them all instead
            self.ready.set()

    async def _run(self, batch: _Batch, first: bool) -> None:
        e = self.e
        if not first:
            await self.ready.wait()
        if len(batch.indexes) > 1 and (
            batch.tokens > e.request_token_cap() or len(batch.indexes) > e.max_inputs
        ):
            # Limits learned since this batch was packed (the account's TPM, a server's batch size).
            await self._split(e.pack(self.counts, batch.indexes), first)
            return
        server_limit = e.limiter.server_token_limit
        if server_limit and batch.tokens > server_limit:  # one input no request can ever carry
            self._fail(batch, self._too_large_reason(batch, server_limit))
            return
        async with self.gate:
            failure = await self._send_with_retries(batch)
        if failure is None:
            return
        if failure.kind == "too_large":
            if len(batch.indexes) == 1:
                self._fail(batch, self._too_large_reason(batch, failure.limit))
            else:  # below the learned limit, and at least in halves: every pass makes progress
                await self._split(e.pack(self.counts, batch.indexes, token_cap=batch.tokens // 2), first)
            return
        half = len(batch.indexes) // 2
        halves = [self._batch(batch.indexes[:half]), self._batch(batch.indexes[half:])]
        if failure.status == 413 and half:
            # Too large for the server (a batch limit, a body size), never an input's or the shape's
            # fault: later batches are packed at most half as large, and wait until that size passes.
            e.max_inputs = min(e.max_inputs, half)
            self.ready.clear()
            await self._split(halves, first=True)
            return
        if failure.kind == "rejected" and not e.shape_ok:
            await self._check_shape(batch, failure)
        if failure.kind == "request":
            raise EmbeddingRequestError(self._refused_everything(failure))
        if failure.kind == "rejected" and half:
            # Bisect: the API names no input in its refusal, so halve until the bad one stands alone.
            await self._split(halves, first=False)
            return
        self._fail(batch, failure.message)

    def _batch(self, indexes: list[int]) -> _Batch:
        return _Batch(indexes, sum(self.counts[i] for i in indexes))

    async def _split(self, parts: list[_Batch], first: bool) -> None:
        if first:  # the first part still goes alone
            await self.run(parts[0], first=True)
            parts = parts[1:]
        await asyncio.gather(*(self.run(p) for p in parts))

    def _fail(self, batch: _Batch, reason: str) -> None:
        for i in batch.indexes:
            self.errors[i] = reason

    def _too_large_reason(self, batch: _Batch, limit: float | None) -> str:
        return (
            f"input of {batch.tokens} tokens is larger than the account's limit of {int(limit or 0)} tokens "
            "per minute (the API answers 429 Request too large): raise the account's limit, or lower "
            "INDEXER_CHUNK_TOKENS"
        )

    async def _check_shape(self, batch: _Batch, failure: _Failure) -> None:
        """Is the refusal the input's, or the request's? Asked once, with a one-word request: if even
        that is refused, every request is, and `failure` becomes the request's."""
        async with self.probing:
            if self.e.shape_ok:
                return
            if [self.texts[i] for i in batch.indexes] == [PROBE_TEXT]:
                probe = failure  # it was the probe already (the dimension was being learned)
            else:
                probe = await self._send_with_retries(None)
            if probe is not None and probe.kind in ("rejected", "request"):
                failure.kind = "request"

    def _refused_everything(self, failure: _Failure) -> str:
        e = self.e
        if e.requested_dimensions:
            what = f"model {e.model!r} with dimensions={e.requested_dimensions}"
            remedy = (
                "check EMBEDDING_MODEL and EMBEDDING_DIMENSIONS (a model that cannot shorten its vectors "
                "refuses the `dimensions` parameter: unset EMBEDDING_DIMENSIONS to use its own size)"
            )
        else:
            what, remedy = f"model {e.model!r}", "check EMBEDDING_MODEL (and OPENAI_BASE_URL)"
        return (
            f"the embeddings API at {e.where} refuses every request for {what}, whatever the input: "
            f"{failure.message}; {remedy}"
        )

    async def _send_with_retries(self, batch: _Batch | None) -> _Failure | None:
        """None when embedded; else why not, once retrying is pointless or exhausted.
        `batch` None sends the one-word probe and keeps nothing but the verdict."""
        inputs = [PROBE_TEXT] if batch is None else [self.texts[i] for i in batch.indexes]
        tokens = len(inputs) if batch is None else batch.tokens
        last = "no attempt made"
        for attempt in range(self.e.max_retries + 1):
            if attempt:
                self.stats.retries += 1
            await self.e.limiter.acquire(tokens)
            self.stats.requests += 1
            wait = None
            started = time.perf_counter()
            try:
                raw = await self.client.embeddings.with_raw_response.create(
                    model=self.e.model,
                    input=inputs,
                    encoding_format="base64",
                    **({"dimensions": self.e.requested_dimensions} if self.e.requested_dimensions else {}),
                )
                self.e.limiter.observe(raw.headers)
                vectors = self._vectors(len(inputs), tokens, raw.http_response.json())
                self.stats.latencies_ms.append((time.perf_counter() - started) * 1000)
                self.e.limiter.on_success()
                self._proven()
                if batch is not None:
                    for position, i in enumerate(batch.indexes):
                        self.vectors[i] = vectors[position]
                return None
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                self._failed(started)
                raise EmbeddingAuthError(
                    f"the embeddings API at {self.e.where} rejected the API key "
                    f"({exc.status_code}); check OPENAI_API_KEY"
                ) from None
            except openai.APIStatusError as exc:
                self.e.key_checked = True
                status = exc.status_code
                headers = exc.response.headers
                self.e.limiter.observe(headers)
                message = f"rejected by the API ({status}): {_message(exc)}"
                if status == 429:
                    self.stats.rate_limited += 1
                    limit = _too_large(exc, tokens)
                    if limit is not None:  # waiting never helps: learn the limit, send less
                        self._failed(started, rejected=True)
                        self.e.limiter.learn_token_limit(limit)
                        return _Failure("too_large", message, status, limit)
                    self._failed(started)
                    wait = _retry_after(headers)
                    if wait is not None:  # honoured beyond the SDK's 120 s, up to our own maximum
                        wait = min(wait, self.e.max_retry_wait_s)
                    self.e.limiter.on_rate_limited(wait if wait is not None else 1.0)
                    last = f"rate limited (429): {_message(exc)}"
                elif status >= 500 or status in (408, 409):
                    self._failed(started)
                    last = f"server error ({status}): {_message(exc)}"
                else:  # the request itself is wrong: sending it again cannot help
                    self._failed(started, rejected=True)
                    body = exc.body if isinstance(exc.body, dict) else {}
                    about_request = (
                        status not in REJECTED  # 404 and the like name a model or a route, never an input
                        or body.get("param") in REQUEST_PARAMS
                        or body.get("code") == "model_not_found"
                    )
                    return _Failure("request" if about_request else "rejected", message, status)
            except _WrongSize as exc:
                raise EmbeddingRequestError(str(exc)) from None
            # Timeouts and dropped connections are APIConnectionErrors; a body that is not JSON is a ValueError.
            except (openai.APIConnectionError, _Malformed, ValueError) as exc:
                self._failed(started)
                last = f"{type(exc).__name__}: {exc}"
            if attempt < self.e.max_retries:
                if wait is None:  # exponential backoff with full jitter
                    wait = random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt))
                await asyncio.sleep(wait)
        return _Failure("gave_up", f"gave up after {self.e.max_retries + 1} attempts: {last}")

    def _failed(self, started: float, rejected: bool = False) -> None:
        if rejected:
            self.stats.rejected_requests += 1
        else:
            self.stats.failed_requests += 1
        self.stats.failed_latencies_ms.append((time.perf_counter() - started) * 1000)

    def _vectors(self, n: int, tokens: int, body) -> list[np.ndarray]:
        """Vectors from the JSON body. Read by hand rather than through `raw.parse()`: the SDK builds a
        pydantic object per vector, which cost 0.36 ms each, the biggest client-side cost per input."""
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or len(data) != n:
            raise _Malformed(f"expected a list of {n} embeddings in the answer")
        try:
            decoded = {item["index"]: _vector(item["embedding"]) for item in data}
        except (KeyError, TypeError, ValueError) as exc:
            raise _Malformed(f"unreadable embedding in the answer: {exc!r}") from None
        if sorted(decoded) != list(range(n)):
            raise _Malformed("response indexes do not match the inputs")
        sizes = {v.shape for v in decoded.values()}
        if len(sizes) != 1 or len(next(iter(sizes))) != 1:
            raise _Malformed(f"vectors of mixed or unusable shapes in the answer: {sorted(sizes)}")
        [(size,)] = sizes
        if self.e._dimensions is None:
            self.e._adopt_dimensions(size)
        elif size != self.e._dimensions:  # the same answer again and again: retrying cannot help
            raise _WrongSize(self.e._wrong_size(size))
        usage = body.get("usage")
        self.stats.tokens += (usage.get("total_tokens") if isinstance(usage, dict) else None) or tokens
        return [decoded[position] for position in range(n)]


class _WrongSize(Exception):
    """Vectors of another size than configured or recorded: every answer will be the same."""


def _too_large(exc: openai.APIStatusError, tokens: int) -> int | None:
    """The account's tokens-per-minute limit, when a 429 says this request can never fit in it."""
    found = _LIMIT.search(_message(exc))
    if found:
        limit, requested = int(found[1]), int(found[2])
        return limit if requested > limit else None
    header = exc.response.headers.get("x-ratelimit-limit-tokens")
    if "too large" in _message(exc).lower():
        try:
            return int(float(header)) if header else max(1, tokens // 2)
        except ValueError:
            return max(1, tokens // 2)
    return None


def _vector(embedding) -> np.ndarray:
    if isinstance(embedding, str):  # base64 of little-endian float32, what we ask for
        return np.frombuffer(base64.b64decode(embedding), dtype="<f4").astype(np.float32, copy=False)
    return np.asarray(embedding, dtype=np.float32)


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    return str(body.get("message") or exc.message)[:500]


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    """An embedder's loop thread: runs until close() stops the loop, then closes it."""
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.close()
