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
from indexer_pipeline.embeddings.simulator import EmbeddingSimulator
from indexer_pipeline.sparse import bm25_document, bm25_query
from indexer_pipeline.vectorstore import edge, open_store, qdrant_server
from indexer_pipeline.vectorstore.base import (
    BOOL_FIELDS,
    CONTENT_HASH,
    INTEGER_FIELDS,
    KEYWORD_FIELDS,
    CollectionMismatchError,
    Range,
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


WORDS = "quota ledger billing invoice retry worker queue shard cache token limit usage report".split()


def point(i: int, unit: str = "u1") -> StoredPoint:
    vector = np.random.default_rng(i).standard_normal(DIM)
    text = " ".join(WORDS[(i * k) % len(WORDS)] for k in (1, 3, 5)) + f" item{i}"
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
            "text": text,
            "timestamp": 1_700_000_000_000 + i * 60_000,
            "has_errors": i % 4 == 0,
            "tool_names": [["read_file"], ["execute_command", "read_file"], []][i % 3],
            "source_root": "/roots/a" if i % 5 else "/roots/b",
        },
        sparse=bm25_document(text),
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
    assert fresh.query([1.0] * DIM, bm25_query("quota")) == [] and fresh.query_groups([1.0] * DIM) == []
    assert fresh.vector_params() is None and fresh.payload_indexes() == {}
    assert fresh.sparse_modifier() is None


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
    assert fresh.sparse_modifier() == "idf"
    assert fresh.payload_indexes() == {
        **{name: "Keyword" for name in KEYWORD_FIELDS},
        **{name: "Integer" for name in INTEGER_FIELDS},
        **{name: "Bool" for name in BOOL_FIELDS},
    }
    assert {"tool_names", "source_root", "has_errors", "timestamp"} <= set(fresh.payload_indexes())


def test_upsert_round_trips_and_the_same_ids_never_duplicate(store):
    points = [point(i) for i in range(10)]
    store.upsert(points)
    store.upsert(points)  # a re-run writes the same deterministic ids again
    store.flush()
    assert store.count() == 10
    [got] = store.retrieve([points[3].id], with_vectors=True)
    assert got.id == points[3].id and got.payload == points[3].payload
    assert np.allclose(got.vector, points[3].vector, atol=1e-6)
    assert got.sparse.indices == points[3].sparse.indices
    assert np.allclose(got.sparse.values, points[3].sparse.values, atol=1e-6)
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


def test_exact_search_is_numpys_cosine_ranking_and_the_index_figures_answer(store):
    """The reference index_recall measures against: every point scored on its original vector."""
    points = [point(i) for i in range(60)]
    store.upsert(points)
    store.flush()
    matrix = np.array([p.vector for p in points])
    query = points[0].vector
    scores = matrix @ np.array(query)  # unit vectors: the dot product is the cosine
    expected = [points[i].id for i in np.argsort(-scores)[:10]]
    hits = store.exact_search(query, limit=10)
    assert [h.id for h in hits] == expected
    assert [h.score for h in hits] == pytest.approx(sorted(scores, reverse=True)[:10], abs=1e-5)
    # qdrant-client's local mode has no index and keeps no quantization: it says so.
    assert store.exact_only == (not isinstance(store, EdgeStore))
    assert store.quantization() == ("none" if store.exact_only else "int8")
    # Edge counts the sparse vectors, which are always indexed; the dense ones are below the threshold.
    assert store.indexed_vectors() == (0 if store.exact_only else len(points))


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


# -- hybrid search, groups and filters (issue 11) ------------------------------------------------------

TEXT_DIM = 64  # the test suite's embedding size (conftest.TEST_DIMENSIONS)
IDENTIFIER = "QuotaLedgerReconciler"


def embed(text: str) -> list[float]:
    """The embedder the tests index with: the simulator's bag-of-words vectors, no server needed."""
    return EmbeddingSimulator(dimensions=TEXT_DIM).vector(text, TEXT_DIM).tolist()


VOCABULARY = WORDS + [f"{w}{k}" for w in WORDS for k in range(20)]


def chunk_points(n: int, units: int) -> list[StoredPoint]:
    """`n` chunks of 150 words over `units` units (distinct texts: no two share a vector); chunk 17
    alone names IDENTIFIER."""
    rng = np.random.default_rng(11)
    points = []
    for i in range(n):
        words = list(rng.choice(VOCABULARY, size=150))
        if i == 17:
            words[30] = IDENTIFIER
        text = " ".join(words)
        base = point(i, unit=f"unit{i % units}")
        points.append(StoredPoint(base.id, embed(text), {**base.payload, "text": text}, bm25_document(text)))
    return points


@pytest.fixture
def text_store(fresh):
    fresh.ensure_collection(TEXT_DIM)
    return fresh


def test_hybrid_finds_an_exact_identifier_that_dense_alone_misses(text_store):
    points = chunk_points(40, units=8)
    text_store.upsert(points)
    target = points[17].id
    dense, sparse = embed(IDENTIFIER), bm25_query(IDENTIFIER)
    # The premise: the bag-of-words embedding of a long chunk barely leans towards one of its words.
    assert target not in [h.id for h in text_store.query(dense=dense, limit=5)]
    assert [h.id for h in text_store.query(sparse=sparse, limit=5)] == [target]
    hybrid = text_store.query(dense=dense, sparse=sparse, limit=5)
    assert hybrid[0].id == target and len(hybrid) == 5  # fused: the dense side still fills the list
    assert [h.score for h in hybrid] == sorted((h.score for h in hybrid), reverse=True)


def brute_force_groups(store, group_by, groups, group_size, **query):
    """The groups a group-by must return, from one ungrouped query over every point."""
    expected: dict[str, list[str]] = {}
    for hit in store.query(**query, limit=10_000):
        key = str(hit.payload[group_by])
        if key in expected or len(expected) < groups:
            expected.setdefault(key, [])
            if len(expected[key]) < group_size:
                expected[key].append(hit.id)
    return expected


@pytest.mark.parametrize(("groups", "group_size"), [(3, 2), (5, 4), (20, 3)])
def test_groups_return_one_row_per_unit_with_its_best_hits(text_store, groups, group_size):
    points = chunk_points(120, units=12)
    text_store.upsert(points)
    dense = embed("quota ledger retry")
    got = text_store.query_groups(dense, group_by="unit", groups=groups, group_size=group_size)
    keys = [g.key for g in got]
    assert len(keys) == len(set(keys)) == min(groups, 12)  # one row per unit
    assert all(1 <= len(g.hits) <= group_size and {h.payload["unit"] for h in g.hits} == {g.key} for g in got)
    # Dense scores do not depend on the candidate set, so the rows are exactly the brute-force ones.
    expected = brute_force_groups(text_store, "unit", groups, group_size, dense=dense)
    assert {g.key: [h.id for h in g.hits] for g in got} == expected
    assert keys == list(expected)  # best group first


def test_groups_of_sparse_and_hybrid_queries_are_one_row_per_unit(text_store):
    points = chunk_points(120, units=12)
    text_store.upsert(points)
    dense, sparse = embed(f"{IDENTIFIER} ledger"), bm25_query(f"{IDENTIFIER} ledger")
    for kwargs in ({"sparse": sparse}, {"dense": dense, "sparse": sparse}):
        got = text_store.query_groups(**kwargs, group_by="unit", groups=4, group_size=3)
        keys = [g.key for g in got]
        assert len(keys) == len(set(keys)) == 4
        assert keys[0] == points[17].payload["unit"] and got[0].hits[0].id == points[17].id
        assert all(1 <= len(g.hits) <= 3 and {h.payload["unit"] for h in g.hits} == {g.key} for g in got)
    # BM25 scores with IDF do not depend on the candidate set either, but equal-length chunks tie:
    # each row holds its unit's best scores, and no unit left out beats a row.
    got = text_store.query_groups(sparse=sparse, group_by="unit", groups=4, group_size=3)
    scores: dict[str, list[float]] = {}
    for hit in text_store.query(sparse=sparse, limit=10_000):
        scores.setdefault(hit.payload["unit"], []).append(hit.score)
    for g in got:
        assert [h.score for h in g.hits] == pytest.approx(scores[g.key][:3])
    best = [g.hits[0].score for g in got]
    assert best == sorted(best, reverse=True)
    assert all(s[0] <= best[-1] + 1e-6 for unit, s in scores.items() if unit not in {g.key for g in got})


FILTERS = [
    ({"role": "user"}, lambda p: p["role"] == "user"),
    ({"chunk_index": 7}, lambda p: p["chunk_index"] == 7),
    ({"has_errors": True}, lambda p: p["has_errors"] is True),
    ({"has_errors": False}, lambda p: p["has_errors"] is False),
    ({"tool_names": "execute_command"}, lambda p: "execute_command" in p["tool_names"]),
    ({"tool_names": ["execute_command", "read_file"]}, lambda p: bool(p["tool_names"])),
    ({"task_id": ["t0", "t2"]}, lambda p: p["task_id"] in ("t0", "t2")),
    ({"source_root": "/roots/b"}, lambda p: p["source_root"] == "/roots/b"),
    (
        {"timestamp": Range(gte=1_700_000_000_000 + 10 * 60_000, lte=1_700_000_000_000 + 30 * 60_000)},
        lambda p: 10 <= p["chunk_index"] <= 30,
    ),
    ({"timestamp": Range(gte=1_700_000_000_000 + 50 * 60_000)}, lambda p: p["chunk_index"] >= 50),
    ({"timestamp": Range(lte=1_700_000_000_000 + 5 * 60_000)}, lambda p: p["chunk_index"] <= 5),
    (
        {"role": "user", "has_errors": False, "task_id": ["t1"]},
        lambda p: p["role"] == "user" and not p["has_errors"] and p["task_id"] == "t1",
    ),
]


@pytest.mark.parametrize(("filters", "keep"), FILTERS, ids=[str(f) for f, _ in FILTERS])
def test_each_filter_restricts_results_in_every_mode(text_store, filters, keep):
    points = chunk_points(60, units=6)
    text_store.upsert(points)
    wanted = {p.id for p in points if keep(p.payload)}
    assert 0 < len(wanted) < len(points)
    dense, sparse = embed("quota ledger"), bm25_query("quota ledger")
    # Every point matches the dense query with some score (and a hybrid one through its dense side):
    # a limit above the count returns exactly the points the filter keeps; the sparse side returns
    # those that hold a term of the query.
    with_terms = {p.id for p in points if set(p.sparse.indices) & set(sparse.indices)}
    assert {h.id for h in text_store.query(dense=dense, limit=100, filters=filters)} == wanted
    assert {h.id for h in text_store.query(dense=dense, sparse=sparse, limit=100, filters=filters)} == wanted
    assert {h.id for h in text_store.query(sparse=sparse, limit=100, filters=filters)} == wanted & with_terms
    grouped = text_store.query_groups(dense, sparse, groups=10, group_size=100, filters=filters)
    assert {h.id for g in grouped for h in g.hits} == wanted
