"""Held deletions as an ERROR check: `deletions_held` on the collection, and the job that evaluates it.

The change sensor requests `deletions_check_job` whenever a deletion is held or a hold resolved (the
run key follows the catalog's holds), so the check shows in the UI and `alert_on_check_error` posts it.
"Execute" in the UI's checks tab evaluates it too.
"""

import time

import dagster as dg

from ..catalog import Catalog
from ..deletion_guard import CONFIRM_HINT, describe
from .resources import IndexerResource


@dg.asset_check(
    asset="qdrant_collection",
    description="No deletion of whole units waits for confirmation (a vanished folder or too many at once).",
)
def deletions_held(indexer: IndexerResource) -> dg.AssetCheckResult:
    with Catalog(indexer.settings().catalog_path) as catalog:
        held = catalog.held_deletions()
    oldest_h = (time.time() - min(h.held_at for h in held.values())) / 3600 if held else 0.0
    return dg.AssetCheckResult(
        passed=not held,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"units_held": len(held), "oldest_hold_hours": round(oldest_h, 1)},
        description=(
            f"{len(held)} units kept in the index, nothing deleted. {describe(held)}. {CONFIRM_HINT}."
            if held
            else "No deletion is held."
        ),
    )


deletions_check_job = dg.define_asset_job(
    "deletions_check_job",
    selection=dg.AssetSelection.checks(deletions_held),
    description="Evaluate the check deletions_held (requested by the change sensor when holds change).",
)
