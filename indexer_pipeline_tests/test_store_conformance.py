"""One conformance suite for both vector-store backends: Qdrant Edge and qdrant-client (in memory)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pytest

from indexer_pipeline.vectorstore.base import (
    CONTENT_HASH,
    INTEGER_FIELDS,
    KEYWORD_FIELDS,
    CollectionMismatchError,
    StoreBusyError,
    StoredPoint,
)
from indexer_pipeline.vectorstore.edge import EdgeStore
from indexer_pipeline.vectorstore.qdrant_server import ServerStore

DIM = 8


@pytest.fixture(params=["edge", "server"])
def open_store(request, tmp_path):
    opened = []

    def make():
        store = (
            EdgeStore(tmp_path / "edge", wait_s=1.0) if request.param == "edge" else ServerStore(":memory:")
        )
        opened.append(store)
        return store

    make.backend = request.param
    yield make
    for store in opened:
        store.close()


def point(i: int, unit: str = "u1", **payload) -> StoredPoint:
    rng = np.random.default_rng(i)
    vector = rng.standard_normal(DIM).astype(np.float32)
    return StoredPoint(
        str(uuid.uuid5(uuid.NAMESPACE_OID, str(i))),
        (vector / np.linalg.norm(vector)).tolist(),
        {
            "unit": unit,
            "doc_id": f"{unit}:{i}",
            CONTENT_HASH: f"h{i}",
            "role": "user" if i % 2 else "assistant",
            "task_id": f"t{i % 3}",
            **payload,
        },
    )


def test_fresh_store_answers_before_the_collection_exists(open_store):
    store = open_store()
    assert store.count() == 0 and store.units() == {} and store.unit_hashes("u1") == {}
    assert store.search([1.0] * DIM) == [] and store.retrieve(["00000000-0000-0000-0000-000000000000"]) == []


def test_collection_is_created_with_payload_indexes(open_store, monkeypatch):
    store = open_store()
    if open_store.backend == "server":
        # qdrant-client's in-memory mode accepts payload indexes but keeps none (a server does): record
        # what the store asks of the client instead.
        asked = {}
        create = store.client.create_payload_index
        monkeypatch.setattr(
            store.client,
            "create_payload_index",
            lambda c, name, schema, **kw: (
                asked.__setitem__(name, schema.value),
                create(c, name, schema, **kw),
            ),
        )
        store.payload_indexes = lambda: asked
    store.ensure_collection(DIM)
    indexes = store.payload_indexes()
    assert set(indexes) == set(KEYWORD_FIELDS) | set(INTEGER_FIELDS)
    assert all(indexes[f].lower() == "keyword" for f in KEYWORD_FIELDS)
    assert all(indexes[f].lower() == "integer" for f in INTEGER_FIELDS)


def test_upsert_round_trips_and_same_ids_never_duplicate(open_store):
    store = open_store()
    store.ensure_collection(DIM)
    points = [point(i) for i in range(10)]
    store.upsert(points)
    store.upsert(points)  # a re-run writes the same deterministic ids again
    assert store.count() == 10
    [got] = store.retrieve([points[3].id], with_vectors=True)
    assert got.payload == points[3].payload
    assert np.allclose(got.vector, points[3].vector, atol=1e-6)


def test_delete_and_unit_hashes_over_many_pages(open_store):
    store = open_store()
    store.ensure_collection(DIM)
    points = [point(i, unit="big") for i in range(2500)] + [point(10_000 + i, unit="small") for i in range(5)]
    for i in range(0, len(points), 256):
        store.upsert(points[i : i + 256])
    hashes = store.unit_hashes("big")
    assert len(hashes) == 2500 and hashes[points[7].id] == "h7"
    assert store.units() == {"big": 2500, "small": 5}
    store.delete([p.id for p in points[:100]])
    assert store.count("big") == 2400 and store.count() == 2405


def test_search_is_nearest_first_and_honours_filters(open_store):
    store = open_store()
    store.ensure_collection(DIM)
    points = [point(i, unit="a" if i < 20 else "b") for i in range(40)]
    store.upsert(points)
    target = points[25]
    hits = store.search(target.vector, limit=3)
    assert hits[0].id == target.id and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert hits[0].score >= hits[1].score >= hits[2].score
    assert all(h.payload["unit"] == "a" for h in store.search(target.vector, limit=5, filters={"unit": "a"}))
    filtered = store.search(target.vector, limit=50, filters={"role": "user", "task_id": "t1"})
    assert filtered and all(h.payload["role"] == "user" and h.payload["task_id"] == "t1" for h in filtered)


def test_dimension_mismatch_is_an_error_not_a_recreate(open_store):
    store = open_store()
    store.ensure_collection(DIM)
    store.upsert([point(1)])
    with pytest.raises(CollectionMismatchError, match=f"{DIM}-d"):
        store.ensure_collection(DIM * 2)
    assert store.count() == 1


def test_edge_data_survives_reopen_and_mismatch_is_checked_on_open(tmp_path):
    with EdgeStore(tmp_path / "edge") as store:
        store.ensure_collection(DIM)
        store.upsert([point(i) for i in range(5)])
    with EdgeStore(tmp_path / "edge") as store:
        assert store.count() == 5
        with pytest.raises(CollectionMismatchError):
            store.ensure_collection(16)


def test_edge_second_process_waits_then_names_the_holder(tmp_path):
    folder = tmp_path / "edge"
    script = textwrap.dedent(f"""
        from indexer_pipeline.vectorstore.edge import EdgeStore
        from indexer_pipeline.vectorstore.base import StoreBusyError
        try:
            EdgeStore({str(folder)!r}, wait_s=0.5).close()
            print("opened")
        except StoreBusyError as exc:
            print("busy:", exc)
    """)
    holder = EdgeStore(folder)
    holder.ensure_collection(DIM)
    busy = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    import os

    assert busy.stdout.startswith("busy:") and f"process {os.getpid()}" in busy.stdout, busy.stderr
    holder.close()
    free = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert free.stdout.strip() == "opened", free.stderr


def test_edge_same_process_second_open_is_busy_too(tmp_path):
    with EdgeStore(tmp_path / "edge"), pytest.raises(StoreBusyError):
        EdgeStore(tmp_path / "edge", wait_s=0.2)
