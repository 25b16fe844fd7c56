"""Time one tick of `corpus_change_sensor` over corpora of 1,000 and 10,000 units.

Dagster times a sensor tick out after 60 s; the aim is < 2 s at 10,000 units. Each unit is a task
folder with three files, like a Roo Code task. Three ticks are timed per size: the first over
unregistered units (adds partitions, one range run), then over an unchanged registered corpus,
then with one unit edited. Prints medians of 3 repetitions; asserts nothing.

    .venv/bin/python benchmarks/bench_sensor.py [--sizes 1000 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import dagster as dg

from indexer_pipeline.catalog import Catalog
from indexer_pipeline.corpus import discover_units
from indexer_pipeline.dagster_defs.resources import IndexerResource
from indexer_pipeline.dagster_defs.sensors import corpus_change_sensor
from indexer_pipeline.models import UnitContent


def make_corpus(root: Path, units: int) -> None:
    for i in range(units):
        task = root / "tasks" / f"{i:08d}-0000-4000-8000-000000000000"
        task.mkdir(parents=True)
        (task / "api_conversation_history.json").write_text(
            json.dumps([{"role": "user", "content": f"task {i}", "ts": 1_700_000_000_000 + i}])
        )
        (task / "ui_messages.json").write_text("[]")
        (task / "task_metadata.json").write_text('{"files_in_context": []}')


def tick(instance: dg.DagsterInstance, resource: IndexerResource) -> tuple[float, dg.SensorResult]:
    context = dg.build_sensor_context(instance=instance, resources={"indexer": resource})
    start = time.perf_counter()
    result = corpus_change_sensor(context)
    elapsed = time.perf_counter() - start
    for request in result.dynamic_partitions_requests or []:  # what the daemon would apply
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return elapsed, result


def mark_all_indexed(resource: IndexerResource) -> None:
    """Record every unit as indexed at its current fingerprint, as a finished run would."""
    from indexer_pipeline.corpus import unit_fingerprint

    settings = resource.settings()
    with Catalog(settings.catalog_path) as catalog:
        for unit in discover_units(settings.corpus_dirs):
            fingerprint = unit_fingerprint(unit)
            catalog.replace_unit(UnitContent(unit, [], []), [], fingerprint)
            catalog.mark_indexed(unit.key, 0, fingerprint)


def bench(units: int, repeats: int = 3) -> dict[str, float]:
    timings: dict[str, list[float]] = {"first tick (new units)": [], "unchanged": [], "one unit edited": []}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test() as instance:
            corpus = Path(tmp) / "corpus"
            make_corpus(corpus, units)
            resource = IndexerResource(corpus_dir=str(corpus), data_dir=str(Path(tmp) / "data"))
            elapsed, result = tick(instance, resource)
            assert len(result.run_requests) == 1, "many new units must go out as one range run"
            timings["first tick (new units)"].append(elapsed)
            mark_all_indexed(resource)
            timings["unchanged"].append(tick(instance, resource)[0])
            edited = next((corpus / "tasks").iterdir()) / "api_conversation_history.json"
            edited.write_text(edited.read_text() + " ")
            os.utime(edited, ns=(time.time_ns(), time.time_ns() + 1_000_000))
            elapsed, result = tick(instance, resource)
            assert len(result.run_requests) == 1
            timings["one unit edited"].append(elapsed)
    return {name: statistics.median(values) for name, values in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args()
    print(f"{'units':>7}  {'tick':<24} {'median s':>9}")
    for size in args.sizes:
        for name, seconds in bench(size).items():
            print(f"{size:>7}  {name:<24} {seconds:>9.3f}")


if __name__ == "__main__":
    main()
