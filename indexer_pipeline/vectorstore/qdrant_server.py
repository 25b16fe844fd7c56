"""A Qdrant server or cluster (or qdrant-client's in-memory mode, for tests) behind the store contract.

The API key goes to the client only: it is not kept on the store, so no repr or log can show it.
"""

from __future__ import annotations

from collections.abc import Iterable

from qdrant_client import QdrantClient, models

from .base import (
    CONTENT_HASH,
    INTEGER_FIELDS,
    KEYWORD_FIELDS,
    SearchHit,
    StoredPoint,
    check_vector_params,
    scroll_hashes,
)

SCROLL_PAGE = 1024
UPSERT_BATCH = 256
INDEXES = {
    **{name: models.PayloadSchemaType.KEYWORD for name in KEYWORD_FIELDS},
    **{name: models.PayloadSchemaType.INTEGER for name in INTEGER_FIELDS},
}


def _filter(filters: dict | None) -> models.Filter | None:
    if not filters:
        return None
    return models.Filter(
        must=[models.FieldCondition(key=k, match=models.MatchValue(value=v)) for k, v in filters.items()]
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
    ):
        """`url` ":memory:" gives qdrant-client's in-process mode; `shard_number` and
        `replication_factor` apply when this store creates the collection on a cluster."""
        self.collection = collection
        self.shard_number = shard_number
        self.replication_factor = replication_factor
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
        else:
            self.client.create_collection(
                self.collection,
                vectors_config=models.VectorParams(size=dimension, distance=models.Distance.COSINE),
                shard_number=self.shard_number,
                replication_factor=self.replication_factor,
            )
            self._exists = True
            info = self.client.get_collection(self.collection)
        # Also on an existing collection: a run killed between create and the last index left some out.
        for name, schema in INDEXES.items():
            if name not in info.payload_schema:
                self.client.create_payload_index(self.collection, name, schema, wait=True)

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
                    models.PointStruct(id=p.id, vector=p.vector, payload=p.payload)
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
        return [
            StoredPoint(str(r.id), list(r.vector) if with_vectors else None, r.payload or {}) for r in records
        ]

    def search(self, vector: list[float], limit: int = 10, filters: dict | None = None) -> list[SearchHit]:
        if not self._ready():
            return []
        response = self.client.query_points(
            self.collection, query=list(vector), limit=limit, query_filter=_filter(filters), with_payload=True
        )
        return [SearchHit(str(p.id), float(p.score), p.payload or {}) for p in response.points]

    def close(self) -> None:
        self.client.close()
