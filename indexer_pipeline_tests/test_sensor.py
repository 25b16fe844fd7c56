"""The change sensor and the nightly reconcile schedule, evaluated against a real test instance."""

from __future__ import annotations

import datetime
import gc
import json
import os
import time
from pathlib import Path

import dagster as dg
import pytest

from indexer_pipeline.catalog import Catalog
from indexer_pipeline.corpus import discover_units, unit_fingerprint
from indexer_pipeline.dagster_defs.partitions import source_units
from indexer_pipeline.dagster_defs.resources import IndexerResource
from indexer_pipeline.dagster_defs.schedules import nightly_reconcile
from indexer_pipeline.dagster_defs.sensors import corpus_change_sensor, stretches
from indexer_pipeline.models import UnitContent


def write_task(root: Path, task_id: str, text: str) -> Path:
    folder = root / "tasks" / task_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "api_conversation_history.json"
    path.write_text(json.dumps([{"role": "user", "content": text, "ts": 1_760_000_000_000}]))
    return path


def touch_later(path: Path) -> None:
    later = time.time_ns() + 5_000_000_000
    os.utime(path, ns=(later, later))


@pytest.fixture
def world(tmp_path):
    corpus = tmp_path / "corpus"
    for i in range(3):
        write_task(corpus, f"t{i}", f"task number {i}")
    resource = IndexerResource(corpus_dir=str(corpus), data_dir=str(tmp_path / "data"))
    with dg.instance_for_test() as instance:
        yield corpus, resource, instance


def tick(instance, resource, cursor: str | None = None) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=instance, resources={"indexer": resource}, cursor=cursor)
    result = corpus_change_sensor(context)
    for request in result.dynamic_partitions_requests or []:  # what the daemon applies after the tick
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)
    return result


def index_all(resource: IndexerResource) -> None:
    """Record every unit as indexed at its current fingerprint, as a successful run does."""
    settings = resource.settings()
    with Catalog(settings.catalog_path) as catalog:
        for unit in discover_units(settings.corpus_dirs):
            fingerprint = unit_fingerprint(unit)
            catalog.replace_unit(UnitContent(unit, [], []), [], fingerprint)
            catalog.mark_indexed(unit.key, 0, fingerprint)


def test_new_units_are_added_and_requested_as_one_range(world):
    corpus, resource, instance = world
    result = tick(instance, resource)
    assert instance.get_dynamic_partitions(source_units.name) == ["task-t0", "task-t1", "task-t2"]
    [run] = result.run_requests
    assert run.tags["dagster/asset_partition_range_start"] == "task-t0"
    assert run.tags["dagster/asset_partition_range_end"] == "task-t2"


def test_unchanged_and_touched_but_unchanged_corpus_requests_nothing(world):
    corpus, resource, instance = world
    tick(instance, resource)
    index_all(resource)
    result = tick(instance, resource)
    assert not result.run_requests and "all indexed" in result.skip_reason.skip_message
    # Touched without a content change: the fingerprint follows mtime, so the unit re-runs, and the
    # content hashes inside the run make it cost no embedding and no upsert (see test_assets).
    path = corpus / "tasks" / "t1" / "api_conversation_history.json"
    touch_later(path)
    [run] = tick(instance, resource).run_requests
    assert run.partition_key == "task-t1"


def test_changed_unit_is_requested_once_per_change(world):
    corpus, resource, instance = world
    tick(instance, resource)
    index_all(resource)
    path = write_task(corpus, "t2", "task number 2, edited")
    touch_later(path)
    first = tick(instance, resource).run_requests
    second = tick(instance, resource).run_requests
    assert [r.partition_key for r in first] == ["task-t2"]
    # The same change gives the same run key, which Dagster launches only once.
    assert [r.run_key for r in second] == [r.run_key for r in first]
    write_task(corpus, "t2", "edited again")
    touch_later(corpus / "tasks" / "t2" / "api_conversation_history.json")
    third = tick(instance, resource).run_requests
    assert third[0].run_key != first[0].run_key


def test_deleted_unit_leaves_partitions_and_is_removed_from_the_store(world):
    corpus, resource, instance = world
    tick(instance, resource)
    index_all(resource)
    for f in (corpus / "tasks" / "t0").iterdir():
        f.unlink()
    (corpus / "tasks" / "t0").rmdir()
    result = tick(instance, resource)
    assert "task-t0" not in instance.get_dynamic_partitions(source_units.name)
    [run] = result.run_requests
    assert run.job_name == "remove_units_job"
    assert run.run_config["ops"]["remove_units"]["config"]["unit_keys"] == ["task-t0"]


def test_changed_units_are_requested_exactly_never_the_unchanged_between_them(world, monkeypatch):
    """Item 12: with INDEXER_SENSOR_RANGE_GAP=0, changes spread over the partitions go out as runs of
    exactly the changed units; neighbouring changed units share one range run."""
    corpus, resource, instance = world
    monkeypatch.setenv("INDEXER_SENSOR_RANGE_GAP", "0")
    for i in range(3, 20):
        write_task(corpus, f"t{i:02d}", f"task number {i}")
    tick(instance, resource)
    index_all(resource)
    changed = ["t03", "t07", "t08", "t09", "t13", "t19"]  # more than the old code's 5 single-unit runs
    for name in changed:
        touch_later(corpus / "tasks" / name / "api_conversation_history.json")
    runs = tick(instance, resource).run_requests
    requested = []
    keys = instance.get_dynamic_partitions(source_units.name)
    for run in runs:
        if run.partition_key:
            requested.append([run.partition_key])
        else:
            first = keys.index(run.tags["dagster/asset_partition_range_start"])
            last = keys.index(run.tags["dagster/asset_partition_range_end"])
            requested.append(keys[first : last + 1])
    assert requested == [["task-t03"], ["task-t07", "task-t08", "task-t09"], ["task-t13"], ["task-t19"]]
    # The same changes give the same run keys on the next tick: Dagster launches each once.
    assert [r.run_key for r in tick(instance, resource).run_requests] == [r.run_key for r in runs]


def test_changes_join_one_run_only_across_small_gaps():
    """Stretches of changed units join across at most INDEXER_SENSOR_RANGE_GAP unchanged ones; every
    changed unit is in exactly one run, and no run takes in a larger gap."""
    partitions = [f"u{i:03d}" for i in range(100)]
    changed = [f"u{i:03d}" for i in (1, 3, 10, 11, 30, 31, 32, 33, 60, 62, 90)]
    assert stretches(changed, partitions, max_gap=0) == [
        ["u001"],
        ["u003"],
        ["u010", "u011"],
        ["u030", "u031", "u032", "u033"],
        ["u060"],
        ["u062"],
        ["u090"],
    ]
    # Gaps between those stretches: 1, 6, 18, 26, 1 and 27 unchanged units.
    groups = stretches(changed, partitions, max_gap=6)
    assert [(g[0], g[-1]) for g in groups] == [
        ("u001", "u011"),
        ("u030", "u033"),
        ("u060", "u062"),
        ("u090", "u090"),
    ]
    assert groups[0] == partitions[1:12]
    assert [(g[0], g[-1]) for g in stretches(changed, partitions, max_gap=26)] == [
        ("u001", "u062"),
        ("u090", "u090"),
    ]


def test_a_tick_records_when_it_detected_a_change_for_the_freshness_check(world, monkeypatch):
    """Item 8: the wait counts from the tick that saw the change, even if the check never ran then."""
    from indexer_pipeline.dagster_defs import freshness

    corpus, resource, instance = world
    tick(instance, resource)
    index_all(resource)
    path = write_task(corpus, "t1", "edited, then left waiting: the runs never came")
    touch_later(path)
    tick(instance, resource)  # detected now
    monkeypatch.setattr(freshness, "clock", lambda: time.time() + 40 * 60, raising=False)
    monkeypatch.setenv("INDEXER_FRESHNESS_MINUTES", "30")
    result = freshness.follows_the_corpus(indexer=resource)
    assert not result.passed and "task-t1" in result.description
    assert result.metadata["oldest_pending_minutes"].value >= 39


def test_reconcile_schedule_chooses_pending_units_itself(world):
    corpus, resource, instance = world
    tick(instance, resource)
    index_all(resource)
    context = dg.build_schedule_context(
        instance=instance,
        resources={"indexer": resource},
        scheduled_execution_time=datetime.datetime(2026, 11, 24, 3, 0, tzinfo=datetime.UTC),
    )
    assert isinstance(nightly_reconcile(context), dg.SkipReason)
    touch_later(corpus / "tasks" / "t0" / "api_conversation_history.json")
    [run] = nightly_reconcile(context)
    assert run.partition_key == "task-t0" and run.run_key.startswith("reconcile-")


def test_a_tick_over_many_units_runs_no_garbage_collection(tmp_path):
    """Issue 12, item 5: a tick holds a few objects per unit until it ends; with the collector on, those
    made it traverse the code server's whole heap three times a tick at 50,000 units (0.6 of 2.3 CPU s).
    The tick pauses it: no collection runs during a tick, however many units (counted, not timed; on the
    old code 5 ran at 500 units)."""
    corpus = tmp_path / "corpus"
    for i in range(500):
        write_task(corpus, f"t{i:04d}", f"task number {i}")
    resource = IndexerResource(corpus_dir=str(corpus), data_dir=str(tmp_path / "data"))
    collections = []

    def count(phase: str, info: dict) -> None:
        if phase == "start":
            collections.append(info["generation"])

    with dg.instance_for_test() as instance:
        tick(instance, resource)
        index_all(resource)
        context = dg.build_sensor_context(instance=instance, resources={"indexer": resource})
        gc.collect()
        gc.callbacks.append(count)
        try:
            result = corpus_change_sensor(context)
        finally:
            gc.callbacks.remove(count)
    assert "500 units, all indexed" in result.skip_reason
    assert collections in ([], [0])  # at most the young generation's, once the collector is back on
    assert gc.isenabled()
