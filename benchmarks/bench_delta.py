"""Delta indexing at 10,000 documents: what an unchanged re-run and a one-document edit cost.

The corpus: 1,000 Roo Code task folders of 10 messages each (10,000 documents), embedded through the
simulator on 127.0.0.1 (no latency) into Qdrant Edge. Then:
  1. a full re-run over the unchanged corpus: embedding requests and upserts (both should be 0), time;
  2. one message edited: which units the change sensor requests, and what their re-run embeds;
  3. day 8 (the cache's clock moved past its 7-day TTL), one message appended: what is embedded.
Prints figures; asserts nothing.         .venv/bin/python benchmarks/bench_delta.py [--tasks 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import dagster as dg

from indexer_pipeline.config import Settings
from indexer_pipeline.dagster_defs.resources import IndexerResource
from indexer_pipeline.dagster_defs.sensors import corpus_change_sensor
from indexer_pipeline.embeddings.cache import EmbeddingCache
from indexer_pipeline.embeddings.simulator import EmbeddingSimulator
from indexer_pipeline.pipeline import Indexer

TOPICS = "parser cache scheduler importer exporter webhook billing search auth logging".split()


def make_corpus(root: Path, tasks: int) -> None:
    for t in range(tasks):
        folder = root / "tasks" / f"delta-{t:05d}"
        folder.mkdir(parents=True)
        messages = [
            {
                "role": "user" if m % 2 == 0 else "assistant",
                "ts": 1_760_000_000_000 + m,
                "content": f"Task {t} message {m}: the {TOPICS[(t + m) % 10]} needs a retry with backoff "
                f"and a clear log line when step {m} of job {t} fails.",
            }
            for m in range(10)
        ]
        (folder / "api_conversation_history.json").write_text(json.dumps(messages))


def run(
    settings: Settings, keys: list[str] | None = None, cache: EmbeddingCache | None = None
) -> tuple[float, dict]:
    with Indexer(settings, cache=cache) as ix:
        units = ix.units() if keys is None else ix.resolve(keys)[0]
        start = time.perf_counter()
        read, embedded, written = ix.index(units)
        elapsed = time.perf_counter() - start
    return elapsed, {
        "units": read.units,
        "documents": read.documents,
        "chunks": read.chunks,
        "embedding_requests": embedded.stats.requests,
        "embedded": embedded.embedded,
        "cache_hits": embedded.cache_hits,
        "already_indexed": embedded.already_indexed,  # chunks of units skipped whole: no lookup at all
        "upserted": written.upserted,
        "unchanged": written.unchanged,
        "deleted": written.deleted,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    args = parser.parse_args()
    with EmbeddingSimulator(dimensions=1536) as sim, tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        make_corpus(corpus, args.tasks)
        settings = Settings.from_env(
            corpus_dirs=[corpus],
            data_dir=Path(tmp) / "data",
            embedding_provider="openai",
            openai_api_key=sim.api_key,
            openai_base_url=sim.base_url,
            qdrant_url=None,
        )
        first, stats = run(settings)
        print(f"first index:        {first:7.2f} s  {stats}")
        before = sim.stats()["requests"]
        again, stats = run(settings)
        print(
            f"unchanged re-run:   {again:7.2f} s  {stats}  requests at the simulator: "
            f"{sim.stats()['requests'] - before}"
        )

        requests_before = sim.stats()["requests"]
        edited = corpus / "tasks" / "delta-00042" / "api_conversation_history.json"
        messages = json.loads(edited.read_text())
        messages[3]["content"] += " Edited: also alert the on-call channel."
        edited.write_text(json.dumps(messages))
        later = time.time_ns() + 2_000_000_000
        os.utime(edited, ns=(later, later))

        resource = IndexerResource(
            corpus_dir=str(corpus), data_dir=str(Path(tmp) / "data"), embedding_provider="openai"
        )
        with dg.instance_for_test() as instance:
            with Indexer(settings) as ix:
                instance.add_dynamic_partitions("source_units", [u.key for u in ix.units()])
            start = time.perf_counter()
            result = corpus_change_sensor(
                dg.build_sensor_context(instance=instance, resources={"indexer": resource})
            )
            tick = time.perf_counter() - start
        requested = [r.partition_key for r in result.run_requests]
        print(f"sensor tick after one edit: {tick:.2f} s, units requested: {requested}")
        one, stats = run(settings, requested)
        print(
            f"re-run of that unit: {one:7.2f} s  {stats}  "
            f"simulator inputs embedded: {sim.stats()['inputs']}, requests: {sim.stats()['requests'] - requests_before}"
        )

        # Day 8: every cache entry is past its TTL; one message appended to a task.
        day8 = time.time() + 8 * 86400
        cache = EmbeddingCache(settings.cache_path, ttl_s=settings.cache_ttl_days * 86400, clock=lambda: day8)
        appended = corpus / "tasks" / "delta-00077" / "api_conversation_history.json"
        messages = json.loads(appended.read_text())
        messages.append({"role": "user", "ts": 1_760_000_000_999, "content": "Day 8: one more question."})
        appended.write_text(json.dumps(messages))
        inputs_before = sim.stats()["inputs"]
        day8_s, stats = run(settings, ["task-delta-00077"], cache=cache)
        print(
            f"day 8, one message appended: {day8_s:.2f} s  {stats}  "
            f"simulator inputs embedded: {sim.stats()['inputs'] - inputs_before}"
        )


if __name__ == "__main__":
    main()
