"""Proof that nothing was lost: the stored points of each unit against the catalog's chunks.

`verify_units` checks the units a run just wrote; `verify_collection` checks the whole collection,
so drift made by another client (points deleted, vectors overwritten) shows without any run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from .catalog import Catalog
from .vectorstore.base import VectorStore

SELF_SEARCH_TOP_K = 5
RETRIEVE_BATCH = 256  # vectors held in memory at once while every vector is checked


@dataclass
class IntegrityReport:
    units: int = 0
    units_pending: int = 0  # read but not yet written: their points are not judged
    points_expected: int = 0
    points_found: int = 0
    missing: dict[str, int] = field(default_factory=dict)  # unit -> chunks without a point
    orphans: dict[str, int] = field(default_factory=dict)  # unit -> points without a chunk
    vectors_checked: int = 0
    bad_dimension: dict[str, list[str]] = field(default_factory=dict)  # unit -> point ids
    bad_values: dict[str, list[str]] = field(default_factory=dict)  # unit -> NaN, infinite or all-zero
    sampled: int = 0
    not_found_by_self: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing and not self.orphans

    @property
    def vectors_valid(self) -> bool:
        return not self.bad_dimension and not self.bad_values


def verify_units(
    catalog: Catalog, store: VectorStore, keys: list[str], dimension: int, sample: int = 20, seed: int = 0
) -> IntegrityReport:
    """Compare every unit's point ids with the chunks expected; check every stored vector (right
    dimension, finite, non-zero); and search by a sample of them, each must find itself."""
    report = IntegrityReport()
    # Chunks that failed to embed keep no new point; they are counted by the success rate instead.
    stored_by_unit: dict[str, list[str]] = {}
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
        stored_by_unit[key] = sorted(stored)

    candidates = [(unit, pid) for unit, ids in stored_by_unit.items() for pid in ids]
    picked = {pid for _, pid in random.Random(seed).sample(candidates, min(sample, len(candidates)))}
    valid: list[tuple[str, str, list[float]]] = []  # (unit, point id, vector) of valid sampled points
    for start in range(0, len(candidates), RETRIEVE_BATCH):
        unit_of = {pid: unit for unit, pid in candidates[start : start + RETRIEVE_BATCH]}
        for point in store.retrieve(list(unit_of), with_vectors=True):
            pid = str(point.id)
            unit = unit_of[pid]
            report.vectors_checked += 1
            vector = np.asarray(point.vector, dtype=np.float32)
            if vector.shape != (dimension,):
                report.bad_dimension.setdefault(unit, []).append(pid)
            elif not np.all(np.isfinite(vector)) or not np.any(vector):
                report.bad_values.setdefault(unit, []).append(pid)
            elif pid in picked:
                valid.append((unit, pid, vector.tolist()))

    for unit, pid, vector in valid:
        report.sampled += 1
        hits = store.search(vector, limit=SELF_SEARCH_TOP_K, filters={"unit": unit})
        # Identical texts share a vector, so an equal score counts as finding itself.
        if not any(h.id == pid or h.score >= 0.9999 for h in hits):
            report.not_found_by_self.append(pid)
    return report


def verify_collection(
    catalog: Catalog, store: VectorStore, dimension: int, sample: int = 20, seed: int = 0
) -> IntegrityReport:
    """The whole collection: every unit whose points should match its last read, and every unit the
    store holds that the catalog does not know (all its points are orphans). Units read but not yet
    written are counted as pending, not judged."""
    records = catalog.units()
    in_sync = [r.key for r in records if r.indexed_fingerprint and r.indexed_fingerprint == r.fingerprint]
    unknown = sorted(set(store.units()) - {r.key for r in records})
    report = verify_units(catalog, store, in_sync + unknown, dimension, sample, seed)
    report.units_pending = len(records) - len(in_sync)
    return report
