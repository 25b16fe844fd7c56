"""BM25 sparse vectors for the hybrid search, made offline by Qdrant Edge's own encoder.

`qdrant_edge` is installed whichever store is used, so a Qdrant server receives the very same vectors.
A document's vector holds its terms' BM25 term-frequency weights, a query's a weight of 1 per term;
the collection's IDF modifier supplies the corpus-wide rarity of each term at search time, so adding
a document never changes the vectors already stored. The encoder's defaults (English stemming and
stop words, lowercase, k=1.2, b=0.75) keep an identifier such as `QuotaLedgerReconciler` one token.
"""

from __future__ import annotations

import qdrant_edge as qe

from .vectorstore.base import SparseVector

_BM25 = qe.Bm25()


def _convert(vector: qe.SparseVector) -> SparseVector:
    return SparseVector(list(vector.indices), list(vector.values))


def bm25_document(text: str) -> SparseVector:
    """The sparse vector a chunk's text is stored with."""
    return _convert(_BM25.embed_document(text))


def bm25_query(text: str) -> SparseVector:
    """The sparse vector a search query is matched with."""
    return _convert(_BM25.embed_query(text))
