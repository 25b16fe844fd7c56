"""`indexer-pipeline mcp`: the index as Model Context Protocol tools for coding agents (Roo Code, Claude Code…).

Built on the official SDK's `MCPServer`, over stdio (what editors launch) or streamable HTTP (a shared
deployment). Tools: `search` (exactly search.py's `search`, the CLI's code path), `get_task` (one task's
conversation, redacted as in the index), `index_status` (the CLI's `status`), and, only when started with
`--allow-reindex`, `request_reindex` (queues an `index_job` run through Dagster; never writes the store).

The embedded Qdrant Edge store admits one open handle per folder, and opening it costs 0.4–0.7 s
(benchmarks/bench_mcp.py) against 7–40 ms for a query. So one worker thread holds the index's open parts
on a lease: calls within INDEXER_MCP_STORE_HOLD_S of the open share it; then the store is released and
not taken again for a moment, so an index run that waits for it (it polls every 0.1 s) gets it. A run is
thus delayed by at most the lease and a query; a call made while a run holds the store waits
INDEXER_MCP_STORE_WAIT_S and then answers with a retryable error. A Qdrant server (QDRANT_URL) has no
such lock: the store stays open.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.types import ToolAnnotations
from pydantic import ConfigDict, Field

from .config import Settings
from .conversation import TaskNotFound, read_task
from .pipeline import Indexer
from .search import MODES, SearchRequest, SearchRequestError, search
from .vectorstore import open_store
from .vectorstore.base import StoreBusyError, VectorStore, VectorStoreError

HANDOFF_S = 0.3  # after a release, longer than a waiting run's 0.1 s poll of the lock
REJECTED_SHOWN = 20  # rejected files listed by index_status; the count says how many in all
INSTRUCTIONS = (
    "Search past coding-agent conversations (Roo Code / Cline tasks) and indexed documents. Start with "
    "`search`; each row is one task or document with its best snippets. Use `get_task` with a row's `unit` "
    "to read that conversation. If nothing is found, `index_status` tells a stale or empty index from a "
    "real absence. An error saying 'retryable:' means an index run holds the store: retry in a few seconds."
)


class Busy(ToolError):
    """The embedded store is held by an index run: the call may be retried in a few seconds."""


class IndexSession:
    """The embedded store, held on a lease (see the module docstring) by the one thread that runs every call
    needing it: the Edge shard and the catalog's SQLite connections are not shared across threads.
    A hand-written worker loop rather than a ThreadPoolExecutor: the pool has no hook to act when idle."""

    def __init__(self, settings: Settings, hold_s: float, wait_s: float):
        self.settings = settings.model_copy(update={"store_wait_s": 0.0})  # the store is the session's
        self.lease = not settings.qdrant_url  # a Qdrant server has no lock: its client stays open
        self.hold_s = hold_s
        self.wait_s = wait_s
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._store: VectorStore | None = None
        self._opened = self._released = 0.0
        self._busy_at: float | None = None  # when an open last found the store held by a run
        self._thread = threading.Thread(target=self._loop, name="index-session", daemon=True)
        self._thread.start()

    async def call(self, fn: Callable[[Indexer], Any]) -> Any:
        """fn(an Indexer on the session's store), run on the session's thread."""
        future: Future = Future()
        self._jobs.put((time.monotonic(), fn, future))
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=self._left() if self._store and self.lease else None)
            except queue.Empty:
                self._release()
                continue
            if job is None:
                self._release()
                return
            submitted, fn, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(self._run(submitted, fn))
            except BaseException as exc:  # handed to the awaiting tool call
                future.set_exception(exc)
            if self._store and self.lease and self._left() <= 0:
                self._release()

    def _left(self) -> float:
        return max(0.0, self._opened + self.hold_s - time.monotonic())

    def _run(self, submitted: float, fn: Callable[[Indexer], Any]) -> Any:
        if self._store is None:
            time.sleep(max(0.0, self._released + HANDOFF_S - time.monotonic()))
            # A call queued while an open waited in vain has waited as long: it does not wait again, so a
            # run in progress costs a queue of calls one wait, not one each.
            waited = self._busy_at is not None and submitted <= self._busy_at
            try:
                self._store = open_store(self.settings, wait_s=0.0 if waited else self.wait_s)
                self._opened = time.monotonic()
            except StoreBusyError:
                self._busy_at = time.monotonic()
        # Without the store (held by a run), the Indexer's own attempt fails at once: `status` answers
        # without the point count, `search` with the retryable error below.
        try:
            with Indexer(self.settings, store=self._store) as ix:
                return fn(ix)
        except StoreBusyError as exc:
            raise Busy(f"retryable: an index run is writing; retry in a few seconds. {exc}") from None

    def _release(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
            self._released = time.monotonic()


def _strict(tool: Tool) -> Tool:
    """The tool with its arguments checked strictly: an unknown argument (a misspelt filter) is an error
    naming it, not silently ignored, and the schema says `additionalProperties: false`."""
    base = tool.fn_metadata.arg_model
    model = type(base.__name__, (base,), {"model_config": ConfigDict(extra="forbid")})
    tool.fn_metadata.arg_model = model
    tool.parameters = model.model_json_schema(by_alias=True)
    return tool


def _clean(row: dict) -> dict:
    return {k: v for k, v in row.items() if v is not None}


def build_server(settings: Settings, *, allow_reindex: bool = False) -> tuple[MCPServer, IndexSession]:
    """The MCP server and the session its tools use (close it when the server stops)."""
    session = IndexSession(settings, settings.mcp_store_hold_s, settings.mcp_store_wait_s)
    read_only = ToolAnnotations(readOnlyHint=True, openWorldHint=False)

    async def search_tool(
        query: Annotated[
            str,
            Field(
                min_length=1,
                description="What to look for, in words (a question, an error message, a topic).",
            ),
        ],
        limit: Annotated[
            int, Field(ge=1, le=50, description="Rows to return: tasks or documents, best first.")
        ] = 10,
        mode: Annotated[
            Literal[MODES],  # type: ignore[valid-type]
            Field(
                description="hybrid (default: meaning and exact words), dense (meaning), text (exact words, BM25)."
            ),
        ] = "hybrid",
        workspace: Annotated[
            str | None,
            Field(description='Only this workspace folder, exactly as stored; "all" for every one.'),
        ] = None,
        task: Annotated[str | None, Field(description="Only this task id.")] = None,
        role: Annotated[
            Literal["user", "assistant"] | None, Field(description="Only messages of this role.")
        ] = None,
        kind: Annotated[
            Literal["task", "document"] | None,
            Field(description="Only conversations (task) or only indexed documents."),
        ] = None,
        agent_mode: Annotated[
            str | None, Field(description="Only tasks in this agent mode (code, architect, debug, ask…).")
        ] = None,
        since: Annotated[
            str | None,
            Field(
                description="Only messages from this time on: ISO date/time (2026-01-31) or an age (7d, 12h, 30m)."
            ),
        ] = None,
        until: Annotated[
            str | None,
            Field(description="Only messages up to this time: ISO date (the whole day) or time, or an age."),
        ] = None,
        tool: Annotated[
            str | None,
            Field(
                description="Only messages that called or answered this tool (read_file, execute_command…)."
            ),
        ] = None,
        has_errors: Annotated[
            bool | None, Field(description="true: only messages where a tool reported an error.")
        ] = None,
        root: Annotated[str | None, Field(description="Only this corpus root folder.")] = None,
        unit: Annotated[str | None, Field(description="Only this unit (a row's `unit`).")] = None,
    ) -> dict[str, Any]:
        """Search past coding-agent conversations and indexed documents. Returns rows, best first, one per
        task (or document): unit (pass it to get_task), title, workspace, date, agent mode, score and the
        best matching snippets with their roles. `degraded` is set when the query could not be embedded and
        only exact-word (BM25) matching ran."""
        request = SearchRequest(
            query, mode=mode, limit=limit, workspace=workspace, task=task, role=role, kind=kind,
            mode_filter=agent_mode, since=since, until=until, tool=tool, has_errors=has_errors,
            source_root=root, unit=unit,
        )  # fmt: skip
        try:
            result = await session.call(lambda ix: search(ix, request))
        except (SearchRequestError, VectorStoreError) as exc:
            raise ToolError(str(exc)) from None
        return {"mode": result.mode, "degraded": result.degraded, "rows": [_clean(r) for r in result.rows]}

    async def get_task_tool(
        unit: Annotated[
            str, Field(min_length=1, description="A search row's `unit` (task-<id>) or a bare task id.")
        ],
        offset: Annotated[int, Field(ge=0, description="First message to return (0 = the start).")] = 0,
        limit: Annotated[int, Field(ge=1, le=100, description="Messages to return.")] = 20,
        max_chars: Annotated[
            int, Field(ge=100, le=50_000, description="Each message's text is cut to this length.")
        ] = 2000,
    ) -> dict[str, Any]:
        """Read one task's conversation: its title, workspace and mode, then messages in order with role,
        time (UTC), the tools each called or answered, whether a tool failed, and the text (secrets redacted,
        long tool output cut). Paged: call again with `offset = next_offset` while next_offset is set."""
        try:
            return await asyncio.to_thread(read_task, settings.corpus_dirs, unit, offset, limit, max_chars)
        except TaskNotFound as exc:
            raise ToolError(str(exc)) from None

    async def index_status_tool() -> dict[str, Any]:
        """The index's state, to tell a stale or empty index from a missing answer: units in the corpus,
        indexed and pending (changed since their last index run), documents, points, when it was last
        indexed, and the latest data-quality check results (null when no Dagster instance ran them)."""
        from .cli import latest_checks, status_report  # the CLI's `status`, one code path

        report = await session.call(status_report)
        rejected = report.pop("rejected_files")
        report["rejected_files"] = len(rejected)
        report["rejected_files_first"] = rejected[:REJECTED_SHOWN]
        report["checks"] = await asyncio.to_thread(latest_checks, settings)
        return report

    async def request_reindex_tool(
        unit: Annotated[
            str, Field(min_length=1, description="The unit key to re-index (a search row's `unit`).")
        ],
    ) -> dict[str, Any]:
        """Ask Dagster to re-index one unit: queues a run of index_job for that partition, which the Dagster
        daemon launches (the index is not written by this server). Returns the run id."""
        return await asyncio.to_thread(request_reindex, settings, unit)

    tools = [
        Tool.from_function(search_tool, name="search", title="Search the index", annotations=read_only),
        Tool.from_function(
            get_task_tool, name="get_task", title="Read a task's conversation", annotations=read_only
        ),
        Tool.from_function(
            index_status_tool, name="index_status", title="Index status", annotations=read_only
        ),
    ]
    if allow_reindex:
        tools.append(
            Tool.from_function(
                request_reindex_tool,
                name="request_reindex",
                title="Re-index one unit",
                annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=True),
            )
        )
    server = MCPServer(
        "indexer-pipeline", instructions=INSTRUCTIONS, tools=[_strict(t) for t in tools], log_level="WARNING"
    )
    return server, session


def request_reindex(settings: Settings, unit: str) -> dict:
    """Queue a run of index_job for one unit through the Dagster instance at DAGSTER_HOME, with Dagster's
    own `dagster job launch` (the public way to submit a run from outside the UI)."""
    from .cli import dagster_instance
    from .corpus import find_unit
    from .dagster_defs.partitions import register_units

    if find_unit(settings.corpus_dirs, unit) is None:
        raise ToolError(f"no unit {unit!r} in the corpus (pass a search row's `unit`)")
    instance = dagster_instance(settings)
    if instance is None:
        raise ToolError(
            f"no Dagster instance at {settings.dagster_home.resolve()} (start it with scripts/run)"
        )
    with instance:
        register_units(instance, [unit])  # a unit new to the corpus may not be a partition yet
    run_id = str(uuid.uuid4())
    done = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "dagster"), "job", "launch",
            "-m", "indexer_pipeline.definitions", "-j", "index_job",
            "--tags", json.dumps({"dagster/partition": unit}), "--run-id", run_id,
        ],
        env={**os.environ, "DAGSTER_HOME": str(settings.dagster_home.resolve())},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if done.returncode != 0:
        raise ToolError(f"Dagster did not accept the run: {done.stderr.strip()[-500:]}")
    return {"run_id": run_id, "unit": unit, "status": "submitted: the Dagster daemon launches it"}


def serve(settings: Settings, http: str | None = None, allow_reindex: bool = False) -> None:
    """Serve on stdio, or on streamable HTTP at `http` ("HOST:PORT" or ":PORT", host 127.0.0.1)."""
    server, session = build_server(settings, allow_reindex=allow_reindex)
    try:
        if http is None:
            server.run("stdio")
        else:
            host, _, port = http.rpartition(":")
            server.run("streamable-http", host=host or "127.0.0.1", port=int(port))
    finally:
        session.close()
