"""A Qdrant server or cluster (or qdrant-client's in-memory mode, for tests) behind the store contract."""

from __future__ import annotations

from collections.abc import Iterable

from qdrant_client import QdrantClient, models

from .base import (
    CONTENT_HASH,
    INTEGER_FIELDS,
    KEYWORD_FIELDS,
    CollectionMismatchError,
    SearchHit,
    StoredPoint,
    VectorStoreError,
)

SCROLL_PAGE = 1024


def _filter(filters: dict | None) -> models.Filter | None:
    if not filters:
        return None
    return models.Filter(
        must=[models.FieldCondition(key=k, match=models.MatchValue(value=v)) for k, v in filters.items()]
    )


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
        self.collection = collection
        self.shard_number = shard_number
        self.replication_factor = replication_factor
        if url == ":memory:":
            self.client = QdrantClient(location=":memory:")
        else:
            self.client = QdrantClient(url=url, api_key=api_key, timeout=timeout_s)

    def __enter__(self) -> ServerStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _exists(self) -> bool:
        return self.client.collection_exists(self.collection)

    def ensure_collection(self, dimension: int) -> None:
        if self._exists():
            params = self.client.get_collection(self.collection).config.params.vectors
            if isinstance(params, dict):
                params = params.get("")
            if params is None or params.size != dimension or params.distance != models.Distance.COSINE:
                found = f"{params.size}-d {params.distance}" if params else "named vectors"
                raise CollectionMismatchError(
                    f"collection {self.collection!r} holds {found} vectors, but the embedding model makes "
                    f"{dimension}-d Cosine vectors: use another QDRANT_COLLECTION, or drop it to re-index"
                )
            return
        self.client.create_collection(
            self.collection,
            vectors_config=models.VectorParams(size=dimension, distance=models.Distance.COSINE),
            shard_number=self.shard_number,
            replication_factor=self.replication_factor,
        )
        for name in KEYWORD_FIELDS:
            self.client.create_payload_index(self.collection, name, models.PayloadSchemaType.KEYWORD)
        for name in INTEGER_FIELDS:
            self.client.create_payload_index(self.collection, name, models.PayloadSchemaType.INTEGER)

    def payload_indexes(self) -> dict[str, str]:
        if not self._exists():
            return {}
        schema = self.client.get_collection(self.collection).payload_schema
        return {k: str(v.data_type.value).capitalize() for k, v in schema.items()}

    def upsert(self, points: list[StoredPoint]) -> None:
        if points:
            self.client.upsert(
                self.collection,
                points=[models.PointStruct(id=p.id, vector=p.vector, payload=p.payload) for p in points],
                wait=True,
            )

    def delete(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        if ids:
            self.client.delete(self.collection, points_selector=models.PointIdsList(points=ids), wait=True)

    def flush(self) -> None:
        """Upserts wait for the server's acknowledgement; nothing is left to flush."""

    def _scroll(self, filters: dict | None, payload_keys: list[str]):
        if not self._exists():
            return
        offset = None
        while True:
            records, next_offset = self.client.scroll(
                self.collection,
                scroll_filter=_filter(filters),
                limit=SCROLL_PAGE,
                offset=offset,
                with_payload=models.PayloadSelectorInclude(include=payload_keys),
                with_vectors=False,
            )
            yield from records
            if next_offset is None:
                return
            if next_offset == offset:
                raise VectorStoreError(f"scroll cursor did not advance at {offset} in {self.collection}")
            offset = next_offset

    def unit_hashes(self, unit: str) -> dict[str, str]:
        return {
            str(r.id): (r.payload or {}).get(CONTENT_HASH, "")
            for r in self._scroll({"unit": unit}, [CONTENT_HASH])
        }

    def units(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self._scroll(None, ["unit"]):
            unit = (r.payload or {}).get("unit", "")
            counts[unit] = counts.get(unit, 0) + 1
        return counts

    def count(self, unit: str | None = None) -> int:
        if not self._exists():
            return 0
        return self.client.count(
            self.collection, count_filter=_filter({"unit": unit} if unit else None), exact=True
        ).count

    def retrieve(self, ids: list[str], with_vectors: bool = False) -> list[StoredPoint]:
        if not ids or not self._exists():
            return []
        records = self.client.retrieve(
            self.collection, ids=list(ids), with_payload=True, with_vectors=with_vectors
        )
        return [
            StoredPoint(
                str(r.id), list(r.vector) if with_vectors and r.vector is not None else None, r.payload or {}
            )
            for r in records
        ]

    def search(self, vector: list[float], limit: int = 10, filters: dict | None = None) -> list[SearchHit]:
        if not self._exists():
            return []
        response = self.client.query_points(
            self.collection, query=list(vector), limit=limit, query_filter=_filter(filters), with_payload=True
        )
        return [SearchHit(str(p.id), float(p.score), p.payload or {}) for p in response.points]

    def close(self) -> None:
        self.client.close()
