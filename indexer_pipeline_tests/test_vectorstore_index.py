"""The dense index on Qdrant Edge (issue 12, items 1 and 3): the optimize step builds HNSW + int8 and
leaves search results those of exact search; the index settings a shard was created with survive a
reopen, the on-disk layout (memory-mapped vectors and indexes) included; a shard created before these
settings keeps working."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
import qdrant_edge as qe

from indexer_pipeline.embeddings.simulator import EmbeddingSimulator
from indexer_pipeline.vectorstore.base import LOOKUP_FIELDS, IndexParams, StoredPoint
from indexer_pipeline.vectorstore.edge import EdgeStore

DIM = 64
POINTS = 2_000
# 2,000 x 64-d float32 is 500 KB: past this threshold, so optimize really builds a graph.
LOW_THRESHOLD = IndexParams(indexing_threshold_kb=100)


def texts(n: int, seed: int) -> list[str]:
    """Texts with structure: each mixes one of 40 topics' words with common words."""
    rng = np.random.default_rng(seed)
    topics = [[f"t{t}w{k}" for k in range(20)] for t in range(40)]
    return [
        " ".join(list(rng.choice(topics[i % 40], 12)) + [f"c{k}" for k in rng.integers(0, 300, 12)])
        for i in range(n)
    ]


def vectors(n: int, seed: int) -> list[list[float]]:
    sim = EmbeddingSimulator(dimensions=DIM)
    return [sim.vector(t, DIM).tolist() for t in texts(n, seed)]


def fill(store: EdgeStore) -> None:
    store.ensure_collection(DIM)
    store.upsert(
        [
            StoredPoint(str(uuid.uuid5(uuid.NAMESPACE_OID, str(i))), v, {"unit": f"u{i % 50}"})
            for i, v in enumerate(vectors(POINTS, seed=1))
        ]
    )


def test_optimize_builds_the_index_and_search_keeps_exact_top_hits(tmp_path):
    with EdgeStore(tmp_path / "edge", index=LOW_THRESHOLD) as store:
        fill(store)
        assert store.indexed_vectors() == 0  # written, not yet indexed
        store.flush()  # flushes, then optimizes: the segment is past the threshold
        assert store.indexed_vectors() == POINTS
        assert store.quantization() == "int8"
        recall, same_top = [], 0
        for q in vectors(50, seed=2):
            exact = [h.id for h in store.exact_search(q, 10)]
            hits = [h.id for h in store.search(q, limit=10)]
            recall.append(len(set(exact) & set(hits)) / 10)
            same_top += hits[0] == exact[0]
        assert same_top == 50
        assert np.mean(recall) >= 0.98, recall
        # A filtered search on the indexed shard still finds the unit's own points only.
        assert {h.payload["unit"] for h in store.search(q, limit=5, filters={"unit": "u7"})} == {"u7"}


def test_below_the_threshold_nothing_is_indexed(tmp_path):
    with EdgeStore(tmp_path / "edge") as store:  # the default threshold: 10 MB of vectors
        fill(store)
        store.flush()
        assert store.indexed_vectors() == 0


@pytest.mark.parametrize("created, reopened", [("int8", "none"), ("none", "int8")])
def test_index_settings_are_the_shards_own_through_a_reopen(tmp_path, created, reopened):
    folder = tmp_path / "edge"
    with EdgeStore(folder, index=IndexParams(indexing_threshold_kb=100, quantization=created)) as store:
        fill(store)
        store.flush()
        q = vectors(1, seed=3)[0]
        before = [h.id for h in store.search(q, limit=10)]
    with EdgeStore(folder, index=IndexParams(quantization=reopened)) as store:
        store.ensure_collection(DIM)
        assert store.quantization() == created  # fixed at creation: a later setting does not change it
        assert store.indexed_vectors() == POINTS
        assert [h.id for h in store.search(q, limit=10)] == before


def loaded_at_open(folder) -> set[bool]:
    """For each segment, whether Edge loads its dense vectors at open (its segment.json says
    "InRam…": an in-RAM copy of a memory-mapped file) rather than reading them on demand ("Mmap")."""
    configs = [
        json.loads(f.read_text())["config"]["vector_data"][""] for f in folder.glob("segments/*/segment.json")
    ]
    return {c["storage_type"].startswith("InRam") for c in configs}


@pytest.mark.parametrize("on_disk", [True, False])
def test_the_on_disk_layout_is_the_shards_own_and_search_stays_exact(tmp_path, on_disk):
    """Issue 12, item 3: with `on_disk` the indexed segment keeps its vectors memory-mapped (read on
    demand: a process opening the store does not load them); the layout survives a reopen with the
    other setting, and the indexed, quantized search still gives exact search's results."""
    folder = tmp_path / "edge"
    params = IndexParams(indexing_threshold_kb=100, on_disk=on_disk)
    queries = vectors(30, seed=5)
    with EdgeStore(folder, index=params) as store:
        fill(store)
        store.flush()
        before = [[h.id for h in store.search(q, limit=10)] for q in queries]
    with EdgeStore(folder, index=IndexParams(on_disk=not on_disk)) as store:
        store.ensure_collection(DIM)
        assert store.on_disk() == on_disk
        assert store.indexed_vectors() == POINTS
        assert loaded_at_open(folder) == {not on_disk}
        # The payload indexes too: mapped, not loaded at open (most of a reopen's time at 100k points).
        indexes = store._shard.info().payload_schema
        assert {str(i.params.memory) for i in indexes.values()} == {"Memory.Cold" if on_disk else "None"}
        after = [[h.id for h in store.search(q, limit=10)] for q in queries]
        exact = [[h.id for h in store.exact_search(q, 10)] for q in queries]
    assert after == before
    assert sum(a[0] == e[0] for a, e in zip(after, exact, strict=True)) == len(queries)
    assert np.mean([len(set(a) & set(e)) / 10 for a, e in zip(after, exact, strict=True)]) >= 0.98


def test_lookup_fields_get_no_hnsw_subgraphs(tmp_path):
    """Issue 12, item 1: the per-value HNSW subgraphs, which keep filtered search's recall, are built
    for the fields a search filters on and not for lookup-only ones (chunk_index, doc_id…), whose
    subgraphs cost build time and serve no search."""
    with EdgeStore(tmp_path / "edge", index=LOW_THRESHOLD) as store:
        fill(store)
        store.flush()
        indexes = store._shard.info().payload_schema
    assert {name for name, i in indexes.items() if not i.params.enable_hnsw} == LOOKUP_FIELDS
    assert {"unit", "workspace", "role", "kind", "timestamp", "has_errors"} <= {
        name for name, i in indexes.items() if i.params.enable_hnsw is not False
    }


def test_a_shard_created_before_the_index_settings_keeps_working(tmp_path):
    """A shard made by the previous version (no hnsw/quantization in its config) opens, is written,
    optimized with Edge's defaults and searched."""
    folder = tmp_path / "edge"
    config = qe.EdgeConfig(vectors={"": qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine)})
    qe.EdgeShard.create(str(folder), config).close()
    with EdgeStore(folder, index=LOW_THRESHOLD) as store:
        fill(store)
        store.flush()
        assert store.quantization() == "none"
        assert not store.on_disk()  # Edge's defaults, as it was made: loaded at open
        assert loaded_at_open(folder) == {True}
        q = vectors(1, seed=4)[0]
        assert [h.id for h in store.search(q, limit=10)] == [h.id for h in store.exact_search(q, 10)]
