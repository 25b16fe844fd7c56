"""Every setting declared once (config.py): validated before any work with words that name the variable,
the `indexer` resource's fields and the README's table derived from the declarations, and no other
module reading the environment on its own."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from indexer_pipeline.config import Settings, SettingsError, env_name, resource_fields, settings_table
from indexer_pipeline.dagster_defs.resources import IndexerResource
from indexer_pipeline.definitions import defs
from indexer_pipeline.thresholds import thresholds

from .test_assets import materialize

PACKAGE = Path(__file__).parents[1] / "indexer_pipeline"
README = PACKAGE.parent / "README.md"

# (variable, a value a user could type, the words the error must say): every constraint a user can break.
BAD_VALUES = [
    ("EMBEDDING_RPM", "3k", "a positive integer"),
    ("EMBEDDING_RPM", "0", "a positive integer"),
    ("EMBEDDING_TPM", "-20000", "a positive integer"),
    ("EMBEDDING_MAX_CONCURRENCY", "0", "a positive integer"),
    ("EMBEDDING_MAX_INPUTS_PER_REQUEST", "2.5", "a positive integer"),
    ("EMBEDDING_MAX_TOKENS_PER_REQUEST", "lots", "a positive integer"),
    ("EMBEDDING_DIMENSIONS", "-1", "a positive integer"),
    ("EMBEDDING_MAX_RETRIES", "-1", "a non-negative integer"),
    ("EMBEDDING_TIMEOUT_S", "ten", "a positive number"),
    ("EMBEDDING_TIMEOUT_S", "nan", "a positive number"),
    ("EMBEDDING_MAX_RETRY_WAIT_S", "-3", "a non-negative number"),
    ("EMBEDDING_PROVIDER", "azure", "one of auto, openai, local"),
    ("OPENAI_BASE_URL", "localhost:8000/v1", "an http(s) URL"),
    ("QDRANT_URL", "http://qdrant:port", "an http(s) URL or :memory:"),
    ("QDRANT_COLLECTION", "a/b", "a name without slashes"),
    ("QDRANT_SHARD_NUMBER", "0", "a positive integer"),
    ("INDEXER_CHUNK_TOKENS", "0", "a positive integer"),
    ("INDEXER_CHUNK_OVERLAP", "-1", "a non-negative integer"),
    ("INDEXER_CACHE_TTL_DAYS", "0", "a positive number"),
    ("INDEXER_CACHE_MAX_ENTRIES", "1e6", "a positive integer"),
    ("INDEXER_STORE_WAIT_S", "soon", "a non-negative number"),
    ("INDEXER_SENSOR_INTERVAL_S", "30s", "a positive integer"),
    ("INDEXER_FRESHNESS_MINUTES", "0", "a positive number"),
    ("INDEXER_CHECK_SUCCESS_RATE_WARN", "99", "a number from 0 to 1"),
    ("INDEXER_CHECK_REQUEST_LATENCY_P95_MS_ERROR", "2s", "a non-negative number"),
    ("INDEXER_CORPUS_DIR", os.pathsep, "one or more folders joined by"),
]


@pytest.mark.parametrize(("variable", "value", "words"), BAD_VALUES)
def test_an_invalid_setting_is_named_with_its_value(monkeypatch, variable, value, words):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as error:
        Settings.from_env()
    assert str(error.value).startswith(f"{variable} must be {words}")
    assert str(error.value).endswith(f"(got {value!r})")


def test_overlap_must_be_less_than_the_chunk_size(monkeypatch):
    monkeypatch.setenv("INDEXER_CHUNK_TOKENS", "100")
    monkeypatch.setenv("INDEXER_CHUNK_OVERLAP", "100")
    with pytest.raises(SettingsError, match=r"^INDEXER_CHUNK_OVERLAP must be less than INDEXER_CHUNK_TOKENS"):
        Settings.from_env()


def test_every_invalid_setting_is_named_at_once(monkeypatch):
    monkeypatch.setenv("EMBEDDING_RPM", "3k")
    monkeypatch.setenv("EMBEDDING_TPM", "0")
    with pytest.raises(SettingsError) as error:
        Settings.from_env()
    assert "EMBEDDING_RPM" in str(error.value) and "EMBEDDING_TPM" in str(error.value)


def test_a_secret_is_never_echoed_in_an_error(monkeypatch):
    monkeypatch.setenv("INDEXER_ALERT_WEBHOOK_URL", "hooks.example/services/T0/B0/SECRETTOKEN")
    with pytest.raises(SettingsError) as error:
        Settings.from_env()
    assert str(error.value).startswith("INDEXER_ALERT_WEBHOOK_URL must be an http(s) URL")
    assert "SECRETTOKEN" not in str(error.value)


def test_values_are_typed_and_defaults_apply(monkeypatch):
    monkeypatch.setenv("EMBEDDING_RPM", "500")
    monkeypatch.setenv("EMBEDDING_TIMEOUT_S", "2.5")
    monkeypatch.setenv("INDEXER_CORPUS_DIR", os.pathsep.join(["/a", "/b"]))
    monkeypatch.setenv("EMBEDDING_TPM", "")  # empty counts as unset
    s = Settings.from_env()
    assert (s.rpm_limit, s.request_timeout_s, s.tpm_limit) == (500, 2.5, 1_000_000)
    assert s.corpus_dirs == [Path("/a"), Path("/b")]
    assert s.dagster_home == Path(".dagster_home")


def test_thresholds_are_settings(monkeypatch):
    monkeypatch.setenv("INDEXER_CHECK_REQUEST_LATENCY_P95_MS_ERROR", "2000")
    assert thresholds()["request_latency_p95_ms"].error == 2000
    monkeypatch.setenv("INDEXER_CHECK_DOCS_PER_S_WARN", "fast")
    with pytest.raises(SettingsError, match=r"^INDEXER_CHECK_DOCS_PER_S_WARN must be a non-negative number"):
        thresholds()


def test_the_resource_fields_follow_the_declarations(monkeypatch):
    assert set(IndexerResource.model_fields) == set(resource_fields())
    secrets = [n for n, f in Settings.model_fields.items() if f.json_schema_extra["secret"]]
    assert {"openai_api_key", "qdrant_api_key", "alert_webhook_url"} <= set(secrets)
    assert not set(secrets) & set(resource_fields().values())  # a secret never reaches stored run config
    for field, setting in resource_fields().items():
        assert env_name(setting) in IndexerResource.model_fields[field].description
    monkeypatch.setenv("EMBEDDING_RPM", "100")
    assert IndexerResource().settings().rpm_limit == 100  # empty field: the environment's value
    assert IndexerResource(rpm_limit=7, corpus_dir="/x").settings().rpm_limit == 7  # a set field wins
    with pytest.raises(SettingsError, match=r"^rpm_limit must be a positive integer \(got 0\)$"):
        IndexerResource(rpm_limit=0).settings()


def test_the_readme_table_is_generated_from_the_declarations():
    section = README.read_text().split("## Using it on your own corpus", 1)[1]
    table = "\n".join(re.findall(r"^\|.*\|$", section.split("\n\n", 2)[1], flags=re.M))
    assert table == settings_table(), "regenerate it: scripts/readme-settings"


def environment_reads(source: str) -> list[int]:
    """Lines that read a variable: `os.environ.get(…)`, `os.environ[…]`, `os.getenv(…)` (not writes)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        call = isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.environ.get", "os.getenv")
        item = isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load)
        if call or (item and ast.unparse(node.value) == "os.environ"):
            lines.append(node.lineno)
    return lines


def test_no_module_reads_the_environment_on_its_own():
    """Settings are read only through config.py, so each is declared, validated and documented."""
    offenders = [
        f"{path.relative_to(PACKAGE)}:{line}"
        for path in PACKAGE.rglob("*.py")
        if path.name != "config.py"
        for line in environment_reads(path.read_text())
    ]
    assert offenders == []


def test_a_run_fails_at_its_first_step_with_the_same_words(corpus_env, monkeypatch):
    monkeypatch.setenv("EMBEDDING_RPM", "3k")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("source_units", ["doc-docs"])
        result = materialize(instance, ["doc-docs"], raise_on_error=False)
    assert not result.success
    [failure] = result.get_step_failure_events()
    assert failure.step_key == "raw_documents"
    words = failure.step_failure_data.user_failure_data.description
    assert words == "EMBEDDING_RPM must be a positive integer (got '3k')"
    assert result.get_asset_materialization_events() == []
    assert not corpus_env.catalog_path.exists()  # nothing was read before the settings were checked


def test_a_launchpad_override_fails_the_run_in_the_same_words(corpus_env):
    run_config = {"resources": {"indexer": {"config": {"chunk_overlap": 500}}}}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("source_units", ["doc-docs"])
        result = defs.get_job_def("index_job").execute_in_process(
            run_config=run_config, partition_key="doc-docs", instance=instance, raise_on_error=False
        )
    assert not result.success
    [failure] = result.get_step_failure_events()
    assert failure.step_key == "raw_documents"
    words = failure.step_failure_data.user_failure_data.description
    assert words == "chunk_overlap must be less than INDEXER_CHUNK_TOKENS = 400 (got 500)"


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_sensor_interval_read_at_load_fails_the_load_in_the_same_words():
    load = "from indexer_pipeline.definitions import defs; print(defs.get_sensor_def('corpus_change_sensor')"
    load += ".minimum_interval_seconds)"
    done = run_python(load, INDEXER_SENSOR_INTERVAL_S="30s")
    assert done.returncode != 0
    assert "INDEXER_SENSOR_INTERVAL_S must be a positive integer (got '30s')" in done.stderr
    # Only what is read at load fails the load: another bad setting fails the run's first step instead.
    done = run_python(load, INDEXER_SENSOR_INTERVAL_S="5", EMBEDDING_RPM="3k")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "5"
