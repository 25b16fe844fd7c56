"""`indexer-pipeline mcp` driven as a coding agent drives it: the MCP SDK's own client, over stdio and HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from indexer_pipeline.cli import main
from indexer_pipeline.vectorstore.edge import EdgeStore

from .conftest import PLANTED_SECRET, SECRET_TASK

K8S_UNIT = "task-d1f1aec9-7691-4868-a7b2-1533eaf4135b"
CALL_TIMEOUT_S = 60  # every call is bounded: a hang fails the test
SERVER = [sys.executable, "-m", "indexer_pipeline.cli", "mcp"]


@pytest.fixture
def indexed(corpus_env, tmp_path, monkeypatch):
    """The sample corpus indexed, and the environment a server needs (no Dagster instance yet)."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "no_dagster_home"))
    monkeypatch.setenv("INDEXER_MCP_STORE_WAIT_S", "0.5")
    assert main(["index"]) == 0
    return corpus_env


async def call(client: Client, name: str, arguments: dict):
    with anyio.fail_after(CALL_TIMEOUT_S):
        return await client.call_tool(name, arguments, read_timeout_seconds=CALL_TIMEOUT_S)


def error_text(result) -> str:
    assert result.is_error, result.structured_content
    return result.content[0].text


def test_stdio_search_get_task_status_and_malformed_calls(indexed):
    async def session():
        params = StdioServerParameters(command=SERVER[0], args=SERVER[1:], env=dict(os.environ))
        async with Client(params, read_timeout_seconds=CALL_TIMEOUT_S) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert set(tools) == {"search", "get_task", "index_status"}  # request_reindex is off by default
            schema = tools["search"].input_schema
            assert schema["additionalProperties"] is False and schema["required"] == ["query"]
            filters = {"workspace", "task", "role", "kind", "agent_mode", "since", "until", "tool"}
            assert filters | {"has_errors", "root", "unit", "mode", "limit"} <= set(schema["properties"])
            assert all(tools[name].description for name in tools)

            found = await call(
                client,
                "search",
                {"query": "pods crash after the upgrade", "limit": 3, "kind": "task", "since": "2025-01-01"},
            )
            assert not found.is_error, found.content
            rows = found.structured_content["rows"]
            assert rows[0]["unit"] == K8S_UNIT
            assert rows[0]["workspace"] == "/home/ana/infra/k8s-manifests" and rows[0]["date"].startswith(
                "2025"
            )
            assert len({r["unit"] for r in rows}) == len(rows) <= 3  # one row per task
            assert rows[0]["snippets"] and rows[0]["score"] > 0
            assert found.structured_content["degraded"] is None

            # A filter that excludes the task excludes it.
            other = await call(
                client, "search", {"query": "pods crash after the upgrade", "workspace": "/nowhere"}
            )
            assert other.structured_content["rows"] == []

            task = await call(client, "get_task", {"unit": K8S_UNIT, "limit": 2})
            page = task.structured_content
            assert page["title"].startswith("orders-api pods in CrashLoopBackOff")
            assert [m["role"] for m in page["messages"]][:1] == ["user"]
            assert len(page["messages"]) == 2 and page["next_offset"] == 2 < page["messages_total"]
            assert all(m["time"] and m["time"].startswith("2025") for m in page["messages"])
            rest = await call(client, "get_task", {"unit": K8S_UNIT, "offset": 2, "limit": 100})
            assert rest.structured_content["next_offset"] is None
            assert any(m["tools"] for m in page["messages"] + rest.structured_content["messages"])

            secret = await call(client, "get_task", {"unit": SECRET_TASK, "limit": 100, "max_chars": 50_000})
            assert secret.structured_content["messages"]
            assert PLANTED_SECRET not in str(secret.structured_content)

            status = (await call(client, "index_status", {})).structured_content
            assert status["units_indexed"] == status["units_in_corpus"] == 16
            assert status["units_pending"] == [] and status["points"] == status["chunks"] > 0
            assert status["last_indexed"] and status["checks"] is None

            malformed = {
                "workspac": {"query": "pods", "workspac": "x"},
                "limit": {"query": "pods", "limit": -1},
                "query": {"query": ""},
                "empty": {"query": "   "},
                "since": {"query": "pods", "since": "last tuesday"},
                "role": {"query": "pods", "role": "robot"},
            }
            for named, arguments in malformed.items():
                assert named in error_text(await call(client, "search", arguments))
            assert "no task" in error_text(await call(client, "get_task", {"unit": "task-nope"}))
            assert "document tree" in error_text(await call(client, "get_task", {"unit": "doc-docs"}))

            again = await call(client, "search", {"query": "pods crash after the upgrade", "limit": 1})
            assert again.structured_content["rows"][0]["unit"] == K8S_UNIT  # still serving

    anyio.run(session)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_http_server(port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [*SERVER, "--http", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, server.stderr.read().decode()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise AssertionError("the MCP HTTP server did not start within 60 s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=20)


def test_http_clients_while_an_index_run_writes(indexed, monkeypatch):
    port = free_port()
    server = start_http_server(port)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        # A run holds the store: a search answers with a retryable error after a short wait, status without
        # the point count, and neither stalls.
        async def while_held():
            async with Client(url) as client:
                failed = await call(client, "search", {"query": "pods crash"})
                assert "retryable: an index run is writing" in error_text(failed)
                status = await call(client, "index_status", {})
                assert status.structured_content["points"] is None and status.structured_content["store_busy"]

        with EdgeStore(indexed.edge_path):
            anyio.run(while_held)

        # A unit changes, and an index run writes it while three clients call the server.
        doc = indexed.corpus_dirs[0] / "docs" / "deploying.md"
        doc.write_text(doc.read_text() + "\n\nRoll back with the zanzibarcanary procedure.\n")
        run = subprocess.Popen(
            [sys.executable, "-m", "indexer_pipeline.cli", "index", "--unit", "doc-docs"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        outcomes: list[str] = []
        during_run = []  # whether each call was made while the run was in progress

        async def agent(n: int):
            async with Client(url) as client:
                for i in range(5):
                    tool, arguments = [
                        ("search", {"query": "pods crash after the upgrade", "limit": 3}),
                        ("index_status", {}),
                        ("get_task", {"unit": K8S_UNIT, "limit": 1}),
                    ][(n + i) % 3]
                    await anyio.sleep(0.7)  # calls spread over the run's few seconds
                    during_run.append(run.poll() is None)
                    result = await call(client, tool, arguments)
                    if result.is_error:
                        assert "retryable:" in error_text(result), error_text(result)
                        outcomes.append("retryable")
                    else:
                        if tool == "search":
                            assert result.structured_content["rows"][0]["unit"] == K8S_UNIT
                        outcomes.append("answer")

        async def agents():
            async with anyio.create_task_group() as group:
                for n in range(3):
                    group.start_soon(agent, n)

        anyio.run(agents)
        out, err = run.communicate(timeout=180)  # the writer is never stalled by the server
        assert run.returncode == 0, err
        assert len(outcomes) == 15 and "answer" in outcomes and any(during_run)

        async def after():
            async with Client(url) as client:
                result = await call(client, "search", {"query": "zanzibarcanary", "mode": "text"})
                assert [r["unit"] for r in result.structured_content["rows"]] == ["doc-docs"]

        anyio.run(after)
    finally:
        stop(server)


def test_request_reindex_queues_an_index_job_run_only_when_allowed(indexed, tmp_path, monkeypatch):
    import dagster as dg

    from indexer_pipeline.config import Settings
    from indexer_pipeline.mcp_server import build_server

    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    settings = Settings.from_env()

    async def session(allow: bool):
        server, index_session = build_server(settings, allow_reindex=allow)
        try:
            async with Client(server) as client:  # the SDK's in-process transport
                names = {t.name for t in (await client.list_tools()).tools}
                if not allow:
                    assert "request_reindex" not in names
                    return None
                assert "no unit" in error_text(await call(client, "request_reindex", {"unit": "doc-nope"}))
                return (await call(client, "request_reindex", {"unit": "doc-docs"})).structured_content
        finally:
            index_session.close()

    assert anyio.run(session, False) is None
    asked = anyio.run(session, True)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_by_id(asked["run_id"])
        assert run.status == dg.DagsterRunStatus.QUEUED  # for the daemon to launch: the server wrote nothing
        assert run.job_name == "index_job" and run.tags["dagster/partition"] == "doc-docs"
        assert "doc-docs" in instance.get_dynamic_partitions("source_units")


def test_a_qdrant_server_store_stays_open_between_calls(corpus_env, monkeypatch):
    """A Qdrant server has no lock: no lease, no release, and the server keeps serving after a quiet spell."""
    from indexer_pipeline.config import Settings
    from indexer_pipeline.mcp_server import build_server

    monkeypatch.setenv("QDRANT_URL", ":memory:")  # qdrant-client in process: the server code path
    monkeypatch.setenv("INDEXER_MCP_STORE_HOLD_S", "0.1")
    server, index_session = build_server(Settings.from_env())

    async def session():
        async with Client(server) as client:
            for _ in range(2):
                status = await call(client, "index_status", {})
                assert status.structured_content["points"] == 0
                await anyio.sleep(0.3)  # longer than the hold: an embedded store would be released here

    try:
        anyio.run(session)
    finally:
        index_session.close()
