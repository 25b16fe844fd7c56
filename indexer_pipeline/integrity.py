"""Proof that nothing was lost: the stored points of each unit against the catalog's chunks."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from .catalog import Catalog
from .vectorstore.base import VectorStore

SELF_SEARCH_TOP_K = 5


@dataclass
class IntegrityReport:
    units: int = 0
    points_expected: int = 0
    points_found: int = 0
    missing: dict[str, int] = field(default_factory=dict)  # unit -> chunks without a point
    orphans: dict[str, int] = field(default_factory=dict)  # unit -> points without a chunk
    sampled: int = 0
    bad_dimension: list[str] = field(default_factory=list)  # point ids
    bad_values: list[str] = field(default_factory=list)  # NaN, infinite or all-zero vectors
    not_found_by_self: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing and not self.orphans


def verify_units(
    catalog: Catalog, store: VectorStore, keys: list[str], dimension: int, sample: int = 20, seed: int = 0
) -> IntegrityReport:
    """Compare every unit's point ids with the chunks expected, then check a sample of vectors:
    right dimension, finite and non-zero, and each found among the top hits of a search by itself."""
    report = IntegrityReport()
    # Chunks that failed to embed keep no new point; they are counted by the success rate instead.
    candidates: list[str] = []
    for key in keys:
        failed = set(catalog.chunk_errors(key))
        expected = {c.point_id for c in catalog.chunks(key)} - failed
        stored = set(store.unit_hashes(key))
        report.units += 1
        report.points_expected += len(expected)
        report.points_found += len(stored & expected)
        if expected - stored:
            report.missing[key] = len(expected - stored)
        if stored - expected - failed:
            report.orphans[key] = len(stored - expected - failed)
        candidates.extend(sorted(stored & expected))

    picked = random.Random(seed).sample(candidates, min(sample, len(candidates)))
    for point in store.retrieve(picked, with_vectors=True):
        report.sampled += 1
        vector = np.asarray(point.vector, dtype=np.float32)
        if vector.shape != (dimension,):
            report.bad_dimension.append(point.id)
            continue
        if not np.all(np.isfinite(vector)) or not np.any(vector):
            report.bad_values.append(point.id)
            continue
        hits = store.search(vector.tolist(), limit=SELF_SEARCH_TOP_K, filters={"unit": point.payload["unit"]})
        # Identical texts share a vector, so an equal score counts as finding itself.
        if not any(h.id == point.id or h.score >= 0.9999 for h in hits):
            report.not_found_by_self.append(point.id)
    return report
