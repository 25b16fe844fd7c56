"""The persistent embedding cache: exact round trip, TTL, size bound, keys, reopen, threads."""

from __future__ import annotations

import threading

import numpy as np

from indexer_pipeline.embeddings.cache import EmbeddingCache


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def vec(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(16).astype(np.float32)


def test_round_trip_is_exact_and_survives_reopen(tmp_path):
    path = tmp_path / "cache.sqlite"
    cache = EmbeddingCache(path)
    keys = [EmbeddingCache.key("openai", "m", 16, f"text {i}") for i in range(1200)]  # > one IN batch
    cache.put_many({k: vec(i) for i, k in enumerate(keys)})
    cache.close()
    reopened = EmbeddingCache(path)
    got = reopened.get_many(keys + ["missing"])
    assert len(got) == 1200 and np.array_equal(got[keys[5]], vec(5))
    assert reopened.stats()["entries"] == 1200


def test_key_depends_on_provider_model_dimensions_and_text():
    base = EmbeddingCache.key("openai", "text-embedding-3-small", 1536, "hello")
    others = [
        EmbeddingCache.key("local", "text-embedding-3-small", 1536, "hello"),
        EmbeddingCache.key("openai", "text-embedding-3-large", 1536, "hello"),
        EmbeddingCache.key("openai", "text-embedding-3-small", 512, "hello"),
        EmbeddingCache.key("openai", "text-embedding-3-small", 1536, "hello "),
    ]
    assert base not in others and len(set(others)) == 4


def test_entries_expire_after_the_ttl_and_are_pruned(tmp_path):
    clock = Clock()
    cache = EmbeddingCache(tmp_path / "c.sqlite", ttl_s=100, clock=clock)
    cache.put_many({"a": vec(1)})
    clock.now += 99
    assert "a" in cache.get_many(["a"])
    clock.now += 2
    assert cache.get_many(["a"]) == {}
    assert cache.prune() == 1 and cache.stats()["entries"] == 0


def test_size_bound_removes_the_least_recently_used(tmp_path):
    clock = Clock()
    cache = EmbeddingCache(tmp_path / "c.sqlite", max_entries=3, clock=clock)
    for i, key in enumerate("abcd"):
        clock.now += 1
        cache.put_many({key: vec(i)})
    clock.now += 1
    cache.get_many(["a"])  # used recently: kept
    assert cache.prune() == 1
    assert set(cache.get_many(list("abcd"))) == {"a", "c", "d"}


def test_two_threads_share_one_cache(tmp_path):
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    errors = []

    def work(offset: int) -> None:
        try:
            for i in range(50):
                cache.put_many({f"{offset}-{i}": vec(i)})
                assert f"{offset}-{i}" in cache.get_many([f"{offset}-{i}"])
        except Exception as exc:  # collected: an assertion in a thread would not fail the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and cache.stats()["entries"] == 100
