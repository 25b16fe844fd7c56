"""Freshness: the collection must follow corpus changes within a window, so a stalled sensor shows.

A time-since-last-materialization policy would also flag a corpus that simply did not change; this
check instead measures how long the oldest unindexed change has waited since it was first detected
(by a sensor tick or by this check, recorded in the catalog). File mtimes are not used: a file copied
in with an old mtime, or a fresh checkout, is a change detected now, not hours ago.
It runs every 15 minutes (and from the UI); `INDEXER_FRESHNESS_MINUTES` sets the window (30).
"""

import time

import dagster as dg

from ..catalog import Catalog
from ..corpus import unit_fingerprints
from ..deletion_guard import look
from .resources import IndexerResource

clock = time.time  # module-level, so a test can move it


@dg.asset_check(
    asset="qdrant_collection", description="Every corpus change is indexed within the freshness window."
)
def follows_the_corpus(indexer: IndexerResource) -> dg.AssetCheckResult:
    settings = indexer.settings()
    window_s = settings.freshness_minutes * 60
    view = look(settings.corpus_dirs)  # a missing root is reported here, not raised
    fingerprints = unit_fingerprints(view.units)
    now = clock()
    with Catalog(settings.catalog_path) as catalog:
        indexed = catalog.indexed_fingerprints()
        first_seen = catalog.note_pending({k for k, fp in fingerprints.items() if indexed.get(k) != fp}, now)
    waiting = {unit: now - seen for unit, seen in first_seen.items()}
    stale = sorted((k for k, age in waiting.items() if age > window_s), key=waiting.get, reverse=True)
    oldest_min = max(waiting.values(), default=0.0) / 60
    missing = "".join(
        f"corpus root {root} is missing (unmounted, moved or renamed?); " for root in view.missing
    )
    return dg.AssetCheckResult(
        passed=not stale and not view.missing,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "units_pending": len(waiting),
            "units_stale": len(stale),
            "oldest_pending_minutes": round(oldest_min, 1),
            "window_minutes": window_s / 60,
            "roots_missing": len(view.missing),
        },
        description=missing
        + (
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
