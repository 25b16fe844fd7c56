"""The product's indexing path against the old sequential loop, in one run, on one simulator.

The simulator (indexer_pipeline.embeddings.simulator) runs in its own process on 127.0.0.1 with the
real API's latency (~350 ms) and Tier-1 limits (3,000 RPM, 1 M TPM). The corpus: 1,000 synthetic
task descriptions as Roo Code task folders, in the old system's mix (25 % short, 50 % medium, 25 %
long; ~67 tokens on average).

  (a) the old loop: one document per request, 100 ms sleep after each embedding and each upsert,
      one point per upsert (timed on a sample; it is latency-bound, so docs/s does not depend on size)
  (b) the product (Indexer: read → embed → write, the path the assets use) into Qdrant Edge
  (limiter) the product with limits scaled down until the corpus is > 3x one minute's token budget:
      efficiency = the time a perfect client at exactly the limits needs / the time taken
  (c) the product with no rate limit (latency only), with a profile of where the time goes
  (d) the product with faults on: 2 % 500s, 1 % dropped connections, 1 % spurious 429s
  (untold) an account of 20,000 TPM the product was not told about (it believes the default 1 M):
      the server refuses its first request with 429 "Request too large … Limit 20000" and no retry-after
  (refused) requests a server refuses whatever they carry, 64 inputs: an unknown model name, and a
      `dimensions` the server's model does not take (vLLM)

Prints figures; asserts nothing.      .venv/bin/python benchmarks/bench_embedding.py [--docs 1000]
                                      .venv/bin/python benchmarks/bench_embedding.py --only-untold
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import openai

from indexer_pipeline.config import Settings
from indexer_pipeline.embeddings import EmbeddingRequestError
from indexer_pipeline.embeddings.openai_provider import OpenAIEmbedder
from indexer_pipeline.metrics import percentile
from indexer_pipeline.pipeline import Indexer
from indexer_pipeline.vectorstore.base import StoredPoint
from indexer_pipeline.vectorstore.edge import EdgeStore

LATENCY_MS, JITTER_MS = 350, 40
TIER1 = {"rpm": 3_000, "tpm": 1_000_000}
KEY = "sk-benchmark-key"
WORDS = [
    "index",
    "cache",
    "retry",
    "sensor",
    "partition",
    "vector",
    "embed",
    "chunk",
    "token",
    "limit",
    "upsert",
    "query",
    "schema",
    "deploy",
    "worker",
    "queue",
    "backoff",
    "latency",
    "shard",
    "replica",
    "payload",
    "filter",
    "cursor",
    "scroll",
    "batch",
    "metric",
    "alert",
]


def make_corpus(root: Path, n: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    for i in range(n):
        bucket = rng.random()
        words = (
            rng.randint(8, 16)
            if bucket < 0.25
            else rng.randint(35, 55)
            if bucket < 0.75
            else rng.randint(90, 125)
        )
        text = f"Task {i}: " + " ".join(rng.choice(WORDS) for _ in range(words))
        folder = root / "tasks" / f"bench-{i:05d}"
        folder.mkdir(parents=True)
        (folder / "api_conversation_history.json").write_text(
            json.dumps([{"role": "user", "content": text, "ts": 1_760_000_000_000 + i}])
        )


class Simulator:
    """The simulator in its own process, so client and server do not share one interpreter."""

    def __init__(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "indexer_pipeline.embeddings.simulator",
                "--port",
                str(self.port),
                "--api-key",
                KEY,
                "--latency-ms",
                str(LATENCY_MS),
                "--jitter-ms",
                str(JITTER_MS),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.stats()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _call(self, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def stats(self) -> dict:
        return self._call("/_stats")

    def configure(self, **body) -> None:
        defaults = {"model": None, "dimensions": 1536, "dimensions_param": "accept"}
        self._call("/_control", {"reset": True, "faults": {}, "rpm": None, "tpm": None, **defaults, **body})

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def old_loop(sim: Simulator, texts: list[str], folder: Path) -> dict:
    """The replaced indexer's loop, re-created: one request per document, sleeps, one point per upsert."""
    client = openai.OpenAI(api_key=KEY, base_url=sim.base_url)
    latencies = []
    start = time.perf_counter()
    with EdgeStore(folder) as store:
        store.ensure_collection(1536)
        for text in texts:
            t0 = time.perf_counter()
            vector = client.embeddings.create(model="text-embedding-3-small", input=text).data[0].embedding
            latencies.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.1)
            store.upsert([StoredPoint(str(uuid.uuid4()), list(vector), {"unit": "old", "text": text})])
            time.sleep(0.1)
    elapsed = time.perf_counter() - start
    return {
        "docs": len(texts),
        "seconds": elapsed,
        "docs_per_s": len(texts) / elapsed,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "success": 1.0,
        "tokens": sim.stats()["tokens"],
        "429s": 0,
        "retries": 0,
    }


def product(sim: Simulator, corpus: Path, data: Path, profile: bool = False, **limits) -> dict:
    settings = Settings.from_env(
        corpus_dirs=[corpus],
        data_dir=data,
        embedding_provider="openai",
        openai_api_key=KEY,
        openai_base_url=sim.base_url,
        rpm_limit=limits.get("rpm", TIER1["rpm"]),
        tpm_limit=limits.get("tpm", TIER1["tpm"]),
        qdrant_url=None,
        max_inputs_per_request=limits.get("max_inputs", 2048),
        embedding_dimensions=limits.get("dimensions"),
    )
    profiler = cProfile.Profile() if profile else None
    with Indexer(settings) as ix:
        units = ix.units()
        start = time.perf_counter()
        if profiler:
            profiler.enable()
        read, embedded, written = ix.index(units)
        if profiler:
            profiler.disable()
        elapsed = time.perf_counter() - start
        points = ix.store().count()
    s = embedded.stats
    server = sim.stats()
    result = {
        "docs": read.documents,
        "seconds": elapsed,
        "docs_per_s": read.documents / elapsed,
        "p50_ms": percentile(s.latencies_ms, 50),
        "p95_ms": percentile(s.latencies_ms, 95),
        "success": written.success_rate,
        "tokens": s.tokens,
        "429s": s.rate_limited,
        "retries": s.retries,
        "embed_seconds": embedded.seconds,
        "read_seconds": read.seconds,
        "write_seconds": written.seconds,
        "points": points,
        "chunks": read.chunks,
        "requests": s.requests,
        "duplicate_texts_at_server": server["duplicate_texts"],
        "server_429s": server["status"].get("429", 0),
    }
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
        result["profile"] = out.getvalue()
    return result


def refused(sim: Simulator, n: int = 64) -> dict:
    """Requests sent before the engine gives up on a model or a dimension the server refuses."""
    texts = [f"input {i} about the index" for i in range(n)]
    cases = {
        "unknown model name": ({"model": "text-embedding-3-small"}, {"model": "no-such-model"}),
        "dimensions refused (vLLM)": (
            {"model": "nomic-embed-text", "dimensions": 768, "dimensions_param": "reject"},
            {"model": "nomic-embed-text", "dimensions": 256},
        ),
    }
    result = {}
    for name, (server, client) in cases.items():
        sim.configure(**server)
        try:
            OpenAIEmbedder(api_key=KEY, base_url=sim.base_url, **client).embed(texts)
            verdict = "no error raised"
        except EmbeddingRequestError as exc:
            verdict = str(exc)
        result[name] = (sim.stats()["requests"], verdict)
    return result


def untold(sim: Simulator, corpus: Path, data: Path, tpm: int) -> dict:
    """The product keeps its defaults (3,000 RPM, 1 M TPM). With the vectors' size set, no probe for it
    goes first: the first batch (~50,000 tokens) meets the 429 "Request too large"."""
    sim.configure(rpm=TIER1["rpm"], tpm=tpm)
    return product(sim, corpus, data, dimensions=1536)


def print_untold(u: dict, tpm: int, docs: int) -> None:
    perfect = max(0.0, u["tokens"] - tpm) / (tpm / 60)
    print(
        f"(untold) {tpm:,} TPM not told to the product, {docs} documents: {u['tokens']} tokens in "
        f"{u['requests']} requests, {u['server_429s']} 429s from the server, embedding took "
        f"{u['embed_seconds']:.1f} s (a perfect client: {perfect:.1f} s), whole run {u['seconds']:.1f} s; "
        f"{u['points']} points for {u['chunks']} chunks, indexed {u['success']:.1%}"
    )


def print_refused(r: dict) -> None:
    for name, (requests, verdict) in r.items():
        print(f"(refused) {name}, 64 inputs: {requests} requests sent; {verdict[:160]}")


def row(name: str, r: dict) -> str:
    return (
        f"{name:<34} {r['docs']:>6} {r['docs_per_s']:>9.1f} {r['p50_ms']:>8.0f} {r['p95_ms']:>8.0f} "
        f"{r['success']:>8.1%} {r['tokens']:>8} {r['429s']:>5} {r['retries']:>7}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--old-sample", type=int, default=50, help="documents the old loop is timed on")
    parser.add_argument("--limited-tpm", type=int, default=20_000)
    parser.add_argument("--only-untold", action="store_true", help="only the (untold) and (refused) runs")
    args = parser.parse_args()
    sim = Simulator()
    if args.only_untold:
        try:
            with tempfile.TemporaryDirectory() as tmp:
                make_corpus(Path(tmp) / "corpus", args.docs)
                u = untold(sim, Path(tmp) / "corpus", Path(tmp) / "untold", args.limited_tpm)
                r = refused(sim)
        finally:
            sim.stop()
        print_untold(u, args.limited_tpm, args.docs)
        print_refused(r)
        return
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            corpus = tmp / "corpus"
            make_corpus(corpus, args.docs)
            texts = [
                json.loads(p.read_text())[0]["content"]
                for p in sorted((corpus / "tasks").glob("*/api_conversation_history.json"))
            ]

            sim.configure(**TIER1)
            a = old_loop(sim, texts[: args.old_sample], tmp / "old")
            sim.configure(**TIER1)
            b = product(sim, corpus, tmp / "b")
            sim.configure(rpm=TIER1["rpm"], tpm=args.limited_tpm)
            lim = product(sim, corpus, tmp / "lim", rpm=TIER1["rpm"], tpm=args.limited_tpm)
            sim.configure()
            c = product(sim, corpus, tmp / "c", profile=True, rpm=10**9, tpm=10**12)
            sim.configure(
                faults={"error_500": 0.02, "drop": 0.01, "spurious_429": 0.01, "retry_after_ms": 200}, **TIER1
            )
            # Requests of 10 inputs: enough requests (~100) for the fault rates to bite.
            d = product(sim, corpus, tmp / "d", max_inputs=10)
            u = untold(sim, corpus, tmp / "untold", args.limited_tpm)
            r = refused(sim)
    finally:
        sim.stop()

    print(
        f"simulator: {LATENCY_MS} ms ± {JITTER_MS} ms per request; corpus: {args.docs} task descriptions, "
        f"{b['tokens']} tokens ({b['tokens'] / args.docs:.0f} per document)\n"
    )
    print(
        f"{'run':<34} {'docs':>6} {'docs/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'success':>8} {'tokens':>8} "
        f"{'429s':>5} {'retries':>7}"
    )
    print(row(f"(a) old loop ({args.old_sample}-doc sample)", a))
    print(row("(b) product, Tier-1 limits", b))
    print(row(f"(limiter) product, {args.limited_tpm:,} TPM", lim))
    print(row("(c) product, no rate limit", c))
    print(row("(d) product, faults on, 10/request", d))
    print(f"\n(b) / (a) = {b['docs_per_s'] / a['docs_per_s']:.0f}x the old loop's docs/s")
    perfect = max(0.0, lim["tokens"] - args.limited_tpm) / (args.limited_tpm / 60)
    print(
        f"limiter: {lim['tokens']} tokens at {args.limited_tpm:,} TPM: a perfect client needs {perfect:.1f} s "
        f"(tokens beyond the first full bucket / refill rate); the embedding stage took "
        f"{lim['embed_seconds']:.1f} s → efficiency {perfect / lim['embed_seconds']:.1%}; "
        f"429s from the server: {lim['server_429s']}; indexed {lim['success']:.1%}"
    )
    print(
        f"(d) faults: {d['points']} points for {d['chunks']} chunks, {d['retries']} retries, "
        f"{d['duplicate_texts_at_server']} texts embedded twice at the server, indexed {d['success']:.1%}"
    )
    print_untold(u, args.limited_tpm, args.docs)
    print_refused(r)
    print(
        f"(c) where the time goes: read+chunk {c['read_seconds']:.2f} s, embed {c['embed_seconds']:.2f} s "
        f"({c['requests']} requests), write {c['write_seconds']:.2f} s\n"
    )
    print(c["profile"])


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
