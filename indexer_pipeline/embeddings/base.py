"""The contract every embedding provider keeps, whatever serves the vectors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class EmbeddingError(RuntimeError):
    """An embedding request failed in a way the run must report."""


class EmbeddingAuthError(EmbeddingError):
    """The API key is missing or rejected: fail at once, never retry for minutes."""


class EmbeddingRequestError(EmbeddingError):
    """The API rejects every request as configured (model, dimensions), whatever the input: fail at once."""


@dataclass
class EmbeddingStats:
    requests: int = 0  # HTTP requests sent, retries and probes included
    # Failed for the API's reasons: 5xx, 429 rate limits, timeouts, lost connections, unusable
    # answers, a rejected key (each retry counts).
    failed_requests: int = 0
    # Refused for what they carried (400/413/422, 429 "Request too large"): the requests that isolate
    # a bad input by bisection, or that taught the engine a limit. Not the API failing.
    rejected_requests: int = 0
    retries: int = 0
    rate_limited: int = 0  # 429 answers, "Request too large" included
    tokens: int = 0  # tokens the provider billed (usage), or counted locally
    inputs: int = 0
    latencies_ms: list[float] = field(default_factory=list)  # one per successful request
    failed_latencies_ms: list[float] = field(default_factory=list)  # one per failed or rejected request

    def merge(self, other: EmbeddingStats) -> None:
        self.requests += other.requests
        self.failed_requests += other.failed_requests
        self.rejected_requests += other.rejected_requests
        self.retries += other.retries
        self.rate_limited += other.rate_limited
        self.tokens += other.tokens
        self.inputs += other.inputs
        self.latencies_ms.extend(other.latencies_ms)
        self.failed_latencies_ms.extend(other.failed_latencies_ms)


@dataclass
class EmbeddingOutcome:
    """Vectors aligned with the inputs. An input is either embedded or named in `errors` — never dropped."""

    vectors: list[np.ndarray | None]
    errors: dict[int, str]  # input index -> reason (for example the API's 400 message)
    stats: EmbeddingStats


class Embedder(Protocol):
    provider: str  # "openai" or "local"
    model: str
    dimensions: int  # the vectors' size: configured, published, recorded, or learned from the server
    max_input_tokens: int  # the longest single input the model takes
    # embed() sends the texts to a server and waits, sharing nothing with count_tokens/token_offsets:
    # the pipeline may call it in a thread of its own while it reads and writes.
    remote: bool

    def count_tokens(self, text: str) -> int: ...

    def token_offsets(self, text: str) -> list[int]:
        """Character offset where each token of `text` starts (the chunker slices the original text)."""
        ...

    def embed(self, texts: list[str], token_counts: list[int] | None = None) -> EmbeddingOutcome:
        """Vectors for `texts`. `token_counts`: each text's tokens by this embedder's tokenizer, when the
        caller knows them (a chunk's), so an engine that packs requests by tokens need not count again."""
        ...

    def close(self) -> None: ...
