"""Time one tick of `corpus_change_sensor` over corpora of 1,000 and 10,000 units, and what its runs cost.

Dagster times a sensor tick out after 60 s; the aim is < 2 s at 10,000 units. Each unit is a task
folder with three files, like a Roo Code task. Four ticks are timed per size: the first over
unregistered units (adds partitions, one range run), then over an unchanged registered corpus,
then with one unit edited, then with 20 units edited spread evenly across the corpus (units
requested: exactly 20, where the old single range from the first to the last change spanned
nearly all of them). Prints medians of 3 repetitions; asserts nothing.

`--runs N` also runs the requested runs for real (in-process, on a Dagster test instance, against
the simulator) on an indexed corpus of N units with 20 changes spread: exactly the changed units
(INDEXER_SENSOR_RANGE_GAP=0), the sensor's default (changes joined across gaps of up to 25 unchanged
units), and the old single range; partitions materialized and seconds.

    .venv/bin/python benchmarks/bench_sensor.py [--sizes 1000 10000] [--runs 200]
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


CHANGES = 20


def edit(path: Path) -> None:
    """A real edit: the message's text changes, so its chunk is embedded again."""
    messages = json.loads(path.read_text())
    messages[0]["content"] += " (edited)"
    path.write_text(json.dumps(messages))
    later = time.time_ns() + 2_000_000_000
    os.utime(path, ns=(later, later))


def spread(corpus: Path, units: int) -> list[Path]:
    """The conversation files of CHANGES units spread evenly across the corpus."""
    folders = sorted((corpus / "tasks").iterdir())
    return [
        folders[i * units // CHANGES + units // (2 * CHANGES)] / "api_conversation_history.json"
        for i in range(CHANGES)
    ]


def requested_units(instance: dg.DagsterInstance, runs: list[dg.RunRequest]) -> list[list[str]]:
    keys = instance.get_dynamic_partitions("source_units")
    out = []
    for run in runs:
        if run.partition_key:
            out.append([run.partition_key])
        else:
            first = keys.index(run.tags["dagster/asset_partition_range_start"])
            out.append(keys[first : keys.index(run.tags["dagster/asset_partition_range_end"]) + 1])
    return out


def bench(units: int, repeats: int = 3) -> dict[str, tuple[float, str]]:
    timings: dict[str, list[float]] = {
        "first tick (new units)": [],
        "unchanged": [],
        "one unit edited": [],
        f"{CHANGES} units edited, spread": [],
    }
    counts: dict[str, str] = {}
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
            counts["one unit edited"] = f"{len(result.run_requests)} runs, 1 unit"
            mark_all_indexed(resource)
            for path in spread(corpus, units):
                edit(path)
            elapsed, result = tick(instance, resource)
            timings[f"{CHANGES} units edited, spread"].append(elapsed)
            requested = requested_units(instance, result.run_requests)
            span = len({k for keys in requested for k in keys}) and (
                instance.get_dynamic_partitions("source_units").index(requested[-1][-1])
                - instance.get_dynamic_partitions("source_units").index(requested[0][0])
                + 1
            )
            counts[f"{CHANGES} units edited, spread"] = (
                f"{len(requested)} runs, {sum(map(len, requested))} units (old single range: {span} units)"
            )
    return {name: (statistics.median(values), counts.get(name, "")) for name, values in timings.items()}


def run_requests_for_real(units: int) -> None:
    """Index `units` units, edit CHANGES spread across them, then run what the sensor requests and,
    for comparison, the old single range from the first to the last change."""
    from indexer_pipeline.dagster_defs.checks import collection_integrity
    from indexer_pipeline.definitions import defs
    from indexer_pipeline.embeddings.simulator import EmbeddingSimulator

    assets = [defs.get_assets_def(k) for k in ("raw_documents", "document_embeddings", "qdrant_collection")]

    def execute(instance, request_keys: list[str]) -> float:
        target = (
            {"partition_key": request_keys[0]}
            if len(request_keys) == 1
            else {
                "tags": {
                    "dagster/asset_partition_range_start": request_keys[0],
                    "dagster/asset_partition_range_end": request_keys[-1],
                }
            }
        )
        start = time.perf_counter()
        dg.materialize(
            [*assets, collection_integrity], instance=instance, resources={"indexer": resource}, **target
        )
        return time.perf_counter() - start

    # INDEXER_SENSOR_RANGE_GAP: 0 requests exactly the changed units; the default joins small gaps.
    for strategy, gap in (("exact (gap 0)", "0"), ("this sensor (gap 25)", "25"), ("old single range", "0")):
        os.environ["INDEXER_SENSOR_RANGE_GAP"] = gap
        with (
            tempfile.TemporaryDirectory() as tmp,
            EmbeddingSimulator(dimensions=256) as sim,
            dg.instance_for_test() as instance,
        ):
            corpus = Path(tmp) / "corpus"
            make_corpus(corpus, units)
            os.environ.update(OPENAI_API_KEY=sim.api_key)
            resource = IndexerResource(
                corpus_dir=str(corpus),
                data_dir=str(Path(tmp) / "data"),
                embedding_provider="openai",
                openai_base_url=sim.base_url,
                embedding_dimensions=256,
            )
            _, result = tick(instance, resource)
            execute(instance, requested_units(instance, result.run_requests)[0])
            for path in spread(corpus, units):
                edit(path)
            _, result = tick(instance, resource)
            runs = requested_units(instance, result.run_requests)
            if strategy == "old single range":
                keys = instance.get_dynamic_partitions("source_units")
                runs = [keys[keys.index(runs[0][0]) : keys.index(runs[-1][-1]) + 1]]
            inputs = sim.stats()["inputs"]
            seconds = sum(execute(instance, keys) for keys in runs)
            print(
                f"{units:>7}  {strategy:<24} {len(runs):>4} runs  {sum(map(len, runs)):>5} partitions materialized"
                f"  {seconds:7.1f} s  {sim.stats()['inputs'] - inputs} chunks embedded"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--runs", type=int, default=0, help="also run the requested runs at this many units")
    args = parser.parse_args()
    print(f"{'units':>7}  {'tick':<24} {'median s':>9}  requested")
    for size in args.sizes:
        for name, (seconds, what) in bench(size).items():
            print(f"{size:>7}  {name:<24} {seconds:>9.3f}  {what}")
    if args.runs:
        run_requests_for_real(args.runs)


if __name__ == "__main__":
    main()
