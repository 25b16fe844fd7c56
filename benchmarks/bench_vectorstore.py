"""Vector-store speed: upsert rate, search p50/p95 (plain and filtered by unit), reopen time (Edge).

Random unit vectors stand in for embeddings (search cost does not depend on their meaning); points
carry the product's payload shape, 100 chunks a unit. The embedded target: search p95 < 50 ms at
100,000 chunks, query embedding excluded. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_vectorstore.py [--points 20000] [--dim 384|1536] [--backends edge server]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from indexer_pipeline.metrics import percentile
from indexer_pipeline.vectorstore.base import StoredPoint, VectorStore
from indexer_pipeline.vectorstore.edge import EdgeStore
from indexer_pipeline.vectorstore.qdrant_server import ServerStore

BATCH = 256
QUERIES = 200
CHUNKS_PER_UNIT = 100


def unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def batch(data: np.ndarray, start: int) -> list[StoredPoint]:
    return [
        StoredPoint(
            str(uuid.uuid5(uuid.NAMESPACE_OID, str(j))),
            data[j].tolist(),
            {
                "unit": f"unit-{j // CHUNKS_PER_UNIT}",
                "doc_id": f"doc-{j}",
                "role": "user",
                "chunk_index": j % CHUNKS_PER_UNIT,
                "content_hash": f"{j:064x}",
                "text": f"chunk {j} " * 40,
            },
        )
        for j in range(start, min(start + BATCH, len(data)))
    ]


def timed_ms(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def bench(name: str, open_store: Callable[[], VectorStore], points: int, dim: int) -> None:
    data = unit_vectors(points, dim, seed=1)
    batches = [batch(data, i) for i in range(0, points, BATCH)]  # built first: time the store only
    store = open_store()
    store.ensure_collection(dim)
    start = time.perf_counter()
    for b in batches:
        store.upsert(b)
    store.flush()
    rate = points / (time.perf_counter() - start)
    units = max(points // CHUNKS_PER_UNIT, 1)
    queries = unit_vectors(QUERIES, dim, seed=2).tolist()
    plain = [timed_ms(lambda q=q: store.search(q, limit=10)) for q in queries]
    filtered = [
        timed_ms(lambda q=q, i=i: store.search(q, limit=10, filters={"unit": f"unit-{i * 7919 % units}"}))
        for i, q in enumerate(queries)
    ]
    store.close()
    reopen = f"{timed_ms(lambda: open_store().close()) / 1000:.2f} s" if name == "edge" else "-"
    print(
        f"{name:<7} {points:>8} {dim:>5} {rate:>9.0f} {percentile(plain, 50):>7.1f} {percentile(plain, 95):>7.1f}"
        f" {percentile(filtered, 50):>7.1f} {percentile(filtered, 95):>7.1f} {reopen:>7}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=384, help="384 (local model) or 1536 (OpenAI)")
    parser.add_argument("--backends", nargs="+", default=["edge", "server"], choices=["edge", "server"])
    args = parser.parse_args()
    print(
        f"{'store':<7} {'points':>8} {'dim':>5} {'upsert/s':>9} {'p50 ms':>7} {'p95 ms':>7}"
        f" {'unit p50':>7} {'unit p95':>7} {'reopen':>7}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends:
            if backend == "edge":
                bench("edge", lambda: EdgeStore(Path(tmp) / "edge"), args.points, args.dim)
            else:  # qdrant-client in memory: the server code path minus the network (brute force, no HNSW)
                warnings.filterwarnings("ignore", "Payload indexes have no effect")
                bench("server", lambda: ServerStore(":memory:"), args.points, args.dim)


if __name__ == "__main__":
    main()
