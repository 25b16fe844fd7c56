"""The deletion guard (issue 10, item 2): a vanished folder or too many units at once is never deleted.

Through the change sensor on a real test instance, the nightly clean-up job and the confirm job run on
that instance, and the check deletions_held that alerts through alert_on_check_error.
"""

from __future__ import annotations

import shutil

import dagster as dg
import pytest

from indexer_pipeline.catalog import Catalog
from indexer_pipeline.corpus import discover_units
from indexer_pipeline.dagster_defs.alerts import alert_on_check_error, failed_error_checks
from indexer_pipeline.dagster_defs.partitions import source_units
from indexer_pipeline.dagster_defs.resources import IndexerResource
from indexer_pipeline.definitions import defs
from indexer_pipeline.deletion_guard import deletion_bound
from indexer_pipeline.pipeline import Indexer

from .test_alerts import receiver  # noqa: F401  (the webhook receiver fixture)
from .test_sensor import index_all, tick, write_task

TASKS = [f"t{i}" for i in range(10)]
TASK_KEYS = [f"task-{t}" for t in TASKS]


@pytest.fixture
def world(tmp_path):
    """Ten indexed tasks and one document folder, registered as partitions."""
    corpus = tmp_path / "corpus"
    for t in TASKS:
        write_task(corpus, t, f"task {t}")
    (corpus / "notes").mkdir()
    (corpus / "notes" / "a.md").write_text("# notes\n\nsome text")
    resource = IndexerResource(corpus_dir=str(corpus), data_dir=str(tmp_path / "data"))
    with dg.instance_for_test() as instance:
        tick(instance, resource)
        index_all(resource)
        yield corpus, resource, instance


def holds(resource: IndexerResource) -> dict[str, str]:
    with Catalog(resource.settings().catalog_path) as catalog:
        return {k: h.reason for k, h in catalog.held_deletions().items()}


def assert_held(result: dg.SensorResult, instance, resource, keys: list[str], why: str) -> None:
    """Nothing deleted (no partition, no removal run), every key held with `why`, the check requested."""
    assert not result.dynamic_partitions_requests
    assert [r.job_name for r in result.run_requests] == ["deletions_check_job"]
    assert set(keys) <= set(instance.get_dynamic_partitions(source_units.name))
    reasons = holds(resource)
    assert sorted(reasons) == sorted(keys)
    assert all(why in reason for reason in reasons.values()), reasons


def test_the_bound_is_the_smaller_of_share_and_count_and_at_least_one():
    assert [deletion_bound(n) for n in (1, 3, 11, 16, 250, 1000, 100_000)] == [1, 1, 2, 3, 50, 50, 50]


def test_vanished_tasks_folder_deletes_nothing(world):
    corpus, resource, instance = world
    shutil.rmtree(corpus / "tasks")
    result = tick(instance, resource)
    assert_held(result, instance, resource, TASK_KEYS, f"folder {corpus / 'tasks'} is gone")


def test_emptied_tasks_folder_deletes_nothing(world):
    corpus, resource, instance = world
    for t in TASKS:
        shutil.rmtree(corpus / "tasks" / t)
    result = tick(instance, resource)
    assert_held(result, instance, resource, TASK_KEYS, "holds no units any more")


def test_missing_root_holds_instead_of_failing_the_tick(world):
    corpus, resource, instance = world
    corpus.rename(corpus.with_name("moved"))
    result = tick(instance, resource)
    assert_held(result, instance, resource, [*TASK_KEYS, "doc-notes"], f"corpus root {corpus} is missing")
    # Later ticks say why, and request no second check run for the same holds.
    again = tick(instance, resource, cursor=result.cursor)
    assert not again.run_requests
    assert f"corpus root {corpus} is missing" in again.skip_reason.skip_message
    assert "11 deletions held" in again.skip_reason.skip_message


def test_empty_root_deletes_nothing(world):
    corpus, resource, instance = world
    for entry in corpus.iterdir():
        shutil.rmtree(entry)
    result = tick(instance, resource)
    assert_held(result, instance, resource, [*TASK_KEYS, "doc-notes"], f"corpus root {corpus} is empty")


def test_root_no_longer_configured_deletes_nothing(world, tmp_path):
    corpus, resource, instance = world
    other = tmp_path / "other"
    write_task(other, "x", "another corpus")
    elsewhere = IndexerResource(corpus_dir=str(other), data_dir=resource.data_dir)
    result = tick(instance, elsewhere)
    assert not any(
        isinstance(r, dg.DeleteDynamicPartitionsRequest) for r in result.dynamic_partitions_requests
    )
    assert all("not under any corpus root" in why for why in holds(resource).values())
    assert len(holds(resource)) == 11


def test_a_large_share_at_once_is_held(world):
    corpus, resource, instance = world
    for t in TASKS[:3]:  # 3 of 11 indexed units; the bound is 2 (20 % of 11)
        shutil.rmtree(corpus / "tasks" / t)
    result = tick(instance, resource)
    assert_held(
        result, instance, resource, TASK_KEYS[:3], "3 of 11 indexed units would leave the index at once"
    )


def test_the_count_bound_applies_to_large_corpora(world, monkeypatch):
    corpus, resource, instance = world
    monkeypatch.setenv("INDEXER_MAX_DELETE_UNITS", "1")
    for t in TASKS[:2]:  # 2 of 11: within 20 %, above 1 unit
        shutil.rmtree(corpus / "tasks" / t)
    assert_held(tick(instance, resource), instance, resource, TASK_KEYS[:2], "at most 1)")


def test_a_small_real_deletion_goes_through_even_while_others_are_held(world):
    corpus, resource, instance = world
    shutil.rmtree(corpus / "notes")  # the root's last document folder: held
    first = tick(instance, resource)
    assert holds(resource) == {
        "doc-notes": f"folder {corpus} holds no units any more (emptied, or not synced yet?)"
    }
    shutil.rmtree(corpus / "tasks" / "t4")  # one task of ten: a real deletion
    result = tick(instance, resource, cursor=first.cursor)
    [delete] = result.dynamic_partitions_requests
    assert list(delete.partition_keys) == ["task-t4"]
    [remove] = result.run_requests  # and no second check run: the holds did not change
    assert remove.run_config["ops"]["remove_units"]["config"]["unit_keys"] == ["task-t4"]
    assert "task-t4" not in instance.get_dynamic_partitions(source_units.name)
    assert list(holds(resource)) == ["doc-notes"]


def test_a_unit_that_comes_back_releases_its_hold(world):
    corpus, resource, instance = world
    shutil.move(corpus / "tasks", corpus.parent / "tasks-away")
    held = tick(instance, resource)
    assert len(holds(resource)) == 10
    shutil.move(corpus.parent / "tasks-away", corpus / "tasks")
    back = tick(instance, resource)
    assert holds(resource) == {}
    # The holds changed, so the check is evaluated again (and passes).
    assert [r.job_name for r in back.run_requests] == ["deletions_check_job"]
    assert back.run_requests[0].run_key != held.run_requests[0].run_key


def run_job(name: str, instance, resource, **kwargs) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(name).execute_in_process(
        instance=instance, resources={"indexer": resource}, **kwargs
    )


def check_result(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation


def test_held_deletions_fail_an_error_check_that_alerts(world, receiver, monkeypatch):  # noqa: F811
    corpus, resource, instance = world
    url, received = receiver
    shutil.rmtree(corpus / "tasks")
    [request] = tick(instance, resource).run_requests
    result = run_job(request.job_name, instance, resource)  # the run the sensor requested
    evaluation = check_result(result)
    assert evaluation.check_name == "deletions_held" and not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert "10 units kept in the index" in evaluation.description
    assert "gone" in evaluation.description and "confirm-deletions" in evaluation.description
    # Recorded on the instance as the check's latest execution, which the UI's checks tab shows.
    key = dg.AssetCheckKey(dg.AssetKey("qdrant_collection"), "deletions_held")
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
    assert latest.run_id == result.run_id and latest.status.value == "FAILED"
    [failure] = failed_error_checks(instance, result.run_id)
    assert failure.startswith("qdrant_collection/deletions_held: 10 units kept")

    monkeypatch.setenv("INDEXER_ALERT_WEBHOOK_URL", url)
    run = instance.get_run_by_id(result.run_id)
    event = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_SUCCESS)
    alert_on_check_error(
        dg.build_run_status_sensor_context(
            sensor_name="alert_on_check_error",
            dagster_instance=instance,
            dagster_run=run,
            dagster_event=event,
        )
    )
    [message] = received
    assert "deletions_held" in message["text"] and "tasks is gone" in message["text"]


# -- with real points: the confirm job and the clean-up job ------------------------------------------------


@pytest.fixture
def indexed(corpus_env):
    """The sample corpus indexed into the embedded store (through the simulator), its units registered."""
    with Indexer(corpus_env) as ix:
        ix.index(ix.units())
        points = ix.store().units()
    resource = IndexerResource()  # reads the environment corpus_env set
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(
            source_units.name, [u.key for u in discover_units(corpus_env.corpus_dirs)]
        )
        yield corpus_env, resource, instance, points


def store_units(settings) -> dict[str, int]:
    with Indexer(settings) as ix:
        return ix.store().units()


def test_confirm_job_deletes_exactly_the_held_units_still_absent(indexed):
    settings, resource, instance, points = indexed
    tasks = settings.corpus_dirs[0] / "tasks"
    away = tasks.with_name("tasks-away")
    tasks.rename(away)
    first = tick(instance, resource)
    held = sorted(holds(resource))
    assert held and all(k.startswith("task-") for k in held)
    assert store_units(settings) == points  # nothing deleted
    # One task comes back before the confirmation: it stays, its hold is void.
    (tasks).mkdir()
    back = held[0].removeprefix("task-")
    shutil.copytree(away / back, tasks / back)

    result = run_job("confirm_deletions_job", instance, resource)
    assert result.success
    left = store_units(settings)
    assert set(left) == set(points) - set(held[1:])
    assert left[held[0]] == points[held[0]]
    assert not set(held[1:]) & set(instance.get_dynamic_partitions(source_units.name))
    with Catalog(settings.catalog_path) as catalog:
        assert catalog.held_deletions() == {}
        assert not [k for k in held[1:] if catalog.unit(k)]
    # The holds resolved: the next tick has the check evaluated again, and it passes.
    [request] = [r for r in tick(instance, resource).run_requests if r.job_name == "deletions_check_job"]
    assert request.run_key != first.run_requests[0].run_key
    assert check_result(run_job(request.job_name, instance, resource)).passed


def test_confirm_job_can_confirm_some_units_only(indexed):
    settings, resource, instance, points = indexed
    shutil.rmtree(settings.corpus_dirs[0] / "tasks")
    tick(instance, resource)
    held = sorted(holds(resource))
    config = {"ops": {"confirm_deletions": {"config": {"unit_keys": held[:2]}}}}
    assert run_job("confirm_deletions_job", instance, resource, run_config=config).success
    assert set(store_units(settings)) == set(points) - set(held[:2])
    assert sorted(holds(resource)) == held[2:]


def test_clean_up_job_holds_a_vanished_tasks_folder(indexed):
    settings, resource, instance, points = indexed
    shutil.rmtree(settings.corpus_dirs[0] / "tasks")
    result = run_job("clean_up_job", instance, resource)
    assert result.success
    assert store_units(settings) == points
    held = holds(resource)
    assert held and all("tasks is gone" in why for why in held.values())
    assert set(held) <= set(instance.get_dynamic_partitions(source_units.name))


def test_clean_up_job_deletes_a_small_orphan(indexed):
    settings, resource, instance, points = indexed
    shutil.rmtree(settings.corpus_dirs[0] / "docs")
    assert run_job("clean_up_job", instance, resource).success
    assert set(store_units(settings)) == set(points) - {"doc-docs"}
    assert holds(resource) == {}
    assert "doc-docs" not in instance.get_dynamic_partitions(source_units.name)


def test_materialize_all_over_a_vanished_tasks_folder_deletes_nothing(indexed):
    from .test_assets import materialize

    settings, resource, instance, points = indexed
    shutil.rmtree(settings.corpus_dirs[0] / "tasks")
    # "Materialize all" in the UI, or a range run over held partitions: the assets never delete whole units.
    assert materialize(instance, list(instance.get_dynamic_partitions(source_units.name))).success
    assert store_units(settings) == points
