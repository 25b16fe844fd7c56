"""The SQLite embedding cache, with a clock the tests move by hand."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from indexer_pipeline.embeddings.cache import EmbeddingCache

DAY = 86400.0


class ManualClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def vector(seed: int, dimensions: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(dimensions).astype(np.float32)


def keys(n: int, model: str = "m") -> list[str]:
    return [EmbeddingCache.key("local", model, 8, f"text {i}") for i in range(n)]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def cache(tmp_path, clock):
    c = EmbeddingCache(tmp_path / "cache" / "embeddings.sqlite", ttl_s=7 * DAY, max_entries=100, clock=clock)
    yield c
    c.close()


def test_vectors_round_trip_bit_for_bit_across_more_keys_than_one_query_takes(cache):
    stored = {k: vector(i) for i, k in enumerate(keys(1234))}  # > 2 IN-lists of 500
    cache.put_many(stored)
    got = cache.get_many(list(stored) + ["absent"])
    assert got.keys() == stored.keys()
    for k, v in stored.items():
        assert got[k].dtype == np.float32 and got[k].tobytes() == v.tobytes()
    got[k][0] = 0  # a caller may modify what it got back


def test_float64_input_is_stored_as_float32(cache):
    (k,) = keys(1)
    cache.put_many({k: np.array([0.1, 0.2], dtype=np.float64)})
    np.testing.assert_array_equal(cache.get_many([k])[k], np.array([0.1, 0.2], dtype=np.float32))


def test_the_key_depends_on_every_part():
    base = ("openai", "text-embedding-3-small", 1536, "hello")
    variants = [
        ("local", *base[1:]),
        (base[0], "text-embedding-3-large", *base[2:]),
        (*base[:2], 512, base[3]),
        (*base[:3], "hello "),
        ("open", "aitext-embedding-3-small", 1536, "hello"),  # same characters, split elsewhere
    ]
    assert len({EmbeddingCache.key(*base), *(EmbeddingCache.key(*v) for v in variants)}) == 6
    assert EmbeddingCache.key(*base) == EmbeddingCache.key(*base)


def test_entries_expire_a_ttl_after_their_last_use_not_their_creation(cache, clock):
    """Item 6: a hit renews the entry, so text in use never expires; unused entries are pruned."""
    used, unused, renewed = keys(3)
    cache.put_many({used: vector(1), unused: vector(2), renewed: vector(3)})
    for _ in range(3):  # three weeks, each entry but one used every six days
        clock.now += 6 * DAY
        assert cache.get_many([used]).keys() == {used}
        assert cache.renew([renewed, "absent"]) == {
            renewed: len(vector(3))
        }  # sizes only, renewed all the same
    assert cache.get_many([unused]) == {}  # unused for 18 days: expired, a miss
    assert cache.prune() == 1 and cache.stats()["entries"] == 2
    clock.now += 7 * DAY  # now the others are unused for a whole TTL too
    assert cache.get_many([used, renewed]) == {}
    assert cache.prune() == 2


def test_prune_keeps_the_most_recently_used_within_the_bound(cache, clock):
    ks = keys(150)
    for i, k in enumerate(ks):
        clock.now += 1
        cache.put_many({k: vector(i)})
    clock.now += 1
    cache.get_many(ks[:10])  # the oldest ten were used just now
    assert cache.prune() == 50
    assert cache.stats()["entries"] == 100
    assert cache.get_many(ks).keys() == set(ks[:10]) | set(ks[60:])


def test_put_replaces_and_stats_count_entries_and_bytes(cache):
    (k,) = keys(1)
    cache.put_many({k: vector(1)})
    cache.put_many({k: vector(2)})
    assert cache.get_many([k])[k].tobytes() == vector(2).tobytes()
    stats = cache.stats()
    assert stats["entries"] == 1 and stats["bytes"] > 0


def test_entries_survive_reopening(tmp_path, clock):
    path = tmp_path / "embeddings.sqlite"
    first = EmbeddingCache(path, clock=clock)
    first.put_many({k: vector(i) for i, k in enumerate(keys(10))})
    first.close()
    again = EmbeddingCache(path, clock=clock)
    assert len(again.get_many(keys(10))) == 10
    again.close()


def test_two_threads_write_and_read_at_once(cache):
    errors: list[BaseException] = []

    def work(model: str) -> None:
        try:
            ks = keys(300, model)
            for i in range(0, 300, 30):
                cache.put_many({k: vector(j) for j, k in enumerate(ks[i : i + 30], start=i)})
                assert len(cache.get_many(ks[: i + 30])) == i + 30
        except BaseException as exc:  # surfaced below: a thread's failure would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(m,)) for m in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    cache.max_entries = 1000
    assert cache.prune() == 0 and cache.stats()["entries"] == 600


def test_a_hit_on_an_entry_used_within_the_minute_writes_nothing(cache, clock):
    """Issue 12, item 4: the write stage reads back every vector the embed stage has just stored; that
    read must not rewrite them (the old code rewrote each row on every hit). A later hit still renews."""
    ks = keys(50)
    cache.put_many({k: vector(i) for i, k in enumerate(ks)})
    writes = cache._db.total_changes
    clock.now += 30
    assert cache.get_many(ks).keys() == set(ks) and cache.renew(ks).keys() == set(ks)
    assert cache._db.total_changes == writes  # nothing recorded: the last use is 30 s old
    clock.now += 31
    assert cache.get_many(ks[:20]).keys() == set(ks[:20])
    assert cache._db.total_changes == writes + 20  # past the minute: these uses are recorded
    clock.now += 7 * DAY - 30  # under 7 days since the first 20 were last used, over for the rest
    assert cache.get_many(ks).keys() == set(ks[:20])
