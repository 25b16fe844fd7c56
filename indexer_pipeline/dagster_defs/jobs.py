"""Jobs a person can launch from the UI."""

import time

import dagster as dg

from ..deletion_guard import confirm_held, describe, look, remove_absent, sync_deletions
from .partitions import register_units, source_units
from .resources import IndexerResource

index_job = dg.define_asset_job(
    "index_job",
    selection=dg.AssetSelection.groups("indexing"),
    description="Read, embed and write the selected source units.",
)


@dg.op(description="Register every source unit of the corpus as a partition, so it can be materialized.")
def register_corpus_units(context: dg.OpExecutionContext, indexer: IndexerResource) -> None:
    with indexer.indexer(context) as ix:
        keys = [u.key for u in ix.units()]
    added = register_units(context.instance, keys)
    context.log.info(f"{len(keys)} units in the corpus, {len(added)} newly registered")


@dg.job(description="Register the corpus's source units as partitions (the change sensor also does this).")
def register_units_job():
    register_corpus_units()


class RemoveUnitsConfig(dg.Config):
    unit_keys: list[str]


@dg.op(pool="qdrant_writer", description="Delete the points of units that left the corpus.")
def remove_units(context: dg.OpExecutionContext, config: RemoveUnitsConfig, indexer: IndexerResource) -> None:
    with indexer.indexer(context) as ix:
        removal = remove_absent(ix, config.unit_keys, look(ix.settings.corpus_dirs))
    back = len(config.unit_keys) - len(removal.deleted)
    context.log.info(
        f"removed {removal.points} points of {len(removal.deleted)} deleted units"
        + (f"; {back} are back in the corpus and stay" if back else "")
    )


@dg.job(description="Remove deleted source units from the collection (requested by the change sensor).")
def remove_units_job():
    remove_units()


class ConfirmDeletionsConfig(dg.Config):
    unit_keys: list[str] | None = None  # None: every held unit


@dg.op(
    pool="qdrant_writer",
    description="Delete the units whose deletion was held, if they are still absent from the corpus.",
)
def confirm_deletions(
    context: dg.OpExecutionContext, config: ConfirmDeletionsConfig, indexer: IndexerResource
) -> None:
    with indexer.indexer(context) as ix:
        removal = confirm_held(ix, look(ix.settings.corpus_dirs), config.unit_keys)
    for key in removal.deleted:
        context.instance.delete_dynamic_partition(source_units.name, key)
    context.log.info(
        f"removed {removal.points} points of {len(removal.deleted)} units; {len(removal.returned)} are back "
        f"in the corpus and stay; {len(removal.held)} still held"
    )


@dg.job(
    description="Confirm held deletions: delete the held units (all, or the listed unit_keys) still absent "
    "from the corpus. The check deletions_held says which and why."
)
def confirm_deletions_job():
    confirm_deletions()


@dg.op(
    pool="qdrant_writer",
    description="Delete points and partitions whose unit left the corpus (under the deletion guard), and "
    "cache entries past their TTL.",
)
def clean_up_index(context: dg.OpExecutionContext, indexer: IndexerResource) -> None:
    with indexer.indexer(context) as ix:
        view = look(ix.settings.corpus_dirs)
        removal = sync_deletions(ix, view)
        pruned = ix.cache.prune()
        # The deletions leave holes and small segments: merged and indexed here, off the day's runs.
        start = time.perf_counter()
        ix.store().optimize()
        optimize_s = time.perf_counter() - start
    partitions = context.instance.get_dynamic_partitions(source_units.name)
    stale = [k for k in partitions if k not in view.keys and k not in removal.held]
    for key in stale:
        context.instance.delete_dynamic_partition(source_units.name, key)
    context.log.info(
        f"{len(removal.deleted)} orphan units ({removal.points} points) removed, {len(stale)} stale partitions "
        f"deleted, {pruned} cache entries pruned, index optimized in {optimize_s:.1f} s"
    )
    if removal.held:
        context.log.error(
            f"{len(removal.held)} deletions held, nothing deleted for them: {describe(removal.held)}"
        )


@dg.job(
    description="Nightly clean-up: orphan points (under the deletion guard), stale embedding-cache entries, "
    "and the vector index optimized."
)
def clean_up_job():
    clean_up_index()
