"""Indexing streams in bounded batches (issue 12, item 2): each batch of units is read, embedded, written,
made durable and recorded in the catalog before the next batch is written, at most one batch is read
ahead (embedded while the one before is written), and the vector index is built once, at the end. Real Qdrant Edge store (watched at each persist), the embeddings simulator."""

from __future__ import annotations

import pytest

from indexer_pipeline.catalog import Catalog
from indexer_pipeline.config import Settings
from indexer_pipeline.integrity import verify_units
from indexer_pipeline.pipeline import Indexer
from indexer_pipeline.vectorstore.edge import EdgeStore

from .conftest import TEST_DIMENSIONS, note_folders, simulator_settings

UNITS = 23
BATCH_UNITS = 4
BATCH_CHUNKS = 7


def docs_in(unit: int) -> int:
    return unit % 5 + 1  # 1 to 5 one-chunk documents: batches close on either bound


@pytest.fixture
def settings(tmp_path, simulator) -> Settings:
    corpus = tmp_path / "corpus"
    note_folders(corpus, [docs_in(u) for u in range(UNITS)])
    return simulator_settings(simulator, tmp_path / "data", corpus_dirs=[corpus])


class WatchedStore(EdgeStore):
    """A real store that notes, at each persist, what the catalog and the store hold."""

    def __init__(self, settings: Settings):
        super().__init__(settings.edge_path, settings.collection)
        self.catalog = Catalog(settings.catalog_path)  # a second connection, as the sensor's would be
        self.events: list[tuple] = []

    def persist(self) -> None:
        super().persist()
        units = self.catalog.units()
        self.events.append(
            (
                "persist",
                {u.key for u in units},  # read
                {u.key for u in units if u.indexed_at},  # recorded as indexed
                self.units(),  # unit -> points, durable now
            )
        )

    def optimize(self) -> None:
        self.events.append(("optimize",))
        super().optimize()

    def close(self) -> None:
        self.catalog.close()
        super().close()


def batches_of(events: list[tuple]) -> tuple[list[list[str]], list[list[str]]]:
    """The units each persist made durable, and those read at that moment but not yet written. Checks
    on the way that each batch was recorded as indexed before the next was written."""
    batches, read_ahead, recorded = [], [], set()
    for _, read, indexed, durable in events:
        assert indexed == recorded, "the previous batch was not recorded as indexed before the next"
        batch = sorted(set(durable) - recorded)
        batches.append(batch)
        read_ahead.append(sorted(read - recorded - set(batch)))
        recorded |= set(batch)
    return batches, read_ahead


def test_index_streams_bounded_batches_each_durable_before_the_next(settings):
    store = WatchedStore(settings)
    try:
        with Indexer(settings, store=store, batch_units=BATCH_UNITS, batch_chunks=BATCH_CHUNKS) as ix:
            keys = [u.key for u in ix.units()]
            read, embedded, written = ix.index(ix.units())
            report = verify_units(ix.catalog, store, keys, TEST_DIMENSIONS, sample=5)
            indexed = {u.key for u in ix.catalog.units() if u.indexed_at}
    finally:
        store.close()
    chunks = {k: docs_in(int(k.rsplit("-", 1)[1])) for k in keys}
    assert len(keys) == UNITS and sum(chunks.values()) == 3 * UNITS - 3  # 23 units: 1..5 docs each

    persists = [e for e in store.events if e[0] == "persist"]
    assert store.events[-1] == ("optimize",) and store.events.count(("optimize",)) == 1
    batches, read_ahead = batches_of(persists)
    assert [k for b in batches for k in b] == keys  # in order, each unit in exactly one batch
    # The next batch is read (and embedded, in the background) while one is written; never more.
    assert read_ahead == batches[1:] + [[]]
    for i, batch in enumerate(batches):
        held = sum(chunks[k] for k in batch)
        assert len(batch) <= BATCH_UNITS
        assert held - chunks[batch[-1]] < BATCH_CHUNKS  # it closed at the unit that reached the bound
        if i < len(batches) - 1:  # every batch but the last closed on a bound
            assert len(batch) == BATCH_UNITS or held >= BATCH_CHUNKS
        durable = persists[i][3]
        assert all(durable.get(k) == chunks[k] for k in batch), "a batch's points were not all durable"
    assert len(batches) >= UNITS // BATCH_UNITS + 1
    assert {len(b) for b in batches} != {BATCH_UNITS}, "the chunk bound never closed a batch"

    # Every unit ended indexed, and the reports add up over the batches.
    assert indexed == set(keys) and report.complete
    assert read.units == embedded.units == written.units == UNITS
    assert read.chunks == embedded.chunks == written.upserted == sum(chunks.values())
    assert embedded.embedded == sum(chunks.values()) and written.success_rate == 1.0


def test_write_units_over_a_range_records_in_bounded_batches(settings):
    """The Dagster path: `qdrant_collection` writes a partition range with `write_units`."""
    with Indexer(settings) as ix:
        keys = [u.key for u in ix.units()]
        ix.read_units(ix.units())
        ix.embed_units(keys)
    store = WatchedStore(settings)
    try:
        with Indexer(settings, store=store, batch_units=BATCH_UNITS, batch_chunks=BATCH_CHUNKS) as ix:
            written = ix.write_units(keys)
            indexed = {u.key for u in ix.catalog.units() if u.indexed_at}
    finally:
        store.close()
    persists = [e for e in store.events if e[0] == "persist"]
    assert store.events[-1] == ("optimize",) and store.events.count(("optimize",)) == 1
    recorded = set()
    for _, _, indexed_then, durable in persists:
        assert indexed_then == recorded  # the batches before were recorded, none of this one yet
        batch = set(durable) - recorded
        assert 0 < len(batch) <= BATCH_UNITS
        recorded |= batch
    assert len(persists) > UNITS // BATCH_UNITS
    assert indexed == recorded == set(keys) and written.upserted == 3 * UNITS - 3


def test_a_text_shared_across_batches_is_embedded_once(tmp_path, simulator):
    """While one batch embeds in the background the next is looked up in the cache: a text both hold
    (a prompt repeated in every task) waits for the answer in flight instead of being sent again."""
    corpus = tmp_path / "corpus"
    note_folders(corpus, [2] * 6)
    for folder in corpus.iterdir():
        (folder / "shared.txt").write_text("The same runbook note, copied into every folder.\n")
    settings = simulator_settings(simulator, tmp_path / "data", corpus_dirs=[corpus])
    with Indexer(settings, batch_units=2, batch_chunks=1000) as ix:
        read, embedded, written = ix.index(ix.units())
    distinct = 6 * 2 + 1
    assert read.chunks == written.upserted == 6 * 3
    assert simulator.stats()["inputs"] == embedded.stats.inputs == distinct
    assert embedded.embedded + embedded.cache_hits == 6 * 3 and embedded.failed == 0
    assert written.success_rate == 1.0
