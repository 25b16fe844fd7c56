"""The index's recall as an asset check: `index_recall` samples recall@10 of the dense index against
exact search (index_quality.py) after large writes and nightly.

After a materialization it samples only when that run upserted or deleted at least
INDEXER_RECALL_CHECK_MIN_POINTS points: a run that big is where the flush builds or rebuilds the index,
and sampling costs ~50 exact searches plus opening the store, a small share of such a run but not of a
run that wrote a few chunks. Run alone (the UI's Execute, `integrity_job` nightly, after the clean-up's
optimize) it always samples.

A recall below the threshold WARNs and never blocks: nothing is lost (the original vectors are intact,
exact search still finds everything), the first remedy is a search-time setting (QDRANT_HNSW_EF) that
takes effect at the next search, and a 50-query sample is noisy near the line. ERROR, which pages
through the alert sensor, is kept for lost or corrupt points.
"""

import dagster as dg

from ..index_quality import RECALL_K, SAMPLE, RecallReport, measure_recall
from .resources import IndexerResource

COLLECTION = dg.AssetKey("qdrant_collection")


def points_written(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """Points the run's materialization of the collection upserted or deleted; None when the run
    materialized none (the check runs alone). The collection is the run's last asset, so its last
    materialization is the run's last; a range run's materializations all carry the run's figures."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=1, ascending=False
    ).records
    if not records or records[0].asset_key != COLLECTION:
        return None
    metadata = records[0].asset_materialization.metadata
    return sum(int(metadata[k].value) for k in ("points_upserted", "points_deleted") if k in metadata)


def recall_result(report: RecallReport, threshold: float) -> dg.AssetCheckResult:
    metadata = {
        "measured": True,
        "recall_at_10": round(report.mean, 4),
        "recall_at_10_min": round(report.min, 4),
        "sampled": report.sampled,
        "points": report.points,
        "indexed_vectors": report.indexed_vectors,
        "exact_only": report.exact_only,
        "quantization": report.quantization,
        "hnsw_ef": report.hnsw_ef,
        "threshold": threshold,
    }
    if report.exact_only:
        return dg.AssetCheckResult(
            passed=True,
            metadata=metadata,
            description=f"The store has no index (qdrant-client's local mode): every search is exact, so "
            f"recall@{RECALL_K} is 1.0 by construction ({report.sampled} points sampled).",
        )
    if not report.sampled:
        return dg.AssetCheckResult(
            passed=True,
            metadata={**metadata, "measured": False},
            description=f"Nothing to sample: the collection holds {report.points} points.",
        )
    passed = report.mean >= threshold
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=metadata,
        description=(
            f"recall@{RECALL_K} of the index against exact search = {report.mean:.3f} (lowest {report.min:.2f}) "
            f"over {report.sampled} sampled points of {report.points}; pass ≥ {threshold:g}. "
            + (
                ""
                if passed
                else "Raise QDRANT_HNSW_EF (read at each search); if that is not enough, the graph is too sparse: "
                "QDRANT_HNSW_M and QDRANT_HNSW_EF_CONSTRUCT apply to a new collection."
            )
        ),
    )


@dg.asset_check(
    asset="qdrant_collection",
    pool="qdrant_writer",  # the embedded store admits one process: wait for the writer's slot
    description=f"Recall@{RECALL_K} of the dense index (HNSW, quantization, rescoring) against exact search, "
    f"on {SAMPLE} sampled points: after a run that wrote INDEXER_RECALL_CHECK_MIN_POINTS points or more, "
    "and whenever run alone.",
)
def index_recall(context: dg.AssetCheckExecutionContext, indexer: IndexerResource) -> dg.AssetCheckResult:
    with indexer.indexer(context) as ix:
        settings = ix.settings
        written = points_written(context.instance, context.run.run_id)
        if written is not None and written < settings.recall_check_min_points:
            return dg.AssetCheckResult(
                passed=True,
                metadata={"measured": False, "points_written": written},
                description=f"Not sampled: this run upserted or deleted {written} points, fewer than "
                f"INDEXER_RECALL_CHECK_MIN_POINTS = {settings.recall_check_min_points} (run alone, it samples).",
            )
        report = measure_recall(ix.store())
    result = recall_result(report, settings.check_index_recall_at_10)
    if written is None:
        return result
    return result._replace(metadata={**result.metadata, "points_written": written})
