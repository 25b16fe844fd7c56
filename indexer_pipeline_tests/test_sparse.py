"""BM25 sparse vectors (issue 11): the encoder's contract, and the write stage storing one per chunk."""

from __future__ import annotations

import numpy as np
import pytest

from indexer_pipeline.config import Settings
from indexer_pipeline.pipeline import Indexer
from indexer_pipeline.sparse import bm25_document, bm25_query

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect")


def test_bm25_keeps_an_identifier_whole_and_matches_documents_to_queries():
    doc = bm25_document("The QuotaLedgerReconciler reconciles the quota ledger.")
    query = bm25_query("quotaledgerreconciler")
    assert len(query.indices) == 1 and query.values == [1.0]  # a query term weighs 1, case folded
    assert query.indices[0] in doc.indices  # the identifier is one term of the document
    assert all(v > 0 for v in doc.values) and len(doc.indices) == len(set(doc.indices))
    assert bm25_document("") == bm25_query("") and bm25_query("").indices == []
    assert bm25_document("QuotaLedgerReconciler") == bm25_document("QuotaLedgerReconciler")  # no state


@pytest.mark.parametrize("backend", ["edge", "server"])
def test_the_write_stage_stores_the_bm25_vector_of_every_chunk(corpus_env, monkeypatch, backend):
    if backend == "server":
        monkeypatch.setenv("QDRANT_URL", ":memory:")
    settings = Settings.from_env()
    with Indexer(settings) as ix:
        ix.index(ix.units())
        store = ix.store()
        ids = [p for unit in store.units() for p in store.unit_hashes(unit)]
        points = store.retrieve(ids, with_vectors=True)
    assert len(points) == len(ids) > 20
    for p in points:
        expected = bm25_document(p.payload["text"])
        assert p.sparse.indices == expected.indices and np.allclose(p.sparse.values, expected.values)
