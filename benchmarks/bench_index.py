"""Indexed search on Qdrant Edge: exact scan vs HNSW vs HNSW + int8 scalar quantization (rescored), up to
a million points (issue 12, item 1).

Each mode runs in a process of its own (its peak RSS is its own): points are written through
`EdgeStore` as the product's stream writes them, a batch upserted then persisted, where the store
indexes a step once the points since the last one fill a segment (`edge.SEGMENT_POINTS`; `write`
includes those steps), then `flush()` builds the last one's index (`build`: its wall and CPU seconds, and
those of a later flush after rewriting 1 % of the points), then the store's disk size, its reopen time
and dense search p50/p95 (query embedding excluded) of queries right after the store opens and, after
`--warmup` other queries, of as many more (`warm`: a long-lived MCP server or UI; the pages a search
reads are memory-mapped, so a new process pays their first reads), and recall@10 over both sets
against exact search on the same shard
(strict on ids, and `tied`: hits tied with the exact 10th count, as the index_recall check counts them)
are measured. Vectors have real structure: the embedding simulator's text-derived vectors over
bench_groups' topic corpus, generated in batches by scale_corpus (random unit vectors are HNSW's worst
case and say nothing); queries are held-out chunks of the corpus's units. `--memory ram` makes shards
whose vectors and indexes are loaded at open (Edge's defaults, QDRANT_EDGE_ON_DISK=false) instead of
memory-mapped. `--keep DIR` keeps the shards (and their build figures) in DIR: a later run with the same
sizes measures search again without rebuilding (a million points take ~20 minutes to index here).
Prints figures with the load average; asserts nothing.

    .venv/bin/python benchmarks/bench_index.py [--points 20000] [--dim 384] [--queries 200] [--ef 64 128]
        [--modes exact hnsw hnsw+int8] [--memory disk ram] [--m 16] [--ef-construct 100] [--segment 16384] [--keep DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import resource
import tempfile
import time
from pathlib import Path

from scale_corpus import batches, queries

from indexer_pipeline.index_quality import EXACT_CANDIDATES, recall_at_k
from indexer_pipeline.metrics import percentile
from indexer_pipeline.pipeline import BATCH_CHUNKS
from indexer_pipeline.vectorstore import edge
from indexer_pipeline.vectorstore.base import IndexParams
from indexer_pipeline.vectorstore.edge import EdgeStore

K = 10
# "exact": an indexing threshold no shard reaches, so nothing is ever indexed.
MODES = {
    "exact": IndexParams(quantization="none", indexing_threshold_kb=10**9),
    "hnsw": IndexParams(quantization="none"),
    "hnsw+int8": IndexParams(quantization="int8"),
}
MEMORY = {"disk": True, "ram": False}


class Clock:
    """Wall and CPU seconds (this process's, Edge's threads included) of a block."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def disk_mb(folder: Path) -> float:
    """Blocks in use: Edge preallocates sparse files, whose apparent size says nothing."""
    return sum(f.stat().st_blocks * 512 for f in folder.rglob("*") if f.is_file()) / 2**20


def segments(folder: Path) -> tuple[set[str], set[str]]:
    """(every segment, the segments whose dense vector has an HNSW graph), by folder name (Edge's own
    segment.json; info() does not say)."""
    every, hnsw = set(), set()
    for f in folder.glob("segments/*/segment.json"):
        every.add(f.parent.name)
        if '"type":"hnsw"' in f.read_text():
            hnsw.add(f.parent.name)
    return every, hnsw


def hnsw_segments(folder: Path) -> int:
    return len(segments(folder)[1])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def build(folder: Path, params: IndexParams, args) -> dict:
    """Write the points, build the index, rewrite 1 %, reopen: the build's figures."""
    edge.SEGMENT_POINTS = args.segment  # read when the shard is made
    store = EdgeStore(folder, index=params)
    store.ensure_collection(args.dim)
    with Clock() as write:  # as the product's stream writes: a persist per batch, which indexes in steps
        for chunk in batches(args.points, args.dim, args.batch):
            store.upsert(chunk)
            store.persist()
    with Clock() as build:
        store.flush()  # flush optimizes: the last step's index is built here
    # A later run rewriting 1 % of the points: its flush indexes what it wrote, not the whole shard again.
    for chunk in batches(args.points // 100, args.dim, args.batch):
        store.upsert(chunk)
    with Clock() as again:
        store.flush()
    store.close()
    with Clock() as reopen:
        EdgeStore(folder, index=params).close()
    return {
        "write": write.wall, "write_cpu": write.cpu, "build": build.wall, "build_cpu": build.cpu,
        "again": again.wall, "reopen": reopen.wall, "rss": peak_rss_mb(),
    }  # fmt: skip


def timed(store: EdgeStore, query_vectors: list) -> tuple[list[float], list]:
    """ms of each search, and its hits."""
    times, hits = [], []
    for q in query_vectors:
        start = time.perf_counter()
        hits.append(store.search(q, limit=K))
        times.append((time.perf_counter() - start) * 1000)
    return times, hits


def recall(found: list, truth: list) -> tuple[float, float]:
    """recall@10, strict on ids and with hits tied with the exact 10th counted."""
    strict = [
        len({h.id for h in exact[:K]} & {h.id for h in hits}) / K
        for hits, exact in zip(found, truth, strict=True)
    ]
    tied = [recall_at_k(hits, exact, own_id="") for hits, exact in zip(found, truth, strict=True)]
    return sum(strict) / len(strict), sum(tied) / len(tied)


def bench(mode: str, params: IndexParams, args, folder: Path) -> None:
    # Three sets of held-out queries: the first timed right after the store opens, then warm-up
    # queries, then the last timed as a long-lived process (MCP server, UI) answers them.
    n = args.queries
    everything = [q.tolist() for q in queries(2 * n + args.warmup, args.points, args.dim)]
    first, warm_up, later = everything[:n], everything[n : n + args.warmup], everything[n + args.warmup :]
    record = folder.with_name(folder.name + ".build.json")
    if record.exists():  # --keep: built by an earlier run; search is measured again
        built = json.loads(record.read_text())
        with Clock() as reopen:
            EdgeStore(folder, index=params).close()
        built["reopen"] = reopen.wall
    else:
        built = build(folder, params, args)
        record.write_text(json.dumps(built))
    truth = None
    for ef in args.ef if mode != "exact" else args.ef[:1]:
        store = EdgeStore(folder, index=dataclasses.replace(params, hnsw_ef=ef))
        opened, found = timed(store, first)  # before exact search has read every vector
        for q in warm_up:
            store.search(q, limit=K)
        warm, found_warm = timed(store, later)
        if truth is None:  # room past the 10th for hits tied with it
            truth = [store.exact_search(q, EXACT_CANDIDATES) for q in first + later]
        strict, tied = recall(found + found_warm, truth)
        store.close()
        print(
            f"{mode:<10} {'disk' if params.on_disk else 'ram':<4} {args.points:>8} {args.dim:>5}"
            f" {ef if mode != 'exact' else '-':>4} {hnsw_segments(folder):>4}"
            f" {built['write']:>6.0f} {built['write_cpu']:>6.0f} {built['build']:>6.0f} {built['build_cpu']:>6.0f}"
            f" {built['again']:>6.1f} {disk_mb(folder):>7.0f} {built['reopen']:>6.2f} {built['rss']:>7.0f}"
            f" {percentile(opened, 50):>6.1f} {percentile(opened, 95):>6.1f}"
            f" {percentile(warm, 50):>6.1f} {percentile(warm, 95):>6.1f}"
            f" {strict:>6.3f} {tied:>6.3f} {os.getloadavg()[0]:>4.1f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=384, help="384 (local model) or 1536 (OpenAI)")
    parser.add_argument("--queries", type=int, default=200, help="timed after opening, and again warm")
    parser.add_argument("--warmup", type=int, default=1000, help="queries between the two timed sets")
    parser.add_argument("--batch", type=int, default=BATCH_CHUNKS, help="points per upsert and persist")
    parser.add_argument("--ef", type=int, nargs="+", default=[IndexParams().hnsw_ef], help="search ef values")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--memory", nargs="+", default=["disk"], choices=list(MEMORY))
    parser.add_argument("--m", type=int, default=IndexParams().hnsw_m, help="HNSW links per node")
    parser.add_argument("--ef-construct", type=int, default=IndexParams().hnsw_ef_construct)
    parser.add_argument(
        "--segment",
        type=int,
        default=edge.SEGMENT_POINTS,
        help="points per segment, so per indexing step; 0: Edge's default segments, one build at the end",
    )
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the shards are written (a temporary folder)"
    )
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="build the shards here and keep them: a later run measures search only",
    )
    args = parser.parse_args()
    print(
        f"{'mode':<10} {'mem':<4} {'points':>8} {'dim':>5} {'ef':>4} {'hnsw':>4} {'write':>6} {'cpu':>6}"
        f" {'build':>6} {'cpu':>6} {'+1% s':>6} {'disk MB':>7} {'reopen':>6} {'RSS MB':>7}"
        f" {'p50 ms':>6} {'p95 ms':>6} {'warm50':>6} {'warm95':>6} {'recall':>6} {'tied':>6} {'load':>4}"
    )
    spawn = multiprocessing.get_context("spawn")  # a fresh process per mode: its peak RSS is its own
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for memory in args.memory:
            for mode in args.modes:
                params = dataclasses.replace(
                    MODES[mode], on_disk=MEMORY[memory], hnsw_m=args.m, hnsw_ef_construct=args.ef_construct
                )
                name = f"{args.points}x{args.dim}-m{args.m}-efc{args.ef_construct}-seg{args.segment}-{mode}"
                folder = (args.keep or Path(tmp)) / memory / name
                folder.parent.mkdir(parents=True, exist_ok=True)
                child = spawn.Process(target=bench, args=(mode, params, args, folder))
                child.start()
                child.join()


if __name__ == "__main__":
    main()
