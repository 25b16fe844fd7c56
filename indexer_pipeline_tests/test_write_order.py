"""Store first, record after (issue 10, item 9): a crash or a concurrent re-read never leaves the catalog
claiming what the store does not hold. Real Qdrant Edge stores, the embeddings simulator."""

from __future__ import annotations

import json

import pytest

from indexer_pipeline.corpus import corpus_fingerprints, find_unit
from indexer_pipeline.dagster_defs.sensors import plan_changes
from indexer_pipeline.pipeline import Indexer
from indexer_pipeline.vectorstore.edge import EdgeStore

UNIT = "doc-docs"


class FlushFails(EdgeStore):
    """A store whose flush dies, as a process killed or a disk full at that moment would."""

    def flush(self) -> None:
        raise OSError("disk full")


class ReReadDuringUpsert(EdgeStore):
    """A store that lets another run re-read the unit after the write stage read its chunks."""

    def __init__(self, *args, re_read, **kwargs):
        super().__init__(*args, **kwargs)
        self.re_read = re_read

    def upsert(self, points) -> None:
        if self.re_read:
            self.re_read()
            self.re_read = None
        super().upsert(points)


def test_remove_units_keeps_the_record_until_the_store_has_flushed(corpus_env):
    with Indexer(corpus_env) as ix:
        ix.index([find_unit(corpus_env.corpus_dirs, UNIT)])
        points = ix.store().count(UNIT)
    assert points > 0
    store = FlushFails(corpus_env.edge_path, corpus_env.collection)
    try:
        with Indexer(corpus_env, store=store) as ix, pytest.raises(OSError, match="disk full"):
            ix.remove_units([UNIT])
        with Indexer(corpus_env, store=store) as ix:
            # The points may still be there: the catalog must still know the unit, so a retry deletes them.
            assert ix.catalog.unit(UNIT) is not None and ix.catalog.chunks(UNIT)
    finally:
        store.close()
    with Indexer(corpus_env) as ix:  # the retry completes the deletion and only then forgets the unit
        ix.remove_units([UNIT])
        assert ix.store().count(UNIT) == 0 and ix.catalog.unit(UNIT) is None


def test_mark_indexed_records_the_fingerprint_of_what_was_written(corpus_env):
    unit = find_unit(corpus_env.corpus_dirs, UNIT)
    with Indexer(corpus_env) as ix:
        ix.read_units([unit])
        ix.embed_units([UNIT])
        read_at = ix.catalog.unit(UNIT).fingerprint
    edited = corpus_env.corpus_dirs[0] / "docs" / "getting-started.md"

    def re_read() -> None:  # another run re-reads the edited unit while this one writes
        edited.write_text(edited.read_text() + "\n\nA paragraph added while the index was written.\n")
        with Indexer(corpus_env) as other:
            other.read_units([unit])

    store = ReReadDuringUpsert(corpus_env.edge_path, corpus_env.collection, re_read=re_read)
    try:
        with Indexer(corpus_env, store=store) as ix:
            ix.write_units([UNIT])
            record = ix.catalog.unit(UNIT)
            texts = [p.payload["text"] for p in store.retrieve(list(store.unit_hashes(UNIT)))]
    finally:
        store.close()
    assert "added while the index was written" not in json.dumps(texts)  # the old chunks were written
    assert record.fingerprint != read_at  # the re-read landed
    assert record.indexed_fingerprint == read_at  # what was written, not what the catalog holds now
    # So the change is still pending, and the sensor requests the unit again.
    now = {UNIT: corpus_fingerprints(corpus_env.corpus_dirs)[UNIT]}
    with Indexer(corpus_env) as ix:
        _, changed, _ = plan_changes(now, [UNIT], ix.catalog.indexed_fingerprints())
    assert changed == [UNIT]
