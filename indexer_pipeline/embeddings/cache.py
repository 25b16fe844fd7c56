"""The persistent embedding cache: one float32 vector per (provider, model, dimensions, text).

SQLite in WAL mode, so readers never block the writer. Entries expire after a TTL (7 days by default)
and the least recently used are pruned above a size bound. Re-indexing unchanged text is a lookup.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

_BATCH = 500  # below SQLite's limit on bound variables


class EmbeddingCache:
    def __init__(
        self,
        path: Path,
        ttl_s: float = 7 * 86400,
        max_entries: int = 2_000_000,
        clock: Callable[[], float] = time.time,
    ):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(path)
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS embeddings (key TEXT PRIMARY KEY, vector BLOB NOT NULL,"
            " created REAL NOT NULL, used REAL NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS embeddings_used ON embeddings(used)")

    @staticmethod
    def key(provider: str, model: str, dimensions: int, text: str) -> str:
        h = hashlib.sha256()
        for part in (provider, model, str(dimensions), text):
            h.update(part.encode("utf-8", "surrogatepass"))
            h.update(b"\x1f")
        return h.hexdigest()

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        """Vectors for the keys present and not expired; their last-used time is refreshed."""
        now = self._clock()
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for i in range(0, len(keys), _BATCH):
                part = keys[i : i + _BATCH]
                marks = ",".join("?" * len(part))
                rows = self._db.execute(
                    f"SELECT key, vector FROM embeddings WHERE key IN ({marks}) AND created >= ?",
                    (*part, now - self.ttl_s),
                ).fetchall()
                found.update((k, np.frombuffer(v, dtype=np.float32)) for k, v in rows)
            if found:
                self._db.executemany(
                    "UPDATE embeddings SET used = ? WHERE key = ?", [(now, k) for k in found]
                )
        return found

    def put_many(self, vectors: dict[str, np.ndarray]) -> None:
        now = self._clock()
        rows = [(k, np.asarray(v, dtype=np.float32).tobytes(), now, now) for k, v in vectors.items()]
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")

    def prune(self) -> int:
        """Remove expired entries, then the least recently used above max_entries; returns how many."""
        with self._lock:
            removed = self._db.execute(
                "DELETE FROM embeddings WHERE created < ?", (self._clock() - self.ttl_s,)
            ).rowcount
            excess = self._count() - self.max_entries
            if excess > 0:
                removed += self._db.execute(
                    "DELETE FROM embeddings WHERE key IN (SELECT key FROM embeddings ORDER BY used LIMIT ?)",
                    (excess,),
                ).rowcount
        return removed

    def _count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]

    def stats(self) -> dict:
        with self._lock:
            entries = self._count()
        size = sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file())
        return {"entries": entries, "bytes": size}

    def close(self) -> None:
        self._db.close()
