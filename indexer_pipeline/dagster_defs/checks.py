"""Asset checks: the sign-off thresholds, and the integrity checks that prove nothing was lost.

The threshold checks run inside the asset's own step (the figures they judge are measured there),
so every materialization carries their results. The integrity checks are a check of their own
(`collection_integrity`): after a materialization it checks that run's units, and run alone (the
UI's Execute, the nightly schedule) it checks the whole collection, so drift made by another
client shows. The checks are not partitioned: Dagster 1.13 records per-partition check results (a
preview) only in one-unit runs, and its UI then shows every range run — "Materialize all", the
sensor's first run — as "0 / 6 Passed". Instead each result names its scope: the unit of a
one-unit run, the units that fell short in a range run, or the whole collection.
"""

import dagster as dg

from ..integrity import IntegrityReport, verify_collection, verify_units
from ..pipeline import EmbedReport, ReadReport, WriteReport
from ..thresholds import Threshold, thresholds
from .partitions import source_units
from .resources import IndexerResource

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"

EMBEDDING_CHECKS = [
    dg.AssetCheckSpec(
        "request_latency_p95",
        asset="document_embeddings",
        description=(
            "p95 latency of embedding requests, failed and refused ones included, against the sign-off "
            "thresholds (successes alone: request_latency_p95_ms_succeeded in the asset's metadata)."
        ),
    ),
    dg.AssetCheckSpec(
        "throughput",
        asset="document_embeddings",
        description=(
            "Documents embedded in the run (cache hits excluded) per second spent embedding (model "
            "loading excluded), when anything needed embedding."
        ),
    ),
    dg.AssetCheckSpec(
        "api_error_rate",
        asset="document_embeddings",
        description=(
            "Requests failed for the API's reasons (5xx, 429, timeouts, lost connections, unusable answers) "
            "/ requests sent. Requests refused for what they carried (the bisection that isolates a bad "
            "input) are not API errors."
        ),
    ),
]
READ_CHECKS = [
    dg.AssetCheckSpec(
        "rejected_files",
        asset="raw_documents",
        description="Files that cannot become documents (binary, unreadable, malformed, bad symlinks): "
        "warns when a read finds one that was not rejected before.",
    ),
]
COLLECTION_CHECKS = [
    dg.AssetCheckSpec(
        "success_rate",
        asset="qdrant_collection",
        description="Documents indexed / indexable documents (rejected files are the rejected_files check's).",
    ),
    dg.AssetCheckSpec(
        "upsert_latency_p95",
        asset="qdrant_collection",
        description="p95 latency of Qdrant upsert batches.",
    ),
]
# Runnable on their own over the whole collection (the UI's Execute, the nightly schedule), and run
# after every materialization on that run's units.
INTEGRITY_CHECKS = [
    dg.AssetCheckSpec(
        "points_match_chunks",
        asset="qdrant_collection",
        blocking=True,
        description="Every chunk has its point; no duplicate or orphan point.",
    ),
    dg.AssetCheckSpec(
        "vectors_valid",
        asset="qdrant_collection",
        blocking=True,
        description="Every stored vector: the model's dimension, finite, non-zero.",
    ),
    dg.AssetCheckSpec(
        "chunks_find_themselves",
        asset="qdrant_collection",
        description="Sampled chunks are among the top hits of a search by their own vector.",
    ),
]

_SEVERITY = {"warn": dg.AssetCheckSeverity.WARN, "error": dg.AssetCheckSeverity.ERROR}


def _judged(check: str, threshold: Threshold, value: float, extra: str = "") -> dg.AssetCheckResult:
    verdict = threshold.judge(value)
    return dg.AssetCheckResult(
        check_name=check,
        passed=verdict == "pass",
        severity=_SEVERITY.get(verdict, dg.AssetCheckSeverity.ERROR),
        metadata={"value": value, "warn_threshold": threshold.warn, "error_threshold": threshold.error},
        description=threshold.describe(value) + extra,
    )


def _nothing_to_measure(check: str, why: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(check_name=check, passed=True, metadata={"measured": False}, description=why)


def embedding_check_results(report: EmbedReport) -> list[dg.AssetCheckResult]:
    t = thresholds()
    meta = report.metadata()
    if report.stats.requests == 0:
        why = f"Nothing needed embedding: all {report.chunks} chunks came from the cache."
        return [_nothing_to_measure(spec.name, why) for spec in EMBEDDING_CHECKS]
    if report.provider == "local":
        # The sign-off thresholds are for an embeddings API; a local model's batches are CPU-bound.
        why = (
            f"The local model makes no API requests (batch latency p95 {meta['request_latency_p95_ms']:g} ms, "
            "not judged)."
        )
        latency = _nothing_to_measure("request_latency_p95", why)
    else:
        latency = _judged("request_latency_p95", t["request_latency_p95_ms"], meta["request_latency_p95_ms"])
    throughput = (
        f"; {meta['documents_embedded']} documents embedded in {meta['embedding_seconds']:g} s of embedding "
        f"({report.cache_hits} chunks from the cache)"
    )
    errors = (
        f"; {report.stats.failed_requests} of {report.stats.requests} requests failed, "
        f"{report.stats.rejected_requests} refused for what they carried (not counted)"
    )
    return [
        latency,
        _judged("throughput", t["docs_per_s"], meta["docs_per_s"], throughput),
        _judged("api_error_rate", t["error_rate"], meta["error_rate"], errors),
    ]


def rejected_files_result(report: ReadReport) -> dg.AssetCheckResult:
    """WARN once per newly rejected file, not on every run: a binary file stays rejected quietly."""
    new = report.new_rejections
    listed = "; ".join(f"{r.unit}/{r.path} ({r.reason})" for r in new[:10])
    if new:
        description = f"{len(new)} newly rejected files: {listed}"
    elif report.rejected:
        description = f"{len(report.rejected)} files cannot be indexed, all as at their last read."
    else:
        description = "No file was rejected."
    return dg.AssetCheckResult(
        check_name="rejected_files",
        passed=not new,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"files_rejected": len(report.rejected), "newly_rejected": len(new)},
        description=description,
    )


def collection_check_results(report: WriteReport) -> list[dg.AssetCheckResult]:
    t = thresholds()
    results = []
    if report.documents_seen:
        low = [
            u
            for u, (indexed, seen) in report.unit_counts.items()
            if seen and indexed / seen < t["success_rate"].warn
        ]
        extra = f"; units below the warn threshold: {', '.join(low[:20])}" if low else ""
        results.append(_judged("success_rate", t["success_rate"], round(report.success_rate, 4), extra))
    else:
        results.append(_nothing_to_measure("success_rate", "No indexable document in these units."))
    if report.upsert_latencies_ms:
        results.append(
            _judged(
                "upsert_latency_p95", t["upsert_latency_p95_ms"], report.metadata()["upsert_latency_p95_ms"]
            )
        )
    else:
        results.append(
            _nothing_to_measure("upsert_latency_p95", "Nothing needed an upsert: every point was up to date.")
        )
    return results


def _by_unit(counts: dict[str, dict[str, int]]) -> str:
    """'unit (2 missing, 1 orphan); …' for the first 20 units."""
    return "; ".join(
        f"{u} ({', '.join(f'{n} {what}' for what, n in c.items())})" for u, c in list(counts.items())[:20]
    )


def integrity_check_results(integrity: IntegrityReport) -> list[dg.AssetCheckResult]:
    points: dict[str, dict[str, int]] = {}
    for what, per_unit in (("missing", integrity.missing), ("orphan", integrity.orphans)):
        for unit, n in per_unit.items():
            points.setdefault(unit, {})[what] = n
    vectors: dict[str, dict[str, int]] = {}
    for what, per_unit in (("wrong-size", integrity.bad_dimension), ("NaN or zero", integrity.bad_values)):
        for unit, ids in per_unit.items():
            vectors.setdefault(unit, {})[what] = len(ids)
    pending = f" ({integrity.units_pending} units read but not yet written were not judged)"
    pending = pending if integrity.units_pending else ""
    return [
        dg.AssetCheckResult(
            check_name="points_match_chunks",
            passed=integrity.complete,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "points_expected": integrity.points_expected,
                "points_found": integrity.points_found,
                "units_with_missing_points": len(integrity.missing),
                "units_with_orphan_points": len(integrity.orphans),
                "units_differing": dg.MetadataValue.json(sorted(points)[:100]),
            },
            description=(
                f"All {integrity.points_expected} expected points present in {integrity.units} units, "
                f"none extra{pending}."
                if integrity.complete
                else f"Units with lost or extra points: {_by_unit(points)}"
            ),
        ),
        dg.AssetCheckResult(
            check_name="vectors_valid",
            passed=integrity.vectors_valid,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "vectors_checked": integrity.vectors_checked,
                "wrong_dimension": sum(map(len, integrity.bad_dimension.values())),
                "nan_or_zero": sum(map(len, integrity.bad_values.values())),
                "units_differing": dg.MetadataValue.json(sorted(vectors)[:100]),
            },
            description=(
                f"All {integrity.vectors_checked} stored vectors are valid{pending}."
                if integrity.vectors_valid
                else f"Units with invalid vectors: {_by_unit(vectors)}"
            ),
        ),
        dg.AssetCheckResult(
            check_name="chunks_find_themselves",
            passed=not integrity.not_found_by_self,
            metadata={"sampled": integrity.sampled, "not_found": len(integrity.not_found_by_self)},
            description=(
                f"{integrity.sampled - len(integrity.not_found_by_self)} of {integrity.sampled} sampled chunks "
                "found themselves in the top hits."
            ),
        ),
    ]


def run_units(instance: dg.DagsterInstance, tags: dict[str, str]) -> list[str] | None:
    """The units a run materializes, from its partition tags; None for a run of checks alone."""
    if "dagster/partition" in tags:
        return [tags["dagster/partition"]]
    first, last = tags.get(RANGE_START), tags.get(RANGE_END)
    if first is None or last is None:
        return None
    keys = list(instance.get_dynamic_partitions(source_units.name))
    return keys[keys.index(first) : keys.index(last) + 1]


@dg.multi_asset_check(
    specs=INTEGRITY_CHECKS,
    can_subset=True,
    pool="qdrant_writer",  # the embedded store admits one process: wait for the writer's slot
    description="Integrity of the stored points: after a materialization, of its units; run alone "
    "(the UI's Execute, the nightly schedule), of the whole collection.",
)
def collection_integrity(context: dg.AssetCheckExecutionContext, indexer: IndexerResource):
    keys = run_units(context.instance, context.run.tags)
    with indexer.indexer(context) as ix:
        store, dimension = ix.store(), ix.embedder.dimensions
        if keys is None:
            report = verify_collection(ix.catalog, store, dimension)
        else:
            report = verify_units(ix.catalog, store, keys, dimension)
    selected = {key.name for key in context.selected_asset_check_keys}
    for result in scoped(integrity_check_results(report), keys, report.units):
        if result.check_name in selected:
            yield result


def scoped(
    results: list[dg.AssetCheckResult], keys: list[str] | None, units: int = 0
) -> list[dg.AssetCheckResult]:
    """Say which units a result covers, in its description and metadata (keys None: the whole
    collection, of `units` units)."""
    if keys is None:
        scope = f"whole collection, {units} units"
    else:
        units = len(keys)
        scope = f"unit {keys[0]}" if units == 1 else f"{units} units"
    return [
        r._replace(
            description=f"[{scope}] {r.description or ''}",
            metadata={
                **r.metadata,
                "units": dg.MetadataValue.int(units),
                "scope": dg.MetadataValue.text(scope),
            },
        )
        for r in results
    ]
