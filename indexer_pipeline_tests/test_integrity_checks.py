"""Item 13: the integrity checks run on their own over the whole collection, and find drift made by
another client (points deleted, a vector overwritten) that no materialization would have looked at."""

from __future__ import annotations

import dagster as dg

from indexer_pipeline.definitions import defs
from indexer_pipeline.pipeline import Indexer
from indexer_pipeline.vectorstore.base import StoredPoint

from .test_assets import checks

LOST_UNIT, CORRUPT_UNIT = "doc-docs", "doc-handbook"


def execute_checks_alone(instance: dg.DagsterInstance) -> tuple[bool, dict[str, dg.AssetCheckEvaluation]]:
    """What the UI's Execute and the nightly schedule launch: the checks, no asset, no partition.
    Returns whether the run succeeded (a failed blocking check fails it) and the evaluations."""
    result = defs.resolve_job_def("integrity_job").execute_in_process(instance=instance, raise_on_error=False)
    return result.success, checks(result)


def test_checks_alone_find_drift_made_by_another_client_and_name_the_units(indexed_instance, corpus_env):
    instance, keys, _ = indexed_instance
    succeeded, clean = execute_checks_alone(instance)
    assert succeeded and clean["points_match_chunks"].passed and clean["vectors_valid"].passed
    assert clean["points_match_chunks"].description.startswith(f"[whole collection, {len(keys)} units]")

    with Indexer(corpus_env) as ix:  # another client, straight through the store's API
        store = ix.store()
        lost = sorted(store.unit_hashes(LOST_UNIT))[:2]
        store.delete(lost)
        [victim] = store.retrieve([sorted(store.unit_hashes(CORRUPT_UNIT))[0]], with_vectors=True)
        store.upsert([StoredPoint(victim.id, [float("nan")] * len(victim.vector), victim.payload)])
        store.flush()

    succeeded, found = execute_checks_alone(instance)
    assert not succeeded  # both checks are blocking: the run says so too
    points, vectors = found["points_match_chunks"], found["vectors_valid"]
    assert not points.passed and points.severity == dg.AssetCheckSeverity.ERROR
    assert f"{LOST_UNIT} (2 missing)" in points.description and CORRUPT_UNIT not in points.description
    assert points.metadata["units_differing"].value == [LOST_UNIT]
    assert not vectors.passed and f"{CORRUPT_UNIT} (1 NaN or zero)" in vectors.description
    assert vectors.metadata["vectors_checked"].value == points.metadata["points_found"].value


def test_a_materialization_checks_only_its_own_units(indexed_instance, corpus_env):
    from .test_assets import materialize

    instance, _, _ = indexed_instance
    with Indexer(corpus_env) as ix:
        store = ix.store()
        store.delete(sorted(store.unit_hashes(LOST_UNIT))[:1])
        store.flush()
    evaluation = checks(materialize(instance, [CORRUPT_UNIT]))["points_match_chunks"]
    assert evaluation.passed and evaluation.description.startswith(f"[unit {CORRUPT_UNIT}]")
