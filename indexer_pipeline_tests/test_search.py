"""search.py through the real stores: rows grouped by task or document, every filter of the old tool,
the modes, and degraded mode when the query cannot be embedded.

A store holds the sample corpus, plus a Cline task whose command failed and a second corpus root,
indexed through the embeddings simulator once per backend: Qdrant Edge in a temporary folder, and
qdrant-client `:memory:` (the server's code path).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket

import pytest

from indexer_pipeline.config import SAMPLE_CORPUS, Settings
from indexer_pipeline.embeddings.simulator import EmbeddingSimulator
from indexer_pipeline.pipeline import Indexer
from indexer_pipeline.search import (
    DEFAULT_MODE,
    SearchRequest,
    SearchRequestError,
    parse_time,
    search,
)
from indexer_pipeline.vectorstore.base import GROUP
from indexer_pipeline.vectorstore.qdrant_server import ServerStore

from .conftest import TEST_DIMENSIONS, simulator_settings

FAILING_TASK = "7c0e2a51-4b7e-4f0a-9d55-2f1e6b3c8a90"
SHIFTPLAN_TASK = "c6dc9768-d525-4c20-a918-7346a26688dd"
QUERY = "test fails in CI build error docker image"
JUNE_2025 = int(dt.datetime(2025, 6, 1, tzinfo=dt.UTC).timestamp() * 1000)


def _ms(day: str) -> int:
    return int(dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC).timestamp() * 1000)


def _failing_task(folder) -> None:
    """A Cline task (text tool results) whose `npm ci` failed, in a workspace of its own."""
    folder.mkdir(parents=True)
    env = "<environment_details>\n# Current Working Directory (/srv/ledger) Files\npackage.json\n</environment_details>"
    history = [
        {"role": "user", "ts": _ms("2025-09-02"), "content": [{"type": "text", "text": "<task>\nnpm ci fails on the ledger build server\n</task>"}, {"type": "text", "text": env}]},
        {"role": "assistant", "ts": _ms("2025-09-02") + 1000, "content": [{"type": "text", "text": "Running the install to see the failure."}, {"type": "tool_use", "id": "c1", "name": "execute_command", "input": {"command": "npm ci"}}]},
        {"role": "user", "ts": _ms("2025-09-02") + 2000, "content": [{"type": "text", "text": "[execute_command for 'npm ci'] Result:\nCommand failed with exit code 1.\nOutput:\nnpm error code EUSAGE\nnpm error The `npm ci` command can only install with an existing package-lock.json"}]},
        {"role": "assistant", "ts": _ms("2025-09-02") + 3000, "content": "The lock file is missing from the build context: commit package-lock.json and the build passes."},
    ]  # fmt: skip
    (folder / "api_conversation_history.json").write_text(json.dumps(history))
    (folder / "history_item.json").write_text(
        json.dumps({"id": folder.name, "workspace": "/srv/ledger", "mode": "debug"})
    )


@pytest.fixture(scope="module", params=["edge", "qdrant-client-memory"])
def indexed(tmp_path_factory, request):
    tmp = tmp_path_factory.mktemp("search")
    corpus, other = tmp / "corpus", tmp / "other-root"
    shutil.copytree(SAMPLE_CORPUS, corpus)
    _failing_task(corpus / "tasks" / FAILING_TASK)
    (other / "runbooks").mkdir(parents=True)
    (other / "runbooks" / "docker.md").write_text(
        "# Docker image builds\n\nThe CI build fails when the image is too large.\n"
    )
    with EmbeddingSimulator(dimensions=TEST_DIMENSIONS) as sim:
        settings = Settings.from_env(
            corpus_dirs=[corpus, other],
            data_dir=tmp / "data",
            embedding_provider="openai",
            openai_api_key=sim.api_key,
            openai_base_url=sim.base_url,
            embedding_dimensions=TEST_DIMENSIONS,
            qdrant_url=":memory:" if request.param == "qdrant-client-memory" else None,
        )
        with Indexer(settings) as ix:
            _, _, written = ix.index(ix.units())
            assert written.success_rate == 1.0
            yield ix, sim, other


def run(ix: Indexer, **fields):
    return search(ix, SearchRequest(QUERY, **fields))


def payloads(result) -> list[dict]:
    return [h["payload"] for h in result.hits]


# -- rows --------------------------------------------------------------------------------------


def test_grouping_returns_one_row_per_task_and_per_document(indexed):
    ix, _, _ = indexed
    ungrouped = run(ix, limit=40, group=False)
    assert len({p["unit"] for p in payloads(ungrouped)}) < len(ungrouped.hits)  # several hits per task

    result = run(ix, limit=40)

    tasks = [r for r in result.rows if r["kind"] == "task"]
    documents = [r for r in result.rows if r["kind"] == "document"]
    assert tasks and documents
    assert len({r["unit"] for r in tasks}) == len(tasks)  # one row per task
    assert len({r["doc_id"] for r in documents}) == len(documents)  # one row per document
    assert any(len(r["snippets"]) > 1 for r in tasks) and all(
        1 <= len(r["snippets"]) <= 3 for r in result.rows
    )
    hits_by_unit = {}
    for p in payloads(result):
        hits_by_unit.setdefault(p["unit"], []).append(p)
    for row in tasks:  # a row's snippets are hits of its own task
        assert len(hits_by_unit[row["unit"]]) == len(row["snippets"])
    assert [r["score"] for r in result.rows] == sorted((r["score"] for r in result.rows), reverse=True)


def test_a_search_of_tasks_and_documents_is_one_grouped_store_call(indexed, monkeypatch):
    ix, _, _ = indexed
    store = ix.store()
    real, calls = store.query_groups, []
    monkeypatch.setattr(
        store, "query_groups", lambda *a, **kw: calls.append(kw["group_by"]) or real(*a, **kw)
    )
    result = run(ix, limit=40)
    assert {r["kind"] for r in result.rows} == {"task", "document"}
    assert len({(r["unit"], r["doc_id"]) for r in result.rows}) == len(result.rows)
    # qdrant-client's :memory: mode keeps no payload index, so it cannot tell that every point has
    # `group`: it asks per kind, as a collection written before `group` does until its next index run.
    indexes = store.payload_indexes()
    assert isinstance(store, ServerStore) or GROUP in indexes
    assert calls == ([GROUP] if GROUP in indexes else ["unit", "doc_id"])


def test_a_row_carries_what_a_person_needs_to_pick_it(indexed):
    ix, _, _ = indexed
    [row] = run(ix, task=SHIFTPLAN_TASK, limit=1).rows
    assert row["unit"] == f"task-{SHIFTPLAN_TASK}" and row["kind"] == "task"
    assert row["title"].startswith("test_export_week fails in CI")
    assert (row["workspace"], row["mode"]) == ("/home/dana/src/shiftplan", "code")
    assert row["date"].startswith("2025-03-14T") and isinstance(row["score"], float)
    assert {s["role"] for s in row["snippets"]} <= {"user", "assistant"} and all(
        s["text"] for s in row["snippets"]
    )


# -- filters -----------------------------------------------------------------------------------

FILTERS = {
    "workspace": ({"workspace": "/home/priya/code/storefront"}, lambda p: p.get("workspace") == "/home/priya/code/storefront"),
    "task": ({"task": SHIFTPLAN_TASK}, lambda p: p.get("task_id") == SHIFTPLAN_TASK),
    "role": ({"role": "user"}, lambda p: p.get("role") == "user"),
    "kind-task": ({"kind": "task"}, lambda p: p["kind"] == "task"),
    "kind-document": ({"kind": "document"}, lambda p: p["kind"] == "tree"),
    "agent-mode": ({"mode_filter": "debug"}, lambda p: p.get("mode") == "debug"),
    "since": ({"since": "2025-06-01"}, lambda p: p.get("timestamp", 0) >= JUNE_2025),
    "until": ({"until": "2025-03-14"}, lambda p: p.get("timestamp", 1 << 62) < _ms("2025-03-15")),
    "since-relative": (
        {"since": f"{(dt.datetime.now(dt.UTC) - dt.datetime(2025, 6, 1, tzinfo=dt.UTC)).days}d"},
        lambda p: p.get("timestamp", 0) >= JUNE_2025 - 86_400_000,
    ),
    "tool": ({"tool": "execute_command"}, lambda p: "execute_command" in p.get("tool_names", [])),
    "has-errors": ({"has_errors": True}, lambda p: p.get("has_errors") is True and p["task_id"] == FAILING_TASK),
    "unit": ({"unit": "doc-handbook"}, lambda p: p["unit"] == "doc-handbook"),
}  # fmt: skip


@pytest.mark.parametrize("name", [*FILTERS, "source-root"])
@pytest.mark.parametrize("group", [True, False], ids=["grouped", "ungrouped"])
def test_each_filter_restricts_results(indexed, name, group):
    ix, _, other = indexed
    if name == "source-root":
        fields, holds = {"source_root": str(other)}, lambda p: p["source_root"] == os.path.abspath(other)
    else:
        fields, holds = FILTERS[name]
    everything = payloads(run(ix, limit=200, group=False))

    result = run(ix, limit=50, group=group, **fields)

    assert result.hits and all(holds(p) for p in payloads(result)), name
    assert any(not holds(p) for p in everything), name  # the filter left something out


def test_workspace_all_or_star_is_no_filter(indexed):
    ix, _, _ = indexed
    everything = run(ix, limit=10)
    for every in ("all", "*"):
        assert run(ix, limit=10, workspace=every).rows == everything.rows


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mode": "fuzzy"}, "mode must be one of hybrid, dense, text (got 'fuzzy')"),
        ({"role": "bot"}, "role must be one of user, assistant (got 'bot')"),
        ({"kind": "folder"}, "kind must be task or document (got 'folder')"),
        ({"since": "last tuesday"}, "since must be an ISO date or time"),
        ({"until": "7 days"}, "until must be an ISO date or time"),
        ({"since": "2025-06-02", "until": "2025-06-01"}, "since (2025-06-02) is after until (2025-06-01)"),
    ],
)
def test_bad_filter_values_are_one_clear_error(fields, message):
    with pytest.raises(SearchRequestError) as error:
        search(None, SearchRequest("anything", **fields))  # type: ignore[arg-type]  # checked before any work
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_relative_and_iso_dates_parse():
    now = dt.datetime(2026, 10, 20, 12, 0, tzinfo=dt.UTC)
    ms = lambda moment: int(moment.timestamp() * 1000)  # noqa: E731
    assert parse_time("7d", now) == ms(now - dt.timedelta(days=7))
    assert parse_time("12h", now) == ms(now - dt.timedelta(hours=12))
    assert parse_time("30m", now) == ms(now - dt.timedelta(minutes=30))
    assert parse_time("2w", now) == ms(now - dt.timedelta(weeks=2))
    assert parse_time("2026-11-01", now) == ms(dt.datetime(2026, 11, 1, tzinfo=dt.UTC))
    assert parse_time("2026-11-01", now, end_of_day=True) == ms(dt.datetime(2026, 11, 2, tzinfo=dt.UTC)) - 1
    assert parse_time("2026-11-01T14:30", now, end_of_day=True) == ms(
        dt.datetime(2026, 11, 1, 14, 30, tzinfo=dt.UTC)
    )
    assert parse_time("2026-11-01T14:30+02:00", now) == ms(dt.datetime(2026, 11, 1, 12, 30, tzinfo=dt.UTC))


# -- modes and degraded mode -------------------------------------------------------------------


def test_the_default_mode_is_one_constant_and_each_mode_is_reported(indexed):
    ix, sim, _ = indexed
    assert SearchRequest("q").mode == DEFAULT_MODE
    for mode in ("hybrid", "dense", "text"):
        before = sim.stats()["requests"]
        result = run(ix, mode=mode)
        assert (result.mode, result.degraded) == (mode, None) and result.rows
        assert sim.stats()["requests"] - before == (0 if mode == "text" else 1)  # text never embeds


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _indexer(ix: Indexer, **overrides) -> Indexer:
    """An Indexer over the same store with other embedding settings (the store folder admits one handle)."""
    return Indexer(ix.settings.model_copy(update=overrides), store=ix.store())


@pytest.mark.parametrize("mode", ["hybrid", "dense"])
def test_degraded_mode_answers_from_bm25_when_the_api_is_unreachable(indexed, mode):
    ix, _, _ = indexed
    down = _indexer(ix, openai_base_url=f"http://127.0.0.1:{_closed_port()}/v1")

    result = search(down, SearchRequest(QUERY, mode=mode))

    assert result.mode == "text" and result.rows
    assert result.degraded.startswith("embedding API unreachable: ")
    assert result.rows == run(ix, mode="text").rows  # the same answer BM25 gives


def test_degraded_mode_sends_one_request_and_never_retries(indexed):
    ix, sim, _ = indexed
    sim.set_faults(error_500=1.0)
    try:
        before = sim.stats()["requests"]
        result = search(_indexer(ix, max_retries=6), SearchRequest(QUERY))  # indexing's retries do not apply
        assert sim.stats()["requests"] - before == 1
    finally:
        sim.set_faults()
    assert result.mode == "text" and result.rows
    assert result.degraded.startswith("query embedding failed: ") and "500" in result.degraded


@pytest.mark.parametrize("key", [None, "sk-wrong"], ids=["missing", "rejected"])
def test_degraded_mode_when_the_key_is_missing_or_rejected(indexed, key):
    ix, sim, _ = indexed
    before = sim.stats()["requests"]

    result = search(_indexer(ix, openai_api_key=key), SearchRequest(QUERY))

    assert result.mode == "text" and result.rows
    assert result.degraded.startswith("embedding API key missing or rejected: ")
    assert "sk-wrong" not in result.degraded
    assert sim.stats()["requests"] - before == (0 if key is None else 1)


def test_a_collection_from_before_bm25_is_searched_dense_until_its_next_index_run(tmp_path, simulator):
    """A store written by the code before issue 11 (dense only) still answers: hybrid falls back to dense
    and says so in the mode; with the dense side unavailable too, one clear error."""
    from .test_vectorstore_migration import legacy_points, make_legacy_edge

    settings = simulator_settings(simulator, tmp_path / "data")
    settings.edge_path.parent.mkdir(parents=True)
    make_legacy_edge(settings.edge_path, legacy_points())
    with Indexer(settings) as ix:
        result = search(ix, SearchRequest("ledger reconciliation", mode="hybrid", group=False))
        assert result.mode == "dense" and result.hits
        down = _indexer(ix, openai_base_url=f"http://127.0.0.1:{_closed_port()}/v1")
        with pytest.raises(SearchRequestError, match="no BM25 side yet"):
            search(down, SearchRequest("ledger reconciliation", mode="hybrid"))


def test_the_same_search_gives_the_same_rows_in_the_same_order(indexed):
    """Fused scores are ranks, so ties are common and the store returns tied hits in no fixed order;
    the rows (and so the retrieval-quality figures) must not depend on that."""
    from indexer_pipeline.retrieval_quality import SHIPPED_QUERIES, load_golden_set

    ix, _, _ = indexed
    for golden in load_golden_set(SHIPPED_QUERIES).queries:
        for group in (True, False):
            request = SearchRequest(golden.query, mode="hybrid", group=group)
            first = [(r["unit"], r["doc_id"], r["score"]) for r in search(ix, request).rows]
            for _ in range(3):
                assert [(r["unit"], r["doc_id"], r["score"]) for r in search(ix, request).rows] == first
