"""Vector-store speed: upsert rate, search p50/p95 (plain and filtered by unit), reopen time.

Random unit vectors stand in for embeddings (search cost does not depend on their meaning); points
carry the product's payload shape. The embedded target: search p95 < 50 ms at 100,000 chunks, query
embedding excluded. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_vectorstore.py [--points 100000] [--dim 384] [--backends edge server]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from indexer_pipeline.metrics import percentile
from indexer_pipeline.vectorstore.base import StoredPoint
from indexer_pipeline.vectorstore.edge import EdgeStore
from indexer_pipeline.vectorstore.qdrant_server import ServerStore

BATCH = 256
QUERIES = 200


def vectors(n: int, dim: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def bench(name: str, open_store, points: int, dim: int) -> None:
    store = open_store()
    store.ensure_collection(dim)
    data = vectors(points, dim, seed=1)
    start = time.perf_counter()
    for i in range(0, points, BATCH):
        store.upsert(
            [
                StoredPoint(
                    str(uuid.uuid5(uuid.NAMESPACE_OID, str(j))),
                    data[j].tolist(),
                    {"unit": f"unit-{j // 100}", "doc_id": f"d{j}", "role": "user", "text": f"chunk {j}"},
                )
                for j in range(i, min(i + BATCH, points))
            ]
        )
    store.flush()
    upsert_s = time.perf_counter() - start
    queries = vectors(QUERIES, dim, seed=2)
    plain, filtered = [], []
    for q in queries:
        t = time.perf_counter()
        store.search(q.tolist(), limit=10)
        plain.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        store.search(q.tolist(), limit=10, filters={"unit": f"unit-{int(q[0] * 1000) % (points // 100)}"})
        filtered.append((time.perf_counter() - t) * 1000)
    store.close()
    reopen = ""
    if name == "edge":
        t = time.perf_counter()
        open_store().close()
        reopen = f"{time.perf_counter() - t:.2f} s"
    print(
        f"{name:<8} {points:>8} {dim:>5} {points / upsert_s:>11.0f} {percentile(plain, 50):>8.1f} "
        f"{percentile(plain, 95):>8.1f} {percentile(filtered, 95):>12.1f} {reopen:>8}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--backends", nargs="+", default=["edge"], choices=["edge", "server"])
    args = parser.parse_args()
    print(
        f"{'store':<8} {'points':>8} {'dim':>5} {'upsert/s':>11} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'filtered p95':>12} {'reopen':>8}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends:
            if backend == "edge":
                bench("edge", lambda: EdgeStore(Path(tmp) / "edge"), args.points, args.dim)
            else:  # qdrant-client in memory: the same code as against a server, minus the network
                bench("server", lambda: ServerStore(":memory:"), args.points, args.dim)


if __name__ == "__main__":
    main()
