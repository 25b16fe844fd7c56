"""Scheduled runs: a nightly reconcile that catches what the change sensor missed, the nightly
clean-up, and a nightly integrity check of the whole collection with a sample of the index's recall.

A plain schedule on a dynamic-partitioned job requests no partition, so this one chooses its
partitions itself: every unit whose files differ from what was last indexed successfully
(changed without a tick, or whose run failed).
"""

import dagster as dg

from .checks import collection_integrity
from .index_quality import index_recall
from .jobs import clean_up_job, index_job
from .resources import IndexerResource
from .sensors import change_requests, corpus_state, plan_changes


@dg.schedule(
    job=index_job,
    cron_schedule="0 3 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Nightly: re-index every registered unit whose files differ from what was indexed.",
)
def nightly_reconcile(context: dg.ScheduleEvaluationContext, indexer: IndexerResource):
    fingerprints, partitions, indexed = corpus_state(context.instance, indexer)
    _, changed, _ = plan_changes(fingerprints, partitions, indexed)
    if not changed:
        return dg.SkipReason(f"all {len(partitions)} registered units are indexed")
    # The date in the run key lets tonight re-request a change whose earlier run failed.
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    return change_requests(
        changed, fingerprints, partitions, f"reconcile-{day}:", indexer.settings().sensor_range_gap
    )


nightly_clean_up = dg.ScheduleDefinition(
    name="nightly_clean_up",  # without a name the UI shows "clean_up_job_schedule"
    job=clean_up_job,
    cron_schedule="30 3 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Nightly: remove orphan points and stale partitions, prune the embedding cache.",
)

integrity_job = dg.define_asset_job(
    "integrity_job",
    selection=dg.AssetSelection.checks(collection_integrity, index_recall),
    description="Check every point and vector of the collection against the catalog, and sample the "
    "index's recall against exact search.",
)

nightly_integrity = dg.ScheduleDefinition(
    name="nightly_integrity",
    job=integrity_job,
    cron_schedule="0 4 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Nightly: points_match_chunks, vectors_valid and chunks_find_themselves over the whole collection, "
    "and index_recall after the clean-up's optimize.",
)
