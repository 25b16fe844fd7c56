"""An OpenAI-compatible embeddings server for tests and benchmarks, on 127.0.0.1.

`POST /v1/embeddings` answers like the real API: float or base64 vectors, `dimensions`, usage
tokens, the real 400s (too many inputs or tokens, an input over 8,192 tokens, an empty string), 401
for a wrong key, and `x-ratelimit-*` headers on every response. Texts that share words get close
vectors (a sum of per-word pseudo-random vectors), so search results mean something. A latency
model and requests/tokens-per-minute buckets make it behave like a real account; faults (500s,
429s, dropped connections, slow and malformed answers) can be switched on while it runs, and its
counters let tests prove that nothing was lost or sent twice.

It also plays the accounts and servers nobody configured: a request larger than the TPM limit gets
the real `429 Request too large … Limit N, Requested M` with no retry-after; `model` serves one
model name only (any other gets `unknown_model_status`), of native size `dimensions`, whose
`dimensions` parameter is accepted (OpenAI's matryoshka models), rejected with a 400 (vLLM for other
models) or ignored (`dimensions_param`); `max_batch` answers 413 to larger requests (TEI's batch
limit); `poison_status` 400 or 422; `revoke_key_after` answers 401 once that many requests were admitted.

    python -m indexer_pipeline.embeddings.simulator --port 8089 --latency-ms 350 --rpm 3000 --tpm 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import random
import re
import signal
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import tokenizers

MAX_INPUTS, MAX_REQUEST_TOKENS, MAX_INPUT_TOKENS = 2048, 300_000, 8192
DIMENSIONS_PARAM = ("accept", "reject", "ignore")
ORGANIZATION = "org-simulator"
_WORD = re.compile(r"\w+")


@dataclass
class Faults:
    """Probabilities (0–1) per request, and counts of the next requests to fail a given way."""

    error_500: float = 0.0
    spurious_429: float = 0.0
    drop: float = 0.0
    malformed: float = 0.0
    slow: float = 0.0
    slow_ms: float = 2000.0
    next_500: int = 0
    next_429: int = 0
    next_drop: int = 0
    next_malformed: int = 0
    next_slow: int = 0
    retry_after_ms: float = 200.0  # sent with injected 429s
    poison: str | None = None  # a request with an input containing this gets the real API's 400 ...
    poison_status: int = 400  # ... or this status (422: TEI's and FastAPI's validation errors)


@dataclass
class _Bucket:
    capacity: float
    level: float
    updated: float = field(default_factory=time.monotonic)

    def refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.updated) * self.capacity / 60)
        self.updated = now

    def seconds_until(self, amount: float) -> float:
        return max(0.0, (min(amount, self.capacity) - self.level) * 60 / self.capacity)


def _duration(seconds: float) -> str:
    return f"{int(seconds * 1000)}ms" if seconds < 1 else f"{seconds:.3f}s"


class EmbeddingSimulator:
    def __init__(
        self,
        api_key: str = "sk-simulator-test-key",
        dimensions: int = 1536,
        latency_ms: float = 0.0,
        per_token_ms: float = 0.0,
        jitter_ms: float = 0.0,
        rpm: int | None = None,
        tpm: int | None = None,
        port: int = 0,
        seed: int = 0,
        model: str | None = None,
        dimensions_param: str = "accept",
        unknown_model_status: int = 400,
        max_batch: int | None = None,
        too_large_429: bool = True,
        revoke_key_after: int | None = None,
    ):
        if dimensions_param not in DIMENSIONS_PARAM:
            raise ValueError(f"dimensions_param must be one of {DIMENSIONS_PARAM}, not {dimensions_param!r}")
        self.api_key = api_key
        self.dimensions = dimensions  # the model's native size
        self.model = model  # None: any model name is served
        self.dimensions_param = dimensions_param
        self.unknown_model_status = unknown_model_status  # OpenAI and vLLM say 404, proxies 400
        self.max_batch = max_batch
        self.too_large_429 = too_large_429  # False: a request above the TPM limit waits like any other
        self.revoke_key_after = revoke_key_after  # requests admitted before the key stops working
        self.latency_ms, self.per_token_ms, self.jitter_ms = latency_ms, per_token_ms, jitter_ms
        self.rpm, self.tpm = rpm, tpm
        self.faults = Faults()
        self.port = port or _free_port()
        self._random = random.Random(seed)
        self._words: dict[tuple[str, int], np.ndarray] = {}
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.reset_stats()

    # -- control ------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def set_faults(self, **values) -> None:
        self.faults = Faults(**values)

    def set_limits(self, rpm: int | None, tpm: int | None) -> None:
        self.rpm, self.tpm = rpm, tpm
        self._requests = _Bucket(rpm, rpm) if rpm else None
        self._tokens = _Bucket(tpm, tpm) if tpm else None

    def reset_stats(self) -> None:
        with self._lock:
            self._stats = {
                "requests": 0,
                "admitted": 0,  # requests whose key was accepted
                "inputs": 0,
                "tokens": 0,
                "status": Counter(),
                "faults": Counter(),
            }
            self.embedded_texts: Counter = Counter()
            self.request_sizes: list[tuple[int, int]] = []  # (inputs, tokens) of each request served
            self.clients: set[tuple[str, int]] = set()  # (host, port) of each connection requests came on
        self.set_limits(self.rpm, self.tpm)

    def stats(self) -> dict:
        with self._lock:
            return {
                **self._stats,
                "status": Counter(self._stats["status"]),
                "faults": Counter(self._stats["faults"]),
                "texts": Counter(self.embedded_texts),  # how often each text was embedded
                "connections": len(self.clients),  # a client that keeps its connections alive opens few
            }

    def start(self) -> EmbeddingSimulator:
        app = Starlette(
            routes=[
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
                Route("/_stats", self._stats_endpoint, methods=["GET"]),
                Route("/_control", self._control_endpoint, methods=["POST"]),
            ]
        )
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            limit_concurrency=2000,
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="embedding-simulator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the embedding simulator did not start on 127.0.0.1:{self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    def __enter__(self) -> EmbeddingSimulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- control over HTTP, for a simulator in another process (benchmarks) ----------------------------
    async def _stats_endpoint(self, request: Request) -> Response:
        stats = self.stats()
        texts = stats.pop("texts")
        return JSONResponse(
            {
                **stats,
                "status": dict(stats["status"]),
                "faults": dict(stats["faults"]),
                "duplicate_texts": sum(1 for n in texts.values() if n > 1),
            }
        )

    async def _control_endpoint(self, request: Request) -> Response:
        """{"latency_ms": .., "rpm": .., "tpm": .., "model": .., "faults": {..}, "reset": true}: any attribute above."""
        body = await request.json()
        for name in ("latency_ms", "jitter_ms", "per_token_ms"):
            if name in body:
                setattr(self, name, float(body[name]))
        for name in (
            "model",
            "dimensions",
            "dimensions_param",
            "unknown_model_status",
            "max_batch",
            "too_large_429",
            "revoke_key_after",
        ):
            if name in body:
                setattr(self, name, body[name])
        if "faults" in body:
            self.set_faults(**body["faults"])
        if "rpm" in body or "tpm" in body:
            self.rpm, self.tpm = body.get("rpm", self.rpm), body.get("tpm", self.tpm)
        if body.get("reset") or "rpm" in body or "tpm" in body:
            self.reset_stats()  # also refills the rate-limit buckets
        return JSONResponse({"ok": True})

    # -- the API --------------------------------------------------------------------------------------
    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._stats[key] += n

    def _answer(self, status: int, body: dict, headers: dict | None = None) -> Response:
        with self._lock:
            self._stats["status"][status] += 1
        return JSONResponse(body, status_code=status, headers={**self._limit_headers(), **(headers or {})})

    def _error(self, status: int, message: str, kind: str, code: str | None = None, param=None, headers=None):
        return self._answer(
            status, {"error": {"message": message, "type": kind, "param": param, "code": code}}, headers
        )

    def _limit_headers(self) -> dict:
        headers = {}
        for name, bucket in (("requests", self._requests), ("tokens", self._tokens)):
            if bucket:
                bucket.refill()
                headers[f"x-ratelimit-limit-{name}"] = str(int(bucket.capacity))
                headers[f"x-ratelimit-remaining-{name}"] = str(max(0, int(bucket.level)))
                headers[f"x-ratelimit-reset-{name}"] = _duration(bucket.seconds_until(bucket.capacity))
        return headers

    def _take_fault(self, name: str) -> bool:
        f = self.faults
        if getattr(f, f"next_{name}", 0) > 0:
            setattr(f, f"next_{name}", getattr(f, f"next_{name}") - 1)
            hit = True
        else:
            probability = {"500": "error_500", "429": "spurious_429"}.get(name, name)
            hit = self._random.random() < getattr(f, probability)
        if hit:
            with self._lock:
                self._stats["faults"][name] += 1
        return hit

    async def _embeddings(self, request: Request) -> Response:
        self._count("requests")
        if request.client:
            with self._lock:
                self.clients.add((request.client.host, request.client.port))
        with self._lock:
            revoked = self.revoke_key_after is not None and self._stats["admitted"] >= self.revoke_key_after
            if not revoked and request.headers.get("authorization") == f"Bearer {self.api_key}":
                self._stats["admitted"] += 1
            else:
                revoked = True
        if revoked:
            return self._error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        body = await request.json()
        model = body.get("model")
        if self.model is not None and model != self.model:
            return self._error(
                self.unknown_model_status,
                f"The model '{model}' does not exist",
                "invalid_request_error",
                "model_not_found",
                param="model",
            )
        dims = self._dimensions(body.get("dimensions"), model)
        if isinstance(dims, Response):
            return dims
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(inputs, list) or not inputs:
            return self._error(400, "'input' is a required property", "invalid_request_error", param="input")
        if len(inputs) > MAX_INPUTS:
            return self._error(
                400,
                f"'$.input' is invalid: at most {MAX_INPUTS} inputs.",
                "invalid_request_error",
                param="input",
            )
        if self.max_batch is not None and len(inputs) > self.max_batch:
            return self._error(
                413,
                f"Input validation error: batch size {len(inputs)} > maximum allowed batch size {self.max_batch}",
                "validation",
            )
        counts = [tokenizers.count_tokens(t) if isinstance(t, str) else len(t) for t in inputs]
        if any(t == "" for t in inputs):
            return self._error(
                400,
                "'$.input' is invalid: empty strings are not allowed.",
                "invalid_request_error",
                param="input",
            )
        if max(counts) > MAX_INPUT_TOKENS:
            return self._error(
                400,
                f"This model's maximum context length is {MAX_INPUT_TOKENS} tokens, however you "
                f"requested {max(counts)} tokens.",
                "invalid_request_error",
                param="input",
            )
        total = sum(counts)
        if total > MAX_REQUEST_TOKENS:
            return self._error(
                400,
                f"Requested {total} tokens, max {MAX_REQUEST_TOKENS} tokens per request",
                "max_tokens_per_request",
                param="input",
            )
        f = self.faults
        if f.poison and any(isinstance(t, str) and f.poison in t for t in inputs):
            return self._error(
                f.poison_status,
                "Invalid input: the text could not be processed.",
                "invalid_request_error",
                param="input",
            )

        limited = self._rate_limit(total, model)
        if limited is not None:
            return limited
        if self._take_fault("429"):
            return self._error(
                429,
                "Rate limit reached (injected).",
                "requests",
                "rate_limit_exceeded",
                headers={
                    "retry-after-ms": str(int(f.retry_after_ms)),
                    "retry-after": str(max(1, round(f.retry_after_ms / 1000))),
                },
            )

        delay = self.latency_ms + self.per_token_ms * total + self._random.uniform(0, self.jitter_ms)
        if self._take_fault("slow"):
            delay += f.slow_ms
        await asyncio.sleep(delay / 1000)
        if self._take_fault("500"):
            return self._error(500, "The server had an error while processing your request.", "server_error")
        if self._take_fault("drop"):
            return _DroppedConnection()
        if self._take_fault("malformed"):
            with self._lock:
                self._stats["status"][200] += 1
            return Response(
                "<html>502 Bad Gateway</html>",
                status_code=200,
                media_type="application/json",
                headers=self._limit_headers(),
            )

        vectors = [self.vector(t if isinstance(t, str) else " ".join(map(str, t)), dims) for t in inputs]
        as_base64 = body.get("encoding_format") == "base64"
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": base64.b64encode(v.tobytes()).decode() if as_base64 else v.tolist(),
            }
            for i, v in enumerate(vectors)
        ]
        with self._lock:
            self._stats["inputs"] += len(inputs)
            self._stats["tokens"] += total
            self.embedded_texts.update(t for t in inputs if isinstance(t, str))
            self.request_sizes.append((len(inputs), total))
        return self._answer(
            200,
            {
                "object": "list",
                "data": data,
                "model": body.get("model"),
                "usage": {"prompt_tokens": total, "total_tokens": total},
            },
        )

    def _dimensions(self, requested, model: str | None) -> int | Response:
        """The size of the vectors to answer with, or the 400 the server gives for `dimensions`."""
        if requested is None or self.dimensions_param == "ignore":
            return self.dimensions
        if self.dimensions_param == "reject":  # vLLM's answer for a model without matryoshka training
            return self._error(  # as vLLM words it: no `param` names the culprit
                400,
                f'Model "{model}" does not support matryoshka representation, changing output '
                "dimensions will lead to poor results.",
                "BadRequestError",
            )
        if not isinstance(requested, int) or not 1 <= requested <= self.dimensions:
            return self._error(
                400,
                f"Invalid value for 'dimensions' = {requested}: it must be between 1 and {self.dimensions}.",
                "invalid_request_error",
                param="dimensions",
            )
        return requested

    def _rate_limit(self, tokens: int, model: str | None) -> Response | None:
        where = f"for {model} in organization {ORGANIZATION} on tokens per min (TPM)"
        if self._tokens and self.too_large_429 and tokens > self._tokens.capacity:
            # The real API's answer to a request no wait can make fit: no retry-after.
            return self._error(
                429,
                f"Request too large {where}: Limit {int(self._tokens.capacity)}, Requested {tokens}. "
                "The input or output tokens must be reduced in order to run successfully. "
                "Visit https://platform.openai.com/account/rate-limits to learn more.",
                "tokens",
                "rate_limit_exceeded",
            )
        waits = []
        for bucket, amount in ((self._requests, 1), (self._tokens, tokens)):
            if bucket:
                bucket.refill()
                waits.append(bucket.seconds_until(amount))
        wait = max(waits, default=0.0)
        if wait > 0:
            limit = (
                f"{where}: Limit {int(self._tokens.capacity)}, Used {int(self._tokens.capacity - self._tokens.level)}, "
                f"Requested {tokens}"
                if self._tokens
                else f"for {model} in organization {ORGANIZATION} on requests per min (RPM)"
            )
            return self._error(
                429,
                f"Rate limit reached {limit}. Please try again in {wait:.3f}s.",
                "tokens",
                "rate_limit_exceeded",
                headers={"retry-after-ms": str(int(wait * 1000) + 1), "retry-after": str(int(wait) + 1)},
            )
        for bucket, amount in ((self._requests, 1), (self._tokens, tokens)):
            if bucket:
                bucket.level -= min(amount, bucket.capacity)
        return None

    def vector(self, text: str, dims: int) -> np.ndarray:
        """Deterministic: the normalized sum of one pseudo-random vector per distinct word."""
        words = set(_WORD.findall(text.lower())) or {text}
        total = np.zeros(dims, dtype=np.float32)
        for word in words:
            total += self.word_vector(word, dims)
        return total / (np.linalg.norm(total) or 1.0)

    def word_vector(self, word: str, dims: int) -> np.ndarray:
        """One word's pseudo-random vector (not normalized); benchmarks sum them as a matrix product."""
        v = self._words.get((word, dims))
        if v is None:
            seed = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
            v = np.random.default_rng(seed).standard_normal(dims).astype(np.float32)
            self._words[(word, dims)] = v
        return v


class _DroppedConnection(Response):
    """Announces a body, sends part of it, then fails: uvicorn closes the socket mid-response."""

    async def __call__(self, scope, receive, send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"object": "li', "more_body": True})
        raise ConnectionAbortedError("simulated dropped connection")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description="OpenAI-compatible embeddings simulator on 127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--api-key", default="sk-simulator-test-key")
    parser.add_argument("--latency-ms", type=float, default=350.0)
    parser.add_argument("--per-token-ms", type=float, default=0.0)
    parser.add_argument("--jitter-ms", type=float, default=50.0)
    parser.add_argument("--rpm", type=int)
    parser.add_argument("--tpm", type=int)
    parser.add_argument("--dimensions", type=int, default=1536, help="the model's native size")
    parser.add_argument("--model", help="serve only this model name (default: any name)")
    parser.add_argument("--dimensions-param", choices=DIMENSIONS_PARAM, default="accept")
    parser.add_argument("--unknown-model-status", type=int, default=400)
    parser.add_argument("--max-batch", type=int, help="answer 413 to requests of more inputs (TEI)")
    parser.add_argument(
        "--no-too-large-429",
        dest="too_large_429",
        action="store_false",
        help="let a request above the TPM limit wait instead of answering 429 Request too large",
    )
    parser.add_argument("--revoke-key-after", type=int, help="answer 401 after this many requests")
    args = parser.parse_args()
    sim = EmbeddingSimulator(
        args.api_key,
        dimensions=args.dimensions,
        latency_ms=args.latency_ms,
        per_token_ms=args.per_token_ms,
        jitter_ms=args.jitter_ms,
        rpm=args.rpm,
        tpm=args.tpm,
        port=args.port,
        model=args.model,
        dimensions_param=args.dimensions_param,
        unknown_model_status=args.unknown_model_status,
        max_batch=args.max_batch,
        too_large_429=args.too_large_429,
        revoke_key_after=args.revoke_key_after,
    ).start()
    # uvicorn listens for signals only on the main thread, and its server runs on another one: stop it
    # here on SIGTERM or Ctrl-C, so open connections are closed and the exit status is 0.
    signal.signal(signal.SIGTERM, lambda *_: sim.stop())
    print(f"embedding simulator on {sim.base_url} (OPENAI_BASE_URL), key {args.api_key}", flush=True)
    try:
        sim._thread.join()
    except KeyboardInterrupt:
        sim.stop()


if __name__ == "__main__":
    main()
