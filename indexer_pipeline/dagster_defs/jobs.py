"""Jobs a person can launch from the UI."""

import dagster as dg

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
        deleted = ix.remove_units(config.unit_keys)
    context.log.info(f"removed {deleted} points of {len(config.unit_keys)} deleted units")


@dg.job(description="Remove deleted source units from the collection (requested by the change sensor).")
def remove_units_job():
    remove_units()


@dg.op(
    pool="qdrant_writer",
    description="Delete points and partitions whose unit left the corpus, and cache entries past their TTL.",
)
def clean_up_index(context: dg.OpExecutionContext, indexer: IndexerResource) -> None:
    with indexer.indexer(context) as ix:
        in_corpus = {u.key for u in ix.units()}
        orphans = ix.orphan_units(in_corpus)
        deleted = ix.remove_units(orphans)
        pruned = ix.cache.prune()
    stale = [k for k in context.instance.get_dynamic_partitions(source_units.name) if k not in in_corpus]
    for key in stale:
        context.instance.delete_dynamic_partition(source_units.name, key)
    context.log.info(
        f"{len(orphans)} orphan units ({deleted} points) removed, {len(stale)} stale partitions deleted, "
        f"{pruned} cache entries pruned"
    )


@dg.job(description="Nightly clean-up: orphan points and stale embedding-cache entries.")
def clean_up_job():
    clean_up_index()
