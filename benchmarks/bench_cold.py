"""Cold CLI `search` and `status` on a large Qdrant Edge store: wall seconds, CPU seconds and peak RSS of
each new process, as a user's command pays them (issue 12, item 3: search < 1 s and < 400 MB at 1M points).

The store is written once per folder (scale_corpus: text-derived vectors, BM25, payloads) through
`open_store` with the settings of the environment (QDRANT_EDGE_ON_DISK and the others apply), then
flushed (the index is built). Each command then runs `--runs` times as a new process, the query
embedded by the simulator on 127.0.0.1. "Cold" is a new process; the OS page cache stays warm (dropping
it needs root), so a first command after a reboot also pays the disk reads. Then `search.search` runs
`--queries` times in this process, query embedding included (item 4: p95 < 25 ms at 100,000 points),
as an MCP server or a UI answers. Also prints how much of the store the page cache holds before and
after one command opens it (`fincore`). Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_cold.py --points 100000 [--dim 384] [--data-dir /tmp/edgescale-cold]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scale_corpus import batches

from indexer_pipeline.config import Settings
from indexer_pipeline.embeddings.simulator import EmbeddingSimulator
from indexer_pipeline.metrics import percentile
from indexer_pipeline.pipeline import Indexer
from indexer_pipeline.search import SearchRequest, search
from indexer_pipeline.vectorstore import open_store

CLI = str(Path(sys.executable).with_name("indexer-pipeline"))


def build(settings: Settings, points: int, dim: int) -> None:
    start, cpu = time.perf_counter(), time.process_time()
    store = open_store(settings)
    store.ensure_collection(dim)
    for chunk in batches(points, dim):
        store.upsert(chunk)
    write = time.perf_counter() - start
    store.flush()
    store.close()
    print(
        f"built {points} x {dim}: write {write:.0f} s, flush (index) {time.perf_counter() - start - write:.0f} s,"
        f" cpu {time.process_time() - cpu:.0f} s",
        flush=True,
    )


def run(args: list[str], env: dict) -> tuple[float, float, float]:
    """(wall s, cpu s, peak RSS MB) of one command in a new process. GNU time starts it: a child's
    ru_maxrss counts the RSS of the process it was forked from, and this one holds the simulator."""
    with tempfile.NamedTemporaryFile("r") as out:
        proc = subprocess.run(
            ["/usr/bin/time", "-o", out.name, "-f", "%e %U %S %M", CLI, *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
        if proc.returncode:
            raise SystemExit(f"{args[0]} failed: {proc.stderr.decode()[-2000:]}")
        wall, user, system, rss_kb = out.read().split()[-4:]
    return float(wall), float(user) + float(system), int(rss_kb) / 1024


def resident_mb(folder: Path) -> float:
    """MB of the store's files in the OS page cache (util-linux `fincore`), or -1 without it."""
    files = [str(f) for f in folder.rglob("*") if f.is_file()]
    try:
        out = subprocess.run(
            ["fincore", "-b", "-n", "-r", "-o", "RES", *files], capture_output=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return -1.0
    return sum(int(n) for n in out.stdout.split()) / 2**20


def searches(settings: Settings, queries: list[str], **request) -> list[float]:
    """ms of each `search.search` in this process, the query embedded by the simulator (issue 12, item 4)."""
    times = []
    with Indexer(settings) as ix:
        for query in queries:
            start = time.perf_counter()
            search(ix, SearchRequest(query=query, **request))
            times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--queries", type=int, default=200, help="in-process searches timed")
    parser.add_argument("--data-dir", type=Path, help="default /tmp/edgescale-cold-<points>x<dim>")
    args = parser.parse_args()
    data_dir = args.data_dir or Path(f"/tmp/edgescale-cold-{args.points}x{args.dim}")
    with EmbeddingSimulator(dimensions=args.dim) as sim:
        env = {
            **os.environ,
            "INDEXER_DATA_DIR": str(data_dir),
            "EMBEDDING_PROVIDER": "openai",
            "OPENAI_BASE_URL": sim.base_url,
            "OPENAI_API_KEY": sim.api_key,
            "EMBEDDING_DIMENSIONS": str(args.dim),
            "INDEXER_CORPUS_DIR": str(data_dir / "corpus"),
        }
        (data_dir / "corpus").mkdir(parents=True, exist_ok=True)
        settings = Settings(data_dir=data_dir)
        if not settings.edge_path.exists():
            build(settings, args.points, args.dim)
        # Edge drops a memory-mapped store's files from the page cache when it opens them, so every
        # new process reads the store from disk however much of it the OS held.
        for f in settings.edge_path.rglob("*"):
            if f.is_file():
                with f.open("rb") as fh:
                    while fh.read(1 << 24):
                        pass
        before = resident_mb(settings.edge_path)
        run(["status", "--json"], env)
        print(
            f"store in the page cache: {before:.0f} MB, after one `status`: {resident_mb(settings.edge_path):.0f} MB"
        )
        print(
            f"{'command':<8} {'points':>8} {'dim':>5} {'wall p50':>8} {'max':>6} {'cpu s':>6} {'RSS MB':>7} load"
        )
        for name, command in (
            ("search", ["search", "w12345 w4000 w777 w3"]),
            ("status", ["status", "--json"]),
        ):
            runs = [run(command, env) for _ in range(args.runs)]
            walls = [r[0] for r in runs]
            print(
                f"{name:<8} {args.points:>8} {args.dim:>5} {percentile(walls, 50):>8.2f} {max(walls):>6.2f}"
                f" {percentile([r[1] for r in runs], 50):>6.2f} {max(r[2] for r in runs):>7.0f}"
                f" {os.getloadavg()[0]:.1f}",
                flush=True,
            )
        os.environ.update(env)  # this process's own searches use the same store and simulator
        rng = np.random.default_rng(7)
        queries = [" ".join(f"w{k}" for k in rng.integers(0, 20_000, 4)) for _ in range(args.queries)]
        settings = Settings.from_env()
        searches(settings, queries[:20])  # the embedder's client made, the store's pages read once
        for mode, group in (("hybrid", True), ("hybrid", False), ("dense", True), ("dense", False)):
            times = searches(settings, queries, mode=mode, group=group)
            print(
                f"search.search() in one process, {mode} {'grouped (the CLI rows)' if group else 'ungrouped'},"
                f" query embedded by the simulator: p50 {percentile(times, 50):.1f} ms,"
                f" p95 {percentile(times, 95):.1f} ms ({len(times)} queries, load {os.getloadavg()[0]:.1f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
