"""A large write is indexed in steps on Qdrant Edge (issue 12, item 1): once the points persisted since the
last optimize fill a segment (`edge.SEGMENT_POINTS`, made tiny here), the store indexes them in a segment of
their own and lets go of its folder, so a search waiting for the store gets in between two steps rather
than after the whole build. Real Qdrant Edge store, the embeddings simulator, both write paths (the CLI's
stream and Dagster's `write_units`)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from indexer_pipeline.config import Settings
from indexer_pipeline.pipeline import Indexer
from indexer_pipeline.vectorstore import edge, index_params
from indexer_pipeline.vectorstore.edge import EdgeStore

from .conftest import note_folders, simulator_settings

UNITS = 30
DOCS = 3  # one chunk each
BATCH_UNITS = 2  # a batch of at most 6 points
STEP_POINTS = 20  # a step every 4 batches


@pytest.fixture
def settings(tmp_path, simulator) -> Settings:
    corpus = tmp_path / "corpus"
    note_folders(corpus, [DOCS] * UNITS)
    # Every step's segment passes the indexing threshold: it gets its graph in its step.
    return simulator_settings(simulator, tmp_path / "data", corpus_dirs=[corpus], indexing_threshold_kb=1)


@pytest.fixture(autouse=True)
def tiny_segments(monkeypatch):
    monkeypatch.setattr(edge, "SEGMENT_POINTS", STEP_POINTS, raising=False)


def hnsw_segments(folder: Path) -> int:
    """Segments whose dense vector has an HNSW graph (Edge's own segment.json; info() does not say)."""
    return sum('"type":"hnsw"' in f.read_text() for f in folder.glob("segments/*/segment.json"))


class StepStore(EdgeStore):
    """A real store that notes, after each optimize, the points it holds and its indexed segments."""

    def __init__(self, settings: Settings):
        super().__init__(settings.edge_path, settings.collection, index=index_params(settings))
        self.steps: list[tuple[int, int]] = []
        self.reopens = 0

    def _let_readers_in(self) -> None:
        self.reopens += 1
        super()._let_readers_in()

    def optimize(self) -> None:
        super().optimize()
        self.steps.append((self.count(), hnsw_segments(self.folder)))


@pytest.mark.parametrize("path", ["index", "write_units"])
def test_a_large_write_is_indexed_in_bounded_steps_and_searches_as_exact(settings, path):
    store = StepStore(settings)
    try:
        with Indexer(settings, store=store, batch_units=BATCH_UNITS) as ix:
            keys = [u.key for u in ix.units()]
            if path == "index":
                ix.index(ix.units())
            else:  # Dagster's range run: read and embed first, then write
                ix.read_units(ix.units())
                ix.embed_units(keys)
                ix.write_units(keys)
            indexed = {u.key for u in ix.catalog.units() if u.indexed_at}
        total = UNITS * DOCS
        assert indexed == set(keys) and store.count() == total

        counts = [0] + [points for points, _ in store.steps]
        grown = [b - a for a, b in zip(counts, counts[1:], strict=False)]  # points each optimize indexed
        *steps, last = grown
        assert len(steps) >= total // (STEP_POINTS + BATCH_UNITS * DOCS), (
            f"not indexed in steps: {store.steps}"
        )
        # Each step indexed one segment's worth of points, less than a batch more; the last one the rest.
        assert all(STEP_POINTS <= g < STEP_POINTS + BATCH_UNITS * DOCS for g in steps), grown
        assert last < STEP_POINTS + BATCH_UNITS * DOCS
        # Nobody waited for the store: it was never let go (a reopen costs about a second).
        assert store.reopens == 0
        # Each step built a graph of its own points and rebuilt none before: one more HNSW segment each.
        assert [s for _, s in store.steps[: len(steps)]] == list(range(1, len(steps) + 1)), store.steps

        # Search over the stepped segments finds what exact search finds.
        ids = [i for key in keys[::4] for i in store.unit_hashes(key)]
        for point in store.retrieve(ids, with_vectors=True):
            hits = store.search(point.vector, limit=10)
            exact = store.exact_search(point.vector, limit=10)
            assert [h.id for h in hits] == [h.id for h in exact]
    finally:
        store.close()


def test_a_reader_waiting_during_a_stepped_build_gets_the_store_between_two_steps(settings):
    """The reader (a CLI search's open, here a thread) starts waiting at the first step and must get the
    store while the write goes on, holding some points but not all; the write then finishes."""
    writer_done, reader_started = threading.Event(), threading.Event()
    seen: dict = {}

    def reader() -> None:
        reader_started.set()
        with EdgeStore(settings.edge_path, settings.collection, wait_s=120) as store:  # bounded
            seen["writer_done"], seen["points"] = writer_done.is_set(), store.count()

    thread = threading.Thread(target=reader, daemon=True)

    class FirstStepStartsTheReader(EdgeStore):
        def optimize(self) -> None:
            if not thread.is_alive() and not reader_started.is_set():
                thread.start()  # this store holds the folder here: the reader waits for it
                assert reader_started.wait(30)
            super().optimize()

    store = FirstStepStartsTheReader(settings.edge_path, settings.collection)
    try:
        with Indexer(settings, store=store, batch_units=BATCH_UNITS) as ix:
            keys = [u.key for u in ix.units()]
            ix.index(ix.units())
            writer_done.set()
            indexed = {u.key for u in ix.catalog.units() if u.indexed_at}
    finally:
        store.close()
        thread.join(150)
    assert not thread.is_alive()
    assert seen["writer_done"] is False, "the reader got the store only after the whole build"
    assert 0 < seen["points"] < UNITS * DOCS
    assert indexed == set(keys)  # the write got the store back and finished
    with EdgeStore(settings.edge_path, settings.collection) as after:
        assert after.count() == UNITS * DOCS
