"""The catalog answers per-unit questions in O(1) (issue 12, item 5), at many units.

Correctness: every per-unit lookup returns that unit's records among 5,000 units. Cost, without a
clock: every statement the per-unit methods send to SQLite (captured as they run, not listed by hand)
is planned by SQLite as a search through an index or the primary key, never a scan of a table.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from indexer_pipeline.catalog import SCHEMA, Catalog
from indexer_pipeline.models import Chunk, Rejection, SourceUnit, UnitContent

UNITS = 5_000


def key(i: int) -> str:
    return f"task-{i:05d}"


def chunks_of(i: int) -> list[Chunk]:
    return [Chunk(key(i), f"{key(i)}:doc", n, f"text {i} {n}", 3, {"unit": key(i)}) for n in range(2)]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    path = tmp_path_factory.mktemp("catalog") / "catalog.db"
    with Catalog(path) as catalog:
        for i in range(UNITS):
            unit = SourceUnit(key(i), Path("/corpus"), Path(f"/corpus/tasks/{i:05d}"), "task")
            rejected = [Rejection(key(i), f"tasks/{i:05d}/bad.json", "malformed JSON")] if i % 7 == 0 else []
            chunks = chunks_of(i)
            catalog.replace_unit(UnitContent(unit, [], rejected), chunks, f"fp{i}", read_key=f"rk{i}")
            catalog.record_points(key(i), {c.point_id: (f"h{i}", f"ck{i}") for c in chunks})
            catalog.mark_indexed(key(i), 1, f"fp{i}")
        catalog.set_chunk_errors({chunks_of(i)[1].point_id: "too long" for i in range(0, UNITS, 11)})
        yield catalog


def ask_everything_about(catalog: Catalog, i: int) -> None:
    """Every per-unit question and per-unit write the catalog offers (writes leave the unit as it was)."""
    k = key(i)
    record, chunks, _ = catalog.unit_with_chunks(k)
    unit = SourceUnit(k, Path("/corpus"), Path(record.path), record.kind)
    catalog.replace_unit(
        UnitContent(unit, [], catalog.rejections(k)), chunks, record.fingerprint, catalog.read_key(k)
    )
    catalog.unit(k)
    catalog.chunks(k)
    catalog.chunk_errors(k)
    catalog.rejections(k)
    catalog.read_key(k)
    points = catalog.stored_points(k)
    catalog.record_points(k, points)
    catalog.set_chunk_errors({chunks[0].point_id: None})
    catalog.clear_indexed_keys([k])
    catalog.mark_indexed(k, record.documents_indexed, record.indexed_fingerprint)
    catalog.hold_deletions({k: "test"})
    catalog.release_holds([k])
    catalog.forget_units(["task-absent"])


@pytest.mark.parametrize("i", [0, 11, 2_345, 3_003, UNITS - 1])
def test_per_unit_lookups_return_that_units_records(catalog, i):
    k = key(i)
    record, chunks, read_key = catalog.unit_with_chunks(k)
    assert (record.key, record.fingerprint, record.indexed_fingerprint, record.chunks) == (
        k,
        f"fp{i}",
        f"fp{i}",
        2,
    )
    assert chunks == chunks_of(i) == catalog.chunks(k)
    assert catalog.read_key(k) == read_key == f"rk{i}"
    assert catalog.stored_points(k) == {c.point_id: (f"h{i}", f"ck{i}") for c in chunks_of(i)}
    assert catalog.rejections(k) == (
        [Rejection(k, f"tasks/{i:05d}/bad.json", "malformed JSON")] if i % 7 == 0 else []
    )
    assert catalog.chunk_errors(k) == ({chunks_of(i)[1].point_id: "too long"} if i % 11 == 0 else {})
    assert catalog.unit("task-absent") is None and catalog.chunks("task-absent") == []


def unindexed_statements(catalog: Catalog) -> dict[str, list[str]]:
    """Each statement of the per-unit methods that SQLite plans as a scan, or without any index, with its plan."""
    statements: list[str] = []
    catalog._db.set_trace_callback(statements.append)  # the SQL as it runs, parameters bound
    try:
        ask_everything_about(catalog, 2_345)
    finally:
        catalog._db.set_trace_callback(None)
    planned = [s for s in dict.fromkeys(statements) if s.split()[0].upper() in {"SELECT", "UPDATE", "DELETE"}]
    assert len(planned) >= 10, statements  # the trace saw the lookups, not just BEGIN/COMMIT
    # A connection of its own: SQLite does not re-plan a cached EXPLAIN after the schema changed.
    with closing(sqlite3.connect(catalog.path)) as db:
        plans = {s: [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {s}")] for s in planned}
    return {
        s: plan
        for s, plan in plans.items()
        if any(step.startswith("SCAN") or "AUTOMATIC" in step for step in plan)  # built per query: O(n)
        or not any("INDEX" in step or "PRIMARY KEY" in step for step in plan)
    }


def test_every_per_unit_statement_uses_an_index_never_a_scan(catalog):
    assert unindexed_statements(catalog) == {}


def test_the_plan_check_sees_a_missing_index(catalog):
    """The check can fail: without the index on stored_points.unit, the unit's lookup is reported as a scan."""
    catalog._db.execute("DROP INDEX stored_points_unit")
    try:
        found = unindexed_statements(catalog)
    finally:
        catalog._db.executescript(SCHEMA)  # puts the index back
    assert any("FROM stored_points WHERE unit" in s for s in found), found
