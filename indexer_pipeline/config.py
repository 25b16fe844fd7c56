"""Settings read from the environment, with the defaults a new user gets."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

SAMPLE_CORPUS = Path(__file__).parent / "sample_corpus"


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _int(name: str, default: int | None) -> int | None:
    value = _env(name)
    return int(value) if value is not None else default


def _float(name: str, default: float) -> float:
    value = _env(name)
    return float(value) if value is not None else default


@dataclass
class Settings:
    corpus_dirs: list[Path] = field(default_factory=lambda: [SAMPLE_CORPUS])
    data_dir: Path = Path(".data")
    collection: str = "documents"
    qdrant_url: str | None = None  # None: the embedded Qdrant Edge store in data_dir
    qdrant_api_key: str | None = field(default=None, repr=False)
    # For a collection this project creates on a cluster; None leaves the server's defaults.
    qdrant_shard_number: int | None = None
    qdrant_replication_factor: int | None = None

    embedding_provider: str = "auto"  # auto | openai | local
    embedding_model: str | None = None  # None: the provider's default
    embedding_dimensions: int | None = None
    openai_api_key: str | None = field(default=None, repr=False)
    openai_base_url: str | None = None

    chunk_tokens: int = 400
    chunk_overlap: int = 40

    store_wait_s: float = 10.0  # how long a reader waits for the embedded store held by a run

    cache_ttl_days: float = 7.0
    cache_max_entries: int = 2_000_000

    # Embedding engine limits (OpenAI Tier 1 for text-embedding-3-small by default).
    max_inputs_per_request: int = 2048
    max_tokens_per_request: int = 300_000
    max_concurrency: int = 8
    rpm_limit: int = 3_000
    tpm_limit: int = 1_000_000
    request_timeout_s: float = 60.0
    max_retries: int = 6
    max_retry_wait_s: float = 300.0

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        corpus = _env("INDEXER_CORPUS_DIR")
        s = cls(
            corpus_dirs=[Path(p) for p in corpus.split(os.pathsep) if p] if corpus else [SAMPLE_CORPUS],
            data_dir=Path(_env("INDEXER_DATA_DIR", ".data")),
            collection=_env("QDRANT_COLLECTION", "documents"),
            qdrant_url=_env("QDRANT_URL"),
            qdrant_api_key=_env("QDRANT_API_KEY"),
            qdrant_shard_number=_int("QDRANT_SHARD_NUMBER", None),
            qdrant_replication_factor=_int("QDRANT_REPLICATION_FACTOR", None),
            embedding_provider=_env("EMBEDDING_PROVIDER", "auto"),
            embedding_model=_env("EMBEDDING_MODEL"),
            embedding_dimensions=_int("EMBEDDING_DIMENSIONS", None),
            openai_api_key=_env("OPENAI_API_KEY"),
            openai_base_url=_env("OPENAI_BASE_URL"),
            chunk_tokens=_int("INDEXER_CHUNK_TOKENS", 400),
            chunk_overlap=_int("INDEXER_CHUNK_OVERLAP", 40),
            store_wait_s=_float("INDEXER_STORE_WAIT_S", 10.0),
            cache_ttl_days=_float("INDEXER_CACHE_TTL_DAYS", 7.0),
            cache_max_entries=_int("INDEXER_CACHE_MAX_ENTRIES", 2_000_000),
            max_inputs_per_request=_int("EMBEDDING_MAX_INPUTS_PER_REQUEST", 2048),
            max_concurrency=_int("EMBEDDING_MAX_CONCURRENCY", 8),
            rpm_limit=_int("EMBEDDING_RPM", 3_000),
            tpm_limit=_int("EMBEDDING_TPM", 1_000_000),
            request_timeout_s=_float("EMBEDDING_TIMEOUT_S", 60.0),
            max_retries=_int("EMBEDDING_MAX_RETRIES", 6),
            max_retry_wait_s=_float("EMBEDDING_MAX_RETRY_WAIT_S", 300.0),
        )
        known = {f.name for f in fields(cls)}
        for name, value in overrides.items():
            if name not in known:
                raise TypeError(f"unknown setting {name!r}")
            if value is not None:
                setattr(s, name, value)
        return s

    @property
    def provider(self) -> str:
        """The provider actually used: `auto` means openai when a key is set, else the local model."""
        if self.embedding_provider == "auto":
            return "openai" if self.openai_api_key else "local"
        if self.embedding_provider not in ("openai", "local"):
            raise ValueError(
                f"EMBEDDING_PROVIDER must be auto, openai or local, not {self.embedding_provider!r}"
            )
        return self.embedding_provider

    @property
    def catalog_path(self) -> Path:
        return self.data_dir / "catalog.sqlite"

    @property
    def cache_path(self) -> Path:
        return self.data_dir / "embedding_cache.sqlite"

    @property
    def edge_path(self) -> Path:
        return self.data_dir / "qdrant_edge" / self.collection
