"""Embedding providers behind one contract; `make_embedder` picks the one the settings ask for."""

from __future__ import annotations

from ..config import Settings
from .base import (
    Embedder,
    EmbeddingAuthError,
    EmbeddingError,
    EmbeddingOutcome,
    EmbeddingRequestError,
    EmbeddingStats,
)

__all__ = [
    "Embedder",
    "EmbeddingAuthError",
    "EmbeddingError",
    "EmbeddingOutcome",
    "EmbeddingRequestError",
    "EmbeddingStats",
    "make_embedder",
]


def make_embedder(settings: Settings) -> Embedder:
    if settings.provider == "openai":
        from .openai_provider import OpenAIEmbedder

        return OpenAIEmbedder.from_settings(settings)
    from .local_provider import LocalEmbedder

    return LocalEmbedder.from_settings(settings)
