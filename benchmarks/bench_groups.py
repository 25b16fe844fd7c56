"""Search speed on Qdrant Edge: dense, text (BM25), hybrid, hybrid grouped, and `search.search()` end to end.

The corpus has the structure real text gives a search: each unit (a task of 40 chunks, or a folder of
documents of 4 chunks each, one unit in five) has a topic, and each chunk mixes its unit's topic
words with words drawn from a Zipf law over the whole vocabulary. Vectors are the embedding
simulator's text-derived ones (a word's vector summed over the chunk's words), BM25 vectors the
product's own. Queries are three topic words and one common word. `search()` runs with a fixed
query vector (the query embedding excluded). Issue 11's targets: hybrid p95 < 50 ms at 100,000
points, and a grouped search < 20 % above an ungrouped one. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_groups.py [--points 20000] [--dim 384] [--queries 200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from indexer_pipeline import search as search_module
from indexer_pipeline.config import Settings
from indexer_pipeline.embeddings.simulator import EmbeddingSimulator
from indexer_pipeline.metrics import percentile
from indexer_pipeline.pipeline import Indexer
from indexer_pipeline.sparse import bm25_document, bm25_query
from indexer_pipeline.vectorstore.base import GROUP, StoredPoint, group_of
from indexer_pipeline.vectorstore.edge import EdgeStore

BATCH = 256
TASK_CHUNKS = 40  # chunks of a task
DOC_CHUNKS = 4  # chunks of a document of a tree
DOCS_PER_TREE = 10
VOCABULARY = 20_000
TOPIC_WORDS = 30
WORDS_PER_CHUNK = 80
GROUPS, GROUP_SIZE = 10, 3


def corpus(points: int, dim: int, seed: int = 5) -> tuple[list[StoredPoint], list[list[str]]]:
    """`points` points in units of tasks and trees, and each unit's topic words."""
    rng = np.random.default_rng(seed)
    sim = EmbeddingSimulator(dimensions=dim)
    zipf = 1 / np.arange(1, VOCABULARY + 1)
    zipf /= zipf.sum()
    out, topics, i, u = [], [], 0, 0
    while i < points:
        tree = u % 5 == 4
        topic = [f"w{k}" for k in rng.integers(VOCABULARY // 10, VOCABULARY, TOPIC_WORDS)]
        topics.append(topic)
        size = DOC_CHUNKS * DOCS_PER_TREE if tree else TASK_CHUNKS
        unit = f"doc-tree{u}" if tree else f"task-{u}"
        for c in range(min(size, points - i)):
            words = list(rng.choice(topic, WORDS_PER_CHUNK // 2)) + [
                f"w{k}" for k in rng.choice(VOCABULARY, WORDS_PER_CHUNK // 2, p=zipf)
            ]
            text = " ".join(words)
            doc_id = f"{unit}:f{c // DOC_CHUNKS}" if tree else f"{unit}:m{c:05d}"
            payload = {
                "unit": unit,
                "doc_id": doc_id,
                "kind": "tree" if tree else "task",
                "role": "user" if c % 2 else "assistant",
                "workspace": f"/ws/{u % 7}",
                "timestamp": 1_700_000_000_000 + i * 1000,
                "chunk_index": c % DOC_CHUNKS if tree else 0,
                "title": f"unit {u}",
                "text": text,
            }
            payload[GROUP] = group_of(payload)
            point_id = str(uuid.uuid5(uuid.NAMESPACE_OID, str(i)))
            out.append(StoredPoint(point_id, sim.vector(text, dim).tolist(), payload, bm25_document(text)))
            i += 1
        u += 1
    return out, topics


def timed_ms(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()

    start = time.perf_counter()
    points, topics = corpus(args.points, args.dim)
    rng = np.random.default_rng(7)
    queries = [
        " ".join([*rng.choice(topics[rng.integers(len(topics))], 3), f"w{rng.integers(50)}"])
        for _ in range(args.queries)
    ]
    sim = EmbeddingSimulator(dimensions=args.dim)
    dense = {q: sim.vector(q, args.dim).tolist() for q in queries}
    sparse = {q: bm25_query(q) for q in queries}
    built = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        store = EdgeStore(Path(tmp) / "edge")
        store.ensure_collection(args.dim)
        start = time.perf_counter()
        for k in range(0, len(points), BATCH):
            store.upsert(points[k : k + BATCH])
        store.flush()
        print(
            f"{args.points} points {args.dim}-d: corpus {built:.1f} s, upsert {time.perf_counter() - start:.1f} s",
            flush=True,
        )
        # search() with a fixed query vector: the embedder is not part of what is measured.
        search_module.query_vector = lambda settings, query: (dense[query], None)
        ix = Indexer(Settings(data_dir=Path(tmp)), store=store)

        def grouped(q):
            return store.query_groups(
                dense[q], sparse[q], group_by=GROUP, groups=GROUPS, group_size=GROUP_SIZE
            )

        cases = {
            "dense": lambda q: store.query(dense[q], limit=10),
            "text": lambda q: store.query(sparse=sparse[q], limit=10),
            "hybrid": lambda q: store.query(dense[q], sparse[q], limit=10),
            f"hybrid groups {GROUPS}x{GROUP_SIZE}": grouped,
            "search() ungrouped": lambda q: search_module.search(
                ix, search_module.SearchRequest(q, limit=10, group=False)
            ),
            "search() grouped": lambda q: search_module.search(ix, search_module.SearchRequest(q, limit=10)),
        }
        print(f"{'case':<22} {'p50 ms':>7} {'p95 ms':>7} {'rows':>5}")
        for name, call in cases.items():
            for q in queries[:10]:  # warm-up
                call(q)
            times = [timed_ms(lambda q=q, call=call: call(q)) for q in queries]
            rows = len(call(queries[0]).rows) if name.startswith("search") else len(call(queries[0]))
            print(
                f"{name:<22} {percentile(times, 50):>7.2f} {percentile(times, 95):>7.2f} {rows:>5}",
                flush=True,
            )
        store.close()


if __name__ == "__main__":
    main()
