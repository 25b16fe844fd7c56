"""What a reduced EMBEDDING_DIMENSIONS saves on Qdrant Edge: disk bytes per point, the RSS of a process
that opens the store and searches it, dense search p50/p95 (query embedding excluded), index build time,
and recall@10 of the index against exact search at that dimension — at 1536, 512 and 256 dims.

Retrieval quality at a reduced dimension cannot be measured here (it needs OpenAI's model): the README
quotes OpenAI's published MTEB figures beside these. Points are bench_groups' topic corpus with the
embedding simulator's text-derived vectors and the product's payload and BM25 vectors, written through
`EdgeStore` with the default index settings (HNSW + int8, rescored). Each store is searched by a fresh
process, so its RSS is the store's own and not the vectors this script holds. Prints figures; asserts
nothing; the machine's load average is printed beside them (it is shared).

    .venv/bin/python benchmarks/bench_dimensions.py [--points 100000] [--dims 1536 512 256] [--queries 200]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_groups import corpus
from bench_index import disk_mb

from indexer_pipeline.index_quality import RECALL_K
from indexer_pipeline.metrics import percentile
from indexer_pipeline.vectorstore.edge import EdgeStore

BATCH = 256


def rss_mb() -> float:
    """Resident set now (Linux /proc), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def search_child(folder: str, queries_file: str) -> None:
    """In a fresh process: open the store, search every query, print the figures as JSON."""
    queries = np.load(queries_file).tolist()
    base = rss_mb()
    start = time.perf_counter()
    store = EdgeStore(Path(folder))
    open_s = time.perf_counter() - start
    opened = rss_mb()
    times, found = [], []
    cpu = time.process_time()
    for q in queries:
        start = time.perf_counter()
        found.append({h.id for h in store.search(q, limit=RECALL_K)})
        times.append((time.perf_counter() - start) * 1000)
    cpu = time.process_time() - cpu
    searched = rss_mb()  # before the exact scans, which read every original vector
    recall = [
        len(f & {h.id for h in store.exact_search(q, RECALL_K)}) / RECALL_K for q, f in zip(queries, found)
    ]
    store.close()
    print(
        json.dumps(
            {
                "open_s": open_s,
                "rss_open_mb": opened - base,
                "rss_search_mb": searched - base,
                "p50": percentile(times, 50),
                "p95": percentile(times, 95),
                "recall": sum(recall) / len(recall),
                "cpu_s": cpu,
            }
        )
    )


def bench(dim: int, points: int, n_queries: int, tmp: Path) -> None:
    data, _ = corpus(points + n_queries, dim)
    step = len(data) // n_queries
    held = data[::step][:n_queries]
    queries = tmp / f"queries-{dim}.npy"
    np.save(queries, np.array([p.vector for p in held], dtype=np.float32))
    held_ids = {p.id for p in held}
    data = [p for p in data if p.id not in held_ids]
    folder = tmp / f"edge-{dim}"
    with EdgeStore(folder) as store:
        store.ensure_collection(dim)
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(data), BATCH):
            store.upsert(data[i : i + BATCH])
        store.flush()  # flush optimizes: the index is built here
        build_s, build_cpu = time.perf_counter() - start, time.process_time() - cpu
    del data
    child = subprocess.run(
        [sys.executable, __file__, "--search-child", str(folder), str(queries)],
        capture_output=True,
        text=True,
        check=True,
    )
    f = json.loads(child.stdout.strip().splitlines()[-1])
    disk = disk_mb(folder)
    print(
        f"{dim:>5} {points:>8} {disk:>8.0f} {disk * 2**20 / points:>8.0f} {build_s:>7.1f} {build_cpu:>7.1f}"
        f" {f['open_s']:>6.2f} {f['rss_open_mb']:>8.0f} {f['rss_search_mb']:>8.0f} {f['p50']:>6.2f} {f['p95']:>6.2f}"
        f" {f['recall']:>6.3f} {f['cpu_s']:>6.1f}   {' '.join(f'{x:.1f}' for x in os.getloadavg())}",
        flush=True,
    )


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--search-child":
        search_child(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--dims", type=int, nargs="+", default=[1536, 512, 256])
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    print(
        f"{'dim':>5} {'points':>8} {'disk MB':>8} {'B/point':>8} {'build s':>7} {'cpu s':>7} {'open s':>6}"
        f" {'RSS open':>8} {'RSS srch':>8} {'p50 ms':>6} {'p95 ms':>6} {'recall':>6} {'cpu s':>6}   load avg"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for dim in args.dims:
            bench(dim, args.points, args.queries, Path(tmp))


if __name__ == "__main__":
    main()
