"""A large write indexed in steps on Qdrant Edge (issue 12, item 1: a big first build must not hold the
store, so every search, for its whole length).

For each segment size (points, `edge.SEGMENT_POINTS`, which makes the shard's max_segment_size; 0: Edge's
default segments, so one build at the end, as the writer did before) a fresh shard is made through `EdgeStore`, in a process
of its own, and points are written as the stream writes them: batches of BATCH_CHUNKS points (scale_corpus:
the simulator's text-derived vectors), each upserted then persisted, where the store indexes a step once
the points since the last one fill a segment, then a last optimize. Printed per segment size: the steps
(optimize calls), the median and longest (wall and CPU s), the steps that merged earlier indexed segments
(one gone: rebuilt into another), the total CPU of the optimizes and
of the whole run (writes included), the segments at the end (all, and with an HNSW graph), then dense
search p50/p95 (query embedding excluded) and recall@10 against exact search on the same shard, and the
load average. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_steps.py [--points 100000] [--dim 384] [--segment 0 32768]
        [--queries 200] [--verbose]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
from pathlib import Path

from bench_index import Clock, K, recall, segments, timed
from scale_corpus import batches, queries

from indexer_pipeline.metrics import percentile
from indexer_pipeline.pipeline import BATCH_CHUNKS
from indexer_pipeline.vectorstore import edge
from indexer_pipeline.vectorstore.edge import EdgeStore


def run(segment: int, args, folder: Path) -> None:
    edge.SEGMENT_POINTS = segment  # read at creation
    steps, merges = [], 0
    optimize = EdgeStore.optimize

    def timed_optimize(store: EdgeStore) -> None:
        nonlocal merges
        _, before = segments(folder)
        with Clock() as clock:
            optimize(store)
        _, after = segments(folder)
        merges += bool(before - after)  # an indexed segment gone: merged into another, rebuilt
        steps.append(clock)
        if args.verbose:
            print(
                f"  step {len(steps)}: {clock.wall:.1f} s ({clock.cpu:.1f} CPU s), hnsw segments {len(after)}"
            )

    EdgeStore.optimize = timed_optimize
    store = EdgeStore(folder)
    store.ensure_collection(args.dim)
    with Clock() as total:
        for chunk in batches(args.points, args.dim, BATCH_CHUNKS):
            store.upsert(chunk)
            store.persist()  # indexes a step once the points since the last fill a segment
        store.optimize()  # the writer's last
    every, hnsw = segments(folder)
    query_vectors = [q.tolist() for q in queries(args.queries, args.points, args.dim)]
    times, found = timed(store, query_vectors)  # before exact search has read every vector
    strict, _ = recall(found, [store.exact_search(q, K) for q in query_vectors])
    store.close()
    walls, cpus = [c.wall for c in steps], [c.cpu for c in steps]
    print(
        f"{args.points:>7} {args.dim:>4} {segment:>7} {len(steps):>5}"
        f" {statistics.median(walls):>6.1f} {statistics.median(cpus):>6.1f} {max(walls):>6.1f} {max(cpus):>6.1f}"
        f" {merges:>6} {sum(cpus):>7.1f} {total.cpu:>7.1f} {total.wall:>7.1f} {len(every):>4} {len(hnsw):>4}"
        f" {percentile(times, 50):>6.2f} {percentile(times, 95):>6.2f} {strict:>6.3f}"
        f" {os.getloadavg()[0]:>4.1f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument(
        "--segment",
        type=int,
        nargs="+",
        default=[0, edge.SEGMENT_POINTS],
        help="points per segment, so per step; 0: Edge's default segments, one build at the end",
    )
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--verbose", action="store_true", help="print every step")
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the shards are written (a temporary folder)"
    )
    args = parser.parse_args()
    print(
        f"{'points':>7} {'dim':>4} {'segment':>7} {'steps':>5} {'p50 s':>6} {'cpu':>6} {'max s':>6}"
        f" {'cpu':>6} {'merges':>6} {'opt cpu':>7} {'all cpu':>7} {'wall':>7} {'segs':>4} {'hnsw':>4}"
        f" {'p50 ms':>6} {'p95 ms':>6} {'recall':>6} {'load':>4}"
    )
    spawn = multiprocessing.get_context("spawn")  # a fresh process per run: its CPU seconds are its own
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for segment in args.segment:
            child = spawn.Process(target=run, args=(segment, args, Path(tmp) / f"segment-{segment}"))
            child.start()
            child.join()


if __name__ == "__main__":
    main()
