"""One contract for both vector-store backends (Qdrant Edge in-process, qdrant-client for a server)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
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
    "tool_names",
    "source_root",
    "group",
)
INTEGER_FIELDS = ("timestamp", "chunk_index", "message_index")
BOOL_FIELDS = ("has_errors",)
# Indexed for lookups (a document's or path's points, group-by, a task's family), never a search
# filter: no HNSW subgraph is built per value of these. Subgraphs keep filtered search's recall (with
# none at all, a 14 % filter finds 0.70 of its exact top 10 at 100k points, 0.96 with them) but cost
# build time: at 100k x 384, 61 CPU s with every field's, 51 without these, 24 with none.
LOOKUP_FIELDS = frozenset(
    {"doc_id", "path", "parent_task_id", "root_task_id", "group", "chunk_index", "message_index"}
)

# What a search row is, in one field so that a search mixing tasks and documents is one grouped
# query: the unit of a task, the doc_id of a tree's document (task keys start "task-", tree
# doc_ids "doc-…:", so the two never meet). ensure_collection fills it on points written before it,
# and creates its index only then: the index says every point has the field.
GROUP = "group"


def group_of(payload: dict) -> str | None:
    return payload.get("doc_id") if payload.get("kind") == "tree" else payload.get("unit")


def by_group(records) -> dict[str, list]:
    """group -> ids of the records (scrolled with kind, unit and doc_id), for filling `group`."""
    ids: dict[str, list] = {}
    for r in records:
        group = group_of(r.payload or {})
        if group is not None:
            ids.setdefault(group, []).append(r.id)
    return ids


SPARSE_VECTOR = "bm25"  # the named sparse vector beside the unnamed dense one (IDF modifier)
TEXT = "text"  # the payload field the sparse vectors are made from (on write and on migration)
# RRF's constant: Qdrant's own default, spelled out because Edge asks for it.
RRF_K = 2
# Candidates each side of a hybrid query hands to the fusion: enough for the fused top `limit` to
# hold what either side ranks high, without scoring the whole collection.
PREFETCH_FACTOR = 5
PREFETCH_MIN = 50
MIGRATE_PAGE = 256

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


def scroll_pages(page: Callable[[Any], tuple[list, Any]], where: str) -> Iterator[list]:
    """Every page of records that `page(offset)` returns as (records, next offset)."""
    offset = None
    while True:
        records, next_offset = page(offset)
        yield records
        if next_offset is None:
            return
        # The old system looped forever on a cursor that stopped moving: fail loudly instead.
        if next_offset == offset:
            raise VectorStoreError(f"scroll cursor did not advance past {offset} in {where}")
        offset = next_offset


def scroll_hashes(page: Callable[[Any], tuple[list, Any]], where: str) -> dict[str, str]:
    """id -> content hash over every page that `page(offset)` returns as (records, next offset)."""
    return {
        str(r.id): (r.payload or {}).get(CONTENT_HASH, "")
        for records in scroll_pages(page, where)
        for r in records
    }


def prefetch_limit(limit: int) -> int:
    return max(PREFETCH_MIN, PREFETCH_FACTOR * limit)


@dataclass(frozen=True)
class SparseVector:
    indices: list[int]
    values: list[float]


@dataclass(frozen=True)
class Range:
    """A numeric filter: gte <= value <= lte (either end may be None)."""

    gte: float | None = None
    lte: float | None = None


# {field: value}: str / int / bool is an exact match, a list is "any of", a Range bounds a number.
Filters = dict[str, object]


def split_vector(vector) -> tuple[list[float] | None, SparseVector | None]:
    """(dense, sparse) of a record's vector as either engine returns it: a plain list while the
    point has the dense vector only, else a dict by vector name ("" is the dense one)."""
    if not isinstance(vector, dict):
        return (list(vector) if vector is not None else None), None
    dense, sparse = vector.get(""), vector.get(SPARSE_VECTOR)
    return (
        list(dense) if dense is not None else None,
        SparseVector(list(sparse.indices), list(sparse.values)) if sparse is not None else None,
    )


@dataclass(frozen=True)
class IndexParams:
    """How a collection's dense vectors are indexed (fixed when it is created) and searched.
    The defaults are the measured ones (benchmarks/bench_index.py); Settings carries the user's."""

    hnsw_m: int = 16  # graph links per node
    # candidates while building the graph. Recall@10 was the same at 64 as at 100 everywhere measured
    # (1.000 at 1M x 384-d, ef 128); build CPU s 44 against 56 at 49k x 1536-d, 57 against 66 at 100k x
    # 384-d; at 1M x 384-d 423 against 410 (one run each, two sessions: no gain seen in 16k-point steps)
    hnsw_ef_construct: int = 64
    hnsw_ef: int = 256  # candidates while searching it: recall@10 0.999 at 100k x 1536-d (128: 0.954)
    indexing_threshold_kb: int = 10_000  # vectors of a segment (KB) below which it is scanned, not indexed
    quantization: str = "int8"  # "int8" (scalar, rescored on the original vectors) or "none"
    oversampling: float = 2.0  # quantized candidates scored per hit wanted, before rescoring
    # A filtered search whose filter matches at most this share of the points walks the graph with
    # ACORN (neighbours' neighbours too, past the points the filter excludes); 0: never. At 100k x
    # 384-d, recall@10 of a 7 % filter 0.914 -> 1.000, of a 30 % one 0.926 -> 0.998, at p50 ~2.5 ->
    # ~15-20 ms (benchmarks/bench_filtered.py); a 50 % filter (0.990) stays without.
    acorn_max_selectivity: float = 0.4
    # Embedded store: vectors, their int8 copies, the graph and the BM25 index memory-mapped and read
    # on demand, not loaded at open (a CLI search at 100k x 384 would load 500 MB; bench_cold.py).
    on_disk: bool = True


@dataclass
class StoredPoint:
    id: str  # UUID string
    vector: list[float] | None
    payload: dict
    sparse: SparseVector | None = None


@dataclass
class SearchHit:
    id: str
    score: float
    payload: dict


@dataclass
class HitGroup:
    key: str  # the value of the group_by field (e.g. the unit key)
    hits: list[SearchHit]  # best first, at most group_size


class VectorStore(Protocol):
    collection: str
    location: str  # backend, folder or server, and collection: a re-run skips only what was written here
    index: IndexParams
    exact_only: bool  # no index at all (qdrant-client's local mode): every search is exact

    def ensure_collection(self, dimension: int) -> None:
        """Create the collection (cosine dense + BM25 sparse, payload indexes) or check that the
        existing one matches; a collection made before the sparse side gains it (sparse vectors
        made from each point's payload text, no re-embedding)."""

    def upsert(self, points: list[StoredPoint]) -> None: ...

    def delete(self, ids: Iterable[str]) -> None: ...

    def flush(self) -> None:
        """Make the writes so far durable and visible to the next process that opens the store, and
        index the vectors written since the last flush once they pass the indexing threshold."""

    def persist(self) -> None:
        """Make the writes so far durable and visible to the next process that opens the store: a stream
        persists each batch and optimizes at the end. The embedded store also indexes a large write here,
        in steps that let a waiting reader in between them (edge.py)."""

    def optimize(self) -> None:
        """Build the index of every segment past the threshold, merge small segments, drop deleted
        points; returns when done. A server does this in the background: there it returns at once."""

    def unit_hashes(self, unit: str) -> dict[str, str]:
        """id -> content_hash of every point of a unit (a scroll whose cursor must advance)."""

    def units(self) -> dict[str, int]:
        """unit -> number of points, over the whole collection (for orphans and status)."""

    def count(self, unit: str | None = None) -> int: ...

    def retrieve(self, ids: list[str], with_vectors: bool = False) -> list[StoredPoint]: ...

    def search(self, vector: list[float], limit: int = 10, filters: Filters | None = None) -> list[SearchHit]:
        """Nearest points by cosine: `query(dense=vector)`, for the callers that predate `query`."""

    def query(
        self,
        dense: list[float] | None = None,
        sparse: SparseVector | None = None,
        *,
        limit: int = 10,
        filters: Filters | None = None,
    ) -> list[SearchHit]:
        """Dense only, sparse only, or both as prefetches fused by Qdrant (RRF) in one request."""

    def exact_search(
        self, vector: list[float], limit: int = 10, filters: Filters | None = None
    ) -> list[SearchHit]:
        """Nearest points (of those matching `filters`) scored on their original vectors, no index and
        no quantization: the reference the index's recall is measured against."""

    def indexed_vectors(self) -> int:
        """Vectors in indexed segments, as the engine counts them (the sparse ones too)."""

    def quantization(self) -> str:
        """ "int8" or "none", as the collection was created."""

    def query_groups(
        self,
        dense: list[float] | None = None,
        sparse: SparseVector | None = None,
        *,
        group_by: str = "unit",
        groups: int = 10,
        group_size: int = 3,
        filters: Filters | None = None,
    ) -> list[HitGroup]:
        """The best `groups` groups by `group_by`, each with its best `group_size` hits."""

    def close(self) -> None: ...
