"""Peak memory of `indexer-pipeline index` as the corpus grows, and an unchanged re-run (issue 12, items 2, 3).

For each size, bench_throughput's corpus (plain-text documents of ~70 words, 100 per folder) is indexed by
the CLI's own `main(["index"])` in a child process, against the simulator in its own process (zero latency,
no limits), into Qdrant Edge. Every 50 ms the parent reads the child's /proc/<pid>/status: RssAnon is the
process's own memory (Python objects, buffers, and the store's heap: quantized vectors, index builds),
RssFile the file-backed pages it maps (the store's segments, SQLite's pages, libraries), which the kernel
can drop; their peaks are printed apart, and the exact peak of the total is wait4's ru_maxrss. The child
says when the index build that ends the run starts and its peak RSS (VmHWM) until then, so the peaks of
the stream (read → embed → write → persist, batch by batch) and of the build are printed apart too. Then
the size on disk of the store, the catalog and the embedding cache; wall and CPU seconds; the load
average (1 min, at start and end).

--rerun runs the CLI again on the unchanged corpus: it must read no unit (every unit's `read_at` in the
catalog stays as it was) and send no embedding request, and its time is printed.
--optimize-every-batch builds the vector index at every batch's persist (as `flush` did before the stream
optimized once at the end), to compare. --python-heap traces the Python heap (tracemalloc, slow) and
prints its peak: what of RssAnon is the product's Python objects rather than the store's own (Rust) heap.
Linux only (/proc, wait4). Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_memory.py [--docs 20000 100000] [--dimensions 1536] [--rerun]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import urllib.request
from pathlib import Path

from bench_throughput import KEY, Simulator, make_corpus

FIELDS = ("VmRSS", "VmHWM", "RssAnon", "RssFile")
CHILD_SAYS = "bench_memory:"  # the child's lines on stderr for this script


def status_kb(pid: int) -> dict[str, int]:
    """The RSS fields of a live process's /proc status, in kB ({} once it has exited)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return {}
    out = {}
    for line in lines:
        name, _, value = line.partition(":")
        if name in FIELDS:
            out[name] = int(value.split()[0])
    return out


def disk_mb(path: Path) -> float:
    """Blocks in use: Edge preallocates sparse files, whose apparent size says nothing."""
    files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
    return round(sum(f.stat().st_blocks * 512 for f in files) / 2**20, 1)


def read_at(catalog: Path) -> dict[str, float]:
    with sqlite3.connect(f"file:{catalog}?mode=ro", uri=True) as db:
        return dict(db.execute("SELECT key, read_at FROM units"))


def requests_served(base_url: str) -> int:
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/_stats", timeout=10) as answer:
        return json.loads(answer.read())["requests"]


def run_cli(env: dict, mode: str) -> dict:
    """`indexer-pipeline index` in a child process (see `child_main`), its RSS sampled; seconds, CPU and
    peaks in MB, overall and split at the start of the final index build."""
    samples: list[tuple[float, dict[str, int]]] = []
    stop = threading.Event()
    load = os.getloadavg()[0]
    start = time.perf_counter()
    # stderr to a file, not a pipe: the progress bar would fill a pipe no one reads.
    with tempfile.TemporaryFile("w+") as errors:
        command = [sys.executable, __file__, "--child", mode]
        child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=errors, text=True)

        def sample() -> None:
            while not stop.is_set():
                samples.append((time.time(), status_kb(child.pid)))
                stop.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)  # the child's own rusage: its exact peak RSS and CPU
        seconds = time.perf_counter() - start
        stop.set()
        sampler.join()
        errors.seek(0)
        err = errors.read()
    code = child.returncode = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"indexer-pipeline index exited {code}: {out[-1000:]} {err[-2000:]}")
    said = dict(line.split(" ", 1) for line in err.splitlines() if line.startswith(CHILD_SAYS))
    built_from = float(said.get(f"{CHILD_SAYS}optimize_at", "inf"))

    def peak(field: str, before: bool | None = None) -> int:
        kept = [f.get(field, 0) for t, f in samples if before is None or (t < built_from) == before]
        return round(max(kept, default=0) / 1024)

    return {
        "seconds": round(seconds, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "load_avg_1m": [round(load, 1), round(os.getloadavg()[0], 1)],
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "peak_rss_anon_mb": peak("RssAnon"),
        "peak_rss_file_mb": peak("RssFile"),
        # The stream (read → embed → write → persist per batch), then the index build that ends the run.
        "stream_peak_rss_mb": round(float(said.get(f"{CHILD_SAYS}hwm_mb", 0))),  # 0: no final build
        "stream_peak_anon_file_mb": [peak("RssAnon", True), peak("RssFile", True)],
        "build_peak_anon_file_mb": [peak("RssAnon", False), peak("RssFile", False)],
        **(
            {"python_heap_peak_mb": float(said[f"{CHILD_SAYS}heap_mb"])}
            if f"{CHILD_SAYS}heap_mb" in said
            else {}
        ),
        "summary": out.strip().splitlines()[-1] if out.strip() else "",
    }


def bench(docs: int, sim: Simulator, dimensions: int, rerun: bool, mode: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        corpus, data = Path(tmp) / "corpus", Path(tmp) / "data"
        make_corpus(corpus, docs)
        env = {
            **os.environ,
            "INDEXER_CORPUS_DIR": str(corpus),
            "INDEXER_DATA_DIR": str(data),
            "EMBEDDING_PROVIDER": "openai",
            "OPENAI_API_KEY": KEY,
            "OPENAI_BASE_URL": sim.base_url,
            "EMBEDDING_DIMENSIONS": str(dimensions),
            "EMBEDDING_RPM": "10000000",  # far above anything reached: no client-side limit binds
            "EMBEDDING_TPM": "10000000000",
        }
        env.pop("QDRANT_URL", None)
        first = run_cli(env, mode)
        sizes = {
            "store_disk_mb": disk_mb(data / "qdrant_edge"),
            "catalog_disk_mb": sum(disk_mb(p) for p in data.glob("catalog.sqlite*")),
            "cache_disk_mb": sum(disk_mb(p) for p in data.glob("*cache*")),
        }
        print(
            json.dumps({"docs": docs, "dimensions": dimensions, "run": "first", **first, **sizes}), flush=True
        )
        if rerun:
            before, requests = read_at(data / "catalog.sqlite"), requests_served(sim.base_url)
            again = run_cli(env, mode)
            after = read_at(data / "catalog.sqlite")
            again["units_read"] = sum(after.get(k) != t for k, t in before.items())
            again["embedding_requests"] = requests_served(sim.base_url) - requests
            print(
                json.dumps({"docs": docs, "dimensions": dimensions, "run": "unchanged", **again}), flush=True
            )


def child_main(mode: str) -> int:
    """The CLI's `index` (its own `main`), saying on stderr when the final index build starts and the
    peak RSS until then; "traced" also says the Python heap's peak; "optimizing" builds the index at
    every batch's persist instead of once at the end."""
    from indexer_pipeline import cli
    from indexer_pipeline.vectorstore.edge import EdgeStore

    persist, optimize = EdgeStore.persist, EdgeStore.optimize

    def persist_and_optimize(store: EdgeStore) -> None:  # what a per-batch flush did
        persist(store)
        optimize(store)

    def said_optimize(store: EdgeStore) -> None:
        if not said:
            said.append(True)
            print(f"\n{CHILD_SAYS}optimize_at {time.time()}", file=sys.stderr)  # after the bar's \r
            print(f"{CHILD_SAYS}hwm_mb {status_kb(os.getpid())['VmHWM'] / 1024}", file=sys.stderr)
        optimize(store)

    said: list[bool] = []
    if mode == "optimizing":
        EdgeStore.persist = persist_and_optimize
    else:
        EdgeStore.optimize = said_optimize
    if mode == "traced":
        tracemalloc.start()
    code = cli.main(["index"])
    if mode == "traced":
        print(f"\n{CHILD_SAYS}heap_mb {tracemalloc.get_traced_memory()[1] / 2**20:.0f}", file=sys.stderr)
    return code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, nargs="+", default=[20000, 100000])
    parser.add_argument("--dimensions", type=int, default=1536, help="the simulator model's size")
    parser.add_argument("--rerun", action="store_true", help="then time an unchanged re-run")
    parser.add_argument("--optimize-every-batch", action="store_true", help="index at each batch's persist")
    parser.add_argument("--python-heap", action="store_true", help="trace the Python heap's peak (slow)")
    parser.add_argument("--child", choices=["plain", "optimizing", "traced"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.exit(child_main(args.child))
    sim = Simulator(args.dimensions)
    try:
        print(
            f"simulator: latency 0 ms, no limits, {args.dimensions}-d; Qdrant Edge; CLI `indexer-pipeline index`"
        )
        for docs in args.docs:
            mode = "optimizing" if args.optimize_every_batch else "traced" if args.python_heap else "plain"
            bench(docs, sim, args.dimensions, args.rerun, mode)
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
