"""Asset checks: the sign-off thresholds, and the integrity checks that prove nothing was lost.

They run inside the asset's own step (the figures they judge are measured there), so every
materialization carries its results. The checks are not partitioned: Dagster 1.13 records
per-partition check results (a preview) only in one-unit runs, and its UI then shows every range
run — "Materialize all", the sensor's first run — as "0 / 6 Passed". Instead each result names its
scope: the unit of a one-unit run, or the units that fell short in a range run.
"""

import dagster as dg

from ..integrity import IntegrityReport
from ..pipeline import EmbedReport, WriteReport
from ..thresholds import Threshold, thresholds

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
COLLECTION_CHECKS = [
    dg.AssetCheckSpec(
        "success_rate",
        asset="qdrant_collection",
        description="Documents indexed / documents seen (rejected files count as not indexed).",
    ),
    dg.AssetCheckSpec(
        "upsert_latency_p95",
        asset="qdrant_collection",
        description="p95 latency of Qdrant upsert batches.",
    ),
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
        description="Sampled vectors: the model's dimension, finite, non-zero.",
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


def collection_check_results(report: WriteReport, integrity: IntegrityReport) -> list[dg.AssetCheckResult]:
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
        results.append(_nothing_to_measure("success_rate", "No document was seen in these units."))
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

    problems = {**{u: f"{n} missing" for u, n in integrity.missing.items()}}
    for unit, n in integrity.orphans.items():
        problems[unit] = f"{problems[unit]}, {n} orphan" if unit in problems else f"{n} orphan"
    results.append(
        dg.AssetCheckResult(
            check_name="points_match_chunks",
            passed=integrity.complete,
            metadata={
                "points_expected": integrity.points_expected,
                "points_found": integrity.points_found,
                "units_with_missing_points": len(integrity.missing),
                "units_with_orphan_points": len(integrity.orphans),
            },
            description=(
                f"All {integrity.points_expected} expected points present in {integrity.units} units, none extra."
                if integrity.complete
                else "Units with lost or extra points: "
                + "; ".join(f"{u} ({p})" for u, p in list(problems.items())[:20])
            ),
        )
    )
    bad = integrity.bad_dimension + integrity.bad_values
    results.append(
        dg.AssetCheckResult(
            check_name="vectors_valid",
            passed=not bad,
            metadata={
                "sampled": integrity.sampled,
                "wrong_dimension": len(integrity.bad_dimension),
                "nan_or_zero": len(integrity.bad_values),
            },
            description=f"{integrity.sampled} sampled vectors checked; invalid: {', '.join(bad[:10]) or 'none'}.",
        )
    )
    results.append(
        dg.AssetCheckResult(
            check_name="chunks_find_themselves",
            passed=not integrity.not_found_by_self,
            metadata={"sampled": integrity.sampled, "not_found": len(integrity.not_found_by_self)},
            description=(
                f"{integrity.sampled - len(integrity.not_found_by_self)} of {integrity.sampled} sampled chunks "
                "found themselves in the top hits."
            ),
        )
    )
    return results


def scoped(results: list[dg.AssetCheckResult], keys: list[str]) -> list[dg.AssetCheckResult]:
    """Say which units a result covers, in its description and metadata."""
    scope = f"unit {keys[0]}" if len(keys) == 1 else f"{len(keys)} units"
    return [
        r._replace(
            description=f"[{scope}] {r.description or ''}",
            metadata={
                **r.metadata,
                "units": dg.MetadataValue.int(len(keys)),
                "scope": dg.MetadataValue.text(scope),
            },
        )
        for r in results
    ]
