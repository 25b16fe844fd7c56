"""kill -9 of an indexing process at several moments, then a re-run: no duplicate, nothing lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from indexer_pipeline.config import Settings
from indexer_pipeline.integrity import verify_units
from indexer_pipeline.pipeline import Indexer

UNITS = 120


def make_corpus(root) -> None:
    for i in range(UNITS):
        folder = root / "tasks" / f"crash-{i:04d}"
        folder.mkdir(parents=True)
        messages = [
            {
                "role": "user",
                "content": f"Task {i}: fix the {w} module, it breaks under load {i * 7}",
                "ts": 1_760_000_000_000 + i,
            }
            for w in ("parser", "scheduler", "cache")
        ]
        (folder / "api_conversation_history.json").write_text(json.dumps(messages))


def run_cli(env, *args, kill_after: float | None = None, kill_when=None) -> int | None:
    process = subprocess.Popen(
        [sys.executable, "-m", "indexer_pipeline.cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    if kill_after is None:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err.decode()[-2000:]
        return process.returncode
    deadline = time.monotonic() + 60
    while (
        kill_when is not None and not kill_when() and process.poll() is None and time.monotonic() < deadline
    ):
        time.sleep(0.01)
    time.sleep(kill_after)
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    return None


def writing_started(data_dir):
    """The write stage holds the embedded store's lock file, with its pid in it."""
    lock = data_dir / "qdrant_edge" / "documents.lock"
    return lambda: lock.exists() and lock.read_text().strip() != ""


@pytest.mark.parametrize(
    "kill_after, in_write_stage",
    [(1.0, False), (2.5, False), (4.0, False), (0.0, True), (0.3, True)],
    ids=["starting", "reading-or-embedding", "embedding", "write-begins", "mid-write"],
)
def test_killed_run_then_rerun_leaves_no_duplicate_and_loses_nothing(
    tmp_path, slow_simulator, kill_after, in_write_stage
):
    corpus = tmp_path / "corpus"
    make_corpus(corpus)
    env = {
        **os.environ,
        "INDEXER_CORPUS_DIR": str(corpus),
        "INDEXER_DATA_DIR": str(tmp_path / "data"),
        "EMBEDDING_PROVIDER": "openai",
        "OPENAI_API_KEY": slow_simulator.api_key,
        "OPENAI_BASE_URL": slow_simulator.base_url,
        "EMBEDDING_DIMENSIONS": "64",
        # Small requests, one at a time: the run lasts long enough to be killed in every stage.
        "EMBEDDING_MAX_CONCURRENCY": "1",
        "EMBEDDING_MAX_INPUTS_PER_REQUEST": "16",
    }
    run_cli(
        env,
        "index",
        kill_after=kill_after,
        kill_when=writing_started(tmp_path / "data") if in_write_stage else None,
    )
    run_cli(env, "index")

    settings = Settings.from_env(
        corpus_dirs=[corpus],
        data_dir=tmp_path / "data",
        embedding_provider="openai",
        openai_api_key=slow_simulator.api_key,
        openai_base_url=slow_simulator.base_url,
        embedding_dimensions=64,
    )
    with Indexer(settings) as ix:
        keys = [u.key for u in ix.units()]
        report = verify_units(ix.catalog, ix.store(), keys, dimension=64, sample=10)
        expected = sum(len(ix.catalog.chunks(k)) for k in keys)
        assert report.complete, (report.missing, report.orphans)
        assert ix.store().count() == expected == UNITS * 3
        assert not report.bad_values and not report.bad_dimension
