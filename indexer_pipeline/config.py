"""Every setting, declared once: environment variable, type and constraint, default, one-line description,
and whether it is a field of the Dagster resource `indexer`.

From these declarations follow `Settings.from_env()` (read and validated once, before any work), the
resource's fields (`dagster_defs/resources.py`), the errors the CLI and a Dagster run print
(`EMBEDDING_RPM must be a positive integer (got '3k')`) and the README's settings table
(`python -m indexer_pipeline.config` prints it; a test compares). pydantic does the typing and checking;
a constraint's words travel with its type (`Must`), so every message has the same shape.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

SAMPLE_CORPUS = Path(__file__).parent / "sample_corpus"


class SettingsError(ValueError):
    """A setting the user gave is invalid; the message names the variable and the value."""


class Must:
    """What a value of a type must be, in words: the middle of `X must be <words> (got 'v')`."""

    def __init__(self, words: str):
        self.words = words


def _http_url(value: str) -> str:
    # urlsplit, not pydantic's HttpUrl, so the string reaches the SDKs exactly as the user wrote it.
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL")
    parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    return value


def _qdrant_url(value: str) -> str:
    return value if value == ":memory:" else _http_url(value)


def _paths(value: Any) -> Any:
    return [p for p in value.split(os.pathsep) if p] if isinstance(value, str) else value


PositiveInt = Annotated[int, Field(gt=0), Must("a positive integer")]
NonNegativeInt = Annotated[int, Field(ge=0), Must("a non-negative integer")]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False), Must("a positive number")]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False), Must("a non-negative number")]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False), Must("a number from 0 to 1")]
Name = Annotated[str, Field(min_length=1, pattern=r"^[^/\\]+$"), Must("a name without slashes")]
HttpUrl = Annotated[str, AfterValidator(_http_url), Must("an http(s) URL")]
QdrantUrl = Annotated[str, AfterValidator(_qdrant_url), Must("an http(s) URL or :memory:")]
Folders = Annotated[
    list[Path],
    BeforeValidator(_paths),
    Field(min_length=1),
    Must(f"one or more folders joined by {os.pathsep!r}"),
]


def setting(
    env: str,
    default: Any,
    description: str,
    *,
    resource: bool | str = False,
    secret: bool = False,
    shown_default: str | None = None,
) -> Any:
    """One setting. `resource=True` makes it a field of the Dagster resource `indexer` (a string names that
    field); a secret never is, and its value never appears in a message or a repr."""
    assert not (secret and resource), f"{env}: a secret must never be a resource field (run config is stored)"
    return Field(
        default,
        description=description,
        repr=not secret,
        json_schema_extra={
            "env": env,
            "resource": resource,
            "secret": secret,
            "shown_default": shown_default,
        },
    )


class Settings(BaseModel):
    """The settings of one process. Fields are the declarations; read them with `from_env()`."""

    # -- corpus and stores
    corpus_dirs: Folders = setting(
        "INDEXER_CORPUS_DIR",
        [SAMPLE_CORPUS],
        "one or more corpus roots, joined by `:` (`;` on Windows)",
        resource="corpus_dir",
        shown_default="the shipped sample corpus",
    )
    data_dir: Path = setting(
        "INDEXER_DATA_DIR", Path(".data"), "catalog, embedding cache, embedded Qdrant store", resource=True
    )
    qdrant_url: QdrantUrl | None = setting(
        "QDRANT_URL", None, "a Qdrant server or cluster instead of the embedded store", resource=True
    )
    qdrant_api_key: str | None = setting("QDRANT_API_KEY", None, "the Qdrant server's API key", secret=True)
    collection: Name = setting("QDRANT_COLLECTION", "documents", "collection name", resource=True)
    qdrant_shard_number: PositiveInt | None = setting(
        "QDRANT_SHARD_NUMBER",
        None,
        "shards of the collection when this project creates it on a cluster",
        resource=True,
        shown_default="the server's",
    )
    qdrant_replication_factor: PositiveInt | None = setting(
        "QDRANT_REPLICATION_FACTOR",
        None,
        "replicas of the collection when this project creates it on a cluster",
        resource=True,
        shown_default="the server's",
    )
    store_wait_s: NonNegativeFloat = setting(
        "INDEXER_STORE_WAIT_S", 10.0, "how long `search`/`status` wait for an embedded store held by a run"
    )
    mcp_store_hold_s: NonNegativeFloat = setting(
        "INDEXER_MCP_STORE_HOLD_S",
        5.0,
        "how long `mcp` keeps the embedded store open for the calls that follow one (0: open it per call); "
        "an index run waits at most this long for it",
    )
    mcp_store_wait_s: NonNegativeFloat = setting(
        "INDEXER_MCP_STORE_WAIT_S",
        2.0,
        "how long an `mcp` tool call waits for an embedded store held by a run before a retryable error",
    )
    # -- the dense index (fixed when the collection is created; measured by benchmarks/bench_index.py)
    hnsw_m: PositiveInt = setting("QDRANT_HNSW_M", 16, "HNSW links per point, at collection creation")
    hnsw_ef_construct: PositiveInt = setting(
        "QDRANT_HNSW_EF_CONSTRUCT", 64, "HNSW candidates while building, at collection creation"
    )
    hnsw_ef: PositiveInt = setting(
        "QDRANT_HNSW_EF", 256, "HNSW candidates while searching: higher is slower and nearer exact"
    )
    indexing_threshold_kb: PositiveInt = setting(
        "QDRANT_INDEXING_THRESHOLD_KB",
        10_000,
        "KB of vectors a segment holds before it gets an HNSW index (below, it is scanned exactly)",
    )
    quantization: Literal["int8", "none"] = setting(
        "QDRANT_QUANTIZATION",
        "int8",
        "`int8` scalar quantization (rescored on the original vectors) or `none`, at collection creation",
    )
    oversampling: Annotated[float, Field(ge=1, allow_inf_nan=False), Must("a number of at least 1")] = (
        setting(
            "QDRANT_OVERSAMPLING",
            2.0,
            "quantized candidates per hit wanted, rescored on the original vectors",
        )
    )
    acorn_max_selectivity: Fraction = setting(
        "QDRANT_ACORN_MAX_SELECTIVITY",
        0.4,
        "a filtered search whose filter matches at most this share of the points walks the graph with"
        " ACORN: nearer exact, slower (0: never)",
    )
    edge_on_disk: bool = setting(
        "QDRANT_EDGE_ON_DISK",
        True,
        "embedded store: vectors and indexes memory-mapped and read on demand, not loaded by every process"
        " that opens it (`false`: loaded at open), at collection creation",
    )
    search_embed_timeout_s: PositiveFloat = setting(
        "INDEXER_SEARCH_EMBED_TIMEOUT_S",
        2.0,
        "seconds `search` waits for the query's embedding, never retried, before it answers from BM25 alone",
    )

    # -- embeddings
    embedding_provider: Literal["auto", "openai", "local"] = setting(
        "EMBEDDING_PROVIDER",
        "auto",
        "`auto` (openai when a key is set, else local), `openai`, `local`",
        resource=True,
    )
    openai_api_key: str | None = setting(
        "OPENAI_API_KEY", None, "OpenAI's key, or the OpenAI-compatible server's", secret=True
    )
    openai_base_url: HttpUrl | None = setting(
        "OPENAI_BASE_URL",
        None,
        "an OpenAI-compatible server (Azure, vLLM, Ollama, TEI)",
        resource=True,
        shown_default="OpenAI's",
    )
    embedding_model: str | None = setting(
        "EMBEDDING_MODEL",
        None,
        "embedding model",
        resource=True,
        shown_default="`text-embedding-3-small` (openai) / `all-MiniLM-L6-v2` (local)",
    )
    embedding_dimensions: PositiveInt | None = setting(
        "EMBEDDING_DIMENSIONS",
        None,
        "reduced dimension, sent only when set; else the published size (OpenAI) or the size of the server's first answer",
        resource=True,
    )
    # The engine's limits: OpenAI Tier 1 for text-embedding-3-small by default.
    rpm_limit: PositiveInt = setting(
        "EMBEDDING_RPM", 3_000, "the account's requests per minute", resource=True
    )
    tpm_limit: PositiveInt = setting(
        "EMBEDDING_TPM", 1_000_000, "the account's tokens per minute", resource=True
    )
    max_concurrency: PositiveInt = setting(
        "EMBEDDING_MAX_CONCURRENCY", 8, "embedding requests in flight at once", resource=True
    )
    max_inputs_per_request: PositiveInt = setting(
        "EMBEDDING_MAX_INPUTS_PER_REQUEST", 2048, "inputs in one embedding request", resource=True
    )
    max_tokens_per_request: PositiveInt = setting(
        "EMBEDDING_MAX_TOKENS_PER_REQUEST", 300_000, "tokens in one embedding request", resource=True
    )
    request_timeout_s: PositiveFloat = setting(
        "EMBEDDING_TIMEOUT_S", 60.0, "seconds before one embedding request times out", resource=True
    )
    max_retries: NonNegativeInt = setting(
        "EMBEDDING_MAX_RETRIES", 6, "retries of a failed embedding request", resource=True
    )
    max_retry_wait_s: NonNegativeFloat = setting(
        "EMBEDDING_MAX_RETRY_WAIT_S", 300.0, "longest retry-after honoured, in seconds", resource=True
    )

    # -- chunking and the embedding cache
    chunk_tokens: PositiveInt = setting(
        "INDEXER_CHUNK_TOKENS", 400, "chunk size in tokens (capped by the model's input limit)", resource=True
    )
    chunk_overlap: NonNegativeInt = setting(
        "INDEXER_CHUNK_OVERLAP",
        40,
        "overlap of consecutive chunks in tokens, less than the chunk size",
        resource=True,
    )
    cache_ttl_days: PositiveFloat = setting(
        "INDEXER_CACHE_TTL_DAYS",
        7.0,
        "days an embedding stays cached after its last use (stored text is never re-embedded)",
    )
    cache_max_entries: PositiveInt = setting(
        "INDEXER_CACHE_MAX_ENTRIES", 2_000_000, "embedding cache size bound, in entries"
    )

    # -- automation and alerts (read by the Dagster layer)
    sensor_interval_s: PositiveInt = setting(
        "INDEXER_SENSOR_INTERVAL_S", 30, "seconds between ticks of `corpus_change_sensor` (read at load)"
    )
    sensor_range_gap: NonNegativeInt = setting(
        "INDEXER_SENSOR_RANGE_GAP",
        25,
        "unchanged units one run may take in to join two changed ones (0: exactly the changed units)",
    )
    freshness_minutes: PositiveFloat = setting(
        "INDEXER_FRESHNESS_MINUTES", 30.0, "`follows_the_corpus` warns when a change waits longer than this"
    )
    max_delete_share: Fraction = setting(
        "INDEXER_MAX_DELETE_SHARE",
        0.2,
        "share of the indexed units one decision may delete without a confirmation",
    )
    max_delete_units: PositiveInt = setting(
        "INDEXER_MAX_DELETE_UNITS",
        50,
        "units one decision may delete without a confirmation (the smaller bound wins)",
    )
    alert_webhook_url: HttpUrl | None = setting(
        "INDEXER_ALERT_WEBHOOK_URL",
        None,
        "Slack incoming webhook for failed runs and ERROR checks",
        secret=True,
    )
    eval_queries: Path | None = setting(
        "INDEXER_EVAL_QUERIES",
        None,
        "golden query set (JSON or YAML) that `retrieval_quality` judges search by",
        shown_default="the shipped set, on the sample corpus only",
    )
    dagster_home: Path = setting(
        "DAGSTER_HOME",
        Path(".dagster_home"),
        "Dagster's instance folder; `status` and `register` use it too",
        shown_default="`.dagster_home` in the working directory",
    )

    # -- the sign-off thresholds of the asset checks (thresholds.py gives each its direction and unit)
    check_success_rate_warn: Fraction = setting(
        "INDEXER_CHECK_SUCCESS_RATE_WARN", 0.99, "`success_rate` warns below this share"
    )
    check_success_rate_error: Fraction = setting(
        "INDEXER_CHECK_SUCCESS_RATE_ERROR", 0.95, "`success_rate` fails below this share"
    )
    check_request_latency_p95_ms_warn: NonNegativeFloat = setting(
        "INDEXER_CHECK_REQUEST_LATENCY_P95_MS_WARN", 800.0, "`request_latency_p95` warns above this, in ms"
    )
    check_request_latency_p95_ms_error: NonNegativeFloat = setting(
        "INDEXER_CHECK_REQUEST_LATENCY_P95_MS_ERROR", 1200.0, "`request_latency_p95` fails above this, in ms"
    )
    check_docs_per_s_warn: NonNegativeFloat = setting(
        "INDEXER_CHECK_DOCS_PER_S_WARN", 1.5, "`throughput` warns below this, in docs/s"
    )
    check_docs_per_s_error: NonNegativeFloat = setting(
        "INDEXER_CHECK_DOCS_PER_S_ERROR", 1.0, "`throughput` fails below this, in docs/s"
    )
    check_error_rate_warn: Fraction = setting(
        "INDEXER_CHECK_ERROR_RATE_WARN", 0.01, "`api_error_rate` warns above this share"
    )
    check_error_rate_error: Fraction = setting(
        "INDEXER_CHECK_ERROR_RATE_ERROR", 0.05, "`api_error_rate` fails above this share"
    )
    check_upsert_latency_p95_ms_warn: NonNegativeFloat = setting(
        "INDEXER_CHECK_UPSERT_LATENCY_P95_MS_WARN", 100.0, "`upsert_latency_p95` warns above this, in ms"
    )
    check_upsert_latency_p95_ms_error: NonNegativeFloat = setting(
        "INDEXER_CHECK_UPSERT_LATENCY_P95_MS_ERROR", 200.0, "`upsert_latency_p95` fails above this, in ms"
    )

    # retrieval_quality: the shipped golden set scores (hybrid) recall@5 0.99 / MRR 0.91 / nDCG@10 0.93 with
    # the local model and 0.97 / 0.80 / 0.84 with the test simulator (64-d); warn about 0.1 below the lower.
    check_recall_at_5_warn: Fraction = setting(
        "INDEXER_CHECK_RECALL_AT_5_WARN", 0.9, "`retrieval_quality` warns when recall@5 is below this"
    )
    check_recall_at_5_error: Fraction = setting(
        "INDEXER_CHECK_RECALL_AT_5_ERROR", 0.75, "`retrieval_quality` fails when recall@5 is below this"
    )
    check_mrr_warn: Fraction = setting(
        "INDEXER_CHECK_MRR_WARN", 0.7, "`retrieval_quality` warns when MRR is below this"
    )
    check_mrr_error: Fraction = setting(
        "INDEXER_CHECK_MRR_ERROR", 0.5, "`retrieval_quality` fails when MRR is below this"
    )
    check_ndcg_at_10_warn: Fraction = setting(
        "INDEXER_CHECK_NDCG_AT_10_WARN", 0.75, "`retrieval_quality` warns when nDCG@10 is below this"
    )
    check_ndcg_at_10_error: Fraction = setting(
        "INDEXER_CHECK_NDCG_AT_10_ERROR", 0.6, "`retrieval_quality` fails when nDCG@10 is below this"
    )

    # index_recall: recall@10 of the index against exact search, sampled (index_quality.py). At the default
    # index settings it is 1.000 at 3,000 x 1536-d and 0.999 at 100k x 1536-d (benchmarks/bench_index.py).
    check_index_recall_at_10: Fraction = setting(
        "INDEXER_CHECK_INDEX_RECALL_AT_10",
        0.95,
        "`index_recall` warns when the index's recall@10 against exact search is below this",
    )
    recall_check_min_points: NonNegativeInt = setting(
        "INDEXER_RECALL_CHECK_MIN_POINTS",
        10_000,
        "`index_recall` samples after a run that upserted or deleted at least this many points "
        "(run alone, as nightly, it always samples)",
    )

    # -- reading ------------------------------------------------------------------------------
    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """The environment's settings, with `overrides` (by field name; None leaves a setting alone), all
        validated at once. Raises SettingsError naming every invalid variable."""
        unknown = set(overrides) - set(cls.model_fields)
        if unknown:
            raise TypeError(f"unknown setting {sorted(unknown)[0]!r}")
        given = {name: value for name, value in overrides.items() if value is not None}
        raw = {**_environment(cls.model_fields), **given}
        labels = {name: name if name in given else env_name(name) for name in raw}
        try:
            settings = cls.model_validate(raw)
        except ValidationError as e:
            raise SettingsError(
                "; ".join(_problem(err["loc"][0], labels[err["loc"][0]], err) for err in e.errors())
            ) from None
        if settings.chunk_overlap >= settings.chunk_tokens:
            raise SettingsError(
                f"{labels.get('chunk_overlap', env_name('chunk_overlap'))} must be less than "
                f"{labels.get('chunk_tokens', env_name('chunk_tokens'))} = {settings.chunk_tokens} "
                f"(got {raw.get('chunk_overlap', settings.chunk_overlap)!r})"
            )
        return settings

    @classmethod
    def read(cls, name: str) -> Any:
        """One setting from the environment, validated alone: for what is read at definitions load (the
        sensor interval) and for alerts, which must still go out when another setting is wrong."""
        info = cls.model_fields[name]
        raw = _environment({name: info}).get(name)
        if raw is None:
            return info.get_default(call_default_factory=True)
        typ = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        try:
            return TypeAdapter(typ).validate_python(raw)
        except ValidationError as e:
            raise SettingsError(_problem(name, env_name(name), e.errors()[0])) from None

    # -- derived ------------------------------------------------------------------------------
    @property
    def provider(self) -> str:
        """The provider actually used: `auto` means openai when a key is set, else the local model."""
        if self.embedding_provider == "auto":
            return "openai" if self.openai_api_key else "local"
        return self.embedding_provider

    @property
    def catalog_path(self) -> Path:
        return self.data_dir / "catalog.sqlite"

    @property
    def cache_path(self) -> Path:
        return self.data_dir / "embedding_cache.sqlite"

    @property
    def edge_path(self) -> Path:
        return self.data_dir / "qdrant_edge" / self.collection


# -- the declarations, read back --------------------------------------------------------------------
def _extra(name: str) -> dict:
    return Settings.model_fields[name].json_schema_extra  # type: ignore[return-value]


def env_name(name: str) -> str:
    return _extra(name)["env"]


def resource_fields() -> dict[str, str]:
    """{resource field name: settings field name} for every setting that is a field of the resource."""
    fields = {}
    for name in Settings.model_fields:
        resource = _extra(name)["resource"]
        if resource:
            fields[resource if isinstance(resource, str) else name] = name
    return fields


def _environment(fields: dict[str, FieldInfo]) -> dict[str, str]:
    """The declared variables that are set; an empty value counts as unset."""
    values = {name: os.environ.get(info.json_schema_extra["env"]) for name, info in fields.items()}
    return {name: value for name, value in values.items() if value}


def _must(annotation: Any) -> str | None:
    """The words of the first Must (or Literal) found in a type, searching inside Optional and Annotated."""
    if isinstance(annotation, Must):
        return annotation.words
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(map(str, get_args(annotation)))
    for arg in get_args(annotation):
        words = _must(arg)
        if words:
            return words
    return None


def _problem(name: str, label: str, error: dict) -> str:
    """`LABEL must be <what the setting's type requires> (got 'value')`; a secret's value is not shown."""
    info = Settings.model_fields[name]
    words = _must(Annotated[(info.annotation, *info.metadata)]) if info.metadata else _must(info.annotation)
    got = "a value not shown, it is a secret" if info.json_schema_extra["secret"] else repr(error["input"])
    return f"{label} must be {words or 'valid: ' + error['msg']} (got {got})"


def settings_table() -> str:
    """The README's table of settings, generated from the declarations."""
    rows = ["| variable | meaning | default | field of the resource `indexer` |", "|---|---|---|---|"]
    by_setting = {setting_name: field for field, setting_name in resource_fields().items()}
    for name, info in Settings.model_fields.items():
        extra = info.json_schema_extra
        field = f"`{by_setting[name]}`" if name in by_setting else "—"
        default = extra["shown_default"] or _shown(info.default)
        rows.append(f"| `{extra['env']}` | {info.description} | {default} | {field} |")
    return "\n".join(rows)


def _shown(default: Any) -> str:
    if default is None:
        return "unset"
    if isinstance(default, bool) or not isinstance(default, int | float):
        return f"`{default}`"
    return f"{default:,}" if isinstance(default, int) else f"{default:,g}"


if __name__ == "__main__":
    print(settings_table())
