"""A collection made before sparse vectors (dense only, as the code before issue 11 made it) gains the
BM25 side on `ensure_collection`, without re-embedding, on both backends; on Edge a migration killed
midway resumes on the next open."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import qdrant_edge as qe
from qdrant_client import models

from indexer_pipeline.sparse import bm25_document, bm25_query
from indexer_pipeline.vectorstore import edge, qdrant_server
from indexer_pipeline.vectorstore.base import GROUP, SPARSE_VECTOR, StoredPoint, VectorStoreError, group_of
from indexer_pipeline.vectorstore.edge import EdgeStore
from indexer_pipeline.vectorstore.qdrant_server import ServerStore

from .test_vectorstore_conformance import IDENTIFIER, TEXT_DIM, chunk_points, embed, spy_on_engine

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect")
N = 300


def legacy_points() -> list[StoredPoint]:
    return chunk_points(N, units=10)


def make_legacy_edge(folder: Path, points: list[StoredPoint]) -> None:
    """The shard as the code before sparse vectors created it: one unnamed dense vector."""
    shard = qe.EdgeShard.create(
        str(folder),
        qe.EdgeConfig(vectors={"": qe.EdgeVectorParams(size=TEXT_DIM, distance=qe.Distance.Cosine)}),
    )
    shard.update(qe.UpdateOperation.upsert_points([qe.Point(p.id, p.vector, p.payload) for p in points]))
    shard.flush()
    shard.close()


def make_legacy_server(store: ServerStore, points: list[StoredPoint]) -> None:
    """The collection as the code before sparse vectors created it: one unnamed dense vector."""
    store.client.create_collection(
        store.collection, vectors_config=models.VectorParams(size=TEXT_DIM, distance=models.Distance.COSINE)
    )
    store.client.upsert(
        store.collection, [models.PointStruct(id=p.id, vector=p.vector, payload=p.payload) for p in points]
    )


@pytest.fixture(params=["edge", "server"])
def legacy(request, tmp_path, monkeypatch):
    """(store opened on a legacy collection, its points); small pages so the fill spans several."""
    monkeypatch.setattr(edge, "MIGRATE_PAGE", 64)
    monkeypatch.setattr(qdrant_server, "MIGRATE_PAGE", 64)
    points = legacy_points()
    if request.param == "edge":
        make_legacy_edge(tmp_path / "edge", points)
        store = EdgeStore(tmp_path / "edge")
    else:
        store = ServerStore(":memory:")
        make_legacy_server(store, points)
    with store:
        yield store, points


def assert_migrated(store, points: list[StoredPoint]) -> None:
    got = {p.id: p for p in store.retrieve([p.id for p in points], with_vectors=True)}
    assert set(got) == {p.id for p in points} and store.count() == len(points)
    for p in points:
        assert np.allclose(got[p.id].vector, p.vector, atol=1e-6)  # the dense side untouched
        assert got[p.id].payload == {**p.payload, GROUP: group_of(p.payload)}  # the row it groups under
        expected = bm25_document(p.payload["text"])
        assert got[p.id].sparse.indices == expected.indices
        assert np.allclose(got[p.id].sparse.values, expected.values, atol=1e-6)


def test_a_collection_made_before_sparse_vectors_gains_them_without_reembedding(legacy):
    store, points = legacy
    assert (
        store.sparse_modifier() is None
        and store.retrieve([points[0].id], with_vectors=True)[0].sparse is None
    )
    store.ensure_collection(TEXT_DIM)
    assert store.sparse_modifier() == "idf" and store.vector_params() == (TEXT_DIM, "Cosine")
    assert_migrated(store, points)
    hybrid = store.query(embed(IDENTIFIER), bm25_query(IDENTIFIER), limit=5)
    assert hybrid[0].id == points[17].id
    store.ensure_collection(TEXT_DIM)  # idempotent: nothing left to fill
    assert_migrated(store, points)


def test_the_migration_scroll_fails_loudly_on_a_cursor_that_stops_moving(legacy, monkeypatch):
    store, points = legacy
    spy_on_engine(store, monkeypatch, stuck_at=points[0].id)
    with pytest.raises(VectorStoreError, match="did not advance"):
        store.ensure_collection(TEXT_DIM)


KILLED_MIDWAY = """
import os, signal, sys
from indexer_pipeline.vectorstore import edge

edge.MIGRATE_PAGE = 32
made = []
real = edge.bm25_document

def bm25_then_die(text):
    # Killed (SIGKILL: no close, no flush) while making the third page, after two were written.
    made.append(1)
    if len(made) == 70:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(text)

edge.bm25_document = bm25_then_die
edge.EdgeStore(sys.argv[1]).ensure_collection(int(sys.argv[2]))
"""


def lacking_sparse(folder: Path) -> int:
    shard = qe.EdgeShard.load(str(folder))
    try:
        return shard.count(
            qe.CountRequest(exact=True, filter=qe.Filter(must_not=[qe.HasVectorCondition(SPARSE_VECTOR)]))
        )
    finally:
        shard.close()


def test_edge_migration_killed_midway_resumes_on_the_next_open(tmp_path):
    folder = tmp_path / "edge"
    points = legacy_points()
    make_legacy_edge(folder, points)
    done = subprocess.run(
        [sys.executable, "-c", KILLED_MIDWAY, str(folder), str(TEXT_DIM)], capture_output=True, timeout=120
    )
    assert done.returncode == -9, done.stderr  # killed, as a crash would
    # The shard survived the kill with the sparse vector declared and two pages filled of ten.
    assert lacking_sparse(folder) == N - 64
    with EdgeStore(folder) as store:
        assert store.sparse_modifier() == "idf"
        store.ensure_collection(TEXT_DIM)
        assert_migrated(store, points)
    assert lacking_sparse(folder) == 0
