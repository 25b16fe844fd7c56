"""End to end through the real Dagster daemon, code server and webserver (`dagster dev` on 127.0.0.1).

The change sensor must notice a new corpus, an edited file and a deleted file by itself; the test only
edits files and watches the index. Bounded in time; stops the process group it started.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from indexer_pipeline.catalog import Catalog
from indexer_pipeline.config import Settings
from indexer_pipeline.corpus import discover_units, unit_fingerprint
from indexer_pipeline.pipeline import Indexer

from .conftest import simulator_settings

REPO = Path(__file__).resolve().parents[1]
DEADLINE_S = 240


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, what: str, log: Path, timeout: float = DEADLINE_S):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(1.0)
    pytest.fail(
        f"timed out after {timeout:.0f} s waiting for {what}; dagster dev log tail:\n{log.read_text()[-4000:]}"
    )


def all_indexed(settings: Settings) -> bool:
    units = discover_units(settings.corpus_dirs)
    with Catalog(settings.catalog_path) as catalog:
        indexed = catalog.indexed_fingerprints()
    return bool(units) and all(indexed.get(u.key) == unit_fingerprint(u) for u in units)


def texts_in_index(settings: Settings, query: str) -> list[str] | None:
    try:
        with Indexer(settings) as ix:
            return [h.payload["text"] for h in ix.search(query, limit=5)]
    except Exception:  # the store is busy while a run writes: look again on the next poll
        return None


def dagster_env(tmp_path, corpus, simulator, **extra) -> dict:
    """The environment of a user's `dagster dev`: a fresh DAGSTER_HOME with the shipped dagster.yaml."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "INDEXER_CORPUS_DIR": str(corpus),
        "INDEXER_DATA_DIR": str(tmp_path / "data"),
        "EMBEDDING_PROVIDER": "openai",
        "OPENAI_API_KEY": simulator.api_key,
        "OPENAI_BASE_URL": simulator.base_url,
        "EMBEDDING_DIMENSIONS": "64",
        **extra,
    }


@contextmanager
def dagster_dev_process(env: dict, log: Path, port: int, webserver_only: bool = False):
    """`dagster dev` on 127.0.0.1 in its own process group, stopped (group and all) on exit.
    `webserver_only`: the UI alone (`dagster-webserver`), with no daemon, so no sensor or schedule ticks."""
    command = ["dagster-webserver"] if webserver_only else ["dagster", "dev"]
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name(command[0])),
                *command[1:],
                "-w",
                str(REPO / "workspace.yaml"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture
def dagster_dev(tmp_path, simulator):
    corpus = tmp_path / "corpus"
    task = corpus / "tasks" / "e2e-task-1"
    task.mkdir(parents=True)
    (task / "api_conversation_history.json").write_text(
        json.dumps(
            [
                {
                    "role": "user",
                    "content": "Set up nightly backups of the Postgres database",
                    "ts": 1_760_000_000_000,
                }
            ]
        )
    )
    (corpus / "notes").mkdir()
    (corpus / "notes" / "gardening.md").write_text("# Gardening\n\nTomatoes need sun and regular watering.\n")
    (corpus / "notes" / "astronomy.md").write_text("# Astronomy\n\nJupiter has dozens of moons.\n")
    env = dagster_env(tmp_path, corpus, simulator, INDEXER_SENSOR_INTERVAL_S="5")
    settings = simulator_settings(simulator, tmp_path / "data", corpus_dirs=[corpus])
    log = tmp_path / "dagster_dev.log"
    with dagster_dev_process(env, log, free_port()):
        yield corpus, settings, log


def test_sensor_indexes_edits_and_deletions_by_itself(dagster_dev):
    corpus, settings, log = dagster_dev
    wait_for(lambda: all_indexed(settings), "the sensor to index the new corpus", log)
    assert any("Tomatoes" in t for t in texts_in_index(settings, "tomatoes watering") or [])

    garden = corpus / "notes" / "gardening.md"
    garden.write_text(garden.read_text() + "\nQuokkas are not garden pests.\n")
    wait_for(
        lambda: any("Quokkas" in t for t in texts_in_index(settings, "quokkas garden") or []),
        "the edited text to be searchable",
        log,
    )

    (corpus / "notes" / "astronomy.md").unlink()
    wait_for(
        lambda: (
            (t := texts_in_index(settings, "Jupiter moons")) is not None
            and not any("Jupiter" in x for x in t)
        ),
        "the deleted file to leave the index",
        log,
    )
