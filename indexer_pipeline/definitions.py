"""The Dagster code location: `dagster dev` (workspace.yaml) loads `defs` from here."""

import dagster as dg

from .dagster_defs.alerts import alert_on_check_error, alert_on_run_failure
from .dagster_defs.assets import document_embeddings, qdrant_collection, raw_documents
from .dagster_defs.checks import collection_integrity
from .dagster_defs.deletions import deletions_check_job, deletions_held
from .dagster_defs.freshness import follows_the_corpus, freshness_job, freshness_schedule
from .dagster_defs.index_quality import index_recall
from .dagster_defs.jobs import (
    clean_up_job,
    confirm_deletions_job,
    index_job,
    register_units_job,
    remove_units_job,
)
from .dagster_defs.quality import quality_job, retrieval_quality
from .dagster_defs.resources import IndexerResource
from .dagster_defs.schedules import integrity_job, nightly_clean_up, nightly_integrity, nightly_reconcile
from .dagster_defs.sensors import corpus_change_sensor

defs = dg.Definitions(
    assets=[raw_documents, document_embeddings, qdrant_collection],
    asset_checks=[follows_the_corpus, collection_integrity, deletions_held, retrieval_quality, index_recall],
    jobs=[
        index_job,
        register_units_job,
        remove_units_job,
        confirm_deletions_job,
        clean_up_job,
        freshness_job,
        integrity_job,
        deletions_check_job,
        quality_job,
    ],
    sensors=[corpus_change_sensor, alert_on_run_failure, alert_on_check_error],
    schedules=[nightly_reconcile, nightly_clean_up, nightly_integrity, freshness_schedule],
    resources={"indexer": IndexerResource()},
)
