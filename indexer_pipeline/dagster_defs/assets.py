"""The three software-defined assets, partitioned by source unit.

Each keeps its data in a real store (catalog, embedding cache, Qdrant) and returns a
MaterializeResult with numeric metadata the UI plots over time. A single-run backfill policy
makes "materialize all" one run over a range of units rather than one run per unit.
"""

import dagster as dg

from ..models import Rejection
from .checks import (
    COLLECTION_CHECKS,
    EMBEDDING_CHECKS,
    READ_CHECKS,
    collection_check_results,
    embedding_check_results,
    rejected_files_result,
    scoped,
)
from .partitions import source_units
from .resources import IndexerResource

MAX_REJECTION_ROWS = 50


def rejection_table(rejected: list[Rejection]) -> str:
    if not rejected:
        return "No file was rejected."
    rows = [f"| `{r.unit}` | `{_cell(r.path)}` | {_cell(r.reason)} |" for r in rejected[:MAX_REJECTION_ROWS]]
    more = len(rejected) - MAX_REJECTION_ROWS
    tail = [f"\n…and {more} more (`indexer-pipeline status` lists all)."] if more > 0 else []
    return "\n".join(["| unit | file | reason |", "|---|---|---|", *rows, *tail])


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


@dg.asset(
    partitions_def=source_units,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="indexing",
    kinds={"python"},
    check_specs=READ_CHECKS,
    description="Documents read from each source unit of the corpus: redacted, chunked, kept in the catalog. "
    "A unit whose files and reader are as at its last read is not read again.",
)
def raw_documents(context: dg.AssetExecutionContext, indexer: IndexerResource) -> dg.MaterializeResult:
    with indexer.indexer(context) as ix:
        units, gone = ix.resolve(context.partition_keys)
        report = ix.read_units(units)
    if gone:
        # Not deleted here: a range run or "Materialize all" over a vanished folder would wipe it. The
        # change sensor and the clean-up delete whole units, under the deletion guard.
        context.log.info(
            f"{len(gone)} units are no longer in the corpus and keep their points until the deletion guard "
            f"removes them: {', '.join(gone[:10])}"
        )
    return dg.MaterializeResult(
        metadata={
            **report.metadata(),
            "units_gone": len(gone),
            "rejected_files": dg.MetadataValue.md(rejection_table(report.rejected)),
        },
        check_results=scoped([rejected_files_result(report)], context.partition_keys),
    )


@dg.asset(
    deps=[raw_documents],
    partitions_def=source_units,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="indexing",
    # Kinds are fixed at load, the provider per run (run config, or `auto` by key): name none of them.
    kinds={"python"},
    check_specs=EMBEDDING_CHECKS,
    pool="embedding_api",
    description="An embedding for every chunk, kept in the persistent embedding cache; only new text is embedded.",
)
def document_embeddings(context: dg.AssetExecutionContext, indexer: IndexerResource) -> dg.MaterializeResult:
    with indexer.indexer(context) as ix:
        report = ix.embed_units(context.partition_keys)
        model = f"{ix.embedder.provider}/{ix.embedder.model} ({ix.embedder.dimensions}-d)"
    if report.failed:
        # Loud, with a count: the old system's swallowed errors made runs "succeed" with no data.
        context.log.error(f"{report.failed} of {report.chunks} chunks could not be embedded")
    return dg.MaterializeResult(
        metadata={**report.metadata(), "model": model},
        check_results=scoped(embedding_check_results(report), context.partition_keys),
    )


@dg.asset(
    deps=[document_embeddings],
    partitions_def=source_units,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="indexing",
    kinds={"qdrant"},
    pool="qdrant_writer",
    check_specs=COLLECTION_CHECKS,
    description="The Qdrant collection: one point per chunk, stale points deleted after new ones are written.",
)
def qdrant_collection(context: dg.AssetExecutionContext, indexer: IndexerResource) -> dg.MaterializeResult:
    with indexer.indexer(context) as ix:
        report = ix.write_units(context.partition_keys)
        collection = ix.settings.collection
    metadata = {**report.metadata(), "collection": collection}
    if report.failed_units:
        # Loud, with a count: the old system's swallowed errors made runs "succeed" with no data.
        context.log.error(
            f"{report.documents_seen - report.documents_indexed} of {report.documents_seen} documents "
            f"were not indexed, in {len(report.failed_units)} units: {', '.join(report.failed_units[:20])}"
        )
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=scoped(collection_check_results(report), context.partition_keys),
    )
