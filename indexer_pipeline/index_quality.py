"""Recall of the dense index, measured: how many of the exact nearest neighbours the index's search finds.

The index (HNSW, int8 quantization rescored on the original vectors) trades exactness for speed, so
its recall is sampled rather than assumed: stored points, drawn uniformly with a seed through the
store's own reads, are each searched as search does (`store.search`) and exactly
(`store.exact_search`). Recall@10 is the share of the exact top 10 that the index's top 10 holds.
The sampled point itself is left out of both lists (it would be a free hit), and a hit that ties the
exact 10th score counts (identical texts share a vector, and ties have no order).
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass, field

from .vectorstore.base import VectorStore

RECALL_K = 10
SAMPLE = 50  # queries; recall@10 moves by 0.002 per hit missed
TIE = 1e-6  # cosine scores this close to the exact 10th count as tied with it
# Exact candidates fetched per query: the top 10, the point itself, and room for ties at the 10th.
EXACT_CANDIDATES = 3 * RECALL_K


@dataclass
class RecallReport:
    points: int = 0
    indexed_vectors: int = 0
    exact_only: bool = False  # the backend has no index: its search is exact, recall 1.0 by construction
    quantization: str = "none"
    hnsw_ef: int = 0
    recalls: list[float] = field(default_factory=list)  # one per sampled query

    @property
    def sampled(self) -> int:
        return len(self.recalls)

    @property
    def mean(self) -> float:
        return sum(self.recalls) / len(self.recalls) if self.recalls else 1.0

    @property
    def min(self) -> float:
        return min(self.recalls, default=1.0)


def sample_ids(store: VectorStore, k: int, seed: int = 0) -> list[str]:
    """`k` point ids drawn uniformly from the whole collection: positions drawn over the units' point
    counts (one facet), then each drawn unit's ids listed (only those units are read)."""
    counts = sorted(store.units().items())
    ends = list(itertools.accumulate(n for _, n in counts))
    total = ends[-1] if ends else 0
    by_unit: dict[str, list[int]] = {}
    for position in random.Random(seed).sample(range(total), min(k, total)):
        u = bisect.bisect_right(ends, position)
        by_unit.setdefault(counts[u][0], []).append(position - (ends[u] - counts[u][1]))
    ids = []
    for unit, offsets in sorted(by_unit.items()):
        listed = sorted(store.unit_hashes(unit))
        ids += [listed[o] for o in offsets if o < len(listed)]  # a unit rewritten meanwhile may be shorter
    return ids


def recall_at_k(indexed: list, exact: list, own_id: str, k: int = RECALL_K) -> float | None:
    """Share of the exact top k (the query's own point left out, ties at the k-th included) among the
    index's top k; None when the collection holds no other point."""
    exact = [h for h in exact if h.id != own_id]
    if not exact:
        return None
    wanted = min(k, len(exact))
    floor = exact[wanted - 1].score - TIE
    truth = {h.id for h in exact if h.score >= floor}
    found = [h for h in indexed if h.id != own_id][:wanted]
    return sum(h.id in truth for h in found) / wanted


def measure_recall(store: VectorStore, sample: int = SAMPLE, seed: int = 0) -> RecallReport:
    """Recall@10 of the index against exact search, over `sample` stored points used as queries."""
    report = RecallReport(
        points=store.count(),
        indexed_vectors=store.indexed_vectors(),
        exact_only=store.exact_only,
        quantization=store.quantization(),
        hnsw_ef=store.index.hnsw_ef,
    )
    for point in store.retrieve(sample_ids(store, sample, seed), with_vectors=True):
        if point.vector is None:
            continue
        indexed = store.search(point.vector, limit=RECALL_K + 1)
        recall = recall_at_k(indexed, store.exact_search(point.vector, EXACT_CANDIDATES), point.id)
        if recall is not None:
            report.recalls.append(recall)
    return report
