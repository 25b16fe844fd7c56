"""`indexer-pipeline`: index, search and inspect the index without opening the Dagster UI."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys

from pydantic import TypeAdapter, ValidationError
from tqdm import tqdm

from .catalog import HeldDeletion
from .config import PositiveInt, Settings
from .corpus import CorpusError
from .deletion_guard import CONFIRM_HINT, confirm_held, look, sync_deletions
from .embeddings import EmbeddingError
from .pipeline import Indexer
from .search import DEFAULT_MODE, MODES, SearchRequest, search
from .vectorstore.base import StoreBusyError, VectorStoreError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="indexer-pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p_index = sub.add_parser(
        "index",
        help="index the whole corpus, or some units, with a progress bar; without --unit, units that left "
        "the corpus leave the index too (exit status 3 when a deletion is held for confirmation)",
    )
    p_index.add_argument("--unit", action="append", help="a source unit key (repeatable); default: all")

    p_confirm = sub.add_parser(
        "confirm-deletions", help="delete the units whose deletion was held, if they are still absent"
    )
    p_confirm.add_argument("--unit", action="append", help="a held unit key (repeatable); default: all held")

    p_search = sub.add_parser(
        "search", help="search the index: one row per task or document, with its best snippets"
    )
    p_search.add_argument("query")
    p_search.add_argument(
        "--mode", choices=MODES, default=DEFAULT_MODE, help=f"default {DEFAULT_MODE}; text is BM25 alone"
    )
    p_search.add_argument("--limit", type=positive_int, default=10, help="rows (tasks or documents)")
    p_search.add_argument("--workspace", help='exactly this workspace; "all" or "*": every one')
    p_search.add_argument("--task", help="one task id")
    p_search.add_argument("--role", help="user or assistant")
    p_search.add_argument("--kind", help="task or document")
    p_search.add_argument("--agent-mode", dest="mode_filter", help="the agent's mode (code, architect…)")
    p_search.add_argument("--since", help="ISO date or time, or an age: 7d, 12h, 30m")
    p_search.add_argument("--until", help="ISO date (the whole day) or time, or an age")
    p_search.add_argument("--tool", help="messages that called or answered this tool (read_file…)")
    p_search.add_argument(
        "--has-errors", action="store_true", default=None, help="messages where a tool reported an error"
    )
    p_search.add_argument("--root", dest="source_root", help="one corpus root")
    p_search.add_argument("--unit", help="one source unit key")
    p_search.add_argument("--ungrouped", action="store_true", help="one row per matching chunk")
    p_search.add_argument("--json", action="store_true", help='{"mode", "degraded", "rows", "hits"}')

    p_status = sub.add_parser("status", help="units, documents, points, cache and rejected files")
    p_status.add_argument("--json", action="store_true")

    sub.add_parser("register", help="register the corpus's units as Dagster partitions (uses DAGSTER_HOME)")

    p_mcp = sub.add_parser(
        "mcp", help="serve the index to coding agents over the Model Context Protocol (stdio by default)"
    )
    p_mcp.add_argument(
        "--http", metavar="HOST:PORT", help="serve streamable HTTP instead (host 127.0.0.1 if empty)"
    )
    p_mcp.add_argument(
        "--allow-reindex", action="store_true", help="offer the request_reindex tool (queues Dagster runs)"
    )

    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()  # every setting checked before any work (SettingsError)
        with Indexer(settings, log=lambda m: print(m, file=sys.stderr)) as ix:
            return COMMANDS[args.command](ix, args)
    except (CorpusError, StoreBusyError, EmbeddingError, VectorStoreError, ValueError) as exc:
        print(f"indexer-pipeline: {exc}", file=sys.stderr)
        return 2


def positive_int(text: str) -> int:
    """An argument checked like a setting, in the same words."""
    try:
        return TypeAdapter(PositiveInt).validate_python(text)
    except ValidationError:
        raise argparse.ArgumentTypeError(f"must be a positive integer (got {text!r})") from None


def cmd_index(ix: Indexer, args) -> int:
    view = look(ix.settings.corpus_dirs)
    units = view.units
    if args.unit:
        by_key = {u.key: u for u in units}
        missing = [k for k in args.unit if k not in by_key]
        if missing:
            raise ValueError(f"no such unit: {', '.join(missing)}")
        units = [by_key[k] for k in args.unit]
    with tqdm(total=3 * len(units), unit="step", desc="indexing", file=sys.stderr) as bar:
        read, embedded, written = ix.index(units, progress=bar.update)
    print(
        f"{read.units} units, {read.documents} documents ({len(read.rejected)} rejected), {read.chunks} chunks; "
        f"embedded {embedded.embedded} (cache hits {embedded.cache_hits}, failed {embedded.failed}, "
        f"already indexed {embedded.already_indexed}); "
        f"points upserted {written.upserted}, unchanged {written.unchanged}, deleted {written.deleted}; "
        f"success rate {written.success_rate:.1%}; "
        f"{read.seconds + embedded.seconds + written.seconds:.1f} s"
    )
    if written.failed_units:
        return 1
    if args.unit:
        return 0
    # After the writes, so a unit that moved (a deletion and a new unit) is never missing from search.
    removal = sync_deletions(ix, view)
    if removal.deleted:
        print(f"{len(removal.deleted)} units left the corpus: {removal.points} points removed")
    for root in view.missing:
        print(
            f"indexer-pipeline: corpus root {root} is missing (unmounted, moved or renamed?)", file=sys.stderr
        )
    if removal.held:
        print(_held_report(removal.held), file=sys.stderr)
    return 3 if removal.held or view.missing else 0


def cmd_confirm_deletions(ix: Indexer, args) -> int:
    removal = confirm_held(ix, look(ix.settings.corpus_dirs), args.unit)
    print(
        f"{len(removal.deleted)} units deleted ({removal.points} points); "
        f"{len(removal.returned)} are back in the corpus and stay indexed"
    )
    if removal.held:
        print(_held_report(removal.held))
    return 0


def _held_report(held: dict[str, HeldDeletion]) -> str:
    lines = [f"{len(held)} units are kept in the index, their deletion held for your confirmation:"]
    lines += [f"  {h.unit}  since {_iso(h.held_at)}: {h.reason}" for h in held.values()]
    lines.append(f"Nothing was deleted for them; {CONFIRM_HINT}.")
    return "\n".join(lines)


# SearchRequest's fields that the search subcommand's arguments fill, under the same names.
SEARCH_FIELDS = (
    "query", "mode", "limit", "workspace", "task", "role", "kind", "mode_filter", "since", "until", "tool",
    "has_errors", "source_root", "unit",
)  # fmt: skip


def cmd_search(ix: Indexer, args) -> int:
    request = SearchRequest(group=not args.ungrouped, **{f: getattr(args, f) for f in SEARCH_FIELDS})
    result = search(ix, request)
    if result.degraded:
        print(f"indexer-pipeline: degraded search ({result.mode} only): {result.degraded}", file=sys.stderr)
    try:
        if args.json:
            out = {"mode": result.mode, "degraded": result.degraded, "rows": result.rows, "hits": result.hits}
            json.dump(out, sys.stdout, ensure_ascii=False, indent=2)
            print()
        elif not result.rows:
            print("no results")
        else:
            for row in result.rows:
                print(row_line(row))
                for s in row["snippets"]:
                    print(f"        {s['role'] or row['kind']}: {s['text']}")
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader stopped early (`| head`): not an error. Python's own flush at exit would fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def row_line(row: dict) -> str:
    """Score, title, unit, workspace, date and mode of one row: what a person needs to pick a result."""
    fields = [f"{row['score']:6.3f}", row["title"] or "", row["unit"] or ""]
    fields += [v for v in (row["workspace"], (row["date"] or "")[:10], row["mode"]) if v]
    return "  ".join(fields)


def status_report(ix: Indexer) -> dict:
    """What the CLI's `status` and the MCP door's `index_status` show. The corpus is listed as a sync
    would (`look`), so a missing root is reported, not raised, beside the deletions held for it."""
    units = ix.catalog.units()
    indexed = [u.indexed_at for u in units if u.indexed_at]
    view = look(ix.settings.corpus_dirs)
    report = {
        "collection": ix.settings.collection,
        "store": ix.settings.qdrant_url or str(ix.settings.edge_path),
        "units_in_corpus": len(view.units),
        "missing_roots": [str(r) for r in view.missing],
        "held_deletions": [h.__dict__ for h in ix.catalog.held_deletions().values()],
        "units_read": len(units),
        "units_indexed": len(indexed),
        "units_pending": [u.key for u in units if u.indexed_fingerprint != u.fingerprint],
        "documents": sum(u.documents for u in units),
        "documents_indexed": sum(u.documents_indexed for u in units),
        "documents_rejected": sum(u.rejected for u in units),
        "chunks": sum(u.chunks for u in units),
        "last_indexed": _iso(max(indexed)) if indexed else None,
        "cache": ix.cache.stats(),
        "rejected_files": [r.__dict__ for r in ix.catalog.rejections()],
    }
    try:
        report["points"] = ix.store(wait_s=ix.settings.store_wait_s).count()
    except StoreBusyError as exc:
        report["points"] = None
        report["store_busy"] = str(exc)
    return report


def dagster_instance(settings: Settings, create: bool = False):
    """The Dagster instance at DAGSTER_HOME (default `.dagster_home`, as `scripts/run` uses), or None
    when that folder does not exist and `create` is False."""
    import dagster as dg

    home = settings.dagster_home.resolve()
    if not home.is_dir():
        if not create:
            return None
        home.mkdir(parents=True)
    return dg.DagsterInstance.from_config(str(home))


def latest_checks(settings: Settings) -> list[dict] | None:
    """The latest result of every asset check the code location defines, from the Dagster instance (None
    when there is none)."""
    instance = dagster_instance(settings)
    if instance is None:
        return None
    from .definitions import defs  # every check, as the UI lists them

    with instance:
        latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            list(defs.resolve_asset_graph().asset_check_keys)
        )
    rows = []
    for key, record in sorted(latest.items(), key=lambda kv: kv[0].to_user_string()):
        evaluation = record.event.dagster_event.event_specific_data if record.event else None
        rows.append(
            {
                "asset": key.asset_key.to_user_string(),
                "check": key.name,
                "status": record.status.value,
                "severity": evaluation.severity.value if evaluation and not evaluation.passed else None,
                "description": evaluation.description if evaluation else None,
                "at": _iso(record.create_timestamp),
            }
        )
    return rows


def cmd_status(ix: Indexer, args) -> int:
    report = status_report(ix)
    report["checks"] = latest_checks(ix.settings)
    if args.json:
        json.dump(report, sys.stdout, indent=2, default=str)
        print()
        return 0
    points = report["points"] if report["points"] is not None else f"unknown ({report['store_busy']})"
    print(f"collection       {report['collection']} at {report['store']}")
    print(
        f"units            {report['units_in_corpus']} in corpus, {report['units_indexed']} indexed, "
        f"{len(report['units_pending'])} pending"
    )
    print(
        f"documents        {report['documents']} ({report['documents_indexed']} indexed, "
        f"{report['documents_rejected']} rejected)"
    )
    print(f"chunks / points  {report['chunks']} / {points}")
    print(f"last indexed     {report['last_indexed'] or 'never'}")
    cache = report["cache"]
    print(f"embedding cache  {cache['entries']:,} entries, {human_size(cache['bytes'])}")
    for root in report["missing_roots"]:
        print(f"missing root     {root} (unmounted, moved or renamed?): its units stay indexed")
    if report["held_deletions"]:
        held = {h["unit"]: HeldDeletion(**h) for h in report["held_deletions"]}
        print(_held_report(held))
    if report["checks"]:
        print("latest checks:")
        for c in report["checks"]:
            verdict = c["severity"] or c["status"]
            print(f"  {c['asset']}/{c['check']:<24} {verdict:<10} {c['description'] or ''}")
    if report["rejected_files"]:
        print("rejected files:")
        for r in report["rejected_files"]:
            print(f"  {r['unit']}  {r['path']}: {r['reason']}")
    return 0


def cmd_register(ix: Indexer, args) -> int:
    from .dagster_defs.partitions import register_units

    keys = [u.key for u in ix.units()]
    with dagster_instance(ix.settings, create=True) as instance:
        added = register_units(instance, keys)
    print(f"{len(keys)} units in the corpus, {len(added)} newly registered as partitions")
    return 0


def human_size(n: float) -> str:
    """1,536 → "1.5 KB" (four lines here rather than a dependency such as humanize)."""
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KB", "MB", "GB"):
        n /= 1024
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


def cmd_mcp(ix: Indexer, args) -> int:
    from .mcp_server import serve  # the MCP SDK is loaded only for this command

    serve(ix.settings, http=args.http, allow_reindex=args.allow_reindex)
    return 0


COMMANDS = {
    "index": cmd_index,
    "confirm-deletions": cmd_confirm_deletions,
    "search": cmd_search,
    "status": cmd_status,
    "register": cmd_register,
    "mcp": cmd_mcp,
}

if __name__ == "__main__":
    sys.exit(main())
