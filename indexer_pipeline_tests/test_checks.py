"""Asset checks driven to pass, warn and fail by real materializations.

The simulator's latency and faults make the latency and error-rate checks fail for real; the
thresholds come from the environment, as a person would configure them (no code change).
"""

from __future__ import annotations

import time

import dagster as dg
import pytest

from indexer_pipeline.config import Settings
from indexer_pipeline.pipeline import Indexer

from .test_assets import checks, materialize, metadata

UNIT = "doc-handbook"


def edit(corpus_env, text: str) -> None:
    """New text, so the next run has something to embed (an all-cached run measures nothing)."""
    (corpus_env.corpus_dirs[0] / "handbook" / "extra.md").write_text(f"# Extra\n\n{text}\n")


@pytest.mark.parametrize(
    "latency_ms, warn, error, expected",
    [(0, 800, 1200, "pass"), (120, 100, 1000, "warn"), (120, 50, 100, "error")],
)
def test_request_latency_check(
    indexed_instance, corpus_env, simulator, monkeypatch, latency_ms, warn, error, expected
):
    instance, _, _ = indexed_instance
    monkeypatch.setenv("INDEXER_CHECK_REQUEST_LATENCY_P95_MS_WARN", str(warn))
    monkeypatch.setenv("INDEXER_CHECK_REQUEST_LATENCY_P95_MS_ERROR", str(error))
    simulator.latency_ms = latency_ms
    edit(corpus_env, f"latency case {latency_ms} {warn}")
    result = materialize(instance, [UNIT])
    evaluation = checks(result)["request_latency_p95"]
    assert evaluation.passed == (expected == "pass")
    if expected != "pass":
        assert evaluation.severity == (
            dg.AssetCheckSeverity.WARN if expected == "warn" else dg.AssetCheckSeverity.ERROR
        )
    assert evaluation.metadata["value"].value >= latency_ms
    assert evaluation.metadata["warn_threshold"].value == warn  # the value and its threshold, side by side


def test_error_rate_check_fails_when_the_api_errs(indexed_instance, corpus_env, simulator, monkeypatch):
    instance, _, _ = indexed_instance
    monkeypatch.setenv("EMBEDDING_MAX_INPUTS_PER_REQUEST", "1")
    simulator.set_faults(next_500=3)  # three failed requests, each retried successfully
    edit(corpus_env, "one\n\ntwo\n\nthree " * 40)
    result = materialize(instance, [UNIT])
    evaluation = checks(result)["api_error_rate"]
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.metadata["value"].value > 0.05
    assert checks(result)["success_rate"].passed  # the retries saved every document


def test_throughput_and_upsert_checks_report_thresholds(indexed_instance, corpus_env, monkeypatch):
    instance, _, _ = indexed_instance
    monkeypatch.setenv("INDEXER_CHECK_DOCS_PER_S_WARN", "1000000")
    monkeypatch.setenv("INDEXER_CHECK_DOCS_PER_S_ERROR", "0")
    monkeypatch.setenv("INDEXER_CHECK_UPSERT_LATENCY_P95_MS_WARN", "0")
    monkeypatch.setenv("INDEXER_CHECK_UPSERT_LATENCY_P95_MS_ERROR", "100000")
    edit(corpus_env, "throughput case")
    evaluations = checks(materialize(instance, [UNIT]))
    assert (
        evaluations["throughput"].severity == dg.AssetCheckSeverity.WARN
        and not evaluations["throughput"].passed
    )
    assert evaluations["upsert_latency_p95"].severity == dg.AssetCheckSeverity.WARN


def test_integrity_checks_catch_lost_and_orphan_points(indexed_instance, corpus_env):
    instance, keys, _ = indexed_instance
    with Indexer(corpus_env) as ix:
        store = ix.store()
        victim = next(iter(store.unit_hashes(UNIT)))
        [kept] = store.retrieve([victim], with_vectors=True)
        store.delete([victim])  # a point lost behind the pipeline's back ...
        orphan_payload = {**kept.payload, "doc_id": "gone:doc"}
        from indexer_pipeline.vectorstore.base import StoredPoint

        # ... and a point no chunk accounts for, hidden under a valid content hash.
        store.upsert([StoredPoint("00000000-0000-4000-8000-000000000001", kept.vector, orphan_payload)])
        store.flush()
    # The content hash of the lost point is gone, so a re-run restores it; the orphan is deleted.
    result = materialize(instance, [UNIT])
    assert checks(result)["points_match_chunks"].passed
    with Indexer(corpus_env) as ix:
        from indexer_pipeline.integrity import verify_units

        ix.store().delete([victim])
        ix.store().upsert([StoredPoint("00000000-0000-4000-8000-000000000002", kept.vector, orphan_payload)])
        report = verify_units(ix.catalog, ix.store(), [UNIT], dimension=len(kept.vector))
    assert report.missing == {UNIT: 1} and report.orphans == {UNIT: 1} and not report.complete


def test_range_run_records_one_result_that_names_failing_units(indexed_instance, corpus_env):
    instance, keys, _ = indexed_instance
    (corpus_env.corpus_dirs[0] / "docs" / "broken.json").write_text("{")
    evaluation = checks(materialize(instance, keys))["rejected_files"]
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.description.startswith(f"[{len(keys)} units]")  # one result for the range ...
    assert "doc-docs/docs/broken.json" in evaluation.description  # ... that names the unit and file


def test_freshness_counts_from_when_a_change_was_detected_not_from_file_mtimes(
    indexed_instance, corpus_env, monkeypatch
):
    """Item 8: a file copied in with an old mtime (or a checkout) is a change detected now."""
    import os
    import time

    from indexer_pipeline.dagster_defs import freshness
    from indexer_pipeline.definitions import defs

    resource = defs.resources["indexer"]
    now = time.time()
    monkeypatch.setattr(freshness, "clock", lambda: now, raising=False)
    monkeypatch.setenv("INDEXER_FRESHNESS_MINUTES", "30")
    result = freshness.follows_the_corpus(indexer=resource)
    assert result.passed and result.metadata["units_pending"].value == 0
    late = corpus_env.corpus_dirs[0] / "docs" / "late.md"
    late.write_text("# Late\n\nCopied in with a two-hour-old mtime.\n")
    os.utime(late, (now - 7200, now - 7200))
    first = freshness.follows_the_corpus(indexer=resource)
    assert first.passed, first.description  # the old check read this as 120 minutes stale
    assert first.metadata["units_pending"].value == 1 and first.metadata["oldest_pending_minutes"].value == 0
    monkeypatch.setattr(freshness, "clock", lambda: now + 20 * 60, raising=False)
    assert freshness.follows_the_corpus(indexer=resource).passed  # pending 20 min, within the window
    monkeypatch.setattr(freshness, "clock", lambda: now + 31 * 60, raising=False)
    stale = freshness.follows_the_corpus(indexer=resource)
    assert not stale.passed and "doc-docs" in stale.description
    assert stale.metadata["oldest_pending_minutes"].value == 31
    materialize(indexed_instance[0], ["doc-docs"])  # indexed: nothing pending any more
    assert freshness.follows_the_corpus(indexer=resource).metadata["units_pending"].value == 0


def test_freshness_names_a_missing_root_instead_of_failing(indexed_instance, corpus_env):
    """An unmounted corpus root is a finding of the check, not an error of its run."""
    from indexer_pipeline.dagster_defs import freshness
    from indexer_pipeline.definitions import defs

    root = corpus_env.corpus_dirs[0]
    root.rename(root.with_name("unmounted"))
    result = freshness.follows_the_corpus(indexer=defs.resources["indexer"])
    assert not result.passed and f"corpus root {root} is missing" in result.description
    assert result.metadata["roots_missing"].value == 1


# -- the embedding checks measure what their names say ------------------------------------------------
def test_api_error_rate_does_not_count_the_bisection_of_one_bad_input(
    indexed_instance, corpus_env, simulator
):
    instance, _, _ = indexed_instance
    folder = corpus_env.corpus_dirs[0] / "handbook" / "many"
    folder.mkdir()
    for i in range(200):  # 200 new documents, one of which the API refuses
        body = f"note {i} about the handbook" + (" with POISON inside" if i == 117 else "")
        (folder / f"note-{i:03d}.md").write_text(f"# Note {i}\n\n{body}\n")
    simulator.set_faults(poison="POISON")
    result = materialize(instance, [UNIT])
    evaluation = checks(result)["api_error_rate"]
    assert evaluation.passed and evaluation.metadata["value"].value == 0.0  # the API never failed
    embedded = metadata(result, "document_embeddings")
    assert embedded["embedding_failures"] == 1 and embedded["rejected_requests"] > 0


def test_request_latency_p95_includes_failed_requests(indexed_instance, corpus_env, simulator):
    instance, _, _ = indexed_instance
    simulator.set_faults(next_slow=1, slow_ms=600, next_500=1)  # slow to fail, then fast to succeed
    edit(corpus_env, "a slow failure, then a fast success")
    result = materialize(instance, [UNIT])
    embedded = metadata(result, "document_embeddings")
    assert embedded["requests"] == 2 and embedded["failed_requests"] == 1
    evaluation = checks(result)["request_latency_p95"]
    assert evaluation.metadata["value"].value >= 500  # the failed request's 600 ms are in it
    assert embedded["request_latency_p95_ms_succeeded"] <= evaluation.metadata["value"].value


def test_throughput_counts_documents_embedded_over_time_spent_embedding(tmp_path, monkeypatch):
    from indexer_pipeline.dagster_defs.checks import embedding_check_results
    from indexer_pipeline.embeddings import local_provider

    slow_load_s = 2.0  # a cold disk: loading is part of starting, not of throughput
    real_load = local_provider._load

    def slow_load(model):
        time.sleep(slow_load_s)
        return real_load(model)

    unit = tmp_path / "corpus" / "notes"
    unit.mkdir(parents=True)
    (unit / "one.md").write_text("# One\n\nA single short note in a one-file unit.\n")
    settings = Settings(
        corpus_dirs=[tmp_path / "corpus"], data_dir=tmp_path / "data", embedding_provider="local"
    )
    with Indexer(settings) as ix:
        units = ix.units()
        ix.read_units(units)
    monkeypatch.setattr(local_provider, "_models", {})  # a fresh process: the model is not loaded yet
    monkeypatch.setattr(local_provider, "_load", slow_load)
    with Indexer(settings) as ix:
        report = ix.embed_units([u.key for u in units])
    [throughput] = [r for r in embedding_check_results(report) if r.check_name == "throughput"]
    meta = report.metadata()
    # The check judges documents embedded over the time spent embedding: the 2 s load is not in it
    # (the verdict itself depends on this machine's speed, so it is not asserted).
    assert meta["documents_embedded"] == 1 and report.seconds > slow_load_s > report.embedding_seconds
    assert meta["docs_per_s"] == round(1 / report.embedding_seconds, 2)
    assert throughput.metadata["value"].value == meta["docs_per_s"]

    (unit / "two.md").write_text("# Two\n\nAnother note, beside one already embedded.\n")
    with Indexer(settings) as ix:
        ix.read_units(units)
        again = ix.embed_units([u.key for u in units]).metadata()
    assert again["documents"] == 2 and again["documents_embedded"] == 1  # the cached one is not throughput
