"""Retrieval quality as an asset check: the golden query set, searched the way a user searches
(`search.search`, the default mode), judged by recall@5, MRR and nDCG@10 against WARN/ERROR thresholds.

It runs after every materialization of `qdrant_collection` and on demand (the UI's Execute,
`quality_job`). The figures are numeric metadata, so the UI plots them over time: a regression in search
quality shows like a latency regression does. Search quality belongs to the whole collection, so every
run judges the whole golden set, whatever units it wrote.
"""

import dagster as dg

from ..retrieval_quality import NDCG_K, QualityReport, evaluate, golden_set_for
from ..search import SearchRequest, search
from ..thresholds import thresholds
from .checks import _SEVERITY
from .resources import IndexerResource

MEASURES = ("recall_at_5", "mrr", "ndcg_at_10")
_ORDER = {"pass": 0, "warn": 1, "error": 2}


def _by_kind(report: QualityReport) -> str:
    rows = ["| kind | queries | recall@5 | MRR | nDCG@10 |", "|---|---|---|---|---|"]
    for kind in sorted({o.query.kind for o in report.answerable}):
        part = report.subset(lambda q, kind=kind: q.kind == kind)
        rows.append(
            f"| {kind} | {len(part.outcomes)} | {part.recall_at_5:.3f} | {part.mrr:.3f} | {part.ndcg_at_10:.3f} |"
        )
    return "\n".join(rows)


@dg.asset_check(
    asset="qdrant_collection",
    pool="qdrant_writer",  # the embedded store admits one process: wait for the writer's slot
    description="Search quality on the golden query set (the shipped one on the sample corpus, or "
    "INDEXER_EVAL_QUERIES): recall@5, MRR and nDCG@10 of the default search mode.",
)
def retrieval_quality(
    context: dg.AssetCheckExecutionContext, indexer: IndexerResource
) -> dg.AssetCheckResult:
    with indexer.indexer(context) as ix:
        try:
            golden, source = golden_set_for(ix.settings.eval_queries, ix.indexed_units())
        except ValueError as e:  # a user's file that cannot be read: say so here, not as a failed run
            return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR, description=str(e))
        if golden is None:
            return dg.AssetCheckResult(passed=True, metadata={"measured": False}, description=source)
        modes, degraded = set(), set()

        def ranking(query: str) -> list[tuple[str, float]]:
            result = search(ix, SearchRequest(query=query, limit=NDCG_K))
            modes.add(result.mode)
            if result.degraded:
                degraded.add(result.degraded)
            return [(row["unit"], row["score"]) for row in result.rows]

        report = evaluate(golden.queries, ranking)

    t = thresholds()
    values = {"recall_at_5": report.recall_at_5, "mrr": report.mrr, "ndcg_at_10": report.ndcg_at_10}
    verdicts = {name: t[name].judge(value) for name, value in values.items()}
    worst = max(verdicts.values(), key=_ORDER.get)
    misses = [f"{o.query.query!r} (found {', '.join(o.ranked[:5]) or 'nothing'})" for o in report.misses[:10]]
    auc = report.no_answer_auc
    description = (
        "; ".join(t[name].describe(value) for name, value in values.items())
        + f". {len(report.answerable)} queries from {source}, mode {'/'.join(sorted(modes))}"
        + (f", degraded: {'; '.join(sorted(degraded))}" if degraded else "")
        + (f". Missed in the top 5: {'; '.join(misses)}" if misses else ". Every golden unit in the top 5.")
    )
    return dg.AssetCheckResult(
        passed=worst == "pass",
        severity=_SEVERITY.get(worst, dg.AssetCheckSeverity.WARN),
        metadata={
            **values,
            "queries": len(report.answerable),
            "queries_missed": len(report.misses),
            # queries that must find nothing: reported apart, not judged (retrieval_quality.py says why)
            "no_answer_queries": len(report.unanswerable),
            **({"no_answer_auc": round(auc, 4)} if auc is not None else {}),
            "by_kind": dg.MetadataValue.md(_by_kind(report)),
            "mode": "/".join(sorted(modes)),
            "degraded": bool(degraded),
            "golden_set": source,
            **{f"{name}_warn_threshold": t[name].warn for name in MEASURES},
            **{f"{name}_error_threshold": t[name].error for name in MEASURES},
        },
        description=description,
    )


quality_job = dg.define_asset_job(
    "quality_job",
    selection=dg.AssetSelection.checks(retrieval_quality),
    description="Judge search quality on the golden query set, without indexing.",
)
