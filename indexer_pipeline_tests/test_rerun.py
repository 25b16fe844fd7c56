"""An unchanged re-run costs only what it must (issue 12, item 3): a unit whose files are as at its last
read, and whose last write is the one it would get now, is neither embedded nor written, and the store is
not scrolled for it. Every reason a unit must still be written although its files did not change is
checked too. Real Qdrant Edge store (its calls counted), the embeddings simulator, `Indexer.index` as the
CLI calls it."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest

from indexer_pipeline import pipeline
from indexer_pipeline.config import Settings
from indexer_pipeline.corpus import discover_units
from indexer_pipeline.embeddings.cache import EmbeddingCache
from indexer_pipeline.pipeline import Indexer
from indexer_pipeline.vectorstore.base import CollectionMismatchError
from indexer_pipeline.vectorstore.edge import EdgeStore

from .conftest import TEST_DIMENSIONS, note_folders, simulator_settings

UNITS = 6
DOCS = 3  # one chunk each
CHUNKS = UNITS * DOCS


@pytest.fixture
def settings(tmp_path, simulator) -> Settings:
    corpus = tmp_path / "corpus"
    note_folders(corpus, [DOCS] * UNITS)
    return simulator_settings(simulator, tmp_path / "data", corpus_dirs=[corpus])


class CountingStore(EdgeStore):
    """A real store that counts the calls a re-run could make per unit."""

    def __init__(self, settings: Settings, fail_upserts: bool = False):
        super().__init__(settings.edge_path, settings.collection)
        self.calls: Counter = Counter()
        self.scrolled: list[str] = []
        self.fail_upserts = fail_upserts

    def upsert(self, points) -> None:
        self.calls["upsert"] += 1
        if self.fail_upserts:
            raise RuntimeError("the process stops here: read and embedded, not written")
        super().upsert(points)

    def delete(self, ids) -> None:
        self.calls["delete"] += 1
        super().delete(ids)

    def unit_hashes(self, unit: str) -> dict[str, str]:
        self.scrolled.append(unit)
        return super().unit_hashes(unit)

    def retrieve(self, ids, with_vectors: bool = False):
        self.calls["retrieve"] += 1
        return super().retrieve(ids, with_vectors)


@pytest.fixture
def renewals(monkeypatch) -> Counter:
    """Calls of the embedding cache's hit renewal, over every cache a test opens."""
    counts: Counter = Counter()
    renew = EmbeddingCache.renew

    def counted(self, keys):
        counts["renew"] += 1
        return renew(self, keys)

    monkeypatch.setattr(EmbeddingCache, "renew", counted)
    return counts


def run(settings: Settings, **store_options):
    """`Indexer.index` over the whole corpus, as the CLI runs it; returns the reports and the store."""
    store = CountingStore(settings, **store_options)
    try:
        with Indexer(settings, store=store) as ix:
            read, embedded, written = ix.index(discover_units(settings.corpus_dirs))
    finally:
        store.close()
    return read, embedded, written, store


def requests(simulator) -> int:
    return simulator.stats()["requests"]


def test_an_unchanged_rerun_embeds_writes_and_scrolls_nothing(settings, simulator, renewals):
    first = run(settings)
    assert first[2].upserted == CHUNKS and len(first[3].scrolled) == UNITS
    sent, renewed = requests(simulator), renewals["renew"]

    read, embedded, written, store = run(settings)

    assert read.units_unchanged == UNITS
    assert requests(simulator) == sent, "an embedding request was sent"
    assert renewals["renew"] == renewed, "the embedding cache was asked about unchanged units"
    assert store.scrolled == [], "the store was scrolled per unit"
    assert store.calls == Counter(), "the store was written or read per unit"
    assert embedded.already_indexed == embedded.chunks == CHUNKS and embedded.cache_hits == 0
    assert (written.units, written.unchanged, written.upserted, written.deleted) == (UNITS, CHUNKS, 0, 0)
    assert written.documents_indexed == written.documents_seen == CHUNKS and not written.failed_units


def test_a_unit_deleted_from_the_store_by_hand_is_written_again(settings, simulator):
    run(settings)
    gone = discover_units(settings.corpus_dirs)[2].key
    with EdgeStore(settings.edge_path, settings.collection) as store:
        store.delete(list(store.unit_hashes(gone)))
        store.persist()

    _, _, written, store = run(settings)

    assert store.scrolled == [gone], "only the unit missing points is checked"
    assert written.upserted == DOCS and written.unchanged == CHUNKS - DOCS
    with EdgeStore(settings.edge_path, settings.collection) as store:
        assert sum(store.units().values()) == CHUNKS


def test_a_wiped_store_folder_is_written_again(settings, simulator):
    run(settings)
    shutil.rmtree(settings.edge_path)

    _, _, written, _ = run(settings)

    assert (written.upserted, written.unchanged) == (CHUNKS, 0)


def test_another_collection_is_written_although_the_corpus_did_not_change(settings, simulator):
    run(settings)
    other = settings.model_copy(update={"collection": "other"})  # a store folder of its own, empty

    _, _, written, store = run(other)

    assert (written.upserted, written.unchanged) == (CHUNKS, 0) and len(store.scrolled) == UNITS
    _, _, written, store = run(other)
    assert (written.upserted, written.unchanged, store.scrolled) == (0, CHUNKS, [])


def test_another_size_is_never_taken_for_already_indexed(settings, simulator):
    run(settings)
    resized = settings.model_copy(update={"embedding_dimensions": TEST_DIMENSIONS // 2})

    with pytest.raises(CollectionMismatchError):
        run(resized)


def test_another_model_of_the_same_size_writes_every_point_again(settings, simulator):
    run(settings)
    sent = requests(simulator)

    _, embedded, written, _ = run(settings.model_copy(update={"embedding_model": "another-model"}))

    assert requests(simulator) > sent and embedded.embedded == CHUNKS
    assert (written.upserted, written.unchanged) == (CHUNKS, 0)


def test_a_unit_read_but_not_written_by_a_stopped_run_is_written_next(settings, simulator):
    run(settings)
    changed = settings.corpus_dirs[0] / "folder-004" / "doc-1.txt"
    changed.write_text("A new text: the shard moved to another node.\n")
    with pytest.raises(RuntimeError, match="not written"):
        run(settings, fail_upserts=True)

    read, _, written, _ = run(settings)

    assert read.units_unchanged == UNITS, "the stopped run had read it"
    assert (written.upserted, written.unchanged) == (1, CHUNKS - 1)
    _, _, written, store = run(settings)
    assert (written.upserted, store.scrolled) == (0, [])


def test_a_change_of_the_writing_code_compares_every_unit_with_the_store(settings, simulator, monkeypatch):
    run(settings)
    monkeypatch.setattr(pipeline, "writer_version", lambda: "another payload format")

    _, _, written, store = run(settings)

    assert len(store.scrolled) == UNITS and (written.upserted, written.unchanged) == (0, CHUNKS)


def test_a_collection_made_anew_on_a_server_is_written_again(settings, simulator):
    """qdrant-client's in-process server: each Indexer gets a new, empty collection of the same name."""
    in_process = settings.model_copy(update={"qdrant_url": ":memory:"})
    for _ in range(2):
        with Indexer(in_process) as ix:
            _, embedded, written = ix.index(discover_units(settings.corpus_dirs))
        assert (written.upserted, written.unchanged, embedded.already_indexed) == (CHUNKS, 0, 0)
