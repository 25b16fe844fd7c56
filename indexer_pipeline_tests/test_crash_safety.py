"""kill -9 of an indexing process in each of its stages, then a re-run: no duplicate, nothing lost.

Each case kills on an observable sign of its stage and then checks that the kill landed there."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
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


def run_cli(env, *args) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "indexer_pipeline.cli", *args], env=env, capture_output=True, timeout=300
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]


def kill_when(env, landed, *args, timeout_s: float = 60) -> None:
    """Start the CLI and SIGKILL it the moment `landed()` is true; fail unless the kill found it
    still running, so every case really interrupts the stage it names."""
    process = subprocess.Popen(
        [sys.executable, "-m", "indexer_pipeline.cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout_s
    while not landed() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    alive = process.poll() is None
    os.kill(process.pid, signal.SIGKILL) if alive else None
    process.wait(timeout=30)
    assert alive and process.returncode == -signal.SIGKILL, "the run ended before the kill landed"


def units_read(data_dir) -> int:
    path = data_dir / "catalog.sqlite"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM units").fetchone()[0]
    except sqlite3.OperationalError:  # created but its schema not yet written
        return 0


def store_holder(data_dir) -> str:
    """Who holds the embedded store: set only while the write stage runs."""
    holder = data_dir / "qdrant_edge" / "documents.lock.holder"
    return holder.read_text().strip() if holder.exists() else ""


# Each stage: when to kill, and what must be true right after the kill for it to have landed there.
STAGES = {
    "starting": (lambda d, sim: True, lambda d, sim: units_read(d) == 0 and sim.stats()["requests"] == 0),
    "reading": (
        lambda d, sim: units_read(d) > 0,
        lambda d, sim: 0 < units_read(d) < UNITS and sim.stats()["requests"] == 0,
    ),
    "embedding": (
        lambda d, sim: sim.stats()["requests"] >= 2,
        lambda d, sim: units_read(d) == UNITS and not store_holder(d),
    ),
    "writing": (lambda d, sim: bool(store_holder(d)), lambda d, sim: bool(store_holder(d))),
}


@pytest.mark.parametrize("stage", list(STAGES))
def test_killed_run_then_rerun_leaves_no_duplicate_and_loses_nothing(tmp_path, slow_simulator, stage):
    corpus = tmp_path / "corpus"
    data = tmp_path / "data"
    make_corpus(corpus)
    env = {
        **os.environ,
        "INDEXER_CORPUS_DIR": str(corpus),
        "INDEXER_DATA_DIR": str(data),
        "EMBEDDING_PROVIDER": "openai",
        "OPENAI_API_KEY": slow_simulator.api_key,
        "OPENAI_BASE_URL": slow_simulator.base_url,
        "EMBEDDING_DIMENSIONS": "64",
        # Small requests, one at a time: the run lasts long enough to be killed in every stage.
        "EMBEDDING_MAX_CONCURRENCY": "1",
        "EMBEDDING_MAX_INPUTS_PER_REQUEST": "16",
    }
    when, landed = STAGES[stage]
    kill_when(env, lambda: when(data, slow_simulator), "index")
    assert landed(data, slow_simulator), f"the kill did not land in the {stage} stage"
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
