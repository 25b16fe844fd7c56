"""One contract for both vector-store backends (Qdrant Edge in-process, qdrant-client for a server)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

# Every field a search or a delta may filter on gets a payload index when the collection is
# created: filters on unindexed fields cost the old system 3-19 s per query.
KEYWORD_FIELDS = (
    "unit",
    "doc_id",
    "path",
    "kind",
    "task_id",
    "parent_task_id",
    "root_task_id",
    "workspace",
    "role",
    "mode",
)
INTEGER_FIELDS = ("timestamp", "chunk_index", "message_index")

# Payload key holding the hash that decides whether a stored point is up to date
# (text + embedding model): equal hash means no upsert is needed.
CONTENT_HASH = "content_hash"
DISTANCE = "Cosine"  # the one distance both backends create and accept


class VectorStoreError(RuntimeError):
    pass


class CollectionMismatchError(VectorStoreError):
    """The existing collection's dimension or distance differs from the model's: never re-created silently."""


class StoreBusyError(VectorStoreError):
    """Another process holds the embedded store's folder."""


def check_vector_params(found: tuple[int, str] | None, dimension: int, where: str, remedy: str) -> None:
    """Raise CollectionMismatchError unless the collection holds `dimension`-d cosine vectors."""
    if found != (dimension, DISTANCE):
        held = f"{found[0]}-d {found[1]}" if found else "no unnamed"
        raise CollectionMismatchError(
            f"{where} holds {held} vectors, but the embedding model makes {dimension}-d {DISTANCE} "
            f"vectors: {remedy}"
        )


def scroll_hashes(page: Callable[[Any], tuple[list, Any]], where: str) -> dict[str, str]:
    """id -> content hash over every page that `page(offset)` returns as (records, next offset)."""
    hashes: dict[str, str] = {}
    offset = None
    while True:
        records, next_offset = page(offset)
        hashes.update((str(r.id), (r.payload or {}).get(CONTENT_HASH, "")) for r in records)
        if next_offset is None:
            return hashes
        # The old system looped forever on a cursor that stopped moving: fail loudly instead.
        if next_offset == offset:
            raise VectorStoreError(f"scroll cursor did not advance past {offset} in {where}")
        offset = next_offset


@dataclass
class StoredPoint:
    id: str  # UUID string
    vector: list[float] | None
    payload: dict


@dataclass
class SearchHit:
    id: str
    score: float
    payload: dict


class VectorStore(Protocol):
    collection: str

    def ensure_collection(self, dimension: int) -> None:
        """Create the collection (cosine, payload indexes) or check that the existing one matches."""

    def upsert(self, points: list[StoredPoint]) -> None: ...

    def delete(self, ids: Iterable[str]) -> None: ...

    def flush(self) -> None:
        """Make the writes so far durable and visible to the next process that opens the store."""

    def unit_hashes(self, unit: str) -> dict[str, str]:
        """id -> content_hash of every point of a unit (a scroll whose cursor must advance)."""

    def units(self) -> dict[str, int]:
        """unit -> number of points, over the whole collection (for orphans and status)."""

    def count(self, unit: str | None = None) -> int: ...

    def retrieve(self, ids: list[str], with_vectors: bool = False) -> list[StoredPoint]: ...

    def search(
        self, vector: list[float], limit: int = 10, filters: dict[str, str | int] | None = None
    ) -> list[SearchHit]:
        """Nearest points by cosine; `filters` are exact matches on indexed payload fields."""

    def close(self) -> None: ...
