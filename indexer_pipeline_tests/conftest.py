"""Shared fixtures: the embeddings simulator on 127.0.0.1, and a copy of the sample corpus."""

from __future__ import annotations

import shutil

import dagster as dg
import pytest

from indexer_pipeline.config import SAMPLE_CORPUS, Settings
from indexer_pipeline.corpus import discover_units
from indexer_pipeline.embeddings.simulator import EmbeddingSimulator

PLANTED_SECRET = "sk-proj-FAKEfakeFAKE0000EXAMPLEexampleNOTaREALkey0123456789abcdEF"
SECRET_TASK = "5528dbd6-d7dc-4d52-884c-abe5a78e2c31"
TEST_DIMENSIONS = 64  # small vectors keep the suite fast; the code path is the same at 1536


def simulator_settings(simulator: EmbeddingSimulator, data_dir, **fields) -> Settings:
    """Settings that embed through `simulator` into an embedded store under `data_dir` (environment
    ignored for these fields; `fields` adds or overrides others, e.g. corpus_dirs)."""
    return Settings.from_env(
        **{
            "data_dir": data_dir,
            "embedding_provider": "openai",
            "openai_api_key": simulator.api_key,
            "openai_base_url": simulator.base_url,
            "embedding_dimensions": TEST_DIMENSIONS,
            "qdrant_url": None,
            **fields,
        }
    )


def note_folders(corpus, docs: list[int]) -> None:
    """A tree corpus: folder u (one unit) holds docs[u] one-chunk text documents, each its own text."""
    for u, n in enumerate(docs):
        folder = corpus / f"folder-{u:03d}"
        folder.mkdir(parents=True)
        for d in range(n):
            (folder / f"doc-{d}.txt").write_text(f"Folder {u}, note {d}: shard {u}.{d} retried at {d}h.\n")


@pytest.fixture
def simulator():
    with EmbeddingSimulator(dimensions=TEST_DIMENSIONS) as sim:
        yield sim


@pytest.fixture
def slow_simulator():
    with EmbeddingSimulator(dimensions=TEST_DIMENSIONS, latency_ms=150) as sim:
        yield sim


@pytest.fixture
def corpus_env(tmp_path, simulator, monkeypatch) -> Settings:
    """A writable copy of the sample corpus, indexed through the simulator (env as a user would set it)."""
    corpus = tmp_path / "corpus"
    shutil.copytree(SAMPLE_CORPUS, corpus)
    env = {
        "INDEXER_CORPUS_DIR": str(corpus),
        "INDEXER_DATA_DIR": str(tmp_path / "data"),
        "EMBEDDING_PROVIDER": "openai",
        "OPENAI_API_KEY": simulator.api_key,
        "OPENAI_BASE_URL": simulator.base_url,
        "EMBEDDING_DIMENSIONS": str(TEST_DIMENSIONS),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings.from_env()


@pytest.fixture
def indexed_instance(corpus_env):
    """A Dagster test instance on which the whole sample corpus was materialized in one range run."""
    from .test_assets import materialize

    keys = [u.key for u in discover_units(corpus_env.corpus_dirs)]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("source_units", keys)
        result = materialize(instance, keys)
        yield instance, keys, result
