"""One task's conversation as a reader shows it: messages with roles, times and the tools they used, paged.

For the MCP server's `get_task`, when a search hit needs its context. The messages are the reader's own
(`read_unit`), so they are redacted exactly as the index is, and environment details are left out as there.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

from .corpus import find_unit
from .readers import read_unit

TASK_PREFIX = "task-"  # how corpus.py names a task's unit


class TaskNotFound(LookupError):
    """No task unit with that key or id in the corpus: one line, for the caller."""


def read_task(
    roots: Iterable[Path], unit: str, offset: int = 0, limit: int = 20, max_chars: int = 2000
) -> dict:
    """Messages `offset` to `offset + limit` of the task `unit` (its unit key, or its bare task id), each
    text cut to `max_chars`, with `next_offset` when more remain."""
    roots = list(roots)
    key = unit.strip()
    found = find_unit(roots, key) or (
        None if key.startswith(TASK_PREFIX) else find_unit(roots, TASK_PREFIX + key)
    )
    if found is None:
        raise TaskNotFound(
            f"no task {unit!r} in the corpus (pass the `unit` of a search row, e.g. task-<id>)"
        )
    if found.kind != "task":
        raise TaskNotFound(
            f"{found.key} is a document tree, not a task: search with unit={found.key!r} instead"
        )
    content = read_unit(found)
    documents = content.documents
    first = documents[0].metadata if documents else {}
    page = documents[offset : offset + limit]
    messages = []
    for d in page:
        meta = d.metadata
        text = (
            d.text
            if len(d.text) <= max_chars
            else d.text[:max_chars] + f" … [{len(d.text) - max_chars} more characters]"
        )
        ts = meta.get("timestamp")
        messages.append(
            {
                "index": meta.get("message_index"),
                "role": meta.get("role"),
                "time": dt.datetime.fromtimestamp(ts / 1000, dt.UTC).isoformat(timespec="seconds")
                if isinstance(ts, int)
                else None,
                "tools": meta.get("tool_names") or [],
                "has_errors": bool(meta.get("has_errors")),
                "text": text,
            }
        )
    end = offset + len(page)
    return {
        "unit": found.key,
        "task_id": first.get("task_id"),
        "title": first.get("title"),
        "workspace": first.get("workspace"),
        "mode": first.get("mode"),
        "parent_task_id": first.get("parent_task_id"),
        "messages_total": len(documents),
        "offset": offset,
        "next_offset": end if end < len(documents) else None,
        "messages": messages,
        "unreadable": [f"{r.path}: {r.reason}" for r in content.rejected],
    }
