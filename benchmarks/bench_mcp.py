"""MCP `search` tool calls through the SDK's client over stdio, on the indexed sample corpus: p50/p95 with
the store held on a lease (INDEXER_MCP_STORE_HOLD_S, default 5) and opened per call (0); then, with the lease,
how long an index run waits for the store while a client searches without pause, and how a search fares
while a run holds the store. Embeddings come from the simulator on 127.0.0.1. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_mcp.py [--calls 40]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from indexer_pipeline.config import SAMPLE_CORPUS, Settings
from indexer_pipeline.embeddings.simulator import EmbeddingSimulator
from indexer_pipeline.metrics import percentile
from indexer_pipeline.vectorstore.edge import EdgeStore

QUERIES = [
    "pods crash after the upgrade",
    "alembic migration lock timeout",
    "rate limit retries",
    "docker image",
]
SERVER = [sys.executable, "-m", "indexer_pipeline.cli", "mcp"]


async def search_calls(env: dict, calls: int) -> list[float]:
    params = StdioServerParameters(command=SERVER[0], args=SERVER[1:], env=env)
    async with Client(params, read_timeout_seconds=60) as client:
        await client.call_tool("search", {"query": "warm up"})  # the query embedder, the first open
        await anyio.sleep(
            float(env["INDEXER_MCP_STORE_HOLD_S"]) + 0.5
        )  # a released store, as an agent finds it
        times = []
        for i in range(calls):
            start = time.perf_counter()
            result = await client.call_tool("search", {"query": QUERIES[i % len(QUERIES)], "limit": 5})
            times.append(time.perf_counter() - start)
            assert not result.is_error, result.content
        return times


async def writer_wait(env: dict) -> tuple[float, int, int]:
    """A client searches without pause while `index --unit doc-docs` runs: the run's time, and the calls
    answered and refused as retryable meanwhile."""
    params = StdioServerParameters(command=SERVER[0], args=SERVER[1:], env=env)
    answered = refused = 0
    async with Client(params, read_timeout_seconds=60) as client:
        await client.call_tool("search", {"query": "warm up"})
        start = time.perf_counter()
        run = subprocess.Popen(
            [*SERVER[:-1], "index", "--unit", "doc-docs"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while run.poll() is None:
            result = await client.call_tool("search", {"query": "deploying", "limit": 3})
            answered += not result.is_error
            refused += bool(result.is_error and "retryable:" in result.content[0].text)
        return time.perf_counter() - start, answered, refused


async def held_search(env: dict, edge_path: Path) -> tuple[float, str]:
    params = StdioServerParameters(command=SERVER[0], args=SERVER[1:], env=env)
    async with Client(params, read_timeout_seconds=60) as client:
        with EdgeStore(edge_path):
            start = time.perf_counter()
            result = await client.call_tool("search", {"query": "pods crash"})
            return time.perf_counter() - start, result.content[0].text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmbeddingSimulator(dimensions=384) as sim:
        corpus = Path(tmp) / "corpus"
        shutil.copytree(SAMPLE_CORPUS, corpus)
        env = {
            **os.environ,
            "INDEXER_CORPUS_DIR": str(corpus),
            "INDEXER_DATA_DIR": str(Path(tmp) / "data"),
            "EMBEDDING_PROVIDER": "openai",
            "OPENAI_API_KEY": sim.api_key,
            "OPENAI_BASE_URL": sim.base_url,
            "EMBEDDING_DIMENSIONS": "384",
            "DAGSTER_HOME": str(Path(tmp) / "no_dagster"),
        }
        subprocess.run([*SERVER[:-1], "index"], env=env, check=True, capture_output=True)
        for hold in ("5", "0"):
            times = anyio.run(search_calls, {**env, "INDEXER_MCP_STORE_HOLD_S": hold}, args.calls)
            label = "lease 5 s (calls back to back)" if hold != "0" else "open per call"
            print(
                f"search tool call, {label}: p50 {percentile(times, 50) * 1000:.0f} ms, "
                f"p95 {percentile(times, 95) * 1000:.0f} ms ({len(times)} calls, stdio)"
            )
        seconds, answered, refused = anyio.run(writer_wait, {**env, "INDEXER_MCP_STORE_HOLD_S": "5"})
        print(
            f"index run of one unit while a client searches without pause: {seconds:.1f} s; "
            f"{answered} calls answered, {refused} retryable meanwhile"
        )
        alone = time.perf_counter()
        subprocess.run(
            [*SERVER[:-1], "index", "--unit", "doc-docs"], env=env, check=True, capture_output=True
        )
        print(f"the same run with no server: {time.perf_counter() - alone:.1f} s")
        edge_path = Settings.from_env(data_dir=Path(tmp) / "data").edge_path
        seconds, text = anyio.run(held_search, env, edge_path)
        print(f"search while a run holds the store: error after {seconds:.1f} s: {text[:110]}…")


if __name__ == "__main__":
    main()
