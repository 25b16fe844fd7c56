"""Vector stores: the embedded Qdrant Edge folder by default, a Qdrant server when QDRANT_URL is set."""

from __future__ import annotations

from ..config import Settings
from .base import IndexParams, VectorStore


def index_params(settings: Settings) -> IndexParams:
    return IndexParams(
        hnsw_m=settings.hnsw_m,
        hnsw_ef_construct=settings.hnsw_ef_construct,
        hnsw_ef=settings.hnsw_ef,
        indexing_threshold_kb=settings.indexing_threshold_kb,
        quantization=settings.quantization,
        oversampling=settings.oversampling,
        acorn_max_selectivity=settings.acorn_max_selectivity,
        on_disk=settings.edge_on_disk,
    )


def open_store(settings: Settings, wait_s: float = 10.0) -> VectorStore:
    """Open without a dimension: `ensure_collection(dimension)` creates or checks the collection, and
    until then the reads answer empty. QDRANT_URL ":memory:" is qdrant-client's in-process mode.
    `wait_s` bounds the wait for an embedded store held by another process (then StoreBusyError)."""
    if settings.qdrant_url:
        from .qdrant_server import ServerStore

        return ServerStore(
            settings.qdrant_url,
            settings.collection,
            api_key=settings.qdrant_api_key,
            shard_number=settings.qdrant_shard_number,
            replication_factor=settings.qdrant_replication_factor,
            index=index_params(settings),
        )
    from .edge import EdgeStore

    return EdgeStore(settings.edge_path, settings.collection, wait_s=wait_s, index=index_params(settings))
