"""The embedded default store: a Qdrant Edge shard (Qdrant's in-process engine) in a local folder.

Edge admits one open handle per folder (its WAL is locked). A lock file beside the folder, held from
open to close, turns "WouldBlock" into a wait and then a plain message naming the holder. Edge does
not report a shard's vector size, so the collection's dimension and distance are kept in
`collection.json` inside the folder and checked on every open.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import qdrant_edge as qe

from .base import (
    CONTENT_HASH,
    INTEGER_FIELDS,
    KEYWORD_FIELDS,
    CollectionMismatchError,
    SearchHit,
    StoreBusyError,
    StoredPoint,
    VectorStoreError,
)

VECTOR = ""  # the shard's single, unnamed dense vector
DISTANCE = "Cosine"
SCROLL_PAGE = 1024


class _FolderLock:
    """An advisory lock on `<folder>.lock`, released by the kernel even if the process is killed."""

    def __init__(self, folder: Path, wait_s: float):
        self.path = folder.with_name(folder.name + ".lock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a+")  # noqa: SIM115 - held open for the lock's lifetime
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    self._file.seek(0)
                    holder = self._file.read().strip() or "unknown"
                    self._file.close()
                    raise StoreBusyError(
                        f"the embedded Qdrant store at {folder} is held by process {holder}; "
                        "wait for it to finish or stop it"
                    ) from None
                time.sleep(0.1)
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"{os.getpid()} ({' '.join(sys.argv)[:200]})")
        self._file.flush()

    def release(self) -> None:
        if not self._file.closed:
            self._file.seek(0)
            self._file.truncate()
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()


def _unit_filter(filters: dict | None) -> qe.Filter | None:
    if not filters:
        return None
    return qe.Filter(must=[qe.FieldCondition(k, match=qe.MatchValue(v)) for k, v in filters.items()])


class EdgeStore:
    def __init__(self, folder: Path, collection: str = "documents", wait_s: float = 10.0):
        self.folder = Path(folder)
        self.collection = collection
        self._lock = _FolderLock(self.folder, wait_s)
        self._meta_path = self.folder / "collection.json"
        self._shard: qe.EdgeShard | None = None
        try:
            if self._meta_path.exists():
                self._shard = qe.EdgeShard.load(str(self.folder))
        except Exception:
            self._lock.release()
            raise

    def __enter__(self) -> EdgeStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def ensure_collection(self, dimension: int) -> None:
        if self._shard is not None:
            meta = json.loads(self._meta_path.read_text())
            if meta["dimension"] != dimension or meta["distance"] != DISTANCE:
                raise CollectionMismatchError(
                    f"collection {self.collection!r} at {self.folder} holds {meta['dimension']}-d "
                    f"{meta['distance']} vectors, but the embedding model makes {dimension}-d {DISTANCE} "
                    "vectors: use another QDRANT_COLLECTION or INDEXER_DATA_DIR, or delete the folder to re-index"
                )
            return
        config = qe.EdgeConfig(
            vectors={VECTOR: qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine)}
        )
        self._shard = qe.EdgeShard.create(str(self.folder), config)
        for name in KEYWORD_FIELDS:
            self._shard.update(qe.UpdateOperation.create_field_index(name, qe.PayloadSchemaType.Keyword))
        for name in INTEGER_FIELDS:
            self._shard.update(qe.UpdateOperation.create_field_index(name, qe.PayloadSchemaType.Integer))
        self._shard.flush()
        # Written last: a crash before this line leaves a folder that is created afresh next time.
        self._meta_path.write_text(json.dumps({"dimension": dimension, "distance": DISTANCE}))

    def payload_indexes(self) -> dict[str, str]:
        if self._shard is None:
            return {}
        return {k: str(v.data_type).rsplit(".", 1)[-1] for k, v in self._shard.info().payload_schema.items()}

    def upsert(self, points: list[StoredPoint]) -> None:
        if not points:
            return
        self._require().update(
            qe.UpdateOperation.upsert_points([qe.Point(p.id, p.vector, p.payload) for p in points])
        )

    def delete(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        if ids:
            self._require().update(qe.UpdateOperation.delete_points(ids))

    def flush(self) -> None:
        """Persist segments (17 ms a call here): once per stage, not per batch; the WAL covers a crash."""
        if self._shard is not None:
            self._shard.flush()

    def _scroll(self, filters: dict | None, with_payload):
        """Every record matching the filter, page by page; the cursor must move or we stop loudly."""
        if self._shard is None:
            return
        offset = None
        while True:
            records, next_offset = self._shard.scroll(
                qe.ScrollRequest(
                    offset=offset,
                    limit=SCROLL_PAGE,
                    filter=_unit_filter(filters),
                    with_payload=with_payload,
                    with_vector=False,
                )
            )
            yield from records
            if next_offset is None:
                return
            if next_offset == offset:
                raise VectorStoreError(f"scroll cursor did not advance at {offset} in {self.folder}")
            offset = next_offset

    def unit_hashes(self, unit: str) -> dict[str, str]:
        records = self._scroll({"unit": unit}, qe.PayloadSelector.Include([CONTENT_HASH]))
        return {str(r.id): (r.payload or {}).get(CONTENT_HASH, "") for r in records}

    def units(self) -> dict[str, int]:
        if self._shard is None:
            return {}
        counts: dict[str, int] = {}
        for r in self._scroll(None, qe.PayloadSelector.Include(["unit"])):
            unit = (r.payload or {}).get("unit", "")
            counts[unit] = counts.get(unit, 0) + 1
        return counts

    def count(self, unit: str | None = None) -> int:
        if self._shard is None:
            return 0
        return self._shard.count(
            qe.CountRequest(exact=True, filter=_unit_filter({"unit": unit} if unit else None))
        )

    def retrieve(self, ids: list[str], with_vectors: bool = False) -> list[StoredPoint]:
        if self._shard is None or not ids:
            return []
        records = self._shard.retrieve(list(ids), True, with_vectors)
        return [
            StoredPoint(str(r.id), _vector(r.vector) if with_vectors else None, r.payload or {})
            for r in records
        ]

    def search(self, vector: list[float], limit: int = 10, filters: dict | None = None) -> list[SearchHit]:
        if self._shard is None:
            return []
        hits = self._shard.query(
            qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest(list(vector)),
                filter=_unit_filter(filters),
                with_payload=True,
                with_vector=False,
            )
        )
        return [SearchHit(str(h.id), float(h.score), h.payload or {}) for h in hits]

    def close(self) -> None:
        if self._shard is not None:
            self._shard.close()
            self._shard = None
        self._lock.release()

    def _require(self) -> qe.EdgeShard:
        if self._shard is None:
            raise VectorStoreError("the collection does not exist yet: call ensure_collection first")
        return self._shard


def _vector(value) -> list[float] | None:
    if isinstance(value, dict):  # a named-vector mapping
        value = value.get(VECTOR)
    return list(value) if value is not None else None
