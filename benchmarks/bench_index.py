"""Indexed search on Qdrant Edge: exact scan vs HNSW vs HNSW + int8 scalar quantization (rescored).

For each mode: points are written through `EdgeStore`, then `flush()` builds the index (its seconds
printed, and those of a later flush after rewriting 1 % of the points), and the store's disk size, dense search p50/p95 (query embedding excluded) and recall@10
against exact search on the same shard are measured. Vectors have real structure: the embedding
simulator's text-derived vectors over bench_groups' topic corpus (random unit vectors are HNSW's worst
case and say nothing). Queries are held-out chunks spread over the corpus. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_index.py [--points 20000] [--dim 384] [--queries 200] [--ef 64 128]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench_groups import corpus

from indexer_pipeline.metrics import percentile
from indexer_pipeline.vectorstore.base import IndexParams
from indexer_pipeline.vectorstore.edge import EdgeStore

BATCH = 256
K = 10
# "exact": an indexing threshold no shard reaches, so nothing is ever indexed (today's behaviour).
MODES = {
    "exact": IndexParams(quantization="none", indexing_threshold_kb=10**9),
    "hnsw": IndexParams(quantization="none"),
    "hnsw+int8": IndexParams(quantization="int8"),
}


def timed_ms(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def disk_mb(folder: Path) -> float:
    """Blocks in use: Edge preallocates sparse files, whose apparent size says nothing."""
    return sum(f.stat().st_blocks * 512 for f in folder.rglob("*") if f.is_file()) / 2**20


def hnsw_segments(folder: Path) -> int:
    """Segments whose dense vector has an HNSW graph (Edge's own segment.json; info() does not say)."""
    return sum('"type":"hnsw"' in f.read_text() for f in folder.glob("segments/*/segment.json"))


def bench(mode: str, params: IndexParams, points, queries, dim: int, efs: list[int], tmp: Path) -> None:
    folder = tmp / mode
    store = EdgeStore(folder, index=params)
    store.ensure_collection(dim)
    start = time.perf_counter()
    for i in range(0, len(points), BATCH):
        store.upsert(points[i : i + BATCH])
    write_s = time.perf_counter() - start
    start = time.perf_counter()
    store.flush()  # flush optimizes: the index is built here
    build_s = time.perf_counter() - start
    # A later run rewriting 1 % of the points: its flush indexes what it wrote, not the whole shard again.
    store.upsert(points[: len(points) // 100])
    again_s = timed_ms(store.flush) / 1000
    store.close()
    reopen_s = timed_ms(lambda: EdgeStore(folder, index=params).close()) / 1000
    truth = None
    for ef in efs if mode != "exact" else efs[:1]:
        store = EdgeStore(folder, index=dataclasses.replace(params, hnsw_ef=ef))
        if truth is None:
            truth = [{h.id for h in store.exact_search(q, K)} for q in queries]
        times, recall = [], []
        for q, exact in zip(queries, truth, strict=True):
            start = time.perf_counter()
            hits = store.search(q, limit=K)
            times.append((time.perf_counter() - start) * 1000)
            recall.append(len(exact & {h.id for h in hits}) / K)
        store.close()
        print(
            f"{mode:<10} {len(points):>8} {dim:>5} {ef if mode != 'exact' else '-':>4} {hnsw_segments(folder):>5}"
            f" {write_s:>7.1f} {build_s:>7.1f} {again_s:>7.2f} {disk_mb(folder):>8.0f} {reopen_s:>6.2f}"
            f" {percentile(times, 50):>6.1f} {percentile(times, 95):>6.1f} {sum(recall) / len(recall):>6.3f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=384, help="384 (local model) or 1536 (OpenAI)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ef", type=int, nargs="+", default=[IndexParams().hnsw_ef], help="search ef values")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    args = parser.parse_args()
    data, _ = corpus(args.points + args.queries, args.dim)
    # Held-out chunks spread over the corpus as queries: on the shard's topics, as a user's query is
    # (a chunk of a topic the shard lacks has only common words, whose neighbours are near random).
    step = len(data) // args.queries
    queries = [p.vector for p in data[::step][: args.queries]]
    held = {p.id for p in data[::step][: args.queries]}
    points = [p for p in data if p.id not in held]
    print(
        f"{'mode':<10} {'points':>8} {'dim':>5} {'ef':>4} {'hnsw':>5} {'write s':>7} {'build s':>7} {'+1% s':>7}"
        f" {'disk MB':>8} {'reopen':>6} {'p50 ms':>6} {'p95 ms':>6} {'recall':>6}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes:
            bench(mode, MODES[mode], points, queries, args.dim, args.ef, Path(tmp))


if __name__ == "__main__":
    main()
