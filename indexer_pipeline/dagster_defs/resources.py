"""The one Dagster resource: indexing settings, each field defaulting to its environment variable.

API keys are deliberately not fields: run config is stored and shown in the UI, so keys come from
the environment only (OPENAI_API_KEY, QDRANT_API_KEY).
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from ..config import Settings
from ..pipeline import Indexer


class IndexerResource(dg.ConfigurableResource):
    corpus_dir: str | None = None  # several roots joined by os.pathsep; default INDEXER_CORPUS_DIR
    data_dir: str | None = None
    collection: str | None = None
    qdrant_url: str | None = None
    qdrant_shard_number: int | None = None
    qdrant_replication_factor: int | None = None
    embedding_provider: str | None = None
    embedding_model: str | None = None
    embedding_dimensions: int | None = None
    openai_base_url: str | None = None
    chunk_tokens: int | None = None
    chunk_overlap: int | None = None
    max_inputs_per_request: int | None = None
    max_tokens_per_request: int | None = None
    max_concurrency: int | None = None
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    request_timeout_s: float | None = None
    max_retries: int | None = None
    max_retry_wait_s: float | None = None

    def settings(self) -> Settings:
        overrides = self.model_dump(exclude={"corpus_dir", "data_dir"})
        if self.corpus_dir:
            overrides["corpus_dirs"] = [Path(p) for p in self.corpus_dir.split(os.pathsep) if p]
        if self.data_dir:
            overrides["data_dir"] = Path(self.data_dir)
        return Settings.from_env(**overrides)

    @contextmanager
    def indexer(self, context: dg.AssetExecutionContext | dg.OpExecutionContext) -> Iterator[Indexer]:
        with Indexer(self.settings(), log=context.log.warning) as ix:
            yield ix
