"""The embedded default store: a Qdrant Edge shard (Qdrant's in-process engine) in a local folder.

Edge admits one open handle per folder (a second `load` fails on the WAL with "WouldBlock"). A lock
file beside the folder, held from open to close, turns that into a wait and then a message naming
the holder. The lock is portalocker's (flock on POSIX, msvcrt on Windows, where most Roo Code users
are); the holder's name sits in a file of its own, because Windows forbids reading a locked file. The shard's own `edge_config.json` is the one record of its dimension and distance:
Edge writes it on `create`, and `info()` does not report them.

Beside the dense vector each point holds the BM25 sparse vector `bm25`; a shard made before it gains
the sparse vector in place (Edge 0.9 can add a named vector to a shard's config) and `ensure_collection`
fills it from the payload text of every point that lacks it, which resumes after a crash. Edge has no
group-by: `query_groups` finds groups in rounds of queries that exclude those found, then fills them
in one query batch (see `_Groups`).

The dense vectors get an HNSW index and int8 scalar quantization as `IndexParams` say, fixed at
`create` (Edge records them in `edge_config.json`; a shard made before keeps what it was made with,
Edge's defaults: no quantization). Edge has no background optimizer: `flush` calls `optimize`, which
indexes only the segments past the indexing threshold, so small writes stay cheap and a large one is
indexed in the run that wrote it; the nightly clean-up calls it too.

A large write is indexed in steps: a shard is made with segments of at most SEGMENT_POINTS points, and
once the points persisted since the last optimize fill one, `persist` optimizes (indexing only those
points, in a segment of their own) and then, if a process is polling the folder's lock, lets go of it
for a moment, so a search waiting for the store gets in between two steps instead of after the whole
build. A shard made before keeps Edge's
default segments (which a later optimize merges and re-indexes) and is indexed once, at the end.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import portalocker
import qdrant_edge as qe

from ..sparse import bm25_document
from .base import (
    BOOL_FIELDS,
    CONTENT_HASH,
    GROUP,
    INTEGER_FIELDS,
    KEYWORD_FIELDS,
    LOOKUP_FIELDS,
    MIGRATE_PAGE,
    RRF_K,
    SPARSE_VECTOR,
    TEXT,
    Filters,
    HitGroup,
    IndexParams,
    Range,
    SearchHit,
    SparseVector,
    StoreBusyError,
    StoredPoint,
    VectorStoreError,
    by_group,
    check_vector_params,
    prefetch_limit,
    scroll_hashes,
    scroll_pages,
    split_vector,
)

VECTOR = ""  # the shard's unnamed dense vector
SCROLL_PAGE = 1024
GROUP_ROUNDS = 10  # a bound on query_groups' discovery rounds, as the server's own group-by has
# Hits a first discovery round asks per hit wanted: a group's hits cluster together, and asking for
# more costs little (every point is scored whatever the limit), while a round more costs a query.
DISCOVERY_FACTOR = 2
INDEXED_FIELDS = KEYWORD_FIELDS + INTEGER_FIELDS + BOOL_FIELDS
# A filtered search whose matching vectors weigh less than this (KB) scans them instead of walking
# the graph: Qdrant's default, and a unit's few hundred points are always below it.
FULL_SCAN_KB = 10_000
# The largest segment, and so a step of a large write: short enough that a CLI search waiting its
# INDEXER_STORE_WAIT_S (10 s) gets in. Measured (benchmarks/bench_steps.py), against one build at the end:
#   300k x 384-d: steps of 2.4 s (3.3 CPU s), 58 CPU s in all against 223; search p50 4.9 / p95 6.0 ms
#     against 4.4 / 35, recall@10 1.000 against 0.975 (32,768: steps of 9-13 s at load 4, p50 5.8 ms).
#   100k x 1536-d: steps of 5.5 s (8.5 CPU s), 54 CPU s against 97; p50 5.3 / p95 7.2 ms against
#     2.8 / 83, recall@10 1.000 (32,768: steps of 15-23 s, p50 3.6 ms; 8,192: 2.2 CPU s, p50 11 ms).
# With Edge's default segments (400 MB) every step merged and re-indexed the earlier ones: up to 42 s a
# step at 100k x 384-d, +62 % CPU. 0: Edge's default segments, one build at the end.
SEGMENT_POINTS = 16_384
LOCK_POLL_S = 0.1  # how often a process waiting for the folder's lock tries it
# How long a writer lets go of the folder between two steps: waiters poll every LOCK_POLL_S, so one gets in.
STEP_PAUSE_S = 3 * LOCK_POLL_S


class _FolderLock:
    """An exclusive lock on `<folder>.lock`, which the OS releases even if the holder is killed.
    It conflicts between two opens in one process too, so a second EdgeStore here waits as well."""

    def __init__(self, folder: Path, wait_s: float):
        path = folder.with_name(folder.name + ".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._holder = path.with_name(path.name + ".holder")
        self._waiting = path.with_name(path.name + ".waiting")
        self._file = open(path, "a+")  # noqa: SIM115 - held open for the lock's lifetime
        deadline = time.monotonic() + wait_s
        while True:
            try:
                portalocker.lock(self._file, portalocker.LOCK_EX | portalocker.LOCK_NB)
                break
            except portalocker.LockException:
                self._waiting.touch()  # tells the holder someone waits (see someone_waits)
                if time.monotonic() >= deadline:
                    self._file.close()
                    raise StoreBusyError(
                        f"the embedded Qdrant store at {folder} is held by process {self._holder_name()}; "
                        "wait for it to finish or stop it"
                    ) from None
                time.sleep(LOCK_POLL_S)
        # The holder's identity, for the message a waiting process shows.
        self._holder.write_text(f"{os.getpid()} ({' '.join(sys.argv)[:200]})", encoding="utf-8")

    def _holder_name(self) -> str:
        try:
            return self._holder.read_text(encoding="utf-8").strip() or "unknown (starting)"
        except OSError:
            return "unknown (starting)"

    def someone_waits(self) -> bool:
        """Whether another open polled the lock within the last few polls."""
        try:
            return time.time() - self._waiting.stat().st_mtime < 5 * LOCK_POLL_S
        except OSError:
            return False

    def release(self) -> None:
        if not self._file.closed:
            self._holder.write_text("", encoding="utf-8")
            portalocker.unlock(self._file)
            self._file.close()


def _condition(key: str, value: object) -> qe.FieldCondition:
    if isinstance(value, Range):
        return qe.FieldCondition(key, range=qe.RangeFloat(gte=value.gte, lte=value.lte))
    if isinstance(value, list | tuple):
        return qe.FieldCondition(key, match=qe.MatchAny(list(value)))
    if isinstance(value, bool):
        # Edge 0.9 turns a Python bool into the integer 1/0, which matches no bool payload;
        # numpy's bool reaches it as a bool.
        value = np.bool_(value)
    return qe.FieldCondition(key, match=qe.MatchValue(value))


def _filter(
    filters: Filters | None, must_not: list | None = None, extra: list | None = None
) -> qe.Filter | None:
    must = [_condition(k, v) for k, v in (filters or {}).items()] + (extra or [])
    if not must and not must_not:
        return None
    return qe.Filter(must=must or None, must_not=must_not or None)


def _hits(points) -> list[SearchHit]:
    return [SearchHit(str(h.id), float(h.score), h.payload or {}) for h in points]


class EdgeStore:
    exact_only = False  # an indexed segment is searched by its HNSW graph (see exact_search)

    def __init__(
        self,
        folder: Path,
        collection: str = "documents",
        wait_s: float = 10.0,
        index: IndexParams = IndexParams(),  # noqa: B008 - frozen
    ):
        """Takes the folder's lock (waiting up to `wait_s`, then StoreBusyError), loads the shard if any."""
        self.folder = Path(folder)
        self.collection = collection
        self.location = f"edge:{self.folder.resolve()}"
        self.index = index
        self._search = _search_params(index)
        self._filtered = _search_params(index, filtered=True)
        self._config_path = self.folder / "edge_config.json"
        self._wait_s = wait_s
        self._lock = _FolderLock(self.folder, wait_s)
        self._shard: qe.EdgeShard | None = None
        self._unindexed_kb = 0.0  # dense vectors upserted since the last optimize
        try:
            # No shard yet is a normal state (a fresh machine): the reads answer empty until
            # ensure_collection creates it.
            if self._config_path.exists():
                self._shard = qe.EdgeShard.load(str(self.folder))
        except Exception:
            self._lock.release()
            raise

    def __enter__(self) -> EdgeStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def ensure_collection(self, dimension: int) -> None:
        if self._shard is None:
            # Cold: memory-mapped, read as searches touch it; None: Edge's defaults, loaded at open.
            memory = qe.Memory.Cold if self.index.on_disk else None
            config = qe.EdgeConfig(
                vectors={
                    VECTOR: qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine, memory=memory)
                },
                sparse_vectors={
                    SPARSE_VECTOR: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf, memory=memory)
                },
                hnsw_config=qe.HnswIndexConfig(
                    m=self.index.hnsw_m,
                    ef_construct=self.index.hnsw_ef_construct,
                    full_scan_threshold=FULL_SCAN_KB,
                    memory=memory,
                ),
                quantization_config=qe.ScalarQuantizationConfig(
                    qe.ScalarType.Int8, quantile=0.99, always_ram=None if memory else True, memory=memory
                )
                if self.index.quantization == "int8"
                else None,
                optimizers=qe.EdgeOptimizersConfig(
                    indexing_threshold=self.index.indexing_threshold_kb,
                    max_segment_size=SEGMENT_POINTS * dimension * 4 // 1024 or None,  # KB of dense vectors
                ),
                id_tracker_memory=memory,
            )
            self._shard = qe.EdgeShard.create(str(self.folder), config)
        else:
            self._check(dimension)
            self._add_sparse()
            self._add_group()
        # Also on an existing shard: a run killed between `create` and the last index left some out.
        existing = self._shard.info().payload_schema
        missing = [name for name in INDEXED_FIELDS if name not in existing]
        for name in missing:
            self._shard.update(qe.UpdateOperation.create_field_index(name, self._field_index(name)))
        if missing:  # a flush costs 0.2-0.5 s here: not on every open of a complete shard
            self._shard.flush()

    def _field_index(self, name: str) -> qe.KeywordIndexParams | qe.IntegerIndexParams | qe.BoolIndexParams:
        """A payload index: memory-mapped in a shard on disk (loading them was most of a reopen: 0.55 of
        0.6 s at 100k points; 0.2 s mapped), and without HNSW subgraphs for a lookup-only field."""
        memory = qe.Memory.Cold if self.on_disk() else None
        hnsw = name not in LOOKUP_FIELDS
        if name in INTEGER_FIELDS:
            return qe.IntegerIndexParams(lookup=True, range=True, memory=memory, enable_hnsw=hnsw)
        if name in BOOL_FIELDS:
            return qe.BoolIndexParams(memory=memory, enable_hnsw=hnsw)
        return qe.KeywordIndexParams(memory=memory, enable_hnsw=hnsw)

    def _config(self) -> dict:
        """The shard's configuration as Edge recorded it (read each time: a migration changes it); {}
        before creation."""
        return json.loads(self._config_path.read_text()) if self._shard is not None else {}

    def vector_params(self) -> tuple[int, str] | None:
        """(dimension, distance) of the shard's unnamed vector as Edge recorded them; None before creation."""
        params = self._config().get("vectors", {}).get(VECTOR)
        return (params["size"], params["distance"]) if params else None

    def sparse_modifier(self) -> str | None:
        """The modifier of the `bm25` sparse vector ("idf"); None before creation or on a shard
        made before sparse vectors."""
        params = self._config().get("sparse_vectors", {}).get(SPARSE_VECTOR)
        return params.get("modifier", "none") if params is not None else None

    def _add_sparse(self) -> None:
        """Give a shard made before sparse vectors its `bm25` vector, then fill it on every point
        that lacks it from the point's payload text. Each step is durable on its own (the config at
        once, the vectors through the WAL), and a run killed midway leaves points without the
        sparse vector, which the next call fills: no state where the shard is lost."""
        if self.sparse_modifier() is None:
            self._shard.update(qe.UpdateOperation.create_sparse_vector(SPARSE_VECTOR, qe.Modifier.Idf))
        lacking = qe.Filter(must_not=[qe.HasVectorCondition(SPARSE_VECTOR)])
        if not self._shard.count(qe.CountRequest(exact=True, filter=lacking)):
            return
        for records in self._pages(lacking, [TEXT]):
            vectors = [
                qe.PointVectors(
                    r.id, {SPARSE_VECTOR: _edge_sparse(bm25_document((r.payload or {}).get(TEXT, "")))}
                )
                for r in records
            ]
            if vectors:
                self._shard.update(qe.UpdateOperation.update_vectors(vectors))
        self._shard.flush()

    def _pages(self, where: qe.Filter, fields: list[str]):
        """Pages of the points matching `where`, with only `fields` of their payload (migrations)."""
        return scroll_pages(
            lambda offset: self._shard.scroll(
                qe.ScrollRequest(
                    offset=offset,
                    limit=MIGRATE_PAGE,
                    filter=where,
                    with_payload=qe.PayloadSelector.Include(fields),
                    with_vector=False,
                )
            ),
            str(self.folder),
        )

    def _add_group(self) -> None:
        """Fill `group` on the points written before it, from their own payload, before its index
        exists (ensure_collection creates it next). A run killed midway is resumed by the next."""
        if GROUP in self._shard.info().payload_schema:
            return
        lacking = qe.Filter(must=[qe.IsEmptyCondition(GROUP)])
        for records in self._pages(lacking, ["kind", "unit", "doc_id"]):
            for group, ids in by_group(records).items():
                self._shard.update(qe.UpdateOperation.set_payload(ids, {GROUP: group}))
        self._shard.flush()

    def _check(self, dimension: int) -> None:
        check_vector_params(
            self.vector_params(),
            dimension,
            f"collection {self.collection!r} at {self.folder}",
            "use another QDRANT_COLLECTION or INDEXER_DATA_DIR, or delete the folder to re-index",
        )

    def payload_indexes(self) -> dict[str, str]:
        """field -> index type ("Keyword", "Integer"), as the shard reports them."""
        if self._shard is None:
            return {}
        # Edge's PayloadSchemaType has no `.name`; its str() is "PayloadSchemaType.Keyword".
        return {k: str(v.data_type).rsplit(".", 1)[-1] for k, v in self._shard.info().payload_schema.items()}

    def upsert(self, points: list[StoredPoint]) -> None:
        if points:
            self._unindexed_kb += sum(len(p.vector or ()) for p in points) * 4 / 1024
            self._require().update(
                qe.UpdateOperation.upsert_points(
                    [
                        qe.Point(
                            p.id,
                            {VECTOR: p.vector, SPARSE_VECTOR: _edge_sparse(p.sparse)}
                            if p.sparse
                            else p.vector,
                            p.payload,
                        )
                        for p in points
                    ]
                )
            )

    def delete(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        if ids:
            self._require().update(qe.UpdateOperation.delete_points(ids))

    def flush(self) -> None:
        """Persist, then index what passed the threshold (see the module's docstring)."""
        self.persist()
        self.optimize()

    def persist(self) -> None:
        """Persist segments (~17 ms a call): once per batch of the stream, not per upsert; the WAL
        covers a crash. Once the points persisted since the last optimize fill a segment, index them
        and let a waiting reader in (see the module's docstring)."""
        if self._shard is not None:
            self._shard.flush()
            step_kb = (self._config().get("optimizers") or {}).get("max_segment_size")
            if step_kb and self._unindexed_kb >= step_kb:
                self.optimize()
                if self._lock.someone_waits():  # a reopen costs ~1 s: only for a waiting reader
                    self._let_readers_in()

    def optimize(self) -> None:
        if self._shard is not None:
            self._shard.optimize()
            self._unindexed_kb = 0.0

    def _let_readers_in(self) -> None:
        """Close the shard and free the folder long enough for a waiting process to take it, then open
        it again (waiting for that process as long as this store's own open would)."""
        self._shard.close()
        self._shard = None
        self._lock.release()
        time.sleep(STEP_PAUSE_S)  # a waiter's next poll must find the folder free
        self._lock = _FolderLock(self.folder, self._wait_s)
        self._shard = qe.EdgeShard.load(str(self.folder))

    def quantization(self) -> str:
        """ "int8" or "none", as the shard was created; "none" before creation."""
        return "int8" if "scalar" in (self._config().get("quantization_config") or {}) else "none"

    def on_disk(self) -> bool:
        """Whether the shard was created with its vectors and indexes memory-mapped and read on demand
        (`IndexParams.on_disk`); False before creation and for a shard made before the setting."""
        return self._config().get("vectors", {}).get(VECTOR, {}).get("memory") == "cold"

    def indexed_vectors(self) -> int:
        """Vectors in indexed segments, as Edge counts them: the sparse ones too, which are always indexed."""
        return self._shard.info().indexed_vectors_count if self._shard is not None else 0

    def unit_hashes(self, unit: str) -> dict[str, str]:
        if self._shard is None:
            return {}
        return scroll_hashes(
            lambda offset: self._shard.scroll(
                qe.ScrollRequest(
                    offset=offset,
                    limit=SCROLL_PAGE,
                    filter=_filter({"unit": unit}),
                    with_payload=qe.PayloadSelector.Include([CONTENT_HASH]),
                    with_vector=False,
                )
            ),
            str(self.folder),
        )

    def units(self) -> dict[str, int]:
        """An exact facet on the indexed `unit` field: no payload is read. A unit per point at most,
        so a limit of the point count never truncates."""
        total = self.count()
        if total == 0:
            return {}
        response = self._require().facet(qe.FacetRequest("unit", limit=total, exact=True))
        return {str(hit.value): hit.count for hit in response.hits}

    def count(self, unit: str | None = None) -> int:
        if self._shard is None:
            return 0
        return self._shard.count(
            qe.CountRequest(exact=True, filter=_filter({"unit": unit} if unit else None))
        )

    def retrieve(self, ids: list[str], with_vectors: bool = False) -> list[StoredPoint]:
        if self._shard is None or not ids:
            return []
        points = []
        for r in self._shard.retrieve(list(ids), True, with_vectors):
            dense, sparse = split_vector(r.vector) if with_vectors else (None, None)
            points.append(StoredPoint(str(r.id), dense, r.payload or {}, sparse))
        return points

    def search(self, vector: list[float], limit: int = 10, filters: Filters | None = None) -> list[SearchHit]:
        return self.query(dense=vector, limit=limit, filters=filters)

    def query(
        self,
        dense: list[float] | None = None,
        sparse: SparseVector | None = None,
        *,
        limit: int = 10,
        filters: Filters | None = None,
    ) -> list[SearchHit]:
        return self._query(dense, sparse, limit, _filter(filters))

    def _query(
        self, dense: list[float] | None, sparse: SparseVector | None, limit: int, where: qe.Filter | None
    ) -> list[SearchHit]:
        request = _request(dense, sparse, limit, where, params=self._filtered if where else self._search)
        if self._shard is None or limit <= 0:
            return []
        return _hits(self._shard.query(request))

    def exact_search(
        self, vector: list[float], limit: int = 10, filters: Filters | None = None
    ) -> list[SearchHit]:
        """Every point (matching `filters`) scored on its original vector, no index: the reference
        recall is measured against."""
        if self._shard is None or limit <= 0:
            return []
        request = _request(vector, None, limit, _filter(filters), params=qe.SearchParams(exact=True))
        return _hits(self._shard.query(request))

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
        _request(dense, sparse, 1, None)  # checks the vectors before the shard exists
        collected = _Groups(group_by, groups, group_size)
        if self._shard is None or groups <= 0 or group_size <= 0:
            return []
        # A hybrid query's candidates each side, as the server's group-by has them: its fusion ranks
        # the same candidates whatever a round's limit.
        prefetch = prefetch_limit(groups * group_size)
        for _ in range(GROUP_ROUNDS):
            limit = collected.round_limit()
            if not limit:
                break
            request = _request(
                dense, sparse, limit, _filter(filters, *collected.next_round()), prefetch, self._filtered
            )
            hits = _hits(self._shard.query(request))
            collected.add(hits, exhausted=len(hits) < limit)
        fills = collected.fills()
        if fills:  # one planned batch, one query per group still short of hits
            batch = qe.QueryBatchRequest(
                [
                    _request(dense, sparse, missing, _filter(filters, *where), prefetch, self._filtered)
                    for _, missing, where in fills
                ]
            )
            for (key, _, _), points in zip(fills, self._shard.query_batch(batch), strict=True):
                collected.fill(key, _hits(points))
        return collected.result()

    def close(self) -> None:
        if self._shard is not None:
            self._shard.close()
            self._shard = None
        self._lock.release()

    def _require(self) -> qe.EdgeShard:
        if self._shard is None:
            raise VectorStoreError("the collection does not exist yet: call ensure_collection first")
        return self._shard


def _edge_sparse(vector: SparseVector) -> qe.SparseVector:
    return qe.SparseVector(list(vector.indices), list(vector.values))


def _request(
    dense: list[float] | None,
    sparse: SparseVector | None,
    limit: int,
    where: qe.Filter | None,
    prefetch: int | None = None,
    params: qe.SearchParams | None = None,
) -> qe.QueryRequest:
    """One query: dense or sparse nearest, or both as prefetches (of `prefetch` candidates each,
    by default enough for `limit`) fused by RRF; raises ValueError without a vector. The request's
    filter reaches the prefetches too (Qdrant propagates it); `params` (HNSW ef, quantization)
    reach the dense search."""
    nearest = []
    if dense is not None:
        nearest.append((qe.Query.Nearest(list(dense)), params))
    if sparse is not None:
        nearest.append((qe.Query.Nearest(_edge_sparse(sparse), using=SPARSE_VECTOR), None))
    if not nearest:
        raise ValueError("query needs a dense vector, a sparse vector, or both")
    if len(nearest) == 1:
        query, params = nearest[0]
        return qe.QueryRequest(
            limit=limit, query=query, filter=where, with_payload=True, with_vector=False, params=params
        )
    return qe.QueryRequest(
        limit=limit,
        prefetches=[
            qe.Prefetch(prefetch or prefetch_limit(limit), query, params=params) for query, params in nearest
        ],
        query=qe.Fusion.Rrf(RRF_K),
        filter=where,
        with_payload=True,
        with_vector=False,
    )


def _search_params(index: IndexParams, filtered: bool = False) -> qe.SearchParams:
    """HNSW ef, and on a quantized shard: score int8 vectors for `oversampling` x the hits wanted,
    then rescore those on the original vectors (Edge ignores the quantization part on a shard without).
    A filtered search also gets ACORN for filters matching at most `acorn_max_selectivity` of the points
    (Edge estimates the share from the payload indexes); an unfiltered one never does."""
    acorn = filtered and index.acorn_max_selectivity > 0
    return qe.SearchParams(
        hnsw_ef=index.hnsw_ef,
        quantization=qe.QuantizationSearchParams(rescore=True, oversampling=index.oversampling),
        acorn=qe.AcornSearchParams(enable=True, max_selectivity=index.acorn_max_selectivity)
        if acorn
        else None,
    )


def _ranked(hits: list[SearchHit]) -> list[SearchHit]:
    """Best first, tied hits by id: fused scores are ranks, so ties are common, and the engine returns
    tied hits in no fixed order (a group at the edge of the result would come and go)."""
    return sorted(hits, key=lambda h: (-h.score, h.id))


class _Groups:
    """Qdrant's group-by built from plain queries, in two steps.

    Discovery: rounds that each exclude every group already found, so that a round's hits open new
    groups only. The first round asks DISCOVERY_FACTOR hits per hit wanted, as the hits of one
    group cluster together; a round that returns fewer hits than asked has seen every point left.
    A group opened by a later round ranks below the earlier ones' (its best hit was beyond the
    earlier round's hits), so the order of discovery is the order of the groups.
    Fill: the groups short of `group_size` hits get the rest in one batch of queries, one per
    group, restricted to that group and excluding the hits it holds: the same hits a single
    ungrouped query over every point would give it."""

    def __init__(self, group_by: str, groups: int, group_size: int):
        self.group_by, self.groups, self.group_size = group_by, groups, group_size
        self.found: dict[object, list[SearchHit]] = {}  # group value -> hits, best group first
        self.complete: set = set()  # groups whose every matching point has been seen
        self.exhausted = False

    def round_limit(self) -> int:
        """Hits the next discovery round asks for; 0 when discovery is over."""
        if self.exhausted or len(self.found) >= self.groups:
            return 0
        return (self.groups - len(self.found)) * self.group_size * DISCOVERY_FACTOR

    def next_round(self) -> tuple[list, list]:
        """(must_not, must) conditions of the next discovery round."""
        # Points without the field belong to no group (as on the server): never fetched.
        must_not = [qe.IsEmptyCondition(self.group_by)]
        known = list(self.found)
        return must_not, [qe.FieldCondition(self.group_by, match=qe.MatchExcept(known))] if known else []

    def add(self, hits: list[SearchHit], exhausted: bool) -> None:
        opened = set()
        for hit in _ranked(hits):
            key = hit.payload.get(self.group_by)
            if isinstance(key, list):  # a group is one value of the field
                continue
            if key in opened:
                if len(self.found[key]) < self.group_size:
                    self.found[key].append(hit)
            elif key not in self.found and len(self.found) < self.groups:
                self.found[key] = [hit]
                opened.add(key)
        self.exhausted = exhausted
        if exhausted:
            self.complete |= opened

    def fills(self) -> list[tuple[object, int, tuple[list, list]]]:
        """(group, hits missing, (must_not, must)) of each group that may have more hits."""
        return [
            (
                key,
                self.group_size - len(hits),
                (
                    [qe.HasIdCondition({h.id for h in hits})],
                    [qe.FieldCondition(self.group_by, match=qe.MatchValue(key))],
                ),
            )
            for key, hits in self.found.items()
            if len(hits) < self.group_size and key not in self.complete
        ]

    def fill(self, key: object, hits: list[SearchHit]) -> None:
        self.found[key] += _ranked(hits)

    def result(self) -> list[HitGroup]:
        return [HitGroup(str(key), hits) for key, hits in self.found.items()]
