"""Discovery, unit keys and fingerprints (corpus.py)."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest

from indexer_pipeline import corpus
from indexer_pipeline.config import Settings
from indexer_pipeline.corpus import (
    MAX_KEY_LENGTH,
    CorpusError,
    corpus_fingerprints,
    discover_units,
    find_unit,
    unit_files,
    unit_fingerprint,
)
from indexer_pipeline.pipeline import Indexer

URL_SAFE = re.compile(r"^[A-Za-z0-9._-]+$")
TASK_A = "3f2b8c1e-7d4a-4e0b-9a51-6c0d2e8f1a23"
TASK_B = "8e4d2a90-1b7c-4f3e-a6d5-0c9b8a7f6e54"


def write(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def make_task(root: Path, task_id: str, store: str = "tasks") -> Path:
    return write(root / store / task_id / "api_conversation_history.json", "[]").parent


def keys(roots) -> list[str]:
    return [u.key for u in discover_units(roots)]


def sha8(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()[:8]


# -- discovery ---------------------------------------------------------------------------------


def test_task_store_children_are_task_units_except_bookkeeping_names(tmp_path):
    make_task(tmp_path, TASK_A)
    make_task(tmp_path, TASK_B)
    write(tmp_path / "tasks" / "_index.json", "{}")
    (tmp_path / "tasks" / "_staging").mkdir()
    (tmp_path / "tasks" / ".tmp-upload").mkdir()

    units = discover_units([tmp_path])

    assert [(u.key, u.kind) for u in units] == [(f"task-{TASK_A}", "task"), (f"task-{TASK_B}", "task")]
    assert units[0].path == tmp_path / "tasks" / TASK_A
    assert units[0].root == tmp_path


def test_other_top_level_entries_are_tree_units(tmp_path):
    make_task(tmp_path, TASK_A)
    write(tmp_path / "docs" / "guide.md")
    write(tmp_path / "faq.md")
    write(tmp_path / "data.csv", "a,b\n1,2\n")
    write(tmp_path / ".git" / "HEAD")  # hidden
    write(tmp_path / ".notes.md")  # hidden
    write(tmp_path / "logo.png")  # no reader could use it: not a unit

    units = {u.key: u for u in discover_units([tmp_path])}

    assert sorted(units) == ["doc-data.csv", "doc-docs", "doc-faq.md", f"task-{TASK_A}"]
    assert units["doc-docs"].kind == "tree"
    assert units["doc-faq.md"].path == tmp_path / "faq.md"


def test_a_root_that_is_a_tasks_folder_works(tmp_path):
    store = tmp_path / "tasks"
    make_task(tmp_path, TASK_A)
    write(store / "_index.json", "{}")

    assert keys([store]) == [f"task-{TASK_A}"]


def test_a_top_level_folder_with_a_conversation_file_is_a_task(tmp_path):
    write(tmp_path / TASK_A / "ui_messages.json", "[]")
    write(tmp_path / TASK_B / "history_item.json", "{}")
    write(tmp_path / "notes" / "todo.md")

    units = {u.key: u.kind for u in discover_units([tmp_path])}

    assert units == {f"task-{TASK_A}": "task", f"task-{TASK_B}": "task", "doc-notes": "tree"}


def test_odd_names_give_distinct_url_safe_keys(tmp_path):
    names = [
        "my notes.md",
        "my-notes.md",
        "café.md",
        "cafe.md",
        "日本語.md",
        "line\nbreak.md",
        "semi;colon&amp.md",
        "x" * 200 + "1.md",  # too long for a key: cut, told apart by the hash
        "x" * 200 + "2.md",
    ]
    for name in names:
        write(tmp_path / name)

    found = keys([tmp_path])

    assert len(found) == len(set(found)) == len(names)
    for key in found:
        assert URL_SAFE.match(key), key
        assert len(key) <= MAX_KEY_LENGTH
    # A name that slugs to itself keeps a readable key; a changed one carries a hash of the original.
    assert "doc-my-notes.md" in found
    assert f"doc-my-notes.md-{sha8('my notes.md')}" in found
    assert f"doc-cafe.md-{sha8('café.md')}" in found


def test_keys_are_stable_across_runs(tmp_path):
    for name in ("a b.md", "docs", "ü.txt"):
        write(tmp_path / name / "x.md" if name == "docs" else tmp_path / name)
    make_task(tmp_path, TASK_A)

    assert keys([tmp_path]) == keys([tmp_path])
    assert discover_units([tmp_path]) == discover_units([Path(os.path.relpath(tmp_path))])


def test_colliding_names_in_several_roots_get_unique_keys(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    for root in (first, second):
        make_task(root, TASK_A)
        write(root / "docs" / "guide.md")
    root_hash = hashlib.sha1(str(second).encode()).hexdigest()[:6]

    units = discover_units([first, second])

    by_root = {(u.root.name, u.path.name): u.key for u in units}
    assert by_root[("first", TASK_A)] == f"task-{TASK_A}"
    assert by_root[("first", "docs")] == "doc-docs"
    assert by_root[("second", TASK_A)] == f"task-{TASK_A}-{root_hash}"
    assert by_root[("second", "docs")] == f"doc-docs-{root_hash}"
    assert len({u.key for u in units}) == 4


def test_a_root_listed_twice_counts_once(tmp_path):
    write(tmp_path / "guide.md")

    assert keys([tmp_path, tmp_path / "." / ""]) == ["doc-guide.md"]


def test_a_missing_root_is_an_error_not_an_empty_corpus(tmp_path):
    # An empty listing would read as "every unit was deleted" and remove their points.
    with pytest.raises(CorpusError, match="is not a folder"):
        discover_units([tmp_path / "nope"])


def test_find_unit_agrees_with_discovery(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    for root in (first, second):
        make_task(root, TASK_A)
        write(root / "docs" / "guide.md")
    make_task(second, TASK_B)
    write(second / "odd name.md")
    write(first / TASK_B / "ui_messages.json", "[]")  # a top-level task folder in another root
    roots = [first, second]

    for unit in discover_units(roots):
        assert find_unit(roots, unit.key) == unit
    assert find_unit(roots, "doc-gone.md") is None
    assert find_unit(roots, "doc-../first") is None
    assert find_unit(roots, "") is None


def test_resolving_many_hashed_keys_lists_the_corpus_once(tmp_path, monkeypatch):
    for i in range(20):
        write(tmp_path / f"note {i}.md")  # a space: the key is slugged and hashed, not a plain name
    write(tmp_path / "plain.md")
    keys = [u.key for u in discover_units([tmp_path])]
    listings = []
    real = corpus.discover_units
    monkeypatch.setattr(corpus, "discover_units", lambda roots: listings.append(1) or real(roots))

    found, gone = Indexer(Settings(corpus_dirs=[tmp_path])).resolve([*keys, "doc-gone-0badcafe"])

    assert [u.key for u in found] == keys and gone == ["doc-gone-0badcafe"]
    assert len(listings) == 1  # was one listing per hashed key (21 here)


# -- the files of a unit, and fingerprints -------------------------------------------------------


def only(roots, key):
    unit = find_unit(roots, key)
    assert unit is not None
    return unit


def test_task_files_are_the_conversation_and_metadata_files(tmp_path):
    folder = make_task(tmp_path, TASK_A)
    write(folder / "ui_messages.json", "[]")
    write(folder / "checkpoints" / "notes.md")  # not a task file

    files = unit_files(only([tmp_path], f"task-{TASK_A}"))

    assert [f.rel for f in files] == [
        f"tasks/{TASK_A}/api_conversation_history.json",
        f"tasks/{TASK_A}/ui_messages.json",
    ]
    assert all(f.problem is None and f.size == 2 for f in files)


def test_tree_files_skip_hidden_names_and_other_formats(tmp_path):
    write(tmp_path / "docs" / "a.md")
    write(tmp_path / "docs" / "sub" / "b.JSON", "{}")
    write(tmp_path / "docs" / ".cache" / "c.md")
    write(tmp_path / "docs" / "diagram.png")

    files = unit_files(only([tmp_path], "doc-docs"))

    assert [f.rel for f in files] == ["docs/a.md", "docs/sub/b.JSON"]


def test_fingerprint_is_stable_and_changes_with_any_read_file(tmp_path):
    page = write(tmp_path / "docs" / "a.md", "one")
    unit = only([tmp_path], "doc-docs")
    before = unit_fingerprint(unit)

    assert unit_fingerprint(unit) == before
    write(tmp_path / "docs" / "logo.png", "not read")  # ignored by the reader, so by the fingerprint too
    assert unit_fingerprint(unit) == before

    st = page.stat()
    os.utime(page, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # touched, same size and contents
    touched = unit_fingerprint(unit)
    assert touched != before

    page.write_text("two!", encoding="utf-8")
    rewritten = unit_fingerprint(unit)
    assert rewritten != touched

    extra = write(tmp_path / "docs" / "b.md")
    added = unit_fingerprint(unit)
    assert added != rewritten
    extra.unlink()
    assert unit_fingerprint(unit) == rewritten


def test_fingerprint_of_a_task_changes_when_its_conversation_does(tmp_path):
    folder = make_task(tmp_path, TASK_A)
    unit = only([tmp_path], f"task-{TASK_A}")
    before = unit_fingerprint(unit)

    write(folder / "checkpoints" / "HEAD")
    assert unit_fingerprint(unit) == before
    write(folder / "api_conversation_history.json", '[{"role": "user", "content": "hi"}]')
    assert unit_fingerprint(unit) != before


def test_symlinks_out_of_the_corpus_or_in_loops_are_not_followed(tmp_path):
    root, outside = tmp_path / "corpus", tmp_path / "outside"
    secret = write(outside / "big.md", "outside text")
    write(root / "docs" / "a.md")
    write(root / "shared" / "b.md")
    (root / "docs" / "escape.md").symlink_to(secret)
    (root / "docs" / "outside-dir").symlink_to(outside, target_is_directory=True)
    (root / "docs" / "back-up").symlink_to(root / "docs", target_is_directory=True)
    (root / "docs" / "shared").symlink_to(root / "shared", target_is_directory=True)  # another unit
    (root / "docs" / "self.md").symlink_to("self.md")
    unit = only([root], "doc-docs")

    problems = {f.rel: f.problem for f in unit_files(unit)}

    assert problems["docs/a.md"] is None
    assert not any(rel.startswith("docs/shared") for rel in problems)  # indexed by doc-shared, once
    assert problems["docs/escape.md"].startswith("symlink leaves the corpus")
    assert problems["docs/outside-dir"].startswith("symlink leaves the corpus")
    assert problems["docs/back-up"].startswith("symlink loop")
    assert problems["docs/self.md"] == "symlink loop"
    before = unit_fingerprint(unit)
    secret.write_text("changed outside the corpus", encoding="utf-8")
    assert unit_fingerprint(unit) == before


def test_corpus_fingerprints_cover_every_unit(tmp_path):
    make_task(tmp_path, TASK_A)
    write(tmp_path / "guide.md")
    (tmp_path / "empty").mkdir()

    fingerprints = corpus_fingerprints([tmp_path])

    assert sorted(fingerprints) == ["doc-empty", "doc-guide.md", f"task-{TASK_A}"]
    assert len(set(fingerprints.values())) == 3
