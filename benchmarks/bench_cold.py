"""Cold CLI `search` and `status` on a large Qdrant Edge store: wall seconds, CPU seconds and peak RSS of
each new process, as a user's command pays them (issue 12, item 3: search < 1 s and < 400 MB at 1M points).

The store is written once per folder (scale_corpus: text-derived vectors, BM25, payloads) through
`open_store` with the settings of the environment (QDRANT_VECTORS_MEMORY and the others apply), then
flushed (the index is built). Each command then runs `--runs` times as a new process, the query
embedded by the simulator on 127.0.0.1. "Cold" is a new process; the OS page cache stays warm (dropping
it needs root), so a first command after a reboot also pays the disk reads. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_cold.py --points 100000 [--dim 384] [--data-dir /tmp/edgescale-cold]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from scale_corpus import batches

from indexer_pipeline.config import Settings
from indexer_pipeline.embeddings.simulator import EmbeddingSimulator
from indexer_pipeline.metrics import percentile
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
    """(wall s, cpu s, peak RSS MB) of one command in a new process."""
    start = time.perf_counter()
    proc = subprocess.Popen([CLI, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status:
        raise SystemExit(f"{args[0]} failed: {proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--runs", type=int, default=5)
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


if __name__ == "__main__":
    main()
