"""`indexer-pipeline` index, search, status and register, as a person or a script uses them."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys

import dagster as dg
import pytest

from indexer_pipeline.cli import main
from indexer_pipeline.definitions import defs
from indexer_pipeline.vectorstore.edge import EdgeStore

from .conftest import SECRET_TASK


def test_index_then_search_and_status(corpus_env, capsys):
    assert main(["index"]) == 0
    out = capsys.readouterr().out
    assert "success rate 100.0%" in out

    assert main(["search", "pods CrashLoopBackOff after upgrading orders-api SIGTERM", "--limit", "3"]) == 0
    table = capsys.readouterr().out
    assert "task-d1f1aec9" in table.splitlines()[0]  # the Kubernetes task ranks first

    assert main(["search", "docker image", "--json", "--task", SECRET_TASK, "--role", "user"]) == 0
    found = json.loads(capsys.readouterr().out)
    hits = [h["payload"] for h in found["hits"]]
    assert hits and all(h["task_id"] == SECRET_TASK and h["role"] == "user" for h in hits)
    assert all("sk-proj-FAKE" not in h["text"] for h in hits)
    assert [r["unit"] for r in found["rows"]] == [f"task-{SECRET_TASK}"]

    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["units_indexed"] == status["units_in_corpus"] == 16
    assert status["points"] == status["chunks"] > 0 and status["units_pending"] == []
    assert status["cache"]["entries"] > 0 and status["last_indexed"]


def test_index_one_unit_and_unknown_unit(corpus_env, capsys):
    assert main(["index", "--unit", "doc-docs"]) == 0
    assert "1 units" in capsys.readouterr().out
    assert main(["index", "--unit", "no-such-unit"]) == 2
    assert "no-such-unit" in capsys.readouterr().err


def test_a_reader_says_plainly_who_holds_the_store(corpus_env):
    env = {**os.environ, "INDEXER_STORE_WAIT_S": "0.5"}
    with EdgeStore(corpus_env.edge_path):
        done = subprocess.run(
            [sys.executable, "-m", "indexer_pipeline.cli", "search", "anything"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2
    assert f"held by process {os.getpid()}" in done.stderr


def test_register_adds_the_units_as_partitions(corpus_env, tmp_path, monkeypatch, capsys):
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert main(["register"]) == 0
    assert main(["register"]) == 0
    assert "16 units in the corpus, 0 newly registered" in capsys.readouterr().out
    with dg.DagsterInstance.get() as instance:
        assert len(instance.get_dynamic_partitions("source_units")) == 16


def test_status_shows_the_latest_check_results(corpus_env, tmp_path, monkeypatch, capsys):
    from indexer_pipeline.dagster_defs.index_quality import index_recall

    from .test_assets import INDEX

    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("source_units", ["doc-docs"])
        run = dg.materialize(
            [*INDEX, index_recall],
            instance=instance,
            resources={"indexer": defs.resources["indexer"]},
            partition_key="doc-docs",
        )
        assert run.success
    assert main(["status", "--json"]) == 0
    checks = {(c["asset"], c["check"]): c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks[("qdrant_collection", "points_match_chunks")]["status"] == "SUCCEEDED"
    assert checks[("qdrant_collection", "points_match_chunks")]["description"].startswith("[unit doc-docs]")
    # Every check that ran, index_recall (defined outside checks.py) included: not sampled after a small run.
    assert checks[("qdrant_collection", "index_recall")]["description"].startswith("Not sampled")
    assert len(checks) == 10
    assert main(["status"]) == 0
    assert "qdrant_collection/success_rate" in capsys.readouterr().out


def test_an_invalid_setting_is_one_line_naming_the_variable_and_exit_2(corpus_env):
    env = {**os.environ, "EMBEDDING_RPM": "3k"}
    done = subprocess.run(
        [sys.executable, "-m", "indexer_pipeline.cli", "index"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr == "indexer-pipeline: EMBEDDING_RPM must be a positive integer (got '3k')\n"
    assert not corpus_env.data_dir.exists()  # checked before any work


def test_status_and_register_default_dagster_home_like_scripts_run(corpus_env, tmp_path, monkeypatch, capsys):
    from .test_assets import materialize

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["register"]) == 0  # creates ./.dagster_home, as scripts/run does
    capsys.readouterr()
    with dg.DagsterInstance.from_config(str(tmp_path / ".dagster_home")) as instance:
        assert len(instance.get_dynamic_partitions("source_units")) == 16
        assert materialize(instance, ["doc-docs"]).success
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "qdrant_collection/points_match_chunks" in out


def test_status_prints_the_cache_for_people(corpus_env, capsys):
    assert main(["index", "--unit", "doc-docs"]) == 0
    capsys.readouterr()
    assert main(["status"]) == 0
    [cache] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("embedding cache")]
    assert re.fullmatch(r"embedding cache +[\d,]+ entries, [\d.]+ (B|KB|MB|GB)", cache), cache


def test_a_row_is_one_line_per_task_with_its_snippets_and_roles_under_it(corpus_env, capsys):
    assert main(["index", "--unit", f"task-{SECRET_TASK}"]) == 0
    capsys.readouterr()
    assert main(["search", "docker image size", "--task", SECRET_TASK, "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert main(["search", "docker image size", "--task", SECRET_TASK]) == 0
    head, *snippets = capsys.readouterr().out.splitlines()

    [row] = found["rows"]  # one task: one row, however many of its messages match
    assert (found["mode"], found["degraded"]) == ("hybrid", None) and len(found["hits"]) > 1
    date = row["date"][:10]
    assert head.split("  ")[1:] == [
        row["title"],
        row["unit"],
        "/home/sam/projects/ticket-triage",
        date,
        "code",
    ]
    assert snippets == [f"        {s['role']}: {s['text']}" for s in row["snippets"]]
    assert {s["role"] for s in row["snippets"]} <= {"user", "assistant"} and len(snippets) > 1


def test_degraded_search_says_so_on_stderr_and_exits_0(corpus_env, capsys, monkeypatch):
    assert main(["index", "--unit", f"task-{SECRET_TASK}"]) == 0
    capsys.readouterr()
    with socket.socket() as s:  # a port nobody listens on: the embedding API is down
        s.bind(("127.0.0.1", 0))
        monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{s.getsockname()[1]}/v1")

    assert main(["search", "docker image size", "--json"]) == 0
    captured = capsys.readouterr()
    found = json.loads(captured.out)
    assert found["mode"] == "text" and found["rows"]
    assert found["degraded"].startswith("embedding API unreachable: ")
    assert captured.err == f"indexer-pipeline: degraded search (text only): {found['degraded']}\n"


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (["--since", "last tuesday"], "since must be an ISO date or time"),
        (["--kind", "folder"], "kind must be task or document (got 'folder')"),
        (["--role", "bot"], "role must be one of user, assistant (got 'bot')"),
    ],
)
def test_a_bad_filter_value_is_one_line_and_exit_2(corpus_env, capsys, flags, error):
    assert main(["search", "anything", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"indexer-pipeline: {error}") and err.count("\n") == 1
    assert not corpus_env.data_dir.exists()  # checked before any work


def test_search_json_piped_into_head_ends_quietly(corpus_env, capsys):
    assert main(["index"]) == 0
    capsys.readouterr()
    assert main(["search", "build fails error", "--limit", "300", "--ungrouped", "--json"]) == 0
    assert len(capsys.readouterr().out) > 2 * 65536  # more than a pipe holds: the reader leaves first

    done = subprocess.run(
        ["bash", "-c", f"{sys.executable} -m indexer_pipeline.cli search 'build fails error' --limit 300 --ungrouped --json"
         " | head -1; exit ${PIPESTATUS[0]}"],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (0, "{\n", "")


def test_search_limit_must_be_a_positive_integer(corpus_env, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["search", "anything", "--limit", "0"])
    assert exit_.value.code == 2
    assert "--limit: must be a positive integer (got '0')" in capsys.readouterr().err


def _points_by_unit(settings) -> dict[str, int]:
    from indexer_pipeline.pipeline import Indexer

    with Indexer(settings) as ix:
        return ix.store().units()


def test_index_removes_a_unit_that_left_the_corpus(corpus_env, capsys):
    from indexer_pipeline.catalog import Catalog

    assert main(["index"]) == 0
    task = "task-d1f1aec9-7691-4868-a7b2-1533eaf4135b"
    shutil.rmtree(corpus_env.corpus_dirs[0] / "tasks" / task.removeprefix("task-"))
    capsys.readouterr()
    assert main(["index"]) == 0
    assert "1 units left the corpus" in capsys.readouterr().out
    assert task not in _points_by_unit(corpus_env)
    with Catalog(corpus_env.catalog_path) as catalog:
        assert catalog.unit(task) is None


def test_index_holds_a_vanished_tasks_folder_until_confirmed(corpus_env, capsys):
    assert main(["index"]) == 0
    before = _points_by_unit(corpus_env)
    tasks = [k for k in before if k.startswith("task-")]
    (corpus_env.corpus_dirs[0] / "tasks").rename(corpus_env.corpus_dirs[0].parent / "tasks-moved")
    capsys.readouterr()
    assert main(["index"]) == 3  # something needs the user
    err = capsys.readouterr().err
    assert f"{len(tasks)} units are kept in the index" in err and "tasks is gone" in err
    assert "indexer-pipeline confirm-deletions" in err
    assert _points_by_unit(corpus_env) == before

    assert main(["confirm-deletions", "--unit", tasks[0]]) == 0
    assert "1 units deleted" in capsys.readouterr().out
    assert set(_points_by_unit(corpus_env)) == set(before) - {tasks[0]}
    assert main(["confirm-deletions", "--unit", "doc-docs"]) == 2  # not held: nothing deleted
    assert "no deletion is held for: doc-docs" in capsys.readouterr().err
    assert main(["confirm-deletions"]) == 0
    assert set(_points_by_unit(corpus_env)) == set(before) - set(tasks)
    assert main(["index"]) == 0


def test_index_with_a_missing_root_deletes_nothing_and_says_why(corpus_env, capsys):
    assert main(["index"]) == 0
    before = _points_by_unit(corpus_env)
    root = corpus_env.corpus_dirs[0]
    root.rename(root.with_name("unmounted"))
    capsys.readouterr()
    assert main(["index"]) == 3
    err = capsys.readouterr().err
    assert f"corpus root {root} is missing (unmounted, moved or renamed?)" in err
    assert f"{len(before)} units are kept in the index" in err
    assert _points_by_unit(corpus_env) == before


def test_a_model_the_server_does_not_serve_is_one_line_and_exit_2(corpus_env, simulator, capsys, monkeypatch):
    """Every request refused (a model name the server does not know): a clear line, no traceback."""
    simulator.model = "nomic-embed-text"
    monkeypatch.setenv("EMBEDDING_MODEL", "no-such-model")
    assert main(["index", "--unit", "doc-docs"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("indexer-pipeline: ") and "EMBEDDING_MODEL" in err


def test_status_with_a_missing_root_names_it_and_the_held_deletions(corpus_env, capsys):
    """`status` lists the corpus as a sync does: a missing root is shown, not a traceback or exit 2."""
    assert main(["index"]) == 0
    root = corpus_env.corpus_dirs[0]
    root.rename(root.with_name("unmounted"))
    assert main(["index"]) == 3  # the sync holds the deletion of every unit of that root
    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["missing_roots"] == [str(root)] and status["units_in_corpus"] == 0
    held = {h["unit"] for h in status["held_deletions"]}
    assert held == set(_points_by_unit(corpus_env)) and len(held) == status["units_indexed"] == 16
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert f"missing root     {root}" in out and "16 units are kept in the index" in out


def test_a_cli_process_does_not_import_pandas_until_a_csv_is_read(tmp_path):
    """Issue 12, item 3: a cold `search` pays every import of the CLI's modules; pandas (0.3 s, 34 MB)
    serves only the CSV reader, so it is imported there, and a CSV is still read through it."""
    probe = (
        "import sys; from indexer_pipeline import cli, readers; assert 'pandas' not in sys.modules;"
        " list(readers._csv('a,b\\n1,2\\n')); assert 'pandas' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=120)
