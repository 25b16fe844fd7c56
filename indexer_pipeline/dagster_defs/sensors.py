"""Change-triggered indexing: a sensor that compares the corpus's file metadata with what was indexed.

Where the state lives: the current fingerprint of each unit comes from file metadata (no contents
read), the fingerprint at the last successful index from the catalog. No cursor is needed, so none grows
with the corpus. Run keys carry the
fingerprint, so the same change never starts two runs; a failed run is retried by the instance's
run retries, and whatever is still pending is requested again by the nightly reconcile schedule.
"""

import hashlib
import time

import dagster as dg

from ..catalog import Catalog
from ..config import Settings
from ..corpus import corpus_fingerprints
from .jobs import index_job, remove_units_job
from .partitions import source_units
from .resources import IndexerResource


def _digest(items) -> str:
    h = hashlib.sha256()
    for key, value in items:
        h.update(f"{key}\x1f{value}\x1e".encode())
    return h.hexdigest()[:16]


def plan_changes(
    fingerprints: dict[str, str], partitions: list[str], indexed: dict[str, str | None]
) -> tuple[list[str], list[str], list[str]]:
    """(new, changed, deleted) unit keys. `partitions` keeps Dagster's order, so new keys stay contiguous."""
    registered = set(partitions)
    new = sorted(k for k in fingerprints if k not in registered)
    changed = [k for k in partitions if k in fingerprints and indexed.get(k) != fingerprints[k]]
    deleted = [k for k in partitions if k not in fingerprints]
    return new, changed, deleted


def corpus_state(instance: dg.DagsterInstance, indexer: IndexerResource):
    """(fingerprints now, registered partitions in order, fingerprints at the last successful index).
    Records when each pending change was first seen, for the freshness check."""
    settings = indexer.settings()
    fingerprints = corpus_fingerprints(settings.corpus_dirs)
    partitions = list(instance.get_dynamic_partitions(source_units.name))
    with Catalog(settings.catalog_path) as catalog:
        indexed = catalog.indexed_fingerprints()
        catalog.note_pending({k for k, fp in fingerprints.items() if indexed.get(k) != fp}, time.time())
    return fingerprints, partitions, indexed


def range_request(keys: list[str], run_key: str) -> dg.RunRequest:
    """One single-run backfill over a contiguous range of partitions."""
    return dg.RunRequest(
        job_name=index_job.name,
        run_key=run_key,
        tags={
            "dagster/asset_partition_range_start": keys[0],
            "dagster/asset_partition_range_end": keys[-1],
        },
    )


def stretches(changed: list[str], partitions: list[str]) -> list[list[str]]:
    """The changed keys as maximal runs of neighbours in partition order: no unchanged key inside."""
    changed_set = set(changed)
    groups: list[list[str]] = []
    previous_changed = False
    for key in partitions:
        if key in changed_set:
            if not previous_changed:
                groups.append([])
            groups[-1].append(key)
        previous_changed = key in changed_set
    return groups


def change_requests(
    changed: list[str], fingerprints: dict[str, str], partitions: list[str], prefix: str
) -> list[dg.RunRequest]:
    """Exactly the changed units: one run per stretch of neighbouring changed partitions (a range
    run would also re-materialize every unchanged unit between the first and the last change).
    A lone unit's run key is its fingerprint, so the same change never starts two runs."""
    return [
        dg.RunRequest(
            job_name=index_job.name,
            run_key=f"{prefix}{keys[0]}:{fingerprints[keys[0]]}",
            partition_key=keys[0],
        )
        if len(keys) == 1
        else range_request(keys, f"{prefix}range:{_digest((k, fingerprints[k]) for k in keys)}")
        for keys in stretches(changed, partitions)
    ]


@dg.sensor(
    jobs=[index_job, remove_units_job],
    minimum_interval_seconds=Settings.read("sensor_interval_s"),  # read at load: a bad value fails it
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Indexes new and changed source units and removes deleted ones from the collection.",
)
def corpus_change_sensor(context: dg.SensorEvaluationContext, indexer: IndexerResource):
    fingerprints, partitions, indexed = corpus_state(context.instance, indexer)
    new, changed, deleted = plan_changes(fingerprints, partitions, indexed)
    if not (new or changed or deleted):
        return dg.SensorResult(skip_reason=f"{len(fingerprints)} units, all indexed")

    runs: list[dg.RunRequest] = change_requests(changed, fingerprints, partitions, prefix="")
    partition_requests = []
    if new:
        # Added before run requests are resolved, in this order: one contiguous range, one run.
        partition_requests.append(source_units.build_add_request(new))
        runs.append(range_request(new, f"new:{_digest((k, fingerprints[k]) for k in new)}"))
    if deleted:
        partition_requests.append(source_units.build_delete_request(deleted))
        runs.append(
            dg.RunRequest(
                job_name=remove_units_job.name,
                run_key=f"remove:{_digest((k, '') for k in deleted)}",
                run_config={"ops": {"remove_units": {"config": {"unit_keys": deleted}}}},
            )
        )
    context.log.info(f"{len(new)} new, {len(changed)} changed, {len(deleted)} deleted units")
    return dg.SensorResult(run_requests=runs, dynamic_partitions_requests=partition_requests)
