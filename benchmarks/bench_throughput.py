"""Docs/s of the product's own path (read → chunk → embed → write), with the API out of the way.

The simulator (indexer_pipeline.embeddings.simulator) runs in its own process on 127.0.0.1 at zero
latency and with no limits; the client is told limits far above what it can reach, so what is left is
the product's own overhead (issue 12, item 4: ≥ 2,000 docs/s). The corpus: plain-text documents of
~70 words, 100 per folder (one unit per folder), indexed by `Indexer.index`, the CLI's path, into
Qdrant Edge. Each size runs in a fresh child process, so its peak RSS is its own.

Prints docs/s (by wall clock, and by this process's CPU time, which a busy machine disturbs less),
seconds per stage (summed over the batches `index` streams), the HNSW build that ends the run, the test
server's own CPU seconds, the load average at the end, and peak RSS; asserts nothing
(benchmarks/bench_memory.py splits the RSS into the product's and the store's).
    .venv/bin/python benchmarks/bench_throughput.py [--docs 1000 20000] [--dimensions 384] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import resource  # POSIX-only: fine in a benchmark, never in indexer_pipeline/
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

KEY = "sk-benchmark-key"
PER_FOLDER = 100
WORDS = (
    "index cache retry sensor partition vector embed chunk token limit upsert query schema deploy worker"
    " queue backoff latency shard replica payload filter cursor scroll batch metric alert the a of to and"
    " in is for on with that this it be as are was from by at an or not"
).split()


def make_corpus(root: Path, n: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    for i in range(n):
        folder = root / f"folder-{i // PER_FOLDER:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        sentences, words = [], rng.randint(60, 80)
        while words > 0:
            length = min(words, rng.randint(6, 14))
            sentences.append(" ".join(rng.choice(WORDS) for _ in range(length)).capitalize() + ".")
            words -= length
        (folder / f"doc-{i % PER_FOLDER:03d}.txt").write_text(f"Document {i}. " + " ".join(sentences) + "\n")


class Simulator:
    """The simulator in its own process: the API's work is not the product's."""

    def __init__(self, dimensions: int):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "indexer_pipeline.embeddings.simulator", "--port", str(port)]
            + ["--api-key", KEY, "--latency-ms", "0", "--jitter-ms", "0", "--dimensions", str(dimensions)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.base_url.removesuffix("/v1") + "/_stats", timeout=2).read()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.2)

    def cpu_s(self) -> float | None:
        """The server's CPU seconds so far (Linux's /proc; None elsewhere): the API's work, apart from ours."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def run_one(docs: int, base_url: str, profile: bool) -> dict:
    """One size, in this (child) process: build the corpus, index it, measure."""
    from indexer_pipeline.config import Settings
    from indexer_pipeline.pipeline import Indexer

    with tempfile.TemporaryDirectory() as tmp:
        corpus, data = Path(tmp) / "corpus", Path(tmp) / "data"
        make_corpus(corpus, docs)
        settings = Settings.from_env(
            corpus_dirs=[corpus],
            data_dir=data,
            embedding_provider="openai",
            openai_api_key=KEY,
            openai_base_url=base_url,
            rpm_limit=10_000_000,  # far above anything reached: no client-side limit binds
            tpm_limit=10_000_000_000,
            qdrant_url=None,
        )
        profiler = cProfile.Profile() if profile else None
        with Indexer(settings) as ix:
            units = ix.units()

            # The HNSW build runs inside the write stage's final flush: timed apart, as it is the
            # store's own work (multi-threaded), not the product's overhead.
            store = ix.store()
            build = [0.0, 0.0]  # wall, CPU

            def timed_optimize(optimize=store.optimize) -> None:
                wall, cpu = time.perf_counter(), time.process_time()
                optimize()
                build[0] += time.perf_counter() - wall
                build[1] += time.process_time() - cpu

            store.optimize = timed_optimize

            start, cpu = time.perf_counter(), time.process_time()
            if profiler:
                profiler.enable()
            read, embedded, written = ix.index(units)
            if profiler:
                profiler.disable()
            end_cpu = time.process_time()
            elapsed = time.perf_counter() - start
            cpu = end_cpu - cpu
            points = ix.store().count()
        if profiler:
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(35)
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    return {
        "docs": read.documents,
        "points": points,
        "seconds": round(elapsed, 2),
        "docs_per_s": round(read.documents / elapsed),
        # This process's CPU time, all threads: what the product costs even on a busy machine.
        "cpu_s": round(cpu, 2),
        "docs_per_cpu_s": round(read.documents / cpu),
        "read_s": round(read.seconds, 2),
        "embed_s": round(embedded.seconds, 2),
        "embed_waiting_on_api_s": round(embedded.embedding_seconds, 2),
        "write_s": round(written.seconds, 2),
        "index_build_s": round(build[0], 2),
        "index_build_cpu_s": round(build[1], 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, nargs="+", default=[1000, 20000])
    parser.add_argument("--dimensions", type=int, default=1536, help="the simulator model's size")
    parser.add_argument("--profile", action="store_true", help="cProfile the run (stderr); slows it")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # "docs base_url": one measured run
    args = parser.parse_args()
    if args.child:
        docs, base_url = args.child.split(" ", 1)
        print(json.dumps(run_one(int(docs), base_url, args.profile)))
        return
    sim = Simulator(args.dimensions)
    try:
        print(
            f"simulator: latency 0 ms, no limits, {args.dimensions}-d; Qdrant Edge; {PER_FOLDER} docs/folder"
        )
        for docs in args.docs:
            command = [sys.executable, __file__, "--child", f"{docs} {sim.base_url}"]
            before = sim.cpu_s()
            out = subprocess.run(
                command + (["--profile"] if args.profile else []), check=True, stdout=subprocess.PIPE
            )
            result = json.loads(out.stdout.decode().strip().splitlines()[-1])
            after = sim.cpu_s()
            # The test server shares the machine's cores: its CPU seconds say how much of the embed
            # stage's wait was the server computing vectors, not the product.
            result["api_server_cpu_s"] = round(after - before, 2) if before is not None else None
            result["load_average"] = [round(x, 1) for x in os.getloadavg()]
            print(json.dumps(result), flush=True)
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
