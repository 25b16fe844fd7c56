"""The embedded default store: a Qdrant Edge shard (Qdrant's in-process engine) in a local folder.

Edge admits one open handle per folder (a second `load` fails on the WAL with "WouldBlock"). A lock
file beside the folder, held from open to close, turns that into a wait and then a message naming
the holder. The lock is portalocker's (flock on POSIX, msvcrt on Windows, where most Roo Code users
are); the holder's name sits in a file of its own, because Windows forbids reading a locked file. The shard's own `edge_config.json` is the one record of its dimension and distance:
Edge writes it on `create`, and `info()` does not report them.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import portalocker
import qdrant_edge as qe

from .base import (
    CONTENT_HASH,
    INTEGER_FIELDS,
    KEYWORD_FIELDS,
    SearchHit,
    StoreBusyError,
    StoredPoint,
    VectorStoreError,
    check_vector_params,
    scroll_hashes,
)

VECTOR = ""  # the shard's single, unnamed dense vector
SCROLL_PAGE = 1024
INDEXES = {
    **{name: qe.PayloadSchemaType.Keyword for name in KEYWORD_FIELDS},
    **{name: qe.PayloadSchemaType.Integer for name in INTEGER_FIELDS},
}


class _FolderLock:
    """An exclusive lock on `<folder>.lock`, which the OS releases even if the holder is killed.
    It conflicts between two opens in one process too, so a second EdgeStore here waits as well."""

    def __init__(self, folder: Path, wait_s: float):
        path = folder.with_name(folder.name + ".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._holder = path.with_name(path.name + ".holder")
        self._file = open(path, "a+")  # noqa: SIM115 - held open for the lock's lifetime
        deadline = time.monotonic() + wait_s
        while True:
            try:
                portalocker.lock(self._file, portalocker.LOCK_EX | portalocker.LOCK_NB)
                break
            except portalocker.LockException:
                if time.monotonic() >= deadline:
                    self._file.close()
                    raise StoreBusyError(
                        f"the embedded Qdrant store at {folder} is held by process {self._holder_name()}; "
                        "wait for it to finish or stop it"
                    ) from None
                time.sleep(0.1)
        # The holder's identity, for the message a waiting process shows.
        self._holder.write_text(f"{os.getpid()} ({' '.join(sys.argv)[:200]})", encoding="utf-8")

    def _holder_name(self) -> str:
        try:
            return self._holder.read_text(encoding="utf-8").strip() or "unknown (starting)"
        except OSError:
            return "unknown (starting)"

    def release(self) -> None:
        if not self._file.closed:
            self._holder.write_text("", encoding="utf-8")
            portalocker.unlock(self._file)
            self._file.close()


def _filter(filters: dict | None) -> qe.Filter | None:
    if not filters:
        return None
    return qe.Filter(must=[qe.FieldCondition(k, match=qe.MatchValue(v)) for k, v in filters.items()])


class EdgeStore:
    def __init__(self, folder: Path, collection: str = "documents", wait_s: float = 10.0):
        """Takes the folder's lock (waiting up to `wait_s`, then StoreBusyError), loads the shard if any."""
        self.folder = Path(folder)
        self.collection = collection
        self._config_path = self.folder / "edge_config.json"
        self._lock = _FolderLock(self.folder, wait_s)
        self._shard: qe.EdgeShard | None = None
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
            config = qe.EdgeConfig(
                vectors={VECTOR: qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine)}
            )
            self._shard = qe.EdgeShard.create(str(self.folder), config)
        else:
            self._check(dimension)
        # Also on an existing shard: a run killed between `create` and the last index left some out.
        existing = self._shard.info().payload_schema
        missing = {name: schema for name, schema in INDEXES.items() if name not in existing}
        for name, schema in missing.items():
            self._shard.update(qe.UpdateOperation.create_field_index(name, schema))
        if missing:  # a flush costs 0.2-0.5 s here: not on every open of a complete shard
            self._shard.flush()

    def vector_params(self) -> tuple[int, str] | None:
        """(dimension, distance) of the shard's unnamed vector as Edge recorded them; None before creation."""
        if self._shard is None:
            return None
        params = json.loads(self._config_path.read_text())["vectors"].get(VECTOR)
        return (params["size"], params["distance"]) if params else None

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
            self._require().update(
                qe.UpdateOperation.upsert_points([qe.Point(p.id, p.vector, p.payload) for p in points])
            )

    def delete(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        if ids:
            self._require().update(qe.UpdateOperation.delete_points(ids))

    def flush(self) -> None:
        """Persist segments (~17 ms a call): once per stage, not per batch; the WAL covers a crash."""
        if self._shard is not None:
            self._shard.flush()

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
        return [
            StoredPoint(str(r.id), list(r.vector) if with_vectors else None, r.payload or {})
            for r in self._shard.retrieve(list(ids), True, with_vectors)
        ]

    def search(self, vector: list[float], limit: int = 10, filters: dict | None = None) -> list[SearchHit]:
        if self._shard is None:
            return []
        hits = self._shard.query(
            qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest(list(vector)),
                filter=_filter(filters),
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
