"""The indexing core: read → chunk → embed (through the cache) → write to Qdrant, unit by unit.

It knows nothing of Dagster; the assets and the CLI both call it. Each stage keeps its result in a
real store (the catalog, the embedding cache, the vector store), so stages can run in separate
processes and a re-run only does the work that changed.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from . import chunking, corpus, models, readers, redaction, tokenizers
from .catalog import Catalog
from .chunking import chunk_document
from .config import Settings
from .corpus import discover_units, files_fingerprint, find_units, unit_files, unit_listing
from .embeddings import Embedder, EmbeddingOutcome, EmbeddingStats, make_embedder
from .embeddings import cache as embedding_cache
from .embeddings.cache import EmbeddingCache
from .metrics import percentile, stopwatch
from .models import Chunk, Rejection, SourceUnit
from .readers import read_unit
from .sparse import bm25_document
from .vectorstore import base as store_base
from .vectorstore import open_store
from .vectorstore.base import CONTENT_HASH, GROUP, SearchHit, StoredPoint, VectorStore, group_of

UPSERT_BATCH = 256
# Chunks embedded together across units: enough to keep several full requests in flight,
# few enough that memory stays bounded on a 100,000-document corpus.
EMBED_GROUP_CHUNKS = 8192
# A batch of the stream (`Indexer.index`, `write_units`): its units are read, embedded, written, made
# durable and recorded in the catalog before the next batch is read, then dropped. Not a setting: what a
# batch holds is small (its point map, ~300 B a point, ~2.5 MB at the chunk bound), so no user gains by
# changing it. The chunk bound is the embed group, so a batch keeps several requests in flight; the unit
# bound keeps the flushes regular when units are tiny (each flush costs ~17 ms). A unit is never split.
BATCH_CHUNKS = EMBED_GROUP_CHUNKS
BATCH_UNITS = 1000

Progress = Callable[[int], None]  # called with the number of units just finished

# The modules whose code decides what a read produces: a change to any of them re-reads every unit.
READING_MODULES = (corpus, readers, redaction, chunking, tokenizers, models)


# The modules whose code decides what a point holds and its content hash (the payload, the text's cache
# key), beside this one: a change to any of them makes the next run compare every unit with the store.
WRITING_MODULES = (store_base, embedding_cache)


def _code_hash(modules) -> str:
    """A hash of the code itself, so no one has to remember to bump a version number."""
    h = hashlib.sha256()
    for module in modules:
        h.update(Path(module.__file__).read_bytes())
    return h.hexdigest()[:16]


@cache
def reader_version() -> str:
    return _code_hash(READING_MODULES)


@cache
def writer_version() -> str:
    return _code_hash((*WRITING_MODULES, sys.modules[__name__]))


@dataclass
class ReadReport:
    units: int = 0
    units_unchanged: int = 0  # files and reader as at the last read: not read again
    documents: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    new_rejections: list[Rejection] = field(default_factory=list)  # not rejected at the unit's last read
    chunks: int = 0
    tokens: int = 0  # of the units read
    redactions: int = 0
    seconds: float = 0.0

    def metadata(self) -> dict:
        return {
            "units": self.units,
            "units_read": self.units - self.units_unchanged,
            "units_unchanged": self.units_unchanged,
            "documents": self.documents,
            "documents_rejected": len(self.rejected),
            "chunks": self.chunks,
            "tokens": self.tokens,
            "secrets_redacted": self.redactions,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class EmbedReport:
    provider: str = ""
    units: int = 0
    documents: int = 0
    chunks: int = 0
    # Chunks of units written exactly so at an earlier run, not looked up at all (`Indexer.index` only).
    already_indexed: int = 0
    cache_hits: int = 0
    already_stored: int = 0  # not in the cache, but the store holds their point with the same text
    embedded: int = 0
    failed: int = 0
    documents_embedded: int = 0  # documents with a chunk embedded in this run (not all from the cache)
    dimensions: int = 0
    dimension_source: str = ""
    estimated_cost_usd: float = 0.0
    seconds: float = 0.0  # the whole stage: catalog and cache reads, model loading, embedding
    embedding_seconds: float = 0.0  # inside the embedder's calls only
    stats: EmbeddingStats = field(default_factory=EmbeddingStats)

    @property
    def docs_per_s(self) -> float:
        """Documents embedded per second of embedding: cache hits and model loading are not throughput."""
        return self.documents_embedded / self.embedding_seconds if self.embedding_seconds > 0 else 0.0

    def metadata(self) -> dict:
        s = self.stats
        return {
            "units": self.units,
            "documents": self.documents,
            "documents_embedded": self.documents_embedded,
            "chunks": self.chunks,
            "cache_hits": self.cache_hits,
            "already_stored": self.already_stored,
            "cache_misses": self.embedded + self.failed,
            "embedded": self.embedded,
            "embedding_failures": self.failed,
            "dimensions": self.dimensions,
            "dimension_source": self.dimension_source,
            "tokens": s.tokens,
            "estimated_cost_usd": round(self.estimated_cost_usd, 6),
            "requests": s.requests,
            "failed_requests": s.failed_requests,
            "rejected_requests": s.rejected_requests,
            "error_rate": round(s.failed_requests / s.requests, 4) if s.requests else 0.0,
            "retries": s.retries,
            "rate_limited_429": s.rate_limited,
            # Every request that got an answer or timed out, failed ones included; and successes alone.
            "request_latency_p50_ms": round(percentile(s.latencies_ms + s.failed_latencies_ms, 50), 1),
            "request_latency_p95_ms": round(percentile(s.latencies_ms + s.failed_latencies_ms, 95), 1),
            "request_latency_p95_ms_succeeded": round(percentile(s.latencies_ms, 95), 1),
            "docs_per_s": round(self.docs_per_s, 2),
            "embedding_seconds": round(self.embedding_seconds, 3),
            "seconds": round(self.seconds, 3),
        }


@dataclass
class WriteReport:
    units: int = 0
    documents: int = 0
    documents_indexed: int = 0
    documents_seen: int = 0  # indexable documents: files that could not be read are `files_rejected`
    files_rejected: int = 0
    points_expected: int = 0
    upserted: int = 0
    unchanged: int = 0
    deleted: int = 0
    missing_vectors: int = 0
    vectors_from_store: int = 0  # cache entry expired, text unchanged: the stored point's vector is reused
    embedded_late: int = 0  # no vector anywhere (e.g. a point deleted by another client): embedded here
    upsert_latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    failed_units: list[str] = field(default_factory=list)
    unit_counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # unit -> (indexed, seen)

    @property
    def success_rate(self) -> float:
        return self.documents_indexed / self.documents_seen if self.documents_seen else 1.0

    def metadata(self) -> dict:
        return {
            "units": self.units,
            "documents_seen": self.documents_seen,
            "documents_indexed": self.documents_indexed,
            "success_rate": round(self.success_rate, 4),
            "files_rejected": self.files_rejected,
            "points_expected": self.points_expected,
            "points_upserted": self.upserted,
            "points_unchanged": self.unchanged,
            "points_deleted": self.deleted,
            "chunks_without_vector": self.missing_vectors,
            "vectors_from_store": self.vectors_from_store,
            "embedded_late": self.embedded_late,
            "upsert_latency_p95_ms": round(percentile(self.upsert_latencies_ms, 95), 1),
            "seconds": round(self.seconds, 3),
        }


def content_hash(cache_key: str, payload: dict) -> str:
    """Decides whether a stored point is up to date: same text, model and payload → no upsert."""
    body = json.dumps(payload, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(f"{cache_key}\x1f{body}".encode()).hexdigest()


class Indexer:
    """The open parts of one indexing session. Opened lazily, so a stage holds only what it needs:
    only `write_units` (and search) opens the vector store, whose embedded folder admits one process."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder | None = None,
        store: VectorStore | None = None,
        log: Callable[[str], None] = lambda message: None,
        cache: EmbeddingCache | None = None,  # e.g. one with a clock a test moves
        batch_units: int = BATCH_UNITS,  # a test's small bound; see BATCH_UNITS
        batch_chunks: int = BATCH_CHUNKS,
    ):
        self.settings = settings
        self.log = log
        self._embedder = embedder
        self._store = store
        self._owns_store = store is None
        self._owns_embedder = embedder is None
        self._catalog: Catalog | None = None
        self._cache = cache
        self.batch_units = batch_units
        self.batch_chunks = batch_chunks

    # -- the parts -------------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = make_embedder(self.settings)
        return self._embedder

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = Catalog(self.settings.catalog_path)
        return self._catalog

    @property
    def cache(self) -> EmbeddingCache:
        if self._cache is None:
            self._cache = EmbeddingCache(
                self.settings.cache_path,
                ttl_s=self.settings.cache_ttl_days * 86400,
                max_entries=self.settings.cache_max_entries,
            )
        return self._cache

    def store(self, wait_s: float = 60.0) -> VectorStore:
        if self._store is None:
            self._store = open_store(self.settings, wait_s=wait_s)
        return self._store

    def close(self) -> None:
        if self._store is not None and self._owns_store:
            self._store.close()
            self._store = None
        if self._embedder is not None and self._owns_embedder:
            self._embedder.close()  # the OpenAI engine's client and its loop thread
            self._embedder = None
        for part in (self._catalog, self._cache):
            if part is not None:
                part.close()
        self._catalog = self._cache = None

    def __enter__(self) -> Indexer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- corpus ------------------------------------------------------------------------------
    def units(self) -> list[SourceUnit]:
        return discover_units(self.settings.corpus_dirs)

    def resolve(self, keys: Iterable[str]) -> tuple[list[SourceUnit], list[str]]:
        """Units for partition keys; keys whose unit left the corpus are returned apart. The corpus is
        listed at most once per call, however many keys need it."""
        keys = list(keys)
        units = find_units(self.settings.corpus_dirs, keys)
        return [units[k] for k in keys if k in units], [k for k in keys if k not in units]

    def cache_key(self, text: str) -> str:
        e = self.embedder
        return EmbeddingCache.key(e.provider, e.model, e.dimensions, text)

    def indexed_key(self, read_key: str | None, store: VectorStore) -> str | None:
        """Names a write of the chunks read at `read_key`: into this collection, by this model at this
        size, with this writing code. A unit whose catalog holds the same key (and the store as many
        points as recorded) needs no write. None when the read may not be skipped: neither may the write."""
        if read_key is None:
            return None
        e = self.embedder
        ids = (read_key, writer_version(), store.location, e.provider, e.model, str(e.dimensions))
        return hashlib.sha256("\x1f".join(ids).encode()).hexdigest()

    # -- stage 1: raw documents ----------------------------------------------------------------
    def read_units(self, units: Iterable[SourceUnit], progress: Progress | None = None) -> ReadReport:
        """Read (redacted by the reader) and chunk each unit; record documents, chunks and rejections in the
        catalog.
        A unit whose files, reader code and chunking settings are as at its last read is not read again."""
        report = ReadReport()
        start = time.perf_counter()
        for _ in self._read(units, report, progress):
            pass
        report.seconds = time.perf_counter() - start
        return report

    def _read(
        self, units: Iterable[SourceUnit], report: ReadReport, progress: Progress | None
    ) -> Iterator[tuple[str, int, str | None]]:
        """Read each unit as `read_units` says; yields its key, number of chunks and, when it was not read
        again, its read key, once the catalog holds them."""
        max_tokens = min(self.settings.chunk_tokens, self.embedder.max_input_tokens)
        overlap = min(self.settings.chunk_overlap, max_tokens // 4)
        e = self.embedder  # its tokenizer and input limit shape the chunks
        version = f"{reader_version()}:{e.provider}:{e.model}:{max_tokens}:{overlap}"
        for unit in units:
            # Listed once: the fingerprint and the read both use it; UnitFiles only for a unit that is read.
            listing = unit_listing(unit)
            fingerprint = files_fingerprint(listing)
            read_key = hashlib.sha256(f"{fingerprint}\x1f{version}".encode()).hexdigest()
            record = self.catalog.unit(unit.key)
            report.units += 1
            if record and self.catalog.read_key(unit.key) == read_key:
                report.units_unchanged += 1
                report.documents += record.documents
                report.chunks += record.chunks
                report.rejected.extend(self.catalog.rejections(unit.key))
                if progress:
                    progress(1)
                yield unit.key, record.chunks, read_key
                continue
            before = set(self.catalog.rejections(unit.key)) if record else set()
            content = read_unit(unit, unit_files(unit, listing))
            chunks: list[Chunk] = []
            for doc in content.documents:
                chunks.extend(
                    chunk_document(doc, self.embedder.token_offsets, max_tokens=max_tokens, overlap=overlap)
                )
            self.catalog.replace_unit(content, chunks, fingerprint, read_key)
            report.redactions += content.redactions
            report.documents += len(content.documents)
            report.rejected.extend(content.rejected)
            report.new_rejections.extend(r for r in content.rejected if r not in before)
            report.chunks += len(chunks)
            report.tokens += sum(c.tokens for c in chunks)
            if progress:
                progress(1)
            yield unit.key, len(chunks), None

    # -- stage 2: embeddings -------------------------------------------------------------------
    def embed_units(
        self, keys: Iterable[str], progress: Progress | None = None, report: EmbedReport | None = None
    ) -> EmbedReport:
        """Embed every chunk whose text has no vector yet, neither in the cache nor in a stored point
        (an expired cache entry never re-embeds unchanged text); chunks of many units share requests.
        Counts go into `report` when given (a stream's batches add up)."""
        report = report if report is not None else EmbedReport(provider=self.embedder.provider)
        start = time.perf_counter()
        for group in self._embed_groups(keys, report):
            self._finish_group(group, self._embed_texts(group.texts), report, progress)
        report.seconds += time.perf_counter() - start
        report.estimated_cost_usd = _estimated_cost(self.embedder, report.stats.tokens)
        return report

    def _embed_groups(self, keys: Iterable[str], report: EmbedReport) -> Iterator[_EmbedGroup]:
        """The chunks of `keys` that need embedding, in groups of about EMBED_GROUP_CHUNKS texts; the
        others are counted in `report` (cache hits, already stored). Yields a last group, perhaps with no
        text, so that every unit is reported."""
        # Before anything is timed: a local model loads here, an unknown server model's size is read
        # from its record (or learned from the server, once).
        dimensions = report.dimensions = self.embedder.dimensions
        report.dimension_source = getattr(self.embedder, "dimension_source", None) or "the model's own"
        group = _EmbedGroup()
        for key in keys:
            # Checked before a unit, not after it: a stream's batch, closed by the unit that reached
            # the same bound, stays one group, so it is embedded while the next batch is read.
            if len(group.texts) >= EMBED_GROUP_CHUNKS:
                yield group
                group = _EmbedGroup()
            chunks = self.catalog.chunks(key)
            record = self.catalog.unit(key)
            report.units += 1
            report.documents += record.documents if record else 0
            report.chunks += len(chunks)
            by_key = {c.point_id: self.cache_key(c.text) for c in chunks}
            hits = self.cache.renew(list(set(by_key.values())))
            stored = self.catalog.stored_points(key)
            cleared = {}
            for chunk in chunks:
                ck = by_key[chunk.point_id]
                # A cached vector of another size than the model's is embedded again (and replaced),
                # so the write stage never meets it.
                if hits.get(ck) == dimensions:
                    report.cache_hits += 1
                    cleared[chunk.point_id] = None
                elif stored.get(chunk.point_id, ("", ""))[1] == ck:
                    report.already_stored += 1
                    cleared[chunk.point_id] = None
                else:
                    group.pending.setdefault(ck, []).append(chunk.point_id)
                    group.texts[ck] = chunk
                    group.document_of[chunk.point_id] = (key, chunk.doc_id)
            if cleared:
                self.catalog.set_chunk_errors(cleared)
            group.units += 1
        yield group

    def _embed_texts(self, texts: dict[str, Chunk]) -> tuple[EmbeddingOutcome, float]:
        """The embedder's call alone, and its seconds. It touches neither the catalog nor the cache, so
        `index` runs it beside reading and writing (see `_Embedding`)."""
        if not texts:
            return EmbeddingOutcome([], {}, EmbeddingStats()), 0.0
        started = time.perf_counter()
        chunks = list(texts.values())
        outcome = self.embedder.embed([c.text for c in chunks], [c.tokens for c in chunks])
        return outcome, time.perf_counter() - started

    def _finish_group(
        self,
        group: _EmbedGroup,
        embedded: tuple[EmbeddingOutcome, float],
        report: EmbedReport,
        progress: Progress | None,
    ) -> None:
        self._keep_vectors(group.texts, group.pending, embedded, report, group.document_of)
        if progress and group.units:
            progress(group.units)

    def _embed_missing(
        self, texts: dict[str, Chunk], pending: dict[str, list[str]], report: EmbedReport
    ) -> dict[str, np.ndarray]:
        """Embed `texts` (cache key -> a chunk with that text) now; see `_keep_vectors`."""
        return self._keep_vectors(texts, pending, self._embed_texts(texts), report)

    def _keep_vectors(
        self,
        texts: dict[str, Chunk],
        pending: dict[str, list[str]],
        embedded: tuple[EmbeddingOutcome, float],
        report: EmbedReport,
        document_of: dict[str, tuple[str, str]] | None = None,
    ) -> dict[str, np.ndarray]:
        """Cache the vectors `_embed_texts` returned for `texts` and record each chunk's error or its
        success; returns the vectors. `document_of` (point id -> (unit, doc_id)) counts the documents
        embedded, for throughput."""
        outcome, seconds = embedded
        report.embedding_seconds += seconds
        report.stats.merge(outcome.stats)
        fresh, errors, documents = {}, {}, set()
        for i, ck in enumerate(texts):
            vector = outcome.vectors[i]
            if vector is None:
                # The API may quote its input back: the reason is stored, so it is redacted too.
                reason = redaction.redact(outcome.errors.get(i, "no vector returned"))[0]
                errors.update({pid: reason for pid in pending[ck]})
                report.failed += len(pending[ck])
            else:
                fresh[ck] = np.asarray(vector, dtype=np.float32)
                errors.update({pid: None for pid in pending[ck]})
                documents.update(document_of[pid] for pid in pending[ck] if document_of)
                report.embedded += len(pending[ck])
        report.documents_embedded += len(documents)
        if fresh:
            self.cache.put_many(fresh)
        self.catalog.set_chunk_errors(errors)
        if outcome.errors:
            self.log(f"{len(outcome.errors)} of {len(texts)} texts could not be embedded")
        return fresh

    # -- stage 3: the vector store ---------------------------------------------------------------
    def write_units(self, keys: Iterable[str], progress: Progress | None = None) -> WriteReport:
        """Upsert the points that changed, then delete the unit's points that no longer exist; in
        batches, each durable and recorded before the next, and the vector index built once at the end."""
        report = WriteReport()
        start = time.perf_counter()
        store = self._store_to_write()
        self._write(store, keys, report, progress)
        # Not per batch: per-batch builds merge and re-index segments again and again (100,000 docs,
        # 1536-d: 216 CPU s against 127, same peak RSS; benchmarks/bench_memory.py --optimize-every-batch).
        # The embedded store indexes a large write in steps at its persists (edge.py); this is the last.
        store.optimize()
        report.seconds = time.perf_counter() - start
        return report

    def _store_to_write(self) -> VectorStore:
        store = self.store()
        store.ensure_collection(self.embedder.dimensions)
        return store

    def _write(
        self, store: VectorStore, keys: Iterable[str], report: WriteReport, progress: Progress | None
    ) -> None:
        """Write units, recording them in batches of at most `batch_units` units / `batch_chunks` points."""
        done: list[tuple[str, int | None, str | None, str | None]] = []
        stored: dict[str, dict[str, tuple[str, str]]] = {}
        points = 0
        for key in keys:
            indexed, fingerprint, read_key, stored[key] = self._write_unit(store, key, report)
            points += len(stored[key])
            done.append((key, indexed, fingerprint, self.indexed_key(read_key, store)))
            if progress:
                progress(1)
            if len(stored) >= self.batch_units or points >= self.batch_chunks:
                self._record(store, stored, done)
                points = 0
        if stored:
            self._record(store, stored, done)

    def _record(
        self,
        store: VectorStore,
        stored: dict[str, dict[str, tuple[str, str]]],
        done: list[tuple[str, int | None, str | None, str | None]],
    ) -> None:
        """Make a batch's points durable, then record them and its units in the catalog, then drop them.
        `done` holds (unit, documents indexed or None when some could not be, fingerprint, indexed key)."""
        # Units count as indexed only once their points are durable: a crash before this line leaves
        # them pending, so the sensor or a retry writes them again (same ids, so no duplicates).
        store.persist()
        for key, points in stored.items():
            self.catalog.record_points(key, points)
        for key, indexed, fingerprint, indexed_key in done:
            if indexed is not None:
                self.catalog.mark_indexed(key, indexed, fingerprint, indexed_key)
        self.catalog.clear_indexed_keys([key for key, indexed, _, _ in done if indexed is None])
        stored.clear()
        done.clear()

    def _write_unit(
        self, store: VectorStore, key: str, report: WriteReport
    ) -> tuple[int | None, str | None, str | None, dict[str, tuple[str, str]]]:
        """Write one unit. Returns its documents indexed (None when some could not be), the fingerprint
        of the files its chunks were read from and the read key they were read at, and point id ->
        (content hash, cache key) of the points the store now holds for it."""
        record, chunks, read_key = self.catalog.unit_with_chunks(key)
        documents = record.documents if record else 0
        report.units += 1
        report.documents += documents
        report.documents_seen += documents
        report.files_rejected += record.rejected if record else 0
        report.points_expected += len(chunks)
        existing = store.unit_hashes(key)
        held: dict[str, tuple[str, str]] = {}
        changed: list[tuple[Chunk, str, dict]] = []
        # Unchanged points are skipped before any vector is fetched: the content hash needs only the
        # text's cache key and the payload.
        for chunk in chunks:
            ck = self.cache_key(chunk.text)
            payload = {
                **chunk.payload,
                GROUP: group_of(chunk.payload),
                "text": chunk.text,
                "tokens": chunk.tokens,
            }
            h = content_hash(ck, payload)
            if existing.get(chunk.point_id) == h:
                report.unchanged += 1
                held[chunk.point_id] = (h, ck)
            else:
                payload[CONTENT_HASH] = h
                changed.append((chunk, ck, payload))
        vectors = self._vectors(store, key, changed, existing, report)
        failed_docs: set[str] = set()
        batch: list[StoredPoint] = []
        for chunk, ck, payload in changed:
            vector = vectors.get(ck)
            if vector is None:
                report.missing_vectors += 1
                failed_docs.add(chunk.doc_id)
                continue
            batch.append(
                StoredPoint(chunk.point_id, vector.tolist(), payload, sparse=bm25_document(chunk.text))
            )
            held[chunk.point_id] = (payload[CONTENT_HASH], ck)
            if len(batch) >= UPSERT_BATCH:
                self._upsert(store, batch, report)
        self._upsert(store, batch, report)
        # Delete only after the new points are written, so search never loses a document mid-update.
        # A chunk that could not be embedded keeps its old point rather than leaving a hole.
        expected = {c.point_id for c in chunks}
        stale = [pid for pid in existing if pid not in expected]
        if stale:
            store.delete(stale)
            report.deleted += len(stale)
        indexed = documents - len(failed_docs)
        report.documents_indexed += indexed
        report.unit_counts[key] = (indexed, documents)
        fingerprint = record.fingerprint if record else None
        if failed_docs:
            report.failed_units.append(key)
            return None, fingerprint, read_key, held
        return indexed, fingerprint, read_key, held

    def _vectors(
        self,
        store: VectorStore,
        key: str,
        changed: list[tuple[Chunk, str, dict]],
        existing: dict[str, str],
        report: WriteReport,
    ) -> dict[str, np.ndarray]:
        """Cache key -> vector for the points to upsert: from the cache; else from a stored point of
        the unit that holds the same text (its cache entry expired, only the payload changed); else,
        when no vector exists anywhere (a point deleted by another client), embedded here."""
        needed = {ck for _, ck, _ in changed}
        size = (self.embedder.dimensions,)
        # A cached vector of another size (another model behind the same name) is never written.
        vectors = (
            {k: v for k, v in self.cache.get_many(list(needed)).items() if v.shape == size} if needed else {}
        )
        missing = needed - vectors.keys()
        if not missing:
            return vectors
        holders = {
            ck: pid
            for pid, (_, ck) in self.catalog.stored_points(key).items()
            if ck in missing and pid in existing
        }
        by_point = {pid: ck for ck, pid in holders.items()}
        reused = {}
        for point in store.retrieve(list(by_point), with_vectors=True):
            vector = np.asarray(point.vector, dtype=np.float32)
            if vector.shape == size and np.all(np.isfinite(vector)) and np.any(vector):
                reused[by_point[str(point.id)]] = vector
        if reused:
            self.cache.put_many(reused)  # in use again: back in the cache
            vectors.update(reused)
            report.vectors_from_store += len(reused)
        # A chunk whose embedding failed in the embed stage already has its reason recorded.
        failed = set(self.catalog.chunk_errors(key))
        pending: dict[str, list[str]] = {}
        texts: dict[str, Chunk] = {}
        for chunk, ck, _ in changed:
            if ck not in vectors and chunk.point_id not in failed:
                pending.setdefault(ck, []).append(chunk.point_id)
                texts[ck] = chunk
        if texts:
            fresh = self._embed_missing(texts, pending, EmbedReport())
            report.embedded_late += len(fresh)
            vectors.update(fresh)
        return vectors

    def _upsert(self, store: VectorStore, batch: list[StoredPoint], report: WriteReport) -> None:
        if not batch:
            return
        with stopwatch(report.upsert_latencies_ms):
            store.upsert(batch)
        report.upserted += len(batch)
        batch.clear()

    def remove_units(self, keys: Iterable[str]) -> int:
        """Delete the points of units that left the corpus, then their catalog records; returns points
        deleted. Callers judge first (deletion_guard). Store first, record after: the catalog forgets a
        unit only once its deletion is flushed, so a crash leaves it knowing every unit that may still
        have points, and the next sync deletes them again."""
        keys = list(keys)
        if not keys:
            return 0
        store = self.store()
        deleted = 0
        for key in keys:
            ids = list(store.unit_hashes(key))
            if ids:
                store.delete(ids)
                deleted += len(ids)
        store.flush()
        self.catalog.forget_units(keys)
        return deleted

    def indexed_units(self) -> set[str]:
        """Units that have points or catalog records: what a deletion could lose."""
        return set(self.store().units()) | {u.key for u in self.catalog.units()}

    # -- everything, for the CLI -----------------------------------------------------------------
    def index(
        self, units: Iterable[SourceUnit], progress: Progress | None = None
    ) -> tuple[ReadReport, EmbedReport, WriteReport]:
        """Read → embed → write in batches of at most `batch_units` units / `batch_chunks` chunks, each
        durable and recorded before the next is written, so memory does not grow with the corpus.
        With a remote embedder a batch's texts are embedded in the background while the batch before
        is written and the next one read: the API's wait hides the product's own work, and the other
        way round. So one batch is read ahead of the one written, never more.
        A unit not read again whose last write is the one it would get now (`indexed_key`) is neither
        embedded nor written, once the store is seen to hold as many of its points as recorded.
        The reports add up over the batches; the vector index is built once, at the end."""
        read, written = ReadReport(), WriteReport()
        embedded = EmbedReport(provider=self.embedder.provider)
        store: VectorStore | None = None
        batch: list[str] = []  # being read
        ready: list[str] | None = None  # every vector cached: written while the next batch embeds
        in_flight: tuple[_EmbedGroup, Future] | None = None
        chunks = 0
        batches = 0
        # One query for every unit, not three per unit: an unchanged re-run asks nothing else per unit.
        written_before = self.catalog.written_units()
        # A unit not read again and written before -> (read key, chunks): checked against the store once.
        unread: dict[str, tuple[str, int]] = {}

        def add(key: str, n: int) -> None:
            nonlocal chunks
            batch.append(key)
            chunks += n
            if len(batch) >= self.batch_units or chunks >= self.batch_chunks:
                embed()

        def finish() -> None:
            """Wait for the group in flight, then cache its vectors."""
            nonlocal in_flight
            if in_flight is not None:
                group, answer = in_flight
                in_flight = None
                self._finish_group(group, answer.result(), embedded, progress)

        def embed() -> None:
            nonlocal in_flight, ready, chunks, batches
            start = time.perf_counter()
            for group in self._embed_groups(batch, embedded):
                if in_flight is not None:
                    _join(group, in_flight[0])
                    finish()  # cached before the next group is sent: no text is embedded twice
                if group.texts and self.embedder.remote:
                    in_flight = group, _in_background(self._embed_texts, group.texts)
                else:
                    self._finish_group(group, self._embed_texts(group.texts), embedded, progress)
            embedded.seconds += time.perf_counter() - start
            write()  # the batch before, whose last group `finish` has just cached
            ready = list(batch)
            batch.clear()
            chunks = 0
            batches += 1

        def write() -> None:
            nonlocal store, ready
            if ready is None:
                return
            start = time.perf_counter()
            if store is None:  # opened once the first batch is embedded: a reader waits only from here
                store = self._store_to_write()
            self._write(store, ready, written, progress)
            written.seconds += time.perf_counter() - start
            ready = None

        try:
            for key, n, read_key in _timed(self._read(units, read, progress), read):
                if read_key is not None and key in written_before:
                    unread[key] = (read_key, n)
                else:
                    add(key, n)
            if unread:
                start = time.perf_counter()
                if store is None:
                    store = self._store_to_write()
                # One facet for the whole collection: a unit deleted by hand, or a collection wiped or
                # made anew under the same name, holds fewer points than the catalog recorded.
                held = store.units()
                written.seconds += time.perf_counter() - start
                for key, (read_key, n) in unread.items():
                    indexed_key, documents, rejected, points = written_before[key]
                    if indexed_key == self.indexed_key(read_key, store) and held.get(key, 0) == points == n:
                        _already_indexed(embedded, written, key, documents, rejected, n)
                        if progress:
                            progress(2)  # its embed and write steps
                    else:
                        add(key, n)
            if batch or not batches:  # no write at all: the collection is still made (or its size checked)
                embed()
            start = time.perf_counter()
            finish()
            embedded.seconds += time.perf_counter() - start
            write()
        finally:
            if in_flight is not None:  # a failure elsewhere: nothing waits for these texts any more
                in_flight[1].cancel()
        start = time.perf_counter()
        store.optimize()
        written.seconds += time.perf_counter() - start
        embedded.estimated_cost_usd = _estimated_cost(self.embedder, embedded.stats.tokens)
        return read, embedded, written

    # -- reading the index ------------------------------------------------------------------------
    def search(self, query: str, limit: int = 10, **filters) -> list[SearchHit]:
        """The best hits, ungrouped, in the default mode; `filters` are SearchRequest's (workspace, role…).
        Search itself lives in search.py, which the CLI calls for grouped rows."""
        from .search import SearchRequest, search  # search.py reads the index through an Indexer

        result = search(self, SearchRequest(query, limit=limit, group=False, **filters))
        return [SearchHit(h["id"], h["score"], h["payload"]) for h in result.hits]


def _estimated_cost(embedder: Embedder, tokens: int) -> float:
    estimate = getattr(embedder, "estimated_cost_usd", None)
    return float(estimate(tokens)) if estimate else 0.0


def _already_indexed(
    embedded: EmbedReport, written: WriteReport, key: str, documents: int, rejected: int, chunks: int
) -> None:
    """Count a unit that needed no embedding and no write (every document of it was indexed)."""
    embedded.units += 1
    embedded.documents += documents
    embedded.chunks += chunks
    embedded.already_indexed += chunks
    written.units += 1
    written.documents += documents
    written.documents_seen += documents
    written.documents_indexed += documents
    written.files_rejected += rejected
    written.points_expected += chunks
    written.unchanged += chunks
    written.unit_counts[key] = (documents, documents)


@dataclass
class _EmbedGroup:
    """Chunks of a few units that need vectors: what one call of the embedder gets."""

    texts: dict[str, Chunk] = field(default_factory=dict)  # cache key -> a chunk with that text
    pending: dict[str, list[str]] = field(default_factory=dict)  # cache key -> point ids waiting for it
    document_of: dict[str, tuple[str, str]] = field(default_factory=dict)  # point id -> (unit, doc_id)
    units: int = 0


def _join(group: _EmbedGroup, in_flight: _EmbedGroup) -> None:
    """Texts of `group` that `in_flight` is already embedding wait for its answer instead (a text shared
    by units of two groups, such as a repeated prompt); only `in_flight`'s waiting lists change."""
    for ck in [ck for ck in group.texts if ck in in_flight.texts]:
        del group.texts[ck]
        ids = group.pending.pop(ck)
        in_flight.pending[ck].extend(ids)
        in_flight.document_of.update((pid, group.document_of.pop(pid)) for pid in ids)


def _in_background(fn: Callable, *args) -> Future:
    """`fn(*args)` in a thread of its own. A daemon thread rather than an executor's: an interrupted
    run must not wait at exit for requests nobody will use (the embedder's close() ends them)."""
    future: Future = Future()

    def run() -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to the caller of result()
                future.set_exception(exc)

    threading.Thread(target=run, name="embed", daemon=True).start()
    return future


def _timed(items: Iterator[tuple], report: ReadReport) -> Iterator[tuple]:
    """`items`, adding to `report.seconds` only the time spent producing them (not the caller's)."""
    while True:
        start = time.perf_counter()
        item = next(items, None)
        report.seconds += time.perf_counter() - start
        if item is None:
            return
        yield item
