"""The persistent embedding cache: one float32 vector per (provider, model, dimensions, text), and
the record of the vector size each model answered with.

SQLite in WAL mode, so readers never block the writer and a crash loses at most the last commit
(synchronous=NORMAL). An entry expires a TTL after it was last used (every hit renews it), and the
least recently used are pruned above a size bound (a use is recorded at most once a minute per entry,
see RENEW_AFTER_S), so re-indexing unchanged text is a lookup
instead of a paid API call. Expiry never re-embeds text that is already in the vector store: the
pipeline skips those points before it asks the cache (see pipeline.py).
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..sqlite_transaction import transaction

IN_BATCH = 500  # keys per `IN (...)`: well below SQLite's limit on bound variables
# A hit is recorded (`used` renewed) only when the entry's last use is older than this (or 1 % of the
# TTL, if less): recording it writes the row's page, so the write stage re-recording each vector the
# embed stage had just stored cost 1 s of writes per 20,000 1536-d vectors. Expiry and the
# least-recently-used order move by at most this.
RENEW_AFTER_S = 60.0


class EmbeddingCache:
    def __init__(
        self,
        path: Path | str,
        ttl_s: float = 7 * 86400,
        max_entries: int = 2_000_000,
        clock: Callable[[], float] = time.time,  # injectable, so tests can age entries
    ):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.renew_after_s = min(RENEW_AFTER_S, ttl_s / 100)
        self._clock = clock
        # One connection shared by the pipeline's threads; the lock serialises its use.
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS embeddings (key TEXT PRIMARY KEY, vector BLOB NOT NULL,"
            " created REAL NOT NULL, used REAL NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS embeddings_used ON embeddings(used)")

    @staticmethod
    def key(provider: str, model: str, dimensions: int, text: str) -> str:
        # Each part is length-prefixed, so no two different tuples hash the same bytes.
        h = hashlib.sha256()
        for part in (provider, model, str(dimensions), text):
            data = part.encode("utf-8", "surrogatepass")
            h.update(len(data).to_bytes(8, "big"))
            h.update(data)
        return h.hexdigest()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, transaction(self._db) as db:
            yield db

    def _lookup(self, keys: list[str], column: str) -> dict:
        """key -> `column` for the keys present and not expired; their last-used time is renewed."""
        now = self._clock()
        found: dict = {}
        with self._transaction() as db:
            for i in range(0, len(keys), IN_BATCH):
                part = keys[i : i + IN_BATCH]
                marks = ",".join("?" * len(part))
                found.update(
                    db.execute(
                        f"SELECT key, {column} FROM embeddings WHERE key IN ({marks}) AND used > ?",
                        (*part, now - self.ttl_s),
                    ).fetchall()
                )
            db.executemany(
                "UPDATE embeddings SET used = ? WHERE key = ? AND used < ?",
                [(now, k, now - self.renew_after_s) for k in found],
            )
        return found

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        """Vectors for the keys present and not expired; each hit renews its entry."""
        # A copy: frombuffer alone would give a read-only view of the row's bytes.
        return {k: np.frombuffer(v, dtype=np.float32).copy() for k, v in self._lookup(keys, "vector").items()}

    def renew(self, keys: list[str]) -> dict[str, int]:
        """key -> vector size for the keys present and not expired, renewed like a hit, without reading
        their vectors."""
        return self._lookup(keys, "length(vector) / 4")  # float32: 4 bytes a dimension

    def put_many(self, vectors: dict[str, np.ndarray]) -> None:
        """Store all vectors in one transaction (a new vector for a key replaces the old one)."""
        now = self._clock()
        rows = [(k, np.asarray(v, dtype=np.float32).tobytes(), now, now) for k, v in vectors.items()]
        with self._transaction() as db:
            db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)", rows)

    def prune(self) -> int:
        """Remove entries unused for the TTL, then the least recently used above max_entries; returns how many."""
        with self._transaction() as db:
            removed = db.execute(
                "DELETE FROM embeddings WHERE used <= ?", (self._clock() - self.ttl_s,)
            ).rowcount
            excess = db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] - self.max_entries
            if excess > 0:
                removed += db.execute(
                    "DELETE FROM embeddings WHERE key IN (SELECT key FROM embeddings ORDER BY used LIMIT ?)",
                    (excess,),
                ).rowcount
        return removed

    def stats(self) -> dict:
        """Entries, and bytes on disk (database, WAL and shared-memory files)."""
        with self._lock:
            entries = self._db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
        files = [self.path, *(self.path.with_name(self.path.name + s) for s in ("-wal", "-shm"))]
        return {"entries": entries, "bytes": sum(p.stat().st_size for p in files if p.exists())}

    def close(self) -> None:
        with self._lock:
            self._db.close()


class DimensionRecord:
    """The vector size each (provider, model, requested dimensions) was answered with, kept in the cache's
    database: a process that embeds nothing (the write step) knows the size without asking the API.

    A connection per call: the record is read once per process and written once per model."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS dimensions (provider TEXT NOT NULL, model TEXT NOT NULL,"
                " requested INTEGER NOT NULL, size INTEGER NOT NULL, PRIMARY KEY (provider, model, requested))"
            )
            yield db
        finally:
            db.close()

    def get(self, provider: str, model: str, requested: int | None) -> int | None:
        with self._db() as db:
            row = db.execute(
                "SELECT size FROM dimensions WHERE provider = ? AND model = ? AND requested = ?",
                (provider, model, requested or 0),
            ).fetchone()
        return row[0] if row else None

    def put(self, provider: str, model: str, requested: int | None, size: int) -> None:
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO dimensions VALUES (?, ?, ?, ?)",
                (provider, model, requested or 0, size),
            )
