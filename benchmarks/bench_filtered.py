"""Filtered dense search on Qdrant Edge: recall@10 and latency with ACORN off and on (issue 12, item 1).

A filter cuts HNSW's graph: the search walks only the links between matching points, and a filter
matching a small share of them leaves islands the walk never reaches. Qdrant answers a filter matching
few enough vectors (FULL_SCAN_KB) with an exact scan of the payload index's matches, and between that
and no filter it walks the graph; ACORN walks neighbours' neighbours too, past the points the filter
excludes, for filters matching at most `max_selectivity` of the points.

For each filter (the search filters the product sends, of different selectivity on scale_corpus's
payload: 7 workspaces, alternate roles, one timestamp a point, one kind) this prints the share of
points it matches, then per ACORN setting recall@10 against exact search with the same filter
(`exact_search(filters=...)`, the store's own reference) and the search's p50/p95 (ms, through
`EdgeStore.search`, as the product runs it). The shard is built as bench_index builds it (the
product's IndexParams) unless `--store` names one already built from scale_corpus with the same
`--points` and `--dim` (opened, searched, never written). Prints figures with the load average;
asserts nothing.

    .venv/bin/python benchmarks/bench_filtered.py [--points 100000] [--dim 384] [--queries 100]
        [--acorn 0 0.4 1.0] [--store FOLDER] [--ef-construct 100]
        [--subgraphs product|none]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import qdrant_edge as qe
from bench_index import Clock
from scale_corpus import batches, queries

from indexer_pipeline.metrics import percentile
from indexer_pipeline.vectorstore import edge
from indexer_pipeline.vectorstore.base import IndexParams, Range
from indexer_pipeline.vectorstore.edge import EdgeStore, _filter

K = 10
TS0 = 1_700_000_000_000  # scale_corpus's first timestamp; a point's is TS0 + its index x 1000


def filters(points: int) -> dict[str, dict | None]:
    """label -> the store filter, as search.request_filters makes them."""
    return {
        "none": None,
        "kind": {"kind": "task"},  # as a grouped search of tasks sends it: every point here
        "role": {"role": "user"},
        "workspace": {"workspace": "/ws/3"},
        "workspace+role": {"workspace": "/ws/3", "role": "user"},
        "time 30%": {"timestamp": Range(gte=TS0, lte=TS0 + points * 300)},
        "time 10%": {"timestamp": Range(gte=TS0, lte=TS0 + points * 100)},
    }


def build(folder: Path, args) -> None:
    if args.subgraphs == "none":  # every payload index a lookup index: no per-value HNSW subgraph
        edge.LOOKUP_FIELDS = frozenset(edge.INDEXED_FIELDS)
    store = EdgeStore(folder, index=dataclasses.replace(IndexParams(), hnsw_ef_construct=args.ef_construct))
    store.ensure_collection(args.dim)
    for chunk in batches(args.points, args.dim):
        store.upsert(chunk)
    with Clock() as clock:
        store.flush()
    store.close()
    print(
        f"built {args.points} x {args.dim} in {clock.wall:.0f} s wall, {clock.cpu:.0f} s CPU"
        f" (ef_construct {args.ef_construct}, subgraphs: {args.subgraphs})",
        flush=True,
    )


def measure(folder: Path, args) -> None:
    query_vectors = [q.tolist() for q in queries(args.queries, args.points, args.dim)]
    cases = filters(args.points)
    with EdgeStore(folder) as store:
        total = store.count()
        # The share each filter matches: the store's count() takes a unit only, so Edge's own count.
        share = {
            label: store._shard.count(qe.CountRequest(exact=True, filter=_filter(f))) / total
            for label, f in cases.items()
        }
        truth = {label: [store.exact_search(q, K, f) for q in query_vectors] for label, f in cases.items()}
    print(
        f"{'filter':<15} {'share':>5} {'acorn':>5} {'recall':>6} {'p50 ms':>6} {'p95 ms':>6} {'CPU s':>6} {'load':>4}"
        f"   ({total} x {args.dim}, ef {IndexParams().hnsw_ef})"
    )
    for acorn in args.acorn:
        with EdgeStore(
            folder, index=dataclasses.replace(IndexParams(), acorn_max_selectivity=acorn)
        ) as store:
            for label, where in cases.items():
                times, recall = [], []
                with Clock() as clock:
                    for q, exact in zip(query_vectors, truth[label], strict=True):
                        start = time.perf_counter()
                        hits = store.search(q, limit=K, filters=where)
                        times.append((time.perf_counter() - start) * 1000)
                        recall.append(len({h.id for h in exact} & {h.id for h in hits}) / len(exact))
                print(
                    f"{label:<15} {share[label]:>5.2f} {acorn:>5} {sum(recall) / len(recall):>6.3f} {percentile(times, 50):>6.1f}"
                    f" {percentile(times, 95):>6.1f} {clock.cpu:>6.1f} {os.getloadavg()[0]:>4.1f}",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384, help="384 (local model) or 1536 (OpenAI)")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument(
        "--acorn", type=float, nargs="+", default=[0, 0.4, 1.0], help="ACORN max_selectivity values (0: off)"
    )
    parser.add_argument("--store", type=Path, default=None, help="a shard already built from scale_corpus")
    parser.add_argument("--ef-construct", type=int, default=IndexParams().hnsw_ef_construct)
    parser.add_argument(
        "--subgraphs",
        choices=["product", "none"],
        default="product",
        help="per-value HNSW subgraphs of the payload indexes: the product's set, or none at all",
    )
    args = parser.parse_args()
    if args.store:
        measure(args.store, args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        build(Path(tmp) / "shard", args)
        measure(Path(tmp) / "shard", args)


if __name__ == "__main__":
    main()
