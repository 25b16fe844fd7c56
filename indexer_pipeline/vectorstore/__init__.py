"""Vector stores: the embedded Qdrant Edge folder by default, a Qdrant server when QDRANT_URL is set."""

from __future__ import annotations

from ..config import Settings
from .base import VectorStore


def open_store(settings: Settings, wait_s: float = 10.0) -> VectorStore:
    if settings.qdrant_url:
        from .qdrant_server import ServerStore

        return ServerStore(settings.qdrant_url, settings.collection, api_key=settings.qdrant_api_key)
    from .edge import EdgeStore

    return EdgeStore(settings.edge_path, settings.collection, wait_s=wait_s)
