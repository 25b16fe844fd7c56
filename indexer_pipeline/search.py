"""Search the index: the one module the CLI, the MCP server and the retrieval-quality check all call.

A `SearchRequest` (query, mode, filters) becomes one store query: dense and BM25 fused by Qdrant
(`hybrid`), dense alone, or BM25 alone (`text`), grouped by the store so that each row is one task
(or one document of a tree) with its best snippets. The filters are those of the old tool: workspace
(exact, or "all"), task, role, kind, agent mode, date range (ISO or relative: "7d"), tool name, errors,
corpus root, unit.

Degraded mode: the query's vector comes from an embedder with a short timeout and no retries, made once
per process; when it cannot be had (API unreachable, key missing or rejected, local model missing), the
search answers from the BM25 side at once and says why in `SearchResult.degraded`.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .config import Settings
from .embeddings import Embedder, EmbeddingAuthError, EmbeddingError, make_embedder
from .readers import source_root
from .redaction import redact
from .sparse import bm25_query
from .vectorstore.base import GROUP, Filters, HitGroup, Range, SearchHit

if TYPE_CHECKING:
    from .pipeline import Indexer

MODES = ("hybrid", "dense", "text")  # text: BM25 alone
# The default mode awaits the search benchmark (benchmarks/bench_search.py): hybrid until it says otherwise.
DEFAULT_MODE = "hybrid"
ALL_WORKSPACES = ("all", "*")
KINDS = {"task": "task", "document": "tree", "tree": "tree"}  # as asked -> as stored in `kind`
ROLES = ("user", "assistant")
SNIPPETS = 3  # best hits shown under each row
SNIPPET_CHARS = 300
# What a row is: a task (all its messages), or one document of a tree (a file, a JSONL line, a CSV row).
GROUP_BY = {"task": "unit", "tree": "doc_id"}
_RELATIVE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.IGNORECASE)
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class SearchRequestError(ValueError):
    """A request the search cannot run (an unknown mode, a date it cannot read): one line, for a person."""


@dataclass
class SearchRequest:
    query: str
    mode: str = DEFAULT_MODE
    limit: int = 10  # rows (groups) returned
    group: bool = True  # one row per task / document; False: one row per hit
    workspace: str | None = None  # exact; "all" or "*" = no filter
    task: str | None = None
    role: str | None = None
    kind: str | None = None  # "task" or "document"
    mode_filter: str | None = None  # the agent's mode (code, architect, debug…)
    since: str | None = None  # ISO date/time, or relative: "7d", "12h", "30m"
    until: str | None = None
    tool: str | None = None
    has_errors: bool | None = None
    source_root: str | None = None
    unit: str | None = None


@dataclass
class SearchResult:
    rows: list[dict]  # unit, title, workspace, kind, date (ISO), mode, score, snippets [{text, role}]
    hits: list[dict]  # the raw hits: score, id, payload (no vectors)
    mode: str  # the mode actually used
    degraded: str | None = None  # why the dense side was skipped, else None
    filters: Filters = field(default_factory=dict)  # as sent to the store


def search(ix: Indexer, request: SearchRequest) -> SearchResult:
    """Run one search; raises SearchRequestError for a request that cannot run."""
    query = request.query.strip()
    if not query:
        raise SearchRequestError("the search query is empty")
    if request.mode not in MODES:
        raise SearchRequestError(f"mode must be one of {', '.join(MODES)} (got {request.mode!r})")
    if request.limit < 1:
        raise SearchRequestError(f"limit must be a positive integer (got {request.limit!r})")
    filters = request_filters(request)
    mode, dense, degraded = request.mode, None, None
    if mode != "text":
        dense, degraded = query_vector(ix.settings, query)
        if dense is None:
            mode = "text"
    store = ix.store(wait_s=ix.settings.store_wait_s)
    if mode != "dense" and store.sparse_modifier() is None:
        # A collection written before BM25 gains it at its next index run; until then only dense answers.
        if dense is None:
            raise SearchRequestError(
                "this collection has no BM25 side yet (the next index run adds it) and the query could "
                f"not be embedded: {degraded}"
            )
        mode = "dense"
    sparse = bm25_query(query) if mode != "dense" else None
    if request.group:
        groups = _grouped(store, dense, sparse, request.limit, filters)
        rows = [_row(g.hits, query) for g in groups]
        hits = [h for g in groups for h in g.hits]
    else:
        hits = sorted(  # hits tied at the limit's edge all seen, then cut by id (see _grouped)
            store.query(dense, sparse, limit=request.limit + TIED_GROUPS, filters=filters or None),
            key=lambda h: (-h.score, h.id),
        )[: request.limit]
        rows = [_row([h], query) for h in hits]
    raw = [{"score": round(h.score, 4), "id": h.id, "payload": h.payload} for h in hits]
    return SearchResult(rows, raw, mode, degraded, filters)


# -- the request's filters -------------------------------------------------------------------------


def request_filters(request: SearchRequest, now: dt.datetime | None = None) -> Filters:
    """The store filters a request asks for, checked: SearchRequestError names the first bad value."""
    filters: Filters = {}
    if request.workspace and request.workspace.strip() not in ALL_WORKSPACES:
        filters["workspace"] = request.workspace
    if request.task:
        filters["task_id"] = request.task
    if request.role:
        if request.role not in ROLES:
            raise SearchRequestError(f"role must be one of {', '.join(ROLES)} (got {request.role!r})")
        filters["role"] = request.role
    if request.kind:
        if request.kind not in KINDS:
            raise SearchRequestError(f"kind must be task or document (got {request.kind!r})")
        filters["kind"] = KINDS[request.kind]
    if request.mode_filter:
        filters["mode"] = request.mode_filter
    if request.tool:
        filters["tool_names"] = request.tool
    if request.has_errors is not None:
        filters["has_errors"] = request.has_errors
    if request.source_root:
        # Named as the reader names it: absolute, redacted (a secret in a folder name never reaches the store).
        filters["source_root"] = redact(source_root(request.source_root))[0]
    if request.unit:
        filters["unit"] = request.unit
    now = now or dt.datetime.now(dt.UTC)
    since = parse_time(request.since, now, "since") if request.since else None
    until = parse_time(request.until, now, "until", end_of_day=True) if request.until else None
    if since is not None and until is not None and since > until:
        raise SearchRequestError(f"since ({request.since}) is after until ({request.until})")
    if since is not None or until is not None:
        filters["timestamp"] = Range(gte=since, lte=until)
    return filters


def parse_time(text: str, now: dt.datetime, name: str = "time", end_of_day: bool = False) -> int:
    """Milliseconds since the epoch for "7d" / "12h" / "30m" / "45s" / "2w" ago, or an ISO date or date-time
    (UTC unless it says otherwise). A bare date as `end_of_day` means its last millisecond, so
    `--until 2026-11-01` includes that day."""
    relative = _RELATIVE.match(text)
    if relative:
        moment = now - dt.timedelta(seconds=int(relative[1]) * _SECONDS[relative[2].lower()])
        return int(moment.timestamp() * 1000)
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise SearchRequestError(
            f"{name} must be an ISO date or time (2026-11-01, 2026-11-01T14:30) or a relative age "
            f"(7d, 12h, 30m) (got {text!r})"
        ) from None
    if end_of_day and re.fullmatch(r"\s*\d{4}-?\d{2}-?\d{2}\s*", text):
        moment += dt.timedelta(days=1, milliseconds=-1)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


# -- the query's vector ----------------------------------------------------------------------------

_embedders: dict[tuple, Embedder] = {}  # one query embedder per process and configuration
_embedders_lock = threading.Lock()


def query_embedder(settings: Settings) -> Embedder:
    """The process's query embedder: a short timeout and no retries, so that a down API costs one quick
    failure and the search answers from BM25 (the indexing embedder waits and retries for minutes)."""
    key = (
        settings.provider,
        settings.openai_api_key,
        settings.openai_base_url,
        settings.embedding_model,
        settings.embedding_dimensions,
        settings.search_embed_timeout_s,
        str(settings.cache_path),
    )
    with _embedders_lock:
        if key not in _embedders:
            quick = settings.model_copy(
                update={"request_timeout_s": settings.search_embed_timeout_s, "max_retries": 0}
            )
            _embedders[key] = make_embedder(quick)
        return _embedders[key]


def query_vector(settings: Settings, query: str) -> tuple[list[float] | None, str | None]:
    """The query's dense vector, or None and why it could not be had."""
    try:
        outcome = query_embedder(settings).embed([query])
    except EmbeddingAuthError as exc:
        return None, f"embedding API key missing or rejected: {exc}"
    except (EmbeddingError, OSError, ValueError) as exc:  # a local model that is missing or cannot load
        return None, f"query embedding failed: {exc}"
    vector = outcome.vectors[0]
    if vector is not None:
        return np.asarray(vector, dtype=np.float32).tolist(), None
    reason = redact(outcome.errors.get(0, "no vector returned"))[0]
    if "APIConnectionError" in reason or "APITimeoutError" in reason:
        return None, f"embedding API unreachable: {reason}"
    return None, f"query embedding failed: {reason}"


# -- grouping --------------------------------------------------------------------------------------


TIED_GROUPS = 5  # rows fetched beyond the limit, so rows tied at its edge are cut by key


def _grouped(store, dense, sparse, limit: int, filters: Filters) -> list[HitGroup]:
    """The best `limit` groups: tasks by unit, tree documents by doc_id. One grouped query on the
    `group` field that holds either; on a collection whose points lack it (written before it, until
    its next index run fills it), one grouped query per kind, merged by score."""
    if GROUP in store.payload_indexes():
        calls = [(GROUP, filters)]
    else:
        kinds = [filters["kind"]] if "kind" in filters else list(GROUP_BY)
        calls = [(GROUP_BY[kind], {**filters, "kind": kind}) for kind in kinds]
    groups: list[HitGroup] = []
    for group_by, where in calls:
        # A few groups beyond the limit, so groups tied at its edge are all seen and cut by key.
        groups += store.query_groups(
            dense, sparse, group_by=group_by, groups=limit + TIED_GROUPS, group_size=SNIPPETS, filters=where
        )
    # By the score of the hit that found each group (a hybrid hit added later to fill a group is scored
    # against fewer candidates), ties by key: fused scores are ranks, so ties are common, and the store
    # returns tied hits in no fixed order.
    groups.sort(key=lambda g: (-(g.hits[0].score if g.hits else 0.0), g.key))
    return groups[:limit]


def _row(hits: list[SearchHit], query: str) -> dict:
    """One result row from its hits, best first: what a person needs to pick it, and its snippets."""
    best = hits[0].payload
    ts = best.get("timestamp")
    kind = "document" if best.get("kind") == "tree" else "task"
    return {
        "unit": best.get("unit"),
        "title": best.get("title") or best.get("path"),
        "workspace": best.get("workspace"),
        "kind": kind,
        "doc_id": best.get("doc_id") if kind == "document" else None,
        "path": best.get("path"),
        "date": dt.datetime.fromtimestamp(ts / 1000, dt.UTC).isoformat(timespec="seconds")
        if isinstance(ts, int)
        else None,
        "mode": best.get("mode"),
        "score": round(hits[0].score, 4),
        "snippets": [
            {"text": snippet(h.payload.get("text", ""), query), "role": h.payload.get("role")} for h in hits
        ],
    }


def snippet(text: str, query: str, width: int = SNIPPET_CHARS) -> str:
    """`width` characters of the text, whitespace collapsed, around the first query word it contains."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    lowered = flat.lower()
    found = [p for w in re.findall(r"\w{3,}", query.lower()) if (p := lowered.find(w)) >= 0]
    start = max(0, min(found) - width // 4) if found else 0
    start = min(start, len(flat) - width)
    piece = flat[start : start + width]
    return ("…" if start else "") + piece + ("…" if start + width < len(flat) else "")
