"""A Qdrant server or cluster (or qdrant-client's in-memory mode, for tests) behind the store contract.

The API key goes to the client only: it is not kept on the store, so no repr or log can show it.
Beside the unnamed dense vector each point holds the BM25 sparse vector `bm25` (IDF modifier); a
collection made before it gains it with `create_vector_name` and its points' sparse vectors are made
from their payload text (no re-embedding). Group-by is the server's own `query_points_groups`.
"""

from __future__ import annotations

from collections.abc import Iterable

from qdrant_client import QdrantClient, models

from ..sparse import bm25_document
from .base import (
    BOOL_FIELDS,
    CONTENT_HASH,
    GROUP,
    INTEGER_FIELDS,
    KEYWORD_FIELDS,
    MIGRATE_PAGE,
    SPARSE_VECTOR,
    TEXT,
    Filters,
    HitGroup,
    IndexParams,
    Range,
    SearchHit,
    SparseVector,
    StoredPoint,
    by_group,
    check_vector_params,
    prefetch_limit,
    scroll_hashes,
    scroll_pages,
    split_vector,
)

SCROLL_PAGE = 1024
UPSERT_BATCH = 256
INDEXES = {
    **{name: models.PayloadSchemaType.KEYWORD for name in KEYWORD_FIELDS},
    **{name: models.PayloadSchemaType.INTEGER for name in INTEGER_FIELDS},
    **{name: models.PayloadSchemaType.BOOL for name in BOOL_FIELDS},
}
LACKING_SPARSE = models.Filter(must_not=[models.HasVectorCondition(has_vector=SPARSE_VECTOR)])


def _condition(key: str, value: object) -> models.FieldCondition:
    if isinstance(value, Range):
        return models.FieldCondition(key=key, range=models.Range(gte=value.gte, lte=value.lte))
    if isinstance(value, list | tuple):
        return models.FieldCondition(key=key, match=models.MatchAny(any=list(value)))
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _filter(filters: Filters | None) -> models.Filter | None:
    if not filters:
        return None
    return models.Filter(must=[_condition(k, v) for k, v in filters.items()])


def _sparse(vector: SparseVector) -> models.SparseVector:
    return models.SparseVector(indices=list(vector.indices), values=list(vector.values))


def _hits(points) -> list[SearchHit]:
    return [SearchHit(str(p.id), float(p.score), p.payload or {}) for p in points]


def _search_params(index: IndexParams, filtered: bool = False) -> models.SearchParams:
    """As on Edge (edge._search_params): HNSW ef, int8 candidates rescored, and ACORN for a filtered
    search whose filter matches at most `acorn_max_selectivity` of the points."""
    acorn = filtered and index.acorn_max_selectivity > 0
    return models.SearchParams(
        hnsw_ef=index.hnsw_ef,
        quantization=models.QuantizationSearchParams(rescore=True, oversampling=index.oversampling),
        acorn=models.AcornSearchParams(enable=True, max_selectivity=index.acorn_max_selectivity)
        if acorn
        else None,
    )


def _unnamed_vector(info: models.CollectionInfo) -> tuple[int, str] | None:
    params = info.config.params.vectors
    if isinstance(params, dict):  # named vectors: this store writes the unnamed one only
        params = params.get("")
    return (params.size, params.distance.value) if params else None


class ServerStore:
    def __init__(
        self,
        url: str,
        collection: str = "documents",
        api_key: str | None = None,
        shard_number: int | None = None,
        replication_factor: int | None = None,
        timeout_s: int = 60,
        index: IndexParams = IndexParams(),  # noqa: B008 - frozen
    ):
        """`url` ":memory:" gives qdrant-client's in-process mode; `shard_number` and
        `replication_factor` apply when this store creates the collection on a cluster."""
        self.collection = collection
        self.location = f"server:{url}/{collection}"
        self.shard_number = shard_number
        self.replication_factor = replication_factor
        self.index = index
        # Local mode scans every point (and warns that search params have no effect): none sent there.
        self.exact_only = url == ":memory:"
        self._search = None if self.exact_only else _search_params(index)
        self._filtered = None if self.exact_only else _search_params(index, filtered=True)
        self._exact = None if self.exact_only else models.SearchParams(exact=True)
        if url == ":memory:":
            self.client = QdrantClient(location=":memory:")
        else:
            self.client = QdrantClient(url=url, api_key=api_key, timeout=timeout_s)
        self._exists = False  # remembered once seen, to spare a round trip per read

    def __enter__(self) -> ServerStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _ready(self) -> bool:
        self._exists = self._exists or self.client.collection_exists(self.collection)
        return self._exists

    def ensure_collection(self, dimension: int) -> None:
        if self._ready():
            info = self.client.get_collection(self.collection)
            check_vector_params(
                _unnamed_vector(info),
                dimension,
                f"collection {self.collection!r}",
                "use another QDRANT_COLLECTION, or drop it to re-index",
            )
            self._add_sparse(info)
            self._add_group(info)
        else:
            self.client.create_collection(
                self.collection,
                vectors_config=models.VectorParams(size=dimension, distance=models.Distance.COSINE),
                sparse_vectors_config={
                    SPARSE_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)
                },
                hnsw_config=models.HnswConfigDiff(
                    m=self.index.hnsw_m, ef_construct=self.index.hnsw_ef_construct
                ),
                optimizers_config=models.OptimizersConfigDiff(
                    indexing_threshold=self.index.indexing_threshold_kb
                ),
                quantization_config=models.ScalarQuantization(
                    scalar=models.ScalarQuantizationConfig(
                        type=models.ScalarType.INT8, quantile=0.99, always_ram=True
                    )
                )
                if self.index.quantization == "int8"
                else None,
                shard_number=self.shard_number,
                replication_factor=self.replication_factor,
            )
            self._exists = True
            info = self.client.get_collection(self.collection)
        # Also on an existing collection: a run killed between create and the last index left some out.
        for name, schema in INDEXES.items():
            if name not in info.payload_schema:
                self.client.create_payload_index(self.collection, name, schema, wait=True)

    def _add_sparse(self, info: models.CollectionInfo) -> None:
        """Give a collection made before sparse vectors its `bm25` vector (Qdrant 1.17's
        create_vector_name; update_collection changes existing vectors only), then fill it on every
        point that lacks it from the point's payload text. A run stopped midway leaves points
        without it, which the next call fills."""
        if SPARSE_VECTOR not in (info.config.params.sparse_vectors or {}):
            self.client.create_vector_name(
                self.collection,
                SPARSE_VECTOR,
                models.SparseVectorNameConfig(sparse=models.SparseVectorConfig(modifier=models.Modifier.IDF)),
                wait=True,
            )
        if not self.client.count(self.collection, count_filter=LACKING_SPARSE, exact=True).count:
            return
        for records in self._pages(LACKING_SPARSE, [TEXT]):
            if records:
                self.client.update_vectors(
                    self.collection,
                    points=[
                        models.PointVectors(
                            id=r.id,
                            vector={SPARSE_VECTOR: _sparse(bm25_document((r.payload or {}).get(TEXT, "")))},
                        )
                        for r in records
                    ],
                    wait=True,
                )

    def _pages(self, where: models.Filter, fields: list[str]):
        """Pages of the points matching `where`, with only `fields` of their payload (migrations)."""
        return scroll_pages(
            lambda offset: self.client.scroll(
                self.collection,
                scroll_filter=where,
                limit=MIGRATE_PAGE,
                offset=offset,
                with_payload=fields,
                with_vectors=False,
            ),
            self.collection,
        )

    def _add_group(self, info: models.CollectionInfo) -> None:
        """Fill `group` on the points written before it, from their own payload, before its index
        exists (ensure_collection creates it next). A run stopped midway is resumed by the next."""
        if GROUP in info.payload_schema:
            return
        lacking = models.Filter(must=[models.IsEmptyCondition(is_empty=models.PayloadField(key=GROUP))])
        for records in self._pages(lacking, ["kind", "unit", "doc_id"]):
            for group, ids in by_group(records).items():
                self.client.set_payload(self.collection, payload={GROUP: group}, points=ids, wait=True)

    def sparse_modifier(self) -> str | None:
        """The modifier of the `bm25` sparse vector ("idf"); None before creation or on a
        collection made before sparse vectors."""
        if not self._ready():
            return None
        params = (self.client.get_collection(self.collection).config.params.sparse_vectors or {}).get(
            SPARSE_VECTOR
        )
        if params is None:
            return None
        return params.modifier.value if params.modifier else "none"

    def vector_params(self) -> tuple[int, str] | None:
        """(dimension, distance) of the collection's unnamed vector as the server reports them;
        None before creation or when the collection has named vectors only."""
        return _unnamed_vector(self.client.get_collection(self.collection)) if self._ready() else None

    def payload_indexes(self) -> dict[str, str]:
        """field -> index type ("Keyword", "Integer"), as the server reports them."""
        if not self._ready():
            return {}
        schema = self.client.get_collection(self.collection).payload_schema
        return {k: v.data_type.value.capitalize() for k, v in schema.items()}

    def upsert(self, points: list[StoredPoint]) -> None:
        # Bounded requests: a few thousand 1536-d points in JSON pass the server's default 32 MB limit.
        for start in range(0, len(points), UPSERT_BATCH):
            self.client.upsert(
                self.collection,
                points=[
                    models.PointStruct(
                        id=p.id,
                        vector={"": p.vector, SPARSE_VECTOR: _sparse(p.sparse)} if p.sparse else p.vector,
                        payload=p.payload,
                    )
                    for p in points[start : start + UPSERT_BATCH]
                ],
                wait=True,
            )

    def delete(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        if ids:
            self.client.delete(self.collection, points_selector=models.PointIdsList(points=ids), wait=True)

    def flush(self) -> None:
        """Writes wait for the server's acknowledgement (wait=True): nothing is left to flush."""

    def persist(self) -> None:
        """As `flush`: nothing is left to persist."""

    def unit_hashes(self, unit: str) -> dict[str, str]:
        if not self._ready():
            return {}
        return scroll_hashes(
            lambda offset: self.client.scroll(
                self.collection,
                scroll_filter=_filter({"unit": unit}),
                limit=SCROLL_PAGE,
                offset=offset,
                with_payload=[CONTENT_HASH],
                with_vectors=False,
            ),
            self.collection,
        )

    def units(self) -> dict[str, int]:
        """An exact facet on the indexed `unit` field; a unit per point at most, so a limit of the
        point count never truncates."""
        total = self.count()
        if total == 0:
            return {}
        response = self.client.facet(self.collection, "unit", limit=total, exact=True)
        return {str(hit.value): hit.count for hit in response.hits}

    def count(self, unit: str | None = None) -> int:
        if not self._ready():
            return 0
        return self.client.count(
            self.collection, count_filter=_filter({"unit": unit} if unit else None), exact=True
        ).count

    def retrieve(self, ids: list[str], with_vectors: bool = False) -> list[StoredPoint]:
        if not ids or not self._ready():
            return []
        records = self.client.retrieve(
            self.collection, ids=list(ids), with_payload=True, with_vectors=with_vectors
        )
        points = []
        for r in records:
            dense, sparse = split_vector(r.vector) if with_vectors else (None, None)
            points.append(StoredPoint(str(r.id), dense, r.payload or {}, sparse))
        return points

    def search(self, vector: list[float], limit: int = 10, filters: Filters | None = None) -> list[SearchHit]:
        return self.query(dense=vector, limit=limit, filters=filters)

    def _request(
        self, dense: list[float] | None, sparse: SparseVector | None, limit: int, where: models.Filter | None
    ) -> dict:
        """The query arguments shared by query_points and query_points_groups: one nearest query,
        or both as prefetches fused by the server with RRF (its default k, 2, as on Edge); the
        query's filter `where` reaches the prefetches too (Qdrant propagates it), and the dense
        search's params are those of a filtered search when there is one."""
        nearest = []
        if dense is not None:
            params = self._filtered if where else self._search
            nearest.append(models.Prefetch(query=list(dense), limit=prefetch_limit(limit), params=params))
        if sparse is not None:
            nearest.append(
                models.Prefetch(query=_sparse(sparse), using=SPARSE_VECTOR, limit=prefetch_limit(limit))
            )
        if not nearest:
            raise ValueError("query needs a dense vector, a sparse vector, or both")
        if len(nearest) == 1:
            return {"query": nearest[0].query, "using": nearest[0].using, "search_params": nearest[0].params}
        return {"prefetch": nearest, "query": models.FusionQuery(fusion=models.Fusion.RRF)}

    def query(
        self,
        dense: list[float] | None = None,
        sparse: SparseVector | None = None,
        *,
        limit: int = 10,
        filters: Filters | None = None,
    ) -> list[SearchHit]:
        where = _filter(filters)
        request = self._request(dense, sparse, limit, where)
        if not self._ready() or limit <= 0:
            return []
        response = self.client.query_points(
            self.collection, limit=limit, query_filter=where, with_payload=True, **request
        )
        return _hits(response.points)

    def exact_search(
        self, vector: list[float], limit: int = 10, filters: Filters | None = None
    ) -> list[SearchHit]:
        """Every point (matching `filters`) scored on its original vector, no index: the reference
        recall is measured against."""
        if not self._ready() or limit <= 0:
            return []
        response = self.client.query_points(
            self.collection,
            query=list(vector),
            limit=limit,
            query_filter=_filter(filters),
            search_params=self._exact,
            with_payload=False,
        )
        return _hits(response.points)

    def indexed_vectors(self) -> int:
        """Vectors in indexed segments, as the server counts them (local mode indexes nothing: 0)."""
        return (
            (self.client.get_collection(self.collection).indexed_vectors_count or 0) if self._ready() else 0
        )

    def quantization(self) -> str:
        """ "int8" or "none", as the collection was created; "none" before creation."""
        if not self._ready():
            return "none"
        config = self.client.get_collection(self.collection).config.quantization_config
        return "int8" if isinstance(config, models.ScalarQuantization) else "none"

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
        # The prefetches hand the fusion enough candidates for every group's hits.
        where = _filter(filters)
        request = self._request(dense, sparse, groups * group_size, where)
        if not self._ready() or groups <= 0:
            return []
        response = self.client.query_points_groups(
            self.collection,
            group_by=group_by,
            limit=groups,
            group_size=group_size,
            query_filter=where,
            with_payload=True,
            **request,
        )
        return [HitGroup(str(g.id), _hits(g.hits)) for g in response.groups]

    def optimize(self) -> None:
        """The server's optimizer indexes in the background, by the same thresholds: nothing to do."""

    def close(self) -> None:
        self.client.close()
