"""Indexing a large write in steps on Qdrant Edge: optimize after every N new points instead of once at
the end (issue 12, item 1: a big first build must not hold the store, so no search, for its whole length).

For each step size (0: one optimize at the end, as the writer did) a fresh shard is made through
`EdgeStore` (the product's config; `--max-segment-kb` overrides the optimizers' max_segment_size), in a
process of its own. Points are written in batches of 4096 (scale_corpus: the simulator's text-derived
vectors), and once the points written since the last optimize reach the step, the store persists and
optimizes; a last optimize ends the write. Printed per step size: the steps, the median and longest
step (wall and CPU s), the steps that merged earlier indexed segments (an earlier segment rebuilt),
the total CPU of the optimizes and of the whole run (write included), the segments at the end (all,
and with an HNSW graph), then dense search p50/p95 (query embedding excluded) and recall@10 against
exact search on the same shard, and the load average. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_steps.py [--points 100000] [--dim 384] [--steps 0 10000 25000]
        [--max-segment-kb 0] [--queries 200] [--verbose]
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path

import qdrant_edge as qe
from bench_index import Clock
from scale_corpus import batches, queries

from indexer_pipeline.metrics import percentile
from indexer_pipeline.vectorstore.base import IndexParams
from indexer_pipeline.vectorstore.edge import EdgeStore

K = 10


def segments(folder: Path) -> tuple[set[str], set[str]]:
    """(every segment, the segments with an HNSW graph), by folder name (Edge's own segment.json)."""
    every, hnsw = set(), set()
    for f in folder.glob("segments/*/segment.json"):
        every.add(f.parent.name)
        if '"type":"hnsw"' in f.read_text():
            hnsw.add(f.parent.name)
    return every, hnsw


def run(step: int, args, folder: Path) -> None:
    if args.max_segment_kb:  # the product's config, but for this one field
        qe.EdgeOptimizersConfig = functools.partial(
            qe.EdgeOptimizersConfig, max_segment_size=args.max_segment_kb
        )
    store = EdgeStore(folder, index=IndexParams())
    store.ensure_collection(args.dim)
    steps, merges, since = [], 0, 0

    def optimize() -> None:
        nonlocal merges
        _, before = segments(folder)
        with Clock() as clock:
            store.persist()
            store.optimize()
        _, after = segments(folder)
        merges += bool(before - after)  # an indexed segment gone: merged into another, rebuilt
        steps.append(clock)
        if args.verbose:
            print(
                f"  step {len(steps)}: {clock.wall:.1f} s ({clock.cpu:.1f} CPU s), hnsw segments {len(after)}"
            )

    with Clock() as total:
        for chunk in batches(args.points, args.dim):
            store.upsert(chunk)
            since += len(chunk)
            if step and since >= step:
                optimize()
                since = 0
        optimize()  # the last: what is left (all of it when step is 0)
    every, hnsw = segments(folder)
    query_vectors = [q.tolist() for q in queries(args.queries, args.points, args.dim)]
    times, recall = [], []
    for q in query_vectors:
        exact = store.exact_search(q, K)
        start = time.perf_counter()
        hits = store.search(q, limit=K)
        times.append((time.perf_counter() - start) * 1000)
        recall.append(len({h.id for h in exact} & {h.id for h in hits}) / K)
    store.close()
    walls, cpus = [c.wall for c in steps], [c.cpu for c in steps]
    print(
        f"{args.points:>7} {args.dim:>4} {step:>6} {args.max_segment_kb:>7} {len(steps):>5}"
        f" {statistics.median(walls):>6.1f} {statistics.median(cpus):>6.1f} {max(walls):>6.1f} {max(cpus):>6.1f}"
        f" {merges:>6} {sum(cpus):>7.1f} {total.cpu:>7.1f} {total.wall:>7.1f} {len(every):>4} {len(hnsw):>4}"
        f" {percentile(times, 50):>6.2f} {percentile(times, 95):>6.2f} {sum(recall) / len(recall):>6.3f}"
        f" {os.getloadavg()[0]:>4.1f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument(
        "--steps", type=int, nargs="+", default=[0, 10_000, 25_000], help="points per step; 0: once"
    )
    parser.add_argument(
        "--max-segment-kb", type=int, default=0, help="optimizers' max_segment_size; 0: Edge's"
    )
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--verbose", action="store_true", help="print every step")
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the shards are written (a temporary folder)"
    )
    args = parser.parse_args()
    print(
        f"{'points':>7} {'dim':>4} {'step':>6} {'maxseg':>7} {'steps':>5} {'p50 s':>6} {'cpu':>6} {'max s':>6}"
        f" {'cpu':>6} {'merges':>6} {'opt cpu':>7} {'all cpu':>7} {'wall':>7} {'segs':>4} {'hnsw':>4}"
        f" {'p50 ms':>6} {'p95 ms':>6} {'recall':>6} {'load':>4}"
    )
    spawn = multiprocessing.get_context("spawn")  # a fresh process per run: its CPU seconds are its own
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for step in args.steps:
            child = spawn.Process(target=run, args=(step, args, Path(tmp) / f"step-{step}"))
            child.start()
            child.join()


if __name__ == "__main__":
    main()
