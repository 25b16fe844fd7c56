"""Freshness: the collection must follow corpus changes within a window, so a stalled sensor shows.

A time-since-last-materialization policy would also flag a corpus that simply did not change; this
check instead measures how long the oldest unindexed change has waited (from its files' mtimes).
It runs every 15 minutes (and from the UI); `INDEXER_FRESHNESS_MINUTES` sets the window (30).
"""

import time

import dagster as dg

from ..catalog import Catalog
from ..corpus import discover_units, unit_files, unit_fingerprint
from .resources import IndexerResource


@dg.asset_check(
    asset="qdrant_collection", description="Every corpus change is indexed within the freshness window."
)
def follows_the_corpus(indexer: IndexerResource) -> dg.AssetCheckResult:
    settings = indexer.settings()
    window_s = settings.freshness_minutes * 60
    with Catalog(settings.catalog_path) as catalog:
        indexed = catalog.indexed_fingerprints()
    now = time.time()
    waiting: dict[str, float] = {}
    for unit in discover_units(settings.corpus_dirs):
        if indexed.get(unit.key) != unit_fingerprint(unit):
            newest = max((f.mtime_ns for f in unit_files(unit)), default=0) / 1e9
            waiting[unit.key] = now - newest
    stale = sorted((k for k, age in waiting.items() if age > window_s), key=waiting.get, reverse=True)
    oldest_min = max(waiting.values(), default=0.0) / 60
    return dg.AssetCheckResult(
        passed=not stale,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "units_pending": len(waiting),
            "units_stale": len(stale),
            "oldest_pending_minutes": round(oldest_min, 1),
            "window_minutes": window_s / 60,
        },
        description=(
            f"{len(waiting)} units pending, none older than {window_s / 60:g} min."
            if not stale
            else f"{len(stale)} units wait longer than {window_s / 60:g} min (oldest {oldest_min:.0f} min): "
            + ", ".join(stale[:10])
        ),
    )


freshness_job = dg.define_asset_job("freshness_job", selection=dg.AssetSelection.checks(follows_the_corpus))

freshness_schedule = dg.ScheduleDefinition(
    name="freshness_schedule",
    job=freshness_job,
    cron_schedule="*/15 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 15 minutes: is the index following the corpus?",
)
