"""Secrets planted in every field a reader produces, for both corpus kinds, indexed through Dagster:
none may reach the store, the catalog, the embedding API, `search --json` or the run's event log."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from indexer_pipeline.config import Settings
from indexer_pipeline.corpus import discover_units
from indexer_pipeline.pipeline import Indexer

from .planted_secrets import PLANTED
from .test_assets import materialize

TASK = "7d1c9a52-2f4e-4b8a-9c3d-5e6f7a8b9c0d"
UI_TASK = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
# Secrets in names, titles and metadata; the text fields carry the whole planted set.
IN_NAMES = {
    "task title": "password: 'Ti1PlantedTitlePw'",
    "workspace": "/home/dev/api token=Ws1PlantedWorkspaceTok",
    "environment workspace": "/srv/app password=Ws2PlantedEnvWorkspace",
    "mode": "code token=Md1PlantedModeToken",
    "folder name": "notes token=Fd1PlantedFolderTok",
    "file name": "password=Fn1PlantedFileName.md",
    "markdown heading": "api_key: Hd9PlantedHeadingKey",
    "html title": "Deploy password: 'Ht9PlantedHtmlTitle'",
    "binary file name": "token=Bn1PlantedBinaryName.md",
    "broken file name": "secret=Bj1PlantedBrokenName.json",
    "link target": "password=Sl1PlantedLinkTarget",
}
SECRETS = [s for _, _, values in PLANTED for s in values.split(" ")] + [
    text.rsplit("=", 1)[-1].rsplit(" ", 1)[-1].strip("'").removesuffix(".md").removesuffix(".json")
    for text in IN_NAMES.values()
]
BLOCK = "\n".join(text for _, text, _ in PLANTED)


def leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def write(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


def plant(root: Path, outside: Path) -> None:
    task = root / "tasks" / TASK
    environment = f"<environment_details>\n# Current Workspace Directory ({IN_NAMES['environment workspace']}) Files\n</environment_details>"
    conversation = [
        {"role": "user", "ts": 1, "content": [{"type": "text", "text": f"<task>\n{BLOCK}\n</task>"}, {"type": "text", "text": environment}]},
        {"role": "assistant", "ts": 2, "content": [
            {"type": "text", "text": BLOCK},
            {"type": "tool_use", "id": "t1", "name": "write_to_file", "input": {"path": ".env", "content": BLOCK}},
            {"type": "tool_use", "id": "t2", "name": "execute_command", "input": {"command": "PGPASSWORD=Tu9PlantedToolPw psql -h db"}},
        ]},
        {"role": "user", "ts": 3, "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": BLOCK}]}]},
        {"role": "assistant", "ts": 4, "content": f"<execute_command>\n<command>{BLOCK}</command>\n</execute_command>"},
    ]  # fmt: skip
    write(task / "api_conversation_history.json", json.dumps(conversation))
    write(task / "ui_messages.json", json.dumps([{"type": "say", "say": "text", "text": BLOCK, "ts": 1}]))
    history = {
        "id": TASK,
        "task": IN_NAMES["task title"],
        "workspace": IN_NAMES["workspace"],
        "mode": IN_NAMES["mode"],
    }
    write(task / "history_item.json", json.dumps(history))
    write(task / "task_metadata.json", json.dumps({"files_in_context": [{"path": BLOCK}]}))
    ui_only = [
        {"type": "say", "say": "text", "text": f"{BLOCK}\n{environment}", "ts": 1},
        {"type": "ask", "ask": "followup", "text": json.dumps({"question": BLOCK, "suggest": [{"answer": BLOCK}]}), "ts": 2},
        {"type": "say", "say": "completion_result", "text": BLOCK, "ts": 3},
    ]  # fmt: skip
    write(root / "tasks" / UI_TASK / "ui_messages.json", json.dumps(ui_only))

    tree = root / IN_NAMES["folder name"]
    write(tree / IN_NAMES["file name"], f"# {IN_NAMES['markdown heading']}\n\n{BLOCK}\n")
    write(
        tree / "page.html",
        f"<html><head><title>{IN_NAMES['html title']}</title></head><body><pre>{BLOCK}</pre></body></html>",
    )
    records = [{"service": shape, "config": text} for shape, text, _ in PLANTED]
    write(tree / "config.json", json.dumps({"services": records}))
    write(tree / "config.jsonl", "\n".join(json.dumps(r) for r in records))
    write(
        tree / "config.csv",
        "service,config\n"
        + "".join(f'"{r["service"]}","{r["config"].replace(chr(34), chr(34) * 2)}"\n' for r in records),
    )
    write(tree / IN_NAMES["binary file name"], b"\x00\x01binary " + BLOCK.encode())
    write(tree / IN_NAMES["broken file name"], '{"password": "Bj2PlantedBrokenBody", ')
    write(outside / IN_NAMES["link target"] / "x.md", "outside")
    (tree / "link.md").symlink_to(outside / IN_NAMES["link target"] / "x.md")


@pytest.fixture
def planted_env(corpus_env, tmp_path, monkeypatch) -> Settings:
    root = tmp_path / "planted"
    plant(root, tmp_path / "outside")
    monkeypatch.setenv("INDEXER_CORPUS_DIR", str(root))
    return Settings.from_env()


def test_no_planted_secret_leaves_the_reader_or_reaches_any_store(planted_env, simulator):
    assert len(SECRETS) > 70 and all(len(s) >= 3 for s in SECRETS)
    keys = [u.key for u in discover_units(planted_env.corpus_dirs)]
    assert len(keys) == 3 and not leaks(repr(keys))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("source_units", keys)
        result = materialize(instance, keys)
        assert result.success
        run_log = repr([r.event_log_entry for r in instance.get_records_for_run(result.run_id).records])
        run_log += repr(instance.get_run_by_id(result.run_id).run_config)
    assert "REDACTED" in run_log  # the rejection table names the redacted paths
    assert leaks(run_log) == [], "the Dagster run's metadata or logs"

    with Indexer(planted_env) as ix:
        store = ix.store()
        ids = [pid for unit in store.units() for pid in store.unit_hashes(unit)]
        payloads = [p.payload for p in store.retrieve(ids)]
        assert len(payloads) == store.count() > 50
    kinds = {p["kind"] for p in payloads}
    assert kinds == {"task", "tree"} and {p.get("format") for p in payloads} >= {
        "md",
        "html",
        "json",
        "jsonl",
        "csv",
    }
    assert leaks(json.dumps(payloads, ensure_ascii=False)) == [], "the vector store's payloads"

    with sqlite3.connect(planted_env.catalog_path) as db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        rows = {t: db.execute(f"SELECT * FROM {t}").fetchall() for t in tables}
    assert rows["rejections"] and rows["chunks"] and rows["units"]
    assert leaks(repr(rows)) == [], "the catalog"

    sent = list(simulator.stats()["texts"])
    assert sent and leaks(repr(sent)) == [], "the texts sent to the embedding API"

    search = subprocess.run(
        [str(Path(sys.executable).parent / "indexer-pipeline"), "search", "password database connection token", "--json", "--ungrouped", "--limit", "200"],
        capture_output=True, text=True, timeout=120, env=os.environ, check=True,
        cwd=planted_env.corpus_dirs[0].parent,
    )  # fmt: skip
    assert len(json.loads(search.stdout)["hits"]) > 50
    assert leaks(search.stdout + search.stderr) == [], "search --json"
