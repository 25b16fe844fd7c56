"""The whole pipeline, through the command line a user runs, under the faults real corpora and real
accounts bring: a vanished root, an emptied `tasks/`, a tokens-per-minute limit and a model size the
product was never told, a key revoked mid-run, secrets in names and text, file names that are not
UTF-8 and text written in cp1252.

Every case ends the same way: nothing leaked, nothing deleted that exists, every indexable document
indexed, and, where the user must act, a message that says what to do.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

from indexer_pipeline.config import Settings
from indexer_pipeline.embeddings.simulator import EmbeddingSimulator
from indexer_pipeline.integrity import verify_units
from indexer_pipeline.pipeline import Indexer

TASKS = 25
WORDS = (
    "scheduler retry queue worker deploy rollback migration schema index cache latency timeout "
    "fixture flaky assertion parser token budget export roster invoice webhook payload gateway"
).split()
# Planted where real conversations carry them: a title, a connection string, a pasted .env file.
SECRETS = ("Ti7PlantedTitlePass", "Pg7PlantedUrlPass", "Env7PlantedDotEnvTok")
CP1252_TEXT = "Café notes – naïve “smart quotes” and a 5 € budget"


def build_corpus(root: Path) -> None:
    rng = random.Random(7)
    for i in range(TASKS):
        folder = root / "tasks" / f"task-{i:03d}"
        folder.mkdir(parents=True)
        messages = [
            {
                "role": role,
                "ts": 1_760_000_000_000 + 1000 * i + n,
                "content": f"Task {i} part {n}: " + " ".join(rng.choice(WORDS) for _ in range(280)),
            }
            for n, role in enumerate(("user", "assistant", "user"))
        ]
        if i == 0:
            messages[0]["content"] = f"password: '{SECRETS[0]}' then connect the app"
            messages[1]["content"] += f"\nDATABASE_URL=postgresql://app_user:{SECRETS[1]}@127.0.0.1:5432/app"
            messages[2]["content"] += f"\n```\n# .env\nDEBUG=1\nAPI_TOKEN={SECRETS[2]}\n```"
        (folder / "api_conversation_history.json").write_text(json.dumps(messages))
    notes = root / "notes"
    notes.mkdir()
    # Two names that are not UTF-8 and display alike (both "plan-\ufffd.md").
    for raw in (b"plan-\xff.md", b"plan-\xfe.md"):
        Path(os.fsdecode(bytes(notes) + b"/" + raw)).write_text(
            f"# Plan {raw[-4]}\n\nShip the worker queue.\n"
        )
    (notes / "legacy.txt").write_bytes(CP1252_TEXT.encode("cp1252"))


def env_for(tmp_path: Path, sim: EmbeddingSimulator, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "INDEXER_CORPUS_DIR": str(tmp_path / "corpus"),
        "INDEXER_DATA_DIR": str(tmp_path / "data"),
        "EMBEDDING_PROVIDER": "openai",
        "OPENAI_API_KEY": sim.api_key,
        "OPENAI_BASE_URL": sim.base_url,
        **extra,
    }


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    # A bound on every run: a product that hangs fails the test instead of the suite.
    return subprocess.run(
        [sys.executable, "-m", "indexer_pipeline.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def settings_of(env: dict[str, str]) -> Settings:
    with mock.patch.dict(os.environ, env, clear=True):
        return Settings.from_env()


def assert_sound(env: dict[str, str]) -> int:
    """Nothing leaked, every unit of the corpus complete in the store, every indexable document indexed.
    Returns the number of points."""
    settings = settings_of(env)
    with Indexer(settings) as ix:
        units = ix.units()
        keys = [u.key for u in units]
        records = {r.key: r for r in ix.catalog.units()}
        assert set(keys) <= set(records), "units of the corpus that were never read"
        for key in keys:
            assert records[key].documents_indexed == records[key].documents, key
        store = ix.store()
        report = verify_units(ix.catalog, store, keys, dimension=store.vector_params()[0])
        assert report.complete, (report.missing, report.orphans)
        assert not report.bad_values and not report.bad_dimension
        chunks = sum(len(ix.catalog.chunks(k)) for k in keys)
        assert store.count() == chunks
        stored = json.dumps([p.payload for k in keys for p in store.retrieve(list(store.unit_hashes(k)))])
    with sqlite3.connect(settings.catalog_path) as db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        catalog = json.dumps([db.execute(f"SELECT * FROM {t}").fetchall() for t in tables])
    for secret in SECRETS:
        assert secret not in stored and secret not in catalog, secret
    return chunks


@pytest.fixture
def corpus(tmp_path) -> Path:
    build_corpus(tmp_path / "corpus")
    return tmp_path / "corpus"


@pytest.fixture
def sim():
    with EmbeddingSimulator(dimensions=64) as s:
        yield s


def test_legacy_names_and_text_are_indexed_and_no_secret_leaks(tmp_path, corpus, sim):
    env = env_for(tmp_path, sim, EMBEDDING_DIMENSIONS="64")
    done = cli(env, "index")
    assert done.returncode == 0, done.stderr
    assert_sound(env)
    for secret in SECRETS:
        assert secret not in done.stdout + done.stderr
    assert not any(secret in text for text in sim.stats()["texts"] for secret in SECRETS)  # never sent
    found = json.loads(cli(env, "search", "Café smart quotes budget", "--json", "--limit", "3").stdout)
    assert any("Café notes – naïve “smart quotes”" in h["payload"]["text"] for h in found["hits"])
    with Indexer(settings_of(env)) as ix:
        plans = [c for c in ix.catalog.chunks("doc-notes") if "Ship the worker queue" in c.text]
    assert len({c.doc_id for c in plans}) == 2  # two files that display alike, two documents


@pytest.mark.parametrize("fault", ["root vanished", "tasks emptied"])
def test_a_vanished_folder_deletes_nothing_and_says_what_to_do(tmp_path, corpus, sim, fault):
    env = env_for(tmp_path, sim, EMBEDDING_DIMENSIONS="64")
    assert cli(env, "index").returncode == 0
    points = assert_sound(env)
    moved = tmp_path / "moved"
    if fault == "root vanished":  # an unmounted drive, a moved VS Code storage folder
        corpus.rename(moved)
    else:
        shutil.move(corpus / "tasks", moved)
        (corpus / "tasks").mkdir()
    done = cli(env, "index")
    assert done.returncode == 3, done.stderr
    message = done.stdout + done.stderr
    assert (
        ("missing" in message and str(corpus) in message)
        if fault == "root vanished"
        else "confirm-deletions" in message
    )
    with Indexer(settings_of(env)) as ix:
        assert ix.store().count() == points  # nothing deleted
    # The folder comes back: everything is still there, and the holds clear by themselves.
    if fault == "root vanished":
        moved.rename(corpus)
    else:
        (corpus / "tasks").rmdir()
        shutil.move(moved, corpus / "tasks")
    assert cli(env, "index").returncode == 0
    assert assert_sound(env) == points


def test_an_account_limit_nobody_configured_is_learned_not_waited_on(tmp_path, corpus):
    """20,000 tokens per minute, told to nobody, and a corpus larger than that: the product learns the
    limit from the server's answers (headers, or a 429 "Request too large") and finishes; the old
    engine sent one request above the limit again and again until the run timed out."""
    with EmbeddingSimulator(dimensions=64, tpm=20_000) as sim:
        env = env_for(tmp_path, sim, EMBEDDING_DIMENSIONS="64")
        done = cli(env, "index")
        assert done.returncode == 0, done.stderr
        stats = sim.stats()
    assert stats["tokens"] > 20_000  # more than one minute's budget
    assert stats["status"].get(429, 0) <= 1  # at most one refusal to learn from
    assert assert_sound(env) > 0


def test_a_model_of_a_size_nobody_configured_is_measured_from_its_answer(tmp_path, corpus):
    with EmbeddingSimulator(dimensions=768, model="nomic-embed-text", dimensions_param="reject") as sim:
        env = env_for(tmp_path, sim, EMBEDDING_MODEL="nomic-embed-text")
        done = cli(env, "index")
        assert done.returncode == 0, done.stderr
    with Indexer(settings_of(env)) as ix:
        assert ix.store().vector_params()[0] == 768
    assert_sound(env)


def test_a_key_revoked_mid_run_fails_loudly_and_a_rerun_completes(tmp_path, corpus):
    with EmbeddingSimulator(dimensions=64, revoke_key_after=3) as sim:
        env = env_for(tmp_path, sim, EMBEDDING_DIMENSIONS="64", EMBEDDING_MAX_INPUTS_PER_REQUEST="8")
        done = cli(env, "index")
    assert done.returncode != 0
    assert "OPENAI_API_KEY" in done.stderr and sim.api_key not in done.stderr
    with EmbeddingSimulator(dimensions=64) as sim:  # a new key
        env = env_for(tmp_path, sim, EMBEDDING_DIMENSIONS="64")
        assert cli(env, "index").returncode == 0
    assert_sound(env)
