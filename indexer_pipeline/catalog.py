"""The catalog: what the corpus held at the last read of each unit (documents, chunks, rejections).

`raw_documents` writes it, the later stages and `status` read it. SQLite in WAL mode, so the
sensor and the CLI can read while a run writes. Beside that it keeps three small records:
- `stored_points`: the content hash and cache key of each point the write stage stored, so the
  embed stage knows which texts the store already holds a vector for (no cache needed);
- `unit_reads`: which file state and reader version each unit was last read at, so an unchanged
  unit is not read again;
- `pending_changes`: when a unit's change was first detected, for the freshness check.
A unit's `indexed_key` names what its points were last written from and to (its read, the model, the
collection, the writing code), so an unchanged re-run skips a unit already written exactly so.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from .models import Chunk, Rejection, UnitContent
from .sqlite_transaction import transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS units (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    fingerprint TEXT,
    documents INTEGER NOT NULL DEFAULT 0,
    rejected INTEGER NOT NULL DEFAULT 0,
    chunks INTEGER NOT NULL DEFAULT 0,
    read_at REAL,
    indexed_at REAL,
    indexed_fingerprint TEXT,
    documents_indexed INTEGER NOT NULL DEFAULT 0,
    indexed_key TEXT
);
CREATE TABLE IF NOT EXISTS chunks (
    point_id TEXT PRIMARY KEY,
    unit TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    chunk_index INTEGER NOT NULL,
    text TEXT NOT NULL,
    tokens INTEGER NOT NULL,
    payload TEXT NOT NULL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS chunks_unit ON chunks(unit, doc_id, chunk_index);
CREATE TABLE IF NOT EXISTS rejections (
    unit TEXT NOT NULL,
    path TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rejections_unit ON rejections(unit);
CREATE TABLE IF NOT EXISTS stored_points (
    point_id TEXT PRIMARY KEY,
    unit TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    cache_key TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS stored_points_unit ON stored_points(unit);
CREATE TABLE IF NOT EXISTS unit_reads (
    unit TEXT PRIMARY KEY,
    read_key TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pending_changes (
    unit TEXT PRIMARY KEY,
    first_seen REAL NOT NULL
);
-- Deletions the guard held back (see deletion_guard.py); resolved rows stay as the record of what happened.
CREATE TABLE IF NOT EXISTS held_deletions (
    id INTEGER PRIMARY KEY,
    unit TEXT NOT NULL,
    reason TEXT NOT NULL,
    held_at REAL NOT NULL,
    resolved_at REAL,
    resolution TEXT  -- 'deleted' (confirmed, or its reason passed) | 'returned' (the unit is back)
);
CREATE UNIQUE INDEX IF NOT EXISTS held_deletions_open ON held_deletions(unit) WHERE resolved_at IS NULL;
"""


@dataclass
class UnitRecord:
    key: str
    kind: str
    path: str
    fingerprint: str | None
    documents: int
    rejected: int
    chunks: int
    read_at: float | None
    indexed_at: float | None
    indexed_fingerprint: str | None
    documents_indexed: int


@dataclass
class HeldDeletion:
    unit: str
    reason: str
    held_at: float


class Catalog:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        # A catalog made before `indexed_key`: its units are written once more, then skipped.
        if "indexed_key" not in {row[1] for row in self._db.execute("PRAGMA table_info(units)")}:
            try:
                self._db.execute("ALTER TABLE units ADD COLUMN indexed_key TEXT")
            except sqlite3.OperationalError as e:  # another process added it between the two lines
                if "duplicate column" not in str(e):
                    raise

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def replace_unit(
        self, content: UnitContent, chunks: list[Chunk], fingerprint: str | None, read_key: str | None = None
    ) -> None:
        """Record what a unit holds now, atomically: a crash leaves the old record, never half of each.
        `read_key` names the file state and reader version read (None: the next read must not be skipped)."""
        unit = content.unit
        with transaction(self._db) as db:
            db.execute("DELETE FROM unit_reads WHERE unit = ?", (unit.key,))
            if read_key is not None:
                db.execute("INSERT INTO unit_reads (unit, read_key) VALUES (?, ?)", (unit.key, read_key))
            db.execute("DELETE FROM chunks WHERE unit = ?", (unit.key,))
            db.execute("DELETE FROM rejections WHERE unit = ?", (unit.key,))
            db.executemany(
                "INSERT INTO chunks (point_id, unit, doc_id, chunk_index, text, tokens, payload)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (c.point_id, c.unit, c.doc_id, c.chunk_index, c.text, c.tokens, json.dumps(c.payload))
                    for c in chunks
                ],
            )
            db.executemany(
                "INSERT INTO rejections (unit, path, reason) VALUES (?, ?, ?)",
                [(r.unit, r.path, r.reason) for r in content.rejected],
            )
            db.execute(
                "INSERT INTO units (key, kind, path, fingerprint, documents, rejected, chunks, read_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(key) DO UPDATE SET kind=excluded.kind, path=excluded.path,"
                " fingerprint=excluded.fingerprint, documents=excluded.documents,"
                " rejected=excluded.rejected, chunks=excluded.chunks, read_at=excluded.read_at",
                (
                    unit.key,
                    unit.kind,
                    unit.shown_path,
                    fingerprint,
                    len(content.documents),
                    len(content.rejected),
                    len(chunks),
                    time.time(),
                ),
            )

    def chunks(self, unit: str) -> list[Chunk]:
        rows = self._db.execute(
            "SELECT unit, doc_id, chunk_index, text, tokens, payload FROM chunks"
            " WHERE unit = ? ORDER BY doc_id, chunk_index",
            (unit,),
        ).fetchall()
        return [Chunk(u, d, i, t, n, json.loads(p)) for u, d, i, t, n, p in rows]

    def set_chunk_errors(self, errors: dict[str, str | None]) -> None:
        """point_id -> reason the chunk could not be embedded (None clears an earlier error)."""
        with transaction(self._db) as db:
            db.executemany(
                "UPDATE chunks SET error = ? WHERE point_id = ?", [(e, p) for p, e in errors.items()]
            )

    def chunk_errors(self, unit: str) -> dict[str, str]:
        rows = self._db.execute(
            "SELECT point_id, error FROM chunks WHERE unit = ? AND error IS NOT NULL", (unit,)
        ).fetchall()
        return dict(rows)

    def unit_with_chunks(self, key: str) -> tuple[UnitRecord | None, list[Chunk], str | None]:
        """The unit's record, chunks and read key from one snapshot, so the record's fingerprint is the
        corpus state those chunks were read at, even while another process re-reads the unit."""
        self._db.execute("BEGIN")  # deferred: a read snapshot in WAL mode, no write lock
        try:
            return self.unit(key), self.chunks(key), self.read_key(key)
        finally:
            self._db.execute("COMMIT")

    def mark_indexed(
        self, unit: str, documents_indexed: int, fingerprint: str | None, indexed_key: str | None = None
    ) -> None:
        """The unit's points match the chunks read at `fingerprint`: record exactly that state. (Copying
        the current fingerprint would claim a re-read that landed after the write stage read its chunks.)
        `indexed_key` names that read and where and how it was written (None: never skip its write)."""
        self._db.execute(
            "UPDATE units SET indexed_at = ?, indexed_fingerprint = ?, documents_indexed = ?, indexed_key = ?"
            " WHERE key = ?",
            (time.time(), fingerprint, documents_indexed, indexed_key, unit),
        )

    def clear_indexed_keys(self, units: list[str]) -> None:
        """Units whose last write left some documents out: their next write must not be skipped."""
        if not units:
            return
        with transaction(self._db) as db:
            db.executemany("UPDATE units SET indexed_key = NULL WHERE key = ?", [(u,) for u in units])

    def written_units(self) -> dict[str, tuple[str, int, int, int]]:
        """unit -> (indexed key, documents, rejected files, points recorded) of every unit with an indexed
        key, in one query: what an unchanged re-run needs to skip a unit without asking per unit."""
        rows = self._db.execute(
            "SELECT u.key, u.indexed_key, u.documents, u.rejected, count(s.point_id) FROM units u"
            " LEFT JOIN stored_points s ON s.unit = u.key WHERE u.indexed_key IS NOT NULL GROUP BY u.key"
        )
        return {key: (ik, documents, rejected, points) for key, ik, documents, rejected, points in rows}

    def rejections(self, unit: str | None = None) -> list[Rejection]:
        """Every rejection, or one unit's."""
        where, args = ("WHERE unit = ?", (unit,)) if unit is not None else ("", ())
        rows = self._db.execute(
            f"SELECT unit, path, reason FROM rejections {where} ORDER BY unit, path", args
        ).fetchall()
        return [Rejection(*r) for r in rows]

    def read_key(self, unit: str) -> str | None:
        row = self._db.execute("SELECT read_key FROM unit_reads WHERE unit = ?", (unit,)).fetchone()
        return row[0] if row else None

    def record_points(self, unit: str, points: dict[str, tuple[str, str]]) -> None:
        """point_id -> (content hash, cache key) of every point the store now holds for the unit."""
        with transaction(self._db) as db:
            db.execute("DELETE FROM stored_points WHERE unit = ?", (unit,))
            db.executemany(
                "INSERT OR REPLACE INTO stored_points (point_id, unit, content_hash, cache_key)"
                " VALUES (?, ?, ?, ?)",
                [(pid, unit, h, ck) for pid, (h, ck) in points.items()],
            )

    def stored_points(self, unit: str) -> dict[str, tuple[str, str]]:
        """point_id -> (content hash, cache key), as the write stage last recorded them."""
        rows = self._db.execute(
            "SELECT point_id, content_hash, cache_key FROM stored_points WHERE unit = ?", (unit,)
        )
        return {pid: (h, ck) for pid, h, ck in rows}

    def note_pending(self, units: set[str], now: float) -> dict[str, float]:
        """Record when each pending unit (files differ from what was indexed) was first seen so;
        units no longer pending are forgotten. Returns unit -> first seen, for the pending units."""
        with transaction(self._db) as db:
            known = dict(db.execute("SELECT unit, first_seen FROM pending_changes"))
            gone = [(u,) for u in known if u not in units]
            db.executemany("DELETE FROM pending_changes WHERE unit = ?", gone)
            new = [(u, now) for u in units if u not in known]
            db.executemany("INSERT INTO pending_changes (unit, first_seen) VALUES (?, ?)", new)
        return {u: known.get(u, now) for u in units}

    def unit(self, key: str) -> UnitRecord | None:
        row = self._db.execute(f"SELECT {_UNIT_COLUMNS} FROM units WHERE key = ?", (key,)).fetchone()
        return UnitRecord(*row) if row else None

    def units(self) -> list[UnitRecord]:
        return [UnitRecord(*r) for r in self._db.execute(f"SELECT {_UNIT_COLUMNS} FROM units ORDER BY key")]

    def indexed_fingerprints(self) -> dict[str, str | None]:
        return dict(self._db.execute("SELECT key, indexed_fingerprint FROM units"))

    def forget_units(self, keys: list[str]) -> None:
        """Forget units whose points are gone, in one transaction; their held deletions are resolved."""
        rows = [(k,) for k in keys]
        with transaction(self._db) as db:
            for table, column in (
                ("chunks", "unit"),
                ("rejections", "unit"),
                ("stored_points", "unit"),
                ("unit_reads", "unit"),
                ("pending_changes", "unit"),
                ("units", "key"),
            ):
                db.executemany(f"DELETE FROM {table} WHERE {column} = ?", rows)
            _resolve(db, keys, "deleted")

    # -- deletions held by the guard -------------------------------------------------------------
    def hold_deletions(self, reasons: dict[str, str]) -> None:
        """Record units whose deletion waits for a person (unit -> why); a unit already held keeps its record."""
        if not reasons:
            return
        now = time.time()
        with transaction(self._db) as db:
            db.executemany(
                "INSERT OR IGNORE INTO held_deletions (unit, reason, held_at) VALUES (?, ?, ?)",
                [(unit, reason, now) for unit, reason in reasons.items()],
            )

    def held_deletions(self) -> dict[str, HeldDeletion]:
        rows = self._db.execute(
            "SELECT unit, reason, held_at FROM held_deletions WHERE resolved_at IS NULL ORDER BY unit"
        )
        return {r[0]: HeldDeletion(*r) for r in rows}

    def release_holds(self, keys: list[str]) -> None:
        """The units are back in the corpus: their held deletions are void."""
        if not keys:
            return
        with transaction(self._db) as db:
            _resolve(db, keys, "returned")

    def holds_version(self) -> str | None:
        """Changes whenever a deletion is held or a hold resolved; None while nothing was ever held."""
        held, resolved = self._db.execute("SELECT max(id), count(resolved_at) FROM held_deletions").fetchone()
        return f"{held}.{resolved}" if held is not None else None


def _resolve(db: sqlite3.Connection, keys: list[str], resolution: str) -> None:
    db.executemany(
        "UPDATE held_deletions SET resolved_at = ?, resolution = ? WHERE unit = ? AND resolved_at IS NULL",
        [(time.time(), resolution, k) for k in keys],
    )


_UNIT_COLUMNS = (
    "key, kind, path, fingerprint, documents, rejected, chunks, read_at, indexed_at,"
    " indexed_fingerprint, documents_indexed"
)
