"""The three assets materialized through Dagster on a test instance, against the embeddings simulator."""

from __future__ import annotations

import os

import dagster as dg

from indexer_pipeline.config import Settings
from indexer_pipeline.dagster_defs.checks import collection_integrity
from indexer_pipeline.definitions import defs
from indexer_pipeline.pipeline import Indexer

from .conftest import PLANTED_SECRET, SECRET_TASK

ASSETS = [defs.get_assets_def(k) for k in ("raw_documents", "document_embeddings", "qdrant_collection")]
# What index_job runs: the three assets and the integrity checks of the units written.
INDEX = [*ASSETS, collection_integrity]


def materialize(instance, keys: list[str], **kwargs) -> dg.ExecuteInJobResult:
    """One run over `keys`: a single partition, or a range (as the UI's "materialize all" does)."""
    if len(keys) == 1:
        target = {"partition_key": keys[0]}
    else:
        target = {
            "tags": {
                "dagster/asset_partition_range_start": keys[0],
                "dagster/asset_partition_range_end": keys[-1],
            }
        }
    return dg.materialize(
        INDEX, instance=instance, resources={"indexer": defs.resources["indexer"]}, **target, **kwargs
    )


def metadata(result: dg.ExecuteInJobResult, asset: str) -> dict:
    [event] = result.asset_materializations_for_node(asset)[:1]
    return {k: v.value for k, v in event.metadata.items()}


def checks(result: dg.ExecuteInJobResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def all_payloads(settings: Settings) -> list[dict]:
    with Indexer(settings) as ix:
        store = ix.store()
        ids = [pid for unit in store.units() for pid in store.unit_hashes(unit)]
        return [p.payload for p in store.retrieve(ids)]


def test_materialize_all_indexes_the_sample_corpus(indexed_instance, corpus_env):
    instance, keys, result = indexed_instance
    assert result.success
    docs = metadata(result, "raw_documents")
    written = metadata(result, "qdrant_collection")
    assert docs["units"] == len(keys) and docs["documents"] > 100
    assert written["points_upserted"] == docs["chunks"] == written["points_expected"]
    assert written["success_rate"] == 1.0
    evaluations = checks(result)
    assert set(evaluations) >= {
        "success_rate",
        "points_match_chunks",
        "vectors_valid",
        "chunks_find_themselves",
        "request_latency_p95",
        "api_error_rate",
        "throughput",
        "upsert_latency_p95",
    }
    assert all(e.passed for e in evaluations.values()), {n: e.description for n, e in evaluations.items()}

    with Indexer(corpus_env) as ix:
        hits = ix.search("pytest fixture flaky test", limit=5)
        assert ix.store().count() == docs["chunks"]
    assert hits and hits[0].payload["kind"] in ("task", "tree")


def test_planted_secret_is_absent_from_every_stored_payload(indexed_instance, corpus_env):
    payloads = all_payloads(corpus_env)
    assert payloads
    dumped = repr(payloads)
    assert PLANTED_SECRET not in dumped
    assert "sk-proj-FAKE" not in dumped
    secret_doc = [p for p in payloads if p.get("task_id") == SECRET_TASK and "REDACTED" in p["text"]]
    assert secret_doc, "the message with the secret is indexed, with the secret replaced"


def test_rerun_of_unchanged_corpus_embeds_and_upserts_nothing(indexed_instance, corpus_env, simulator):
    instance, keys, _ = indexed_instance
    requests_before = simulator.stats()["requests"]
    result = materialize(instance, keys)
    embedded = metadata(result, "document_embeddings")
    written = metadata(result, "qdrant_collection")
    assert embedded["embedded"] == 0 and embedded["cache_hits"] == embedded["chunks"] > 0
    assert written["points_upserted"] == 0 and written["points_deleted"] == 0
    assert written["points_unchanged"] == written["points_expected"]
    assert simulator.stats()["requests"] == requests_before
    assert checks(result)[
        "request_latency_p95"
    ].passed  # nothing to measure is a pass, never a division by zero


def test_one_edited_document_reembeds_only_its_changed_chunks(indexed_instance, corpus_env, simulator):
    instance, keys, _ = indexed_instance
    guide = next(p for p in corpus_env.corpus_dirs[0].rglob("*.md") if p.parent.name == "docs")
    unit = "doc-docs"
    guide.write_text(guide.read_text() + "\n\nA brand new paragraph about zebra migrations.\n")
    inputs_before = simulator.stats()["inputs"]
    result = materialize(instance, [unit])
    embedded = metadata(result, "document_embeddings")
    written = metadata(result, "qdrant_collection")
    assert embedded["embedded"] >= 1
    assert simulator.stats()["inputs"] - inputs_before == embedded["embedded"] < embedded["chunks"]
    assert written["points_upserted"] == embedded["embedded"]
    # A one-unit run's results name their unit.
    evaluation = checks(result)["points_match_chunks"]
    assert evaluation.passed and evaluation.description.startswith(f"[unit {unit}]")
    assert evaluation.metadata["scope"].value == f"unit {unit}"
    with Indexer(corpus_env) as ix:
        assert any("zebra" in h.payload["text"] for h in ix.search("zebra migrations", limit=3))


def test_deleted_file_leaves_the_index(indexed_instance, corpus_env):
    instance, keys, _ = indexed_instance
    victim = next(p for p in corpus_env.corpus_dirs[0].rglob("*.rst"))
    rel = victim.relative_to(corpus_env.corpus_dirs[0]).as_posix()
    assert any(p["path"] == rel for p in all_payloads(corpus_env))
    victim.unlink()
    result = materialize(instance, ["doc-docs"])
    assert metadata(result, "qdrant_collection")["points_deleted"] >= 1
    assert not any(p["path"] == rel for p in all_payloads(corpus_env))


def test_bad_files_are_recorded_by_their_own_check_and_warn_once(indexed_instance, corpus_env):
    """Item 8: success_rate is over indexable documents; unreadable files are `rejected_files`, which
    warns when a file is newly rejected, not on every later run of the unit."""
    instance, _, _ = indexed_instance
    docs = corpus_env.corpus_dirs[0] / "docs"
    (docs / "broken.json").write_text('{"oops": ')
    (docs / "binary.md").write_bytes(b"\x00\x01\x02binary")
    (docs / "noise.txt").write_bytes(bytes(range(1, 256)) * 4)  # latin-1 text is decoded now
    result = materialize(instance, ["doc-docs"])
    raw = metadata(result, "raw_documents")
    assert raw["documents_rejected"] == 3
    table = raw["rejected_files"]
    assert "broken.json" in table and "binary.md" in table and "noise.txt" in table
    written = metadata(result, "qdrant_collection")
    assert written["documents_indexed"] == written["documents_seen"] == raw["documents"] > 0
    assert written["success_rate"] == 1.0 and written["files_rejected"] == 3
    evaluations = checks(result)
    assert evaluations["success_rate"].passed
    rejected = evaluations["rejected_files"]
    assert not rejected.passed and rejected.severity == dg.AssetCheckSeverity.WARN
    assert rejected.metadata["newly_rejected"].value == 3 and "binary.md" in rejected.description

    # The unit changes again (it is read again), the bad files are still there: no new warning.
    (docs / "getting-started.md").write_text("# Getting started\n\nRewritten.\n")
    again = checks(materialize(instance, ["doc-docs"]))
    assert again["rejected_files"].passed and again["rejected_files"].metadata["files_rejected"].value == 3
    assert again["success_rate"].passed


def test_no_api_key_in_run_config_logs_or_metadata(indexed_instance, simulator):
    instance, _, result = indexed_instance
    records = instance.get_records_for_run(result.run_id).records
    text = repr([r.event_log_entry for r in records]) + repr(instance.get_run_by_id(result.run_id).run_config)
    assert simulator.api_key not in text
    assert os.environ["OPENAI_API_KEY"] == simulator.api_key


def test_rejected_api_key_fails_the_run_at_once(indexed_instance, corpus_env, monkeypatch, simulator):
    instance, keys, _ = indexed_instance
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-0000")
    (corpus_env.corpus_dirs[0] / "docs" / "new.md").write_text("# New\n\nSomething never embedded before.")
    requests_before = simulator.stats()["requests"]
    result = materialize(instance, ["doc-docs"], raise_on_error=False)
    assert not result.success
    assert simulator.stats()["requests"] - requests_before == 1  # one 401, no retries
    failure = [e for e in result.all_events if e.is_step_failure][0]
    message = failure.step_failure_data.error.to_string()
    assert "401" in message or "rejected" in message.lower()
    assert "sk-wrong-key-0000" not in message


def test_a_range_run_reads_only_units_whose_files_or_reader_changed(
    indexed_instance, corpus_env, monkeypatch
):
    """Item 12: unchanged units of a range run are not read again, unless the reader code or the
    chunking settings changed since their last read."""
    import indexer_pipeline.pipeline as pipeline

    instance, keys, _ = indexed_instance
    read: list[str] = []

    def counting_read_unit(unit, *args):
        read.append(unit.key)
        return real_read_unit(unit, *args)

    real_read_unit = pipeline.read_unit
    monkeypatch.setattr(pipeline, "read_unit", counting_read_unit)
    guide = corpus_env.corpus_dirs[0] / "docs" / "deploying.md"
    guide.write_text(guide.read_text() + "\n\nAlso: roll back with one command.\n")
    result = materialize(instance, keys)
    assert read == ["doc-docs"]  # the old code read all 16
    raw = metadata(result, "raw_documents")
    assert raw["units_read"] == 1 and raw["units_unchanged"] == len(keys) - 1
    assert (
        raw["documents"] == metadata(indexed_instance[2], "raw_documents")["documents"]
    )  # still all counted

    monkeypatch.setenv("INDEXER_CHUNK_TOKENS", "120")  # a setting that changes every unit's chunks
    read.clear()
    materialize(instance, keys)
    assert sorted(read) == sorted(keys)

    read.clear()
    monkeypatch.setattr(pipeline, "reader_version", lambda: "a reader changed since")
    materialize(instance, keys)
    assert sorted(read) == sorted(keys)
