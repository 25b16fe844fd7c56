"""One explicit SQLite write transaction, shared by the catalog and the embedding cache."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT on an autocommit connection (isolation_level=None), rolled back on
    any exception. IMMEDIATE takes the write lock at the start, so a busy database waits at BEGIN
    (within the connection's timeout) instead of failing halfway through."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
