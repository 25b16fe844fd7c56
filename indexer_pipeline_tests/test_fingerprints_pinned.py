"""Unit fingerprints and the files of a unit are pinned: a changed fingerprint re-reads every user's corpus.

The change sensor compares each unit's fingerprint with the one recorded at its last index, and an
unchanged re-run skips units by it; the values below were computed with the code of main before the
sensor work of issue 12 (item 5), on a corpus with every kind of entry the walk treats apart: a task
with a folder and a broken link among its files, a tree with a nested folder, a hidden folder, a file
of another format and a link inside the unit, a single-file unit, a name whose bytes are not UTF-8.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from indexer_pipeline.corpus import discover_units, unit_files, unit_fingerprint

STAMP_NS = 1_700_000_000_123_456_789

PINNED = {
    "doc-caf-notes-60d2527c": "aee0d1d2f90fc9c502cacb8e93f84004",
    "doc-handbook": "8c0cba22498f8023d16ceb0f268a848c",
    "doc-single.rst": "d4b51899f4d85c36159041ca00d4bfd5",
    "task-0b1c2d3e-task": "47bfea721a175633dd09d89b9f4f451f",
    "task-oddtask": "b5d318855a6bf599957eb6d022fd2568",
}
FILES_DIGEST = "58a4b2c39ee78c20d1c8bf72648bfa89e7a88ba98f668ab659d2f1face82ba04"


def build(root: Path) -> None:
    def write(path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    task = root / "tasks" / "0b1c2d3e-task"
    write(task / "api_conversation_history.json", '[{"role": "user", "content": "hi"}]')
    write(task / "ui_messages.json", "[]")
    write(task / "task_metadata.json", "{}")
    write(task / "checkpoints" / "x.json", "{}")  # a folder beside the task's files: not visited
    (task / "history_item.json").symlink_to("missing.json")  # a broken link among them
    tree = root / "handbook"
    write(tree / "intro.md", "# Intro\n\ntext")
    write(tree / "deep" / "notes.txt", "notes")
    write(tree / "deep" / "image.png", "binary")
    write(tree / ".hidden" / "x.md", "hidden")
    (tree / "deep" / "link.md").symlink_to("../intro.md")  # inside the unit: indexed under its real path
    write(root / "single.rst", "Title\n=====\n")
    write(root / os.fsdecode(b"caf\xe9-notes") / "a.md", "latin-1 name")
    write(root / "oddtask" / "ui_messages.json", "[]")
    for folder, dirs, files in os.walk(root):
        for name in files + dirs:
            os.utime(os.path.join(folder, name), ns=(STAMP_NS, STAMP_NS), follow_symlinks=False)


def files_digest(root: Path) -> str:
    """Everything a reader gets from `unit_files`, for every unit, as one digest."""
    h = hashlib.sha256()
    for unit in discover_units([root]):
        for f in unit_files(unit):
            where = os.fsencode(f.path.relative_to(root))
            h.update(repr((unit.key, f.rel, f.size, f.mtime_ns, f.problem, f.raw, f.ref, where)).encode())
    return h.hexdigest()


def test_fingerprints_and_unit_files_are_unchanged(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    build(root)
    assert {u.key: unit_fingerprint(u) for u in discover_units([root])} == PINNED
    assert files_digest(root) == FILES_DIGEST
