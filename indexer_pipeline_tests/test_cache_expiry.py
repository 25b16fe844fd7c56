"""Item 6: an expired embedding cache never re-embeds text whose point is already stored.

The pipeline runs against the simulator (real `openai` SDK) and the embedded store, with a cache
whose clock the test moves; inputs are counted at the simulator.
"""

from __future__ import annotations

import json

import pytest

from indexer_pipeline.config import Settings
from indexer_pipeline.embeddings.cache import EmbeddingCache
from indexer_pipeline.pipeline import Indexer

from .conftest import simulator_settings
from .test_cache import DAY, ManualClock

MESSAGES = 30


def conversation(n: int) -> list[dict]:
    return [
        {
            "role": "user" if i % 2 == 0 else "assistant",
            "ts": 1_760_000_000_000 + i,
            "content": f"Message {i}: "
            f"the importer step {i} fails on row {i * 7}; retry with backoff and log the row id.",
        }
        for i in range(n)
    ]


@pytest.fixture
def world(tmp_path, simulator):
    path = tmp_path / "corpus" / "tasks" / "task-a" / "api_conversation_history.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(conversation(MESSAGES)))
    settings = simulator_settings(simulator, tmp_path / "data", corpus_dirs=[tmp_path / "corpus"])
    return settings, path, ManualClock()


def index(settings: Settings, clock: ManualClock, simulator) -> tuple[int, object, object]:
    """One index of the whole corpus; returns (inputs embedded at the simulator, embed and write reports)."""
    before = simulator.stats()["inputs"]
    cache = EmbeddingCache(settings.cache_path, ttl_s=settings.cache_ttl_days * DAY, clock=clock)
    with Indexer(settings, cache=cache) as ix:
        _, embedded, written = ix.index(ix.units())
    return simulator.stats()["inputs"] - before, embedded, written


def test_one_appended_message_on_day_8_embeds_only_the_new_chunk(world, simulator):
    settings, path, clock = world
    first, _, written = index(settings, clock, simulator)
    assert first == MESSAGES and written.upserted == MESSAGES
    clock.now += 8 * DAY  # every cache entry is past the 7-day TTL
    path.write_text(json.dumps(conversation(MESSAGES + 1)))
    inputs, embedded, written = index(settings, clock, simulator)
    assert inputs == 1 == embedded.embedded  # the old code re-embedded all 31
    assert embedded.already_stored == MESSAGES
    assert written.upserted == 1 and written.unchanged == MESSAGES and written.missing_vectors == 0


def test_payload_change_after_expiry_reuses_the_stored_vector(world, simulator):
    settings, path, clock = world
    index(settings, clock, simulator)
    clock.now += 8 * DAY
    messages = conversation(MESSAGES)
    messages[3]["ts"] += 1000  # same text, new timestamp: the point must be rewritten, not re-embedded
    path.write_text(json.dumps(messages))
    inputs, _, written = index(settings, clock, simulator)
    assert inputs == 0
    assert written.upserted == 1 and written.vectors_from_store == 1 and written.missing_vectors == 0


def test_point_deleted_by_another_client_after_expiry_is_restored_in_one_run(world, simulator):
    settings, path, clock = world
    index(settings, clock, simulator)
    clock.now += 8 * DAY
    with Indexer(settings) as ix:  # another client deletes a point behind the product's back
        store = ix.store()
        victim = sorted(store.unit_hashes("task-task-a"))[0]
        store.delete([victim])
        store.flush()
    path.write_text(json.dumps(conversation(MESSAGES + 1)))
    inputs, _, written = index(settings, clock, simulator)
    assert inputs == 2  # the new chunk, and the lost point's text, which existed nowhere any more
    assert written.embedded_late == 1 and written.missing_vectors == 0
    with Indexer(settings) as ix:
        assert victim in ix.store().unit_hashes("task-task-a")
        assert ix.store().count() == MESSAGES + 1


def test_cache_expiry_does_not_hide_a_changed_text(world, simulator):
    """The stored point holds another text's vector: the new text is embedded, not reused."""
    settings, path, clock = world
    index(settings, clock, simulator)
    clock.now += 8 * DAY
    messages = conversation(MESSAGES)
    messages[5]["content"] += " Edited."
    path.write_text(json.dumps(messages))
    inputs, embedded, written = index(settings, clock, simulator)
    assert inputs == 1 == embedded.embedded and written.vectors_from_store == 0 and written.upserted == 1
