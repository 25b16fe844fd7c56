"""One conformance suite for both vector stores: Qdrant Edge in a temp folder, qdrant-client in memory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from indexer_pipeline.config import Settings
from indexer_pipeline.vectorstore import edge, open_store, qdrant_server
from indexer_pipeline.vectorstore.base import (
    CONTENT_HASH,
    INTEGER_FIELDS,
    KEYWORD_FIELDS,
    CollectionMismatchError,
    StoreBusyError,
    StoredPoint,
    VectorStoreError,
)
from indexer_pipeline.vectorstore.edge import EdgeStore
from indexer_pipeline.vectorstore.qdrant_server import ServerStore

DIM = 8

# qdrant-client's in-memory mode warns that it keeps no payload indexes; the index test covers that.
pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect")


def settings_for(backend: str, data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, qdrant_url=":memory:" if backend == "server" else None)


@pytest.fixture(scope="module")
def edge_template(tmp_path_factory) -> Path:
    """A DIM-d Edge collection made once by ensure_collection. Its 13 payload indexes take 1-3 s to
    create on this disk, so the tests that do not examine creation start from a copy of it."""
    folder = tmp_path_factory.mktemp("template") / "edge"
    with EdgeStore(folder) as store:
        store.ensure_collection(DIM)
    return folder


@pytest.fixture(params=["edge", "server"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def fresh(backend, tmp_path):
    """A store as `open_store` gives it on a fresh machine: no collection yet."""
    with open_store(settings_for(backend, tmp_path), wait_s=1.0) as opened:
        yield opened


@pytest.fixture
def store(backend, tmp_path, edge_template):
    """A store with a DIM-d collection."""
    settings = settings_for(backend, tmp_path)
    if backend == "edge":
        shutil.copytree(edge_template, settings.edge_path)
    with open_store(settings, wait_s=1.0) as opened:
        opened.ensure_collection(DIM)  # checks the copy on Edge; creates the in-memory collection
        yield opened


def point(i: int, unit: str = "u1") -> StoredPoint:
    vector = np.random.default_rng(i).standard_normal(DIM)
    return StoredPoint(
        str(uuid.uuid5(uuid.NAMESPACE_OID, str(i))),
        (vector / np.linalg.norm(vector)).tolist(),
        {
            "unit": unit,
            "doc_id": f"{unit}:{i}",
            CONTENT_HASH: f"h{i}",
            "role": "user" if i % 2 else "assistant",
            "task_id": f"t{i % 3}",
            "chunk_index": i,
        },
    )


class EngineSpy:
    """Stands in for a store's engine handle (the Edge shard, the qdrant client) to record each scroll
    page, or to hand back a cursor that never moves as the old system's endless loop did."""

    def __init__(self, inner, stuck_at: str | None = None):
        self.inner, self.stuck_at, self.pages = inner, stuck_at, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def scroll(self, *args, **kwargs):
        assert len(self.pages) < 100, "the scroll never ended"
        records, next_offset = self.inner.scroll(*args, **kwargs)
        self.pages.append([str(r.id) for r in records])
        return records, self.stuck_at or next_offset


def spy_on_engine(store, monkeypatch, stuck_at: str | None = None) -> EngineSpy:
    attr = "_shard" if isinstance(store, EdgeStore) else "client"
    spy = EngineSpy(getattr(store, attr), stuck_at)
    monkeypatch.setattr(store, attr, spy)
    return spy


def test_open_store_picks_the_backend_from_settings(tmp_path):
    settings = Settings(data_dir=tmp_path)
    with open_store(settings) as embedded:
        assert isinstance(embedded, EdgeStore) and embedded.folder == settings.edge_path
    with open_store(Settings(data_dir=tmp_path, qdrant_url=":memory:")) as server:
        assert isinstance(server, ServerStore)


def test_cluster_settings_reach_the_collection_this_store_creates(tmp_path, monkeypatch):
    # No Qdrant server runs here, so this stops at qdrant-client's call (which puts both fields in
    # the create-collection request); in-memory mode accepts and ignores them.
    monkeypatch.setenv("QDRANT_SHARD_NUMBER", "6")
    monkeypatch.setenv("QDRANT_REPLICATION_FACTOR", "2")
    with open_store(Settings.from_env(data_dir=tmp_path, qdrant_url=":memory:")) as store:
        created = []
        real = store.client.create_collection
        monkeypatch.setattr(
            store.client, "create_collection", lambda *a, **kw: created.append(kw) or real(*a, **kw)
        )
        store.ensure_collection(DIM)
        store.ensure_collection(DIM)  # an existing collection is checked, never created again
    assert [(kw["shard_number"], kw["replication_factor"]) for kw in created] == [(6, 2)]


def test_fresh_store_answers_empty_before_the_collection_exists(fresh):
    assert fresh.count() == 0 and fresh.count("u1") == 0
    assert fresh.units() == {} and fresh.unit_hashes("u1") == {}
    assert fresh.search([1.0] * DIM) == [] and fresh.retrieve([point(0).id]) == []
    assert fresh.vector_params() is None and fresh.payload_indexes() == {}


def test_collection_is_created_cosine_with_payload_indexes(fresh, monkeypatch):
    if isinstance(fresh, ServerStore):
        # qdrant-client's in-memory mode accepts payload indexes but keeps none (a server keeps
        # them): record what the store asks of the client instead.
        asked = {}
        create = fresh.client.create_payload_index

        def record(collection, name, schema, **kw):
            asked[name] = schema.value.capitalize()
            return create(collection, name, schema, **kw)

        monkeypatch.setattr(fresh.client, "create_payload_index", record)
        monkeypatch.setattr(fresh, "payload_indexes", lambda: asked)
    fresh.ensure_collection(DIM)
    fresh.ensure_collection(DIM)  # idempotent on a matching collection
    assert fresh.vector_params() == (DIM, "Cosine")
    assert fresh.payload_indexes() == {
        **{name: "Keyword" for name in KEYWORD_FIELDS},
        **{name: "Integer" for name in INTEGER_FIELDS},
    }


def test_upsert_round_trips_and_the_same_ids_never_duplicate(store):
    points = [point(i) for i in range(10)]
    store.upsert(points)
    store.upsert(points)  # a re-run writes the same deterministic ids again
    store.flush()
    assert store.count() == 10
    [got] = store.retrieve([points[3].id], with_vectors=True)
    assert got.id == points[3].id and got.payload == points[3].payload
    assert np.allclose(got.vector, points[3].vector, atol=1e-6)
    assert store.retrieve([points[3].id])[0].vector is None


def test_unit_hashes_scroll_every_page_once_and_delete(store, monkeypatch):
    monkeypatch.setattr(edge, "SCROLL_PAGE", 256)
    monkeypatch.setattr(qdrant_server, "SCROLL_PAGE", 256)
    points = [point(i, unit="big") for i in range(1200)] + [point(5000 + i, unit="small") for i in range(5)]
    for i in range(0, len(points), 256):
        store.upsert(points[i : i + 256])
    spy = spy_on_engine(store, monkeypatch)
    hashes = store.unit_hashes("big")
    assert hashes == {p.id: p.payload[CONTENT_HASH] for p in points[:1200]}
    assert [len(page) for page in spy.pages] == [256, 256, 256, 256, 176]
    assert sorted(i for page in spy.pages for i in page) == sorted(hashes)  # each point on one page
    assert store.units() == {"big": 1200, "small": 5}
    store.delete([p.id for p in points[:100]] + [points[-1].id])
    assert store.count("big") == 1100 and store.count("small") == 4 and store.count() == 1104
    assert len(store.unit_hashes("big")) == 1100
    assert store.units() == {"big": 1100, "small": 4}


def test_a_scroll_cursor_that_stops_moving_is_an_error(store, monkeypatch):
    monkeypatch.setattr(edge, "SCROLL_PAGE", 2)
    monkeypatch.setattr(qdrant_server, "SCROLL_PAGE", 2)
    points = [point(i) for i in range(6)]
    store.upsert(points)
    spy_on_engine(store, monkeypatch, stuck_at=points[0].id)
    with pytest.raises(VectorStoreError, match="did not advance"):
        store.unit_hashes("u1")


def test_search_is_nearest_first_and_honours_filters(store):
    points = [point(i, unit="a" if i < 20 else "b") for i in range(40)]
    store.upsert(points)
    target = points[25]
    hits = store.search(target.vector, limit=5)
    assert hits[0].id == target.id and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    in_a = store.search(target.vector, limit=50, filters={"unit": "a"})
    assert len(in_a) == 20 and all(h.payload["unit"] == "a" for h in in_a)
    both = store.search(target.vector, limit=50, filters={"role": "user", "task_id": "t1"})
    assert {h.id for h in both} == {p.id for i, p in enumerate(points) if i % 2 and i % 3 == 1}
    [by_index] = store.search(target.vector, limit=50, filters={"unit": "a", "chunk_index": 7})
    assert by_index.id == points[7].id


def test_distance_is_cosine(store):
    points = [point(i) for i in range(10)]
    store.upsert(points)
    # Cosine ignores length: a query 3x as long still scores 1.0 (a dot product would give 3.0, and
    # a Euclidean distance would rank another point first or score other than 1).
    [hit] = store.search((3 * np.array(points[4].vector)).tolist(), limit=1)
    assert hit.id == points[4].id and hit.score == pytest.approx(1.0, abs=1e-4)
    assert store.vector_params() == (DIM, "Cosine")


def test_another_dimension_is_an_error_naming_both_never_a_recreate(store):
    store.upsert([point(1)])
    with pytest.raises(CollectionMismatchError, match=rf"{DIM}-d .*{DIM * 2}-d"):
        store.ensure_collection(DIM * 2)
    assert store.count() == 1 and store.vector_params() == (DIM, "Cosine")


def test_edge_writes_before_the_collection_exists_are_refused(tmp_path):
    with (
        EdgeStore(tmp_path / "edge") as store,
        pytest.raises(VectorStoreError, match="ensure_collection"),
    ):
        store.upsert([point(1)])


def test_edge_data_survives_close_and_reopen_and_is_checked_on_open(tmp_path, edge_template):
    folder = tmp_path / "edge"
    shutil.copytree(edge_template, folder)
    points = [point(i) for i in range(5)]
    with EdgeStore(folder) as store:
        store.upsert(points)  # no flush: Edge replays its WAL on load
    with EdgeStore(folder) as store:
        assert store.count() == 5 and store.units() == {"u1": 5}
        [got] = store.retrieve([points[2].id], with_vectors=True)
        assert got.payload == points[2].payload and np.allclose(got.vector, points[2].vector, atol=1e-6)
        with pytest.raises(CollectionMismatchError, match=rf"{DIM}-d .*16-d"):
            store.ensure_collection(16)
        assert store.count() == 5


LOCK_PROBE = """
import sys, time
from indexer_pipeline.vectorstore.base import StoreBusyError
from indexer_pipeline.vectorstore.edge import EdgeStore
start = time.monotonic()
try:
    EdgeStore(sys.argv[1], wait_s=float(sys.argv[2])).close()
    print(f"opened after {time.monotonic() - start:.2f}")
except StoreBusyError as exc:
    print(f"busy after {time.monotonic() - start:.2f}: {exc}")
"""


def probe(folder: Path, wait_s: float) -> subprocess.Popen:
    """Another process opening the store, as `status` does while a run holds it."""
    return subprocess.Popen(
        [sys.executable, "-c", LOCK_PROBE, str(folder), str(wait_s)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def outcome(process: subprocess.Popen) -> tuple[str, float, str]:
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    head, _, message = out.strip().partition(": ")
    verb, _, seconds = head.split(" ")
    return verb, float(seconds), message


def test_edge_another_process_waits_then_is_told_who_holds_the_store(tmp_path, edge_template):
    folder = tmp_path / "edge"
    shutil.copytree(edge_template, folder)
    holder = EdgeStore(folder)
    try:
        verb, waited, message = outcome(probe(folder, wait_s=0.5))
        assert verb == "busy" and waited >= 0.5
        assert f"at {folder} is held by process {os.getpid()} (" in message and "pytest" in message
        patient = probe(folder, wait_s=10.0)
        time.sleep(0.3)  # let it start waiting
    finally:
        holder.close()
    verb, waited, _ = outcome(patient)
    assert verb == "opened" and waited < 10.0


def test_edge_second_open_in_the_same_process_is_busy_too(tmp_path):
    with EdgeStore(tmp_path / "edge"), pytest.raises(StoreBusyError, match=str(os.getpid())):
        EdgeStore(tmp_path / "edge", wait_s=0.2)
