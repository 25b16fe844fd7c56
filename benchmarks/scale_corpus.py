"""bench_groups' corpus, generated in batches fast enough for a million points.

The same structure (units of 40 chunks, each chunk half its unit's topic words, half Zipf words over a
20,000-word vocabulary) and the same vectors as the embedding simulator gives those texts (the normalized
sum of one vector per distinct word), computed for a whole batch as one sparse-matrix product instead
of a Python loop per chunk. Batches are yielded and dropped: a million points as Python lists would
take ~12 GB.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import scipy.sparse
from bench_groups import TASK_CHUNKS, TOPIC_WORDS, VOCABULARY, WORDS_PER_CHUNK

from indexer_pipeline.embeddings.simulator import EmbeddingSimulator
from indexer_pipeline.sparse import bm25_document
from indexer_pipeline.vectorstore.base import GROUP, StoredPoint, group_of

WORDS = np.array([f"w{k}" for k in range(VOCABULARY)])


def word_matrix(dim: int) -> np.ndarray:
    """The simulator's vector of every vocabulary word, one row each."""
    sim = EmbeddingSimulator(dimensions=dim)
    return np.stack([sim.word_vector(w, dim) for w in WORDS])


def vectors(word_ids: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Rows of word ids -> the simulator's vectors of those texts (distinct words summed, normalized)."""
    rows = np.repeat(np.arange(len(word_ids)), word_ids.shape[1])
    counts = scipy.sparse.csr_matrix(
        (np.ones(rows.size, np.float32), (rows, word_ids.ravel())), shape=(len(word_ids), len(table))
    )
    counts.data[:] = 1  # duplicates were summed: a word counts once, as in the simulator
    out = counts @ table
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


ZIPF = 1 / np.arange(1, VOCABULARY + 1)
ZIPF /= ZIPF.sum()


def topic(seed: int, unit: int) -> np.ndarray:
    """A unit's TOPIC_WORDS word ids, from the rarer nine tenths of the vocabulary, drawn from its own seed."""
    return np.random.default_rng((seed, unit)).integers(VOCABULARY // 10, VOCABULARY, TOPIC_WORDS)


def chunk_words(rng: np.random.Generator, topics: np.ndarray) -> np.ndarray:
    """One chunk per row of `topics`: half words of that topic, half Zipf words; word ids, one row each."""
    half = WORDS_PER_CHUNK // 2
    return np.concatenate(
        [
            np.take_along_axis(topics, rng.integers(0, TOPIC_WORDS, (len(topics), half)), axis=1),
            rng.choice(VOCABULARY, (len(topics), half), p=ZIPF),
        ],
        axis=1,
    )


def batches(points: int, dim: int, batch: int = 4096, seed: int = 5) -> Iterator[list[StoredPoint]]:
    """`points` points, in batches."""
    rng = np.random.default_rng(seed)
    table = word_matrix(dim)
    for start in range(0, points, batch):
        n = min(batch, points - start)
        index = np.arange(start, start + n)
        unit = index // TASK_CHUNKS
        topics = {u: topic(seed, u) for u in np.unique(unit).tolist()}
        ids = chunk_words(rng, np.stack([topics[u] for u in unit.tolist()]))
        out = []
        for i, row, u, vector in zip(index.tolist(), ids, unit.tolist(), vectors(ids, table), strict=True):
            text = " ".join(WORDS[row])
            c = i % TASK_CHUNKS
            payload = {
                "unit": f"task-{u}",
                "doc_id": f"task-{u}:m{c:05d}",
                "kind": "task",
                "role": "user" if c % 2 else "assistant",
                "workspace": f"/ws/{u % 7}",
                "timestamp": 1_700_000_000_000 + i * 1000,
                "chunk_index": 0,
                "title": f"unit {u}",
                "text": text,
            }
            payload[GROUP] = group_of(payload)
            point_id = str(uuid.uuid5(uuid.NAMESPACE_OID, str(i)))
            out.append(StoredPoint(point_id, vector.tolist(), payload, bm25_document(text)))
        yield out


def queries(n: int, points: int, dim: int, seed: int = 5) -> np.ndarray:
    """Vectors of `n` held-out chunks of the corpus's units (`seed` the corpus's): on the shard's
    topics, as a user's query is (a chunk of a topic the shard lacks has only common words)."""
    rng = np.random.default_rng((seed, 1))
    units = rng.integers(0, max(1, points // TASK_CHUNKS), n).tolist()
    return vectors(chunk_words(rng, np.stack([topic(seed, u) for u in units])), word_matrix(dim))
