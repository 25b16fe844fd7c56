"""Time ticks of `corpus_change_sensor` over corpora of 1,000 to 50,000 units, and what its runs cost.

Dagster times a sensor tick out after 60 s; the aim is < 2 s at 50,000 units. Each unit is a task
folder with three files, like a Roo Code task. One corpus and one Dagster instance per size; timed:
the first tick over unregistered units (adds partitions, one range run), then `--repeats` ticks each
over the unchanged registered corpus, with one unit edited, and with 20 units edited spread evenly
across the corpus (units requested: exactly 20, where the old single range from the first to the
last change spanned nearly all of them). Prints median wall and CPU seconds, the machine's load
average and the process's peak RSS, and what resolving every key of a range run over the corpus costs
(`Indexer.resolve`); asserts nothing.

`--runs N` also runs the requested runs for real (in-process, on a Dagster test instance, against
the simulator) on an indexed corpus of N units with 20 changes spread: exactly the changed units
(INDEXER_SENSOR_RANGE_GAP=0), the sensor's default (changes joined across gaps of up to 25 unchanged
units), and the old single range; partitions materialized and seconds.

    .venv/bin/python benchmarks/bench_sensor.py [--sizes 10000 50000] [--repeats 5] [--runs 200]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import dagster as dg

from indexer_pipeline.catalog import Catalog
from indexer_pipeline.corpus import discover_units, unit_fingerprint
from indexer_pipeline.dagster_defs.resources import IndexerResource
from indexer_pipeline.dagster_defs.sensors import corpus_change_sensor
from indexer_pipeline.models import SourceUnit, UnitContent
from indexer_pipeline.pipeline import Indexer


def make_corpus(root: Path, units: int) -> None:
    for i in range(units):
        task = root / "tasks" / f"{i:08d}-0000-4000-8000-000000000000"
        task.mkdir(parents=True)
        (task / "api_conversation_history.json").write_text(
            json.dumps([{"role": "user", "content": f"task {i}", "ts": 1_700_000_000_000 + i}])
        )
        (task / "ui_messages.json").write_text("[]")
        (task / "task_metadata.json").write_text('{"files_in_context": []}')


def tick(instance: dg.DagsterInstance, res: IndexerResource) -> tuple[tuple[float, float], dg.SensorResult]:
    """((wall s, CPU s) of one tick, its result), with its partition additions applied."""
    context = dg.build_sensor_context(instance=instance, resources={"indexer": res})
    start, cpu = time.perf_counter(), time.process_time()
    result = corpus_change_sensor(context)
    elapsed = (time.perf_counter() - start, time.process_time() - cpu)
    for request in result.dynamic_partitions_requests or []:  # what the daemon would apply
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return elapsed, result


def mark_indexed(resource: IndexerResource, units: list[SourceUnit]) -> None:
    """Record units as indexed at their current fingerprint, as a finished run would."""
    with Catalog(resource.settings().catalog_path) as catalog:
        for unit in units:
            fingerprint = unit_fingerprint(unit)
            catalog.replace_unit(UnitContent(unit, [], []), [], fingerprint)
            catalog.mark_indexed(unit.key, 0, fingerprint)


def mark_all_indexed(resource: IndexerResource) -> None:
    mark_indexed(resource, discover_units(resource.settings().corpus_dirs))


CHANGES = 20


def edit(path: Path) -> None:
    """A real edit: the message's text changes, so its chunk is embedded again."""
    messages = json.loads(path.read_text())
    messages[0]["content"] += " (edited)"
    path.write_text(json.dumps(messages))
    later = time.time_ns() + 2_000_000_000
    os.utime(path, ns=(later, later))


def spread(corpus: Path, units: int, shift: int = 0) -> list[Path]:
    """The conversation files of CHANGES units spread evenly across the corpus (`shift` picks others)."""
    folders = sorted((corpus / "tasks").iterdir())
    return [
        folders[i * units // CHANGES + units // (2 * CHANGES) + shift] / "api_conversation_history.json"
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


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def resolve(res: IndexerResource, keys: list[str]) -> None:
    """What a range run does first: its partition keys to units (`Indexer.resolve`), all present, and with
    one unit gone (which costs one listing of the corpus)."""
    with Indexer(res.settings()) as ix:
        for what, asked in (("all present", keys), ("one gone", [*keys[1:], "task-gone"])):
            start, cpu = time.perf_counter(), time.process_time()
            units, gone = ix.resolve(asked)
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            assert len(units) == len(asked) - len(gone) and len(gone) == (what == "one gone")
            print(f"{len(keys):>7}  resolve {len(asked)} keys, {what}: {wall:.3f} s wall, {cpu:.3f} CPU s")


def bench(units: int, repeats: int) -> dict[str, tuple[float, float, str]]:
    """name -> (median wall s, median CPU s, what was requested). One corpus and instance per size;
    the edits of each repetition touch other units than the last one's."""
    timings: dict[str, list[tuple[float, float]]] = {
        "first tick (new units)": [],
        "unchanged": [],
        "one unit edited": [],
        f"{CHANGES} units edited, spread": [],
    }
    counts: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test() as instance:
        corpus = Path(tmp) / "corpus"
        make_corpus(corpus, units)
        res = IndexerResource(corpus_dir=str(corpus), data_dir=str(Path(tmp) / "data"))
        by_path = {u.path: u for u in discover_units([corpus])}
        print(f"{units:>7}  peak RSS before the first tick: {peak_rss_mb():.0f} MB", flush=True)
        resolve(res, [u.key for u in by_path.values()])
        elapsed, result = tick(instance, res)
        assert len(result.run_requests) == 1, "many new units must go out as one range run"
        timings["first tick (new units)"].append(elapsed)
        mark_all_indexed(res)
        for _ in range(repeats):
            timings["unchanged"].append(tick(instance, res)[0])
        for rep in range(repeats):
            edited = spread(corpus, units, shift=rep)[0]
            edit(edited)
            elapsed, result = tick(instance, res)
            assert [r.partition_key for r in result.run_requests] == [by_path[edited.parent].key]
            timings["one unit edited"].append(elapsed)
            counts["one unit edited"] = f"{len(result.run_requests)} runs, 1 unit"
            mark_indexed(res, [by_path[edited.parent]])
        for rep in range(repeats):
            paths = spread(corpus, units, shift=repeats + rep)
            for path in paths:
                edit(path)
            elapsed, result = tick(instance, res)
            timings[f"{CHANGES} units edited, spread"].append(elapsed)
            requested = requested_units(instance, result.run_requests)
            keys = instance.get_dynamic_partitions("source_units")
            span = keys.index(requested[-1][-1]) - keys.index(requested[0][0]) + 1
            counts[f"{CHANGES} units edited, spread"] = (
                f"{len(requested)} runs, {sum(map(len, requested))} units (old single range: {span} units)"
            )
            mark_indexed(res, [by_path[p.parent] for p in paths])
    return {
        name: (
            statistics.median(wall for wall, _ in values),
            statistics.median(cpu for _, cpu in values),
            counts.get(name, ""),
        )
        for name, values in timings.items()
    }


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
    parser.add_argument("--repeats", type=int, default=5, help="ticks timed per case (medians printed)")
    parser.add_argument("--runs", type=int, default=0, help="also run the requested runs at this many units")
    args = parser.parse_args()
    for size in args.sizes:
        results = bench(size, args.repeats)
        print(
            f"{'units':>7}  {'tick':<24} {'wall s':>7} {'CPU s':>6}  requested  (load average {os.getloadavg()[0]:.1f})"
        )
        for name, (seconds, cpu, what) in results.items():
            print(f"{size:>7}  {name:<24} {seconds:>7.3f} {cpu:>6.3f}  {what}")
        print(f"{size:>7}  peak RSS of the process so far: {peak_rss_mb():.0f} MB", flush=True)
    if args.runs:
        run_requests_for_real(args.runs)


if __name__ == "__main__":
    main()
