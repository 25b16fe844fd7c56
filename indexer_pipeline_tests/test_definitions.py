"""The code location loads, and the names a user sees in the UI are pinned: asset keys, checks per asset,
jobs, schedules and sensors. A rename fails here, and the README must name exactly these.

Adding a job, check, schedule or sensor is one line in the pin below (and its mention in the README).
"""

from __future__ import annotations

import re
from pathlib import Path

from indexer_pipeline.definitions import defs

README = Path(__file__).parents[1] / "README.md"

ASSETS_AND_KINDS = {
    "raw_documents": {"python"},
    "document_embeddings": {"python"},  # no provider: kinds are fixed at load, the provider is chosen per run
    "qdrant_collection": {"qdrant"},
}
CHECKS = {
    ("raw_documents", "rejected_files"),
    ("document_embeddings", "request_latency_p95"),
    ("document_embeddings", "api_error_rate"),
    ("document_embeddings", "throughput"),
    ("qdrant_collection", "success_rate"),
    ("qdrant_collection", "upsert_latency_p95"),
    ("qdrant_collection", "points_match_chunks"),
    ("qdrant_collection", "vectors_valid"),
    ("qdrant_collection", "chunks_find_themselves"),
    ("qdrant_collection", "follows_the_corpus"),
    ("qdrant_collection", "deletions_held"),
    ("qdrant_collection", "retrieval_quality"),
    ("qdrant_collection", "index_recall"),
}
JOBS = {
    "index_job",
    "register_units_job",
    "remove_units_job",
    "clean_up_job",
    "freshness_job",
    "integrity_job",
    "confirm_deletions_job",
    "deletions_check_job",
    "quality_job",
}
SCHEDULES = {
    "nightly_reconcile",
    "nightly_clean_up",
    "freshness_schedule",
    "nightly_integrity",
}
SENSORS = {
    "corpus_change_sensor",
    "alert_on_run_failure",
    "alert_on_check_error",
}


def shown_names() -> dict[str, set]:
    graph = defs.resolve_asset_graph()
    return {
        "assets": {key.to_user_string() for key in graph.get_all_asset_keys()},
        "checks": {(key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys},
        # `__ASSET_JOB` is Dagster's implicit job, not shown in the UI's job list.
        "jobs": {job.name for job in defs.resolve_all_job_defs() if not job.name.startswith("__")},
        "schedules": {schedule.name for schedule in defs.schedules},
        "sensors": {sensor.name for sensor in defs.sensors},
    }


def test_the_names_a_user_sees_are_pinned():
    assert shown_names() == {
        "assets": set(ASSETS_AND_KINDS),
        "checks": CHECKS,
        "jobs": JOBS,
        "schedules": SCHEDULES,
        "sensors": SENSORS,
    }


def test_asset_kinds_name_no_embedding_provider():
    kinds = {spec.key.to_user_string(): spec.kinds for asset in defs.assets for spec in asset.specs}
    assert kinds == ASSETS_AND_KINDS


def test_the_readme_names_what_the_ui_shows():
    mentioned = set(re.findall(r"`([a-z_0-9]+)`", README.read_text()))
    names = shown_names()
    pinned = names["assets"] | {check for _, check in names["checks"]}
    pinned |= names["jobs"] | names["schedules"] | names["sensors"]
    assert pinned - mentioned == set(), "the README does not mention these names the UI shows"
