"""The plain data that flows through the pipeline: units, documents, rejections, chunks."""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from .redaction import redact

# Namespace for deterministic point ids: the same chunk always gets the same UUID, so a
# re-run overwrites instead of duplicating (the old system's random ids made 60 M duplicates).
POINT_NAMESPACE = uuid.UUID("5b0f3c1e-8d1a-4f55-9a57-3f6c2f1d7a10")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def display_text(text: str) -> str:
    """File names that are not UTF-8 arrive with surrogate escapes; show those bytes as U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", "replace")


@dataclass(frozen=True)
class SourceUnit:
    """One Dagster partition: a Roo Code/Cline task folder, or a top-level entry of a document tree."""

    key: str  # partition key: URL-safe, unique across corpus roots
    root: Path  # the corpus root it was found in
    path: Path  # the task folder, or the top-level folder/file
    kind: str  # "task" or "tree"

    @property
    def shown_path(self) -> str:
        """The unit's path as it may be stored or shown: valid UTF-8, without secrets."""
        return redact(display_text(str(self.path)))[0]


@dataclass
class Document:
    """A piece of source text with a stable id: one conversation message, one file, one JSONL/CSV row."""

    doc_id: str  # stable across runs
    unit: str
    path: str  # path relative to the corpus root, for display
    text: str
    metadata: dict = field(default_factory=dict)  # source metadata copied onto every chunk's payload

    @property
    def sha256(self) -> str:
        return sha256_text(self.text)


@dataclass(frozen=True)
class Rejection:
    """Input that could not become a document, with the reason a person can act on."""

    unit: str
    path: str
    reason: str


@dataclass
class UnitContent:
    unit: SourceUnit
    documents: list[Document]
    rejected: list[Rejection]
    redactions: int = 0  # secrets the reader replaced in what it returns

    @property
    def seen(self) -> int:
        return len(self.documents) + len(self.rejected)


@dataclass(frozen=True)
class Chunk:
    """A token-bounded slice of a (redacted) document; becomes exactly one Qdrant point."""

    unit: str
    doc_id: str
    chunk_index: int
    text: str
    tokens: int
    payload: dict  # source metadata (unit, doc_id, path, ...) without the text

    @cached_property  # computed once per chunk: each stage asks for it several times
    def point_id(self) -> str:
        return str(uuid.uuid5(POINT_NAMESPACE, f"{self.doc_id}\x1f{self.chunk_index}"))
