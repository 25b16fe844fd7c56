"""Where the corpus's source units are, what their partition keys are, and which files belong to each.

A corpus is one or more roots. In each root:
- Roo Code / Cline task storage: every folder in `tasks/` is a task unit (names starting with `_` or
  `.`, such as `tasks/_index.json`, are Roo's bookkeeping). A root that is itself named `tasks` is read
  the same way, and any other top-level folder holding a conversation file is a task too.
- Everything else at the top level (not hidden) is a document-tree unit: a folder, walked recursively,
  or a single file of a supported format. Top-level files of other formats are not units: they could
  never produce a document.

Only file metadata is read here (never contents), so the change sensor can fingerprint 10,000 units
in a tick. Symlinks are followed only while they stay inside their corpus root; one that leaves it,
loops or dangles becomes a `UnitFile` with a `problem`, which the reader records as a rejection.

Every file is indexed once, under its real path. So a symlink whose target overlaps a unit of the
corpus (lies inside one, the linking unit included, or holds one) is not followed: those files are
indexed where they really are. A top-level symlink to another unit (or to the task store) is no unit,
for the same reason. A link to what no unit covers (a hidden folder, a file outside any unit) is
followed and indexed under the link's path.

Names are made safe here, once: unit keys and file ids are built from redacted names (a secret in a
folder name must not reach a partition key), and a name whose bytes are not UTF-8 keeps a hash of
those bytes in its id, so two names that display alike stay two units or two documents.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import operator
import os
import re
import stat
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

from .models import SourceUnit, display_text
from .redaction import redact

TASK_STORE = "tasks"
# The files of a task folder the reader uses; the first four mark a folder as a task.
TASK_MARKERS = (
    "api_conversation_history.json",
    "claude_messages.json",
    "ui_messages.json",
    "history_item.json",
)
TASK_FILES = (*TASK_MARKERS, "task_metadata.json")

# Document-tree files by suffix (lower-cased) → format name recorded in the metadata.
TREE_FORMATS = {
    ".md": "md",
    ".markdown": "md",
    ".txt": "txt",
    ".text": "txt",
    ".rst": "rst",
    ".html": "html",
    ".htm": "html",
    ".json": "json",
    ".jsonl": "jsonl",
    ".csv": "csv",
}

MAX_KEY_LENGTH = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class CorpusError(RuntimeError):
    """A root or task store that cannot be listed. Raised, never skipped: an empty listing would
    look like every unit was deleted, and the cleanup job would remove their points."""


@dataclass(frozen=True)
class UnitFile:
    """A file of a unit as the walk found it; `problem` says why it cannot be read, if so."""

    path: Path  # where to open it (a symlink inside the corpus is opened through its link)
    rel: str  # path relative to the corpus root, "/"-separated, valid UTF-8 (for display)
    size: int = 0
    mtime_ns: int = 0
    problem: str | None = None
    raw: bytes = b""  # the relative path's real bytes

    @property
    def ref(self) -> str:
        """The file's part of a document id: `rel` when it spells the name exactly and holds no secret;
        else `rel` redacted plus a hash of the real bytes, so ids stay unique for any byte name."""
        shown, found = redact(self.rel)
        if not found and self.rel.encode("utf-8") == self.raw:
            return self.rel
        return f"{shown}~{hashlib.blake2b(self.raw, digest_size=6).hexdigest()}"


# -- unit keys ---------------------------------------------------------------------------------


def _short_hash(value: str, length: int = 8) -> str:
    return hashlib.sha1(os.fsencode(value)).hexdigest()[:length]


def _with_suffix(base: str, suffix: str) -> str:
    """`base-suffix`, with `base` cut so the key stays within MAX_KEY_LENGTH."""
    return f"{base[: MAX_KEY_LENGTH - len(suffix) - 1].rstrip('-')}-{suffix}"


@functools.lru_cache(maxsize=1 << 17)  # a pure function the change sensor asks for every unit at every tick
def make_key(prefix: str, name: str) -> str:
    """A URL-safe partition key for a name, without the secrets it may hold. When slugging or redaction
    changed the name, or it had to be cut, a hash of the original is appended, so two different names
    never share a key."""
    shown = redact(name)[0]
    ascii_name = unicodedata.normalize("NFKD", shown).encode("ascii", "ignore").decode()  # é → e
    slug = _UNSAFE.sub("-", ascii_name).strip("-")
    key = prefix + slug
    if slug == name and len(key) <= MAX_KEY_LENGTH:
        return key
    return _with_suffix(key, _short_hash(name))


# -- discovery ---------------------------------------------------------------------------------


_KEY_PREFIX = {"task": "task-", "tree": "doc-"}


def _list_dir(path: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(path) as entries:
            return sorted(entries, key=lambda e: e.name)
    except OSError as e:
        raise CorpusError(f"cannot list corpus folder {path}: {e.strerror or e}") from e


def _kind(name: str, path: str, is_dir: bool, in_store: bool) -> str | None:
    """What an entry of a root (or of a task store) is: "task", "tree", or None when it is no unit."""
    if in_store:
        return "task" if is_dir and not name.startswith(("_", ".")) else None
    if name.startswith(".") or (name == TASK_STORE and is_dir):  # the store's tasks are units, not it
        return None
    if is_dir and any(os.path.lexists(os.path.join(path, m)) for m in TASK_MARKERS):
        return "task"
    if is_dir or Path(name).suffix.lower() in TREE_FORMATS:
        return "tree"
    return None


def _places(root: Path) -> list[tuple[Path, bool]]:
    """The folders whose entries are units, each with whether it is a task store."""
    if root.name == TASK_STORE:
        return [(root, True)]
    return [(root, False), (root / TASK_STORE, True)]


def _roots(roots: Iterable[Path]) -> list[Path]:
    unique = list(dict.fromkeys(Path(os.path.abspath(r)) for r in roots))  # a root listed twice counts once
    for root in unique:
        if not root.is_dir():
            raise CorpusError(f"corpus root {root} is not a folder (check INDEXER_CORPUS_DIR)")
    return unique


def _overlaps(a: str, b: str) -> bool:
    """Whether one real path is the other or lies inside it."""
    return a == b or a.startswith(b.rstrip(os.sep) + os.sep) or b.startswith(a.rstrip(os.sep) + os.sep)


def _root_units(root: Path) -> list[tuple[Path, str]]:
    """(path, kind) of each unit of one root; a top-level link to another unit is none (see above)."""
    found = []
    for folder, in_store in _places(root):
        if in_store and not folder.is_dir():  # a root without tasks/
            continue
        for entry in _list_dir(folder):
            kind = _kind(entry.name, entry.path, entry.is_dir(), in_store)
            if kind:
                found.append((folder.joinpath(entry.name), kind, entry.is_symlink()))
    if not any(link for _, _, link in found):
        return [(path, kind) for path, kind, _ in found]
    reals = [os.path.realpath(path) for path, _, link in found if not link]
    reals.extend(os.path.realpath(folder) for folder, _ in _places(root))  # the root and its store
    return [
        (path, kind)
        for path, kind, link in found
        if not (link and any(_overlaps(os.path.realpath(path), real) for real in reals))
    ]


def discover_units(roots: Iterable[Path]) -> list[SourceUnit]:
    """Every source unit of the corpus, sorted by key. Keys are stable across runs; when a later root
    yields a key already taken, the root's path hash (then the unit's path hash) is appended."""
    taken: set[str] = set()
    units = []
    for root in _roots(roots):
        for path, kind in _root_units(root):
            key = make_key(_KEY_PREFIX[kind], path.name)
            if key in taken:
                key = _with_suffix(key, _short_hash(str(root), 6))
            if key in taken:
                key = _with_suffix(key, _short_hash(str(path)))
            taken.add(key)
            units.append(SourceUnit(key=key, root=root, path=path, kind=kind))
    return sorted(units, key=lambda u: u.key)


def find_units(roots: Iterable[Path], keys: Iterable[str]) -> dict[str, SourceUnit]:
    """The units with these partition keys; a key whose unit left the corpus is absent.

    A key that is a plain prefix + file name names its unit directly, so a run over 10,000 partitions
    does not list the corpus 10,000 times. The other keys (hashed keys, a name found in more than one
    place, a unit that is gone) are settled together by one full discovery, which defines the keys.
    """
    roots = _roots(roots)
    found: dict[str, SourceUnit] = {}
    rest = set()
    for key in keys:
        unit = _named_unit(roots, key)
        if unit:
            found[key] = unit
        else:
            rest.add(key)
    if rest:
        found.update({u.key: u for u in discover_units(roots) if u.key in rest})
    return found


def find_unit(roots: Iterable[Path], key: str) -> SourceUnit | None:
    """The unit with this partition key, or None when it is no longer in the corpus."""
    return find_units(roots, [key]).get(key)


def _named_unit(roots: list[Path], key: str) -> SourceUnit | None:
    """The unit a plain key names, when exactly one entry of the roots has that name and key."""
    name = key.partition("-")[2]
    hits = []
    for root in roots:
        for folder, in_store in _places(root):
            path = os.path.join(folder, name)
            if not name or not os.path.lexists(path) or os.path.islink(path):  # links: see discovery
                continue
            kind = _kind(name, path, os.path.isdir(path), in_store)
            if kind and make_key(_KEY_PREFIX[kind], name) == key:
                hits.append(SourceUnit(key=key, root=root, path=Path(path), kind=kind))
    return hits[0] if len(hits) == 1 else None


# -- the files of a unit -----------------------------------------------------------------------


class _Found(NamedTuple):
    """A file as the walk found it: what a fingerprint hashes, and what a UnitFile is made of. Plain strings,
    no Path per file: the change sensor walks every unit of the corpus at each tick."""

    path: str
    rel: str
    raw: str  # the path relative to the root as the file system spells it ("" for a problem)
    size: int = 0
    mtime_ns: int = 0
    problem: str | None = None


@dataclass
class _Walk:
    unit: SourceUnit

    @cached_property
    def root_real(self) -> str:  # only needed when a symlink turns up
        return os.path.realpath(self.unit.root)

    @cached_property
    def unit_reals(self) -> list[str]:  # only needed when a symlink inside the corpus turns up
        return [os.path.realpath(u.path) for u in discover_units([self.unit.root])]

    def visits(self, name: str) -> bool:
        """Whether a folder's entry is looked at: a task's own files, or any visible name in a tree."""
        return name in TASK_FILES if self.unit.kind == "task" else not name.startswith(".")

    def wants(self, name: str) -> bool:
        """Whether a file of this name is read."""
        return self.visits(name) and (self.unit.kind == "task" or Path(name).suffix.lower() in TREE_FORMATS)

    def entry(
        self,
        path: str,
        name: str,
        rel: str,
        raw: str,
        is_link: bool,
        is_dir: bool,
        ancestors: tuple[str, ...],
    ) -> Iterable[_Found]:
        """Files for one directory entry: a file, a folder (walked) or a symlink (checked first). A plain
        file is returned in a tuple, not yielded: no generator per file."""
        if is_link:
            return self.symlink(path, rel, raw, ancestors)
        if is_dir:
            return self.folder(path, rel, raw, ancestors)
        return (self.file(path, rel, raw, os.lstat),) if self.wants(name) else ()

    def folder(self, path: str, rel: str, raw: str, ancestors: tuple[str, ...]):
        if self.unit.kind == "task" and ancestors:  # below a task folder only its own files are visited
            yield _Found(path, rel, "", problem="expected a file, found a folder")
            return
        try:
            with os.scandir(path) as it:
                entries = [e for e in it if self.visits(e.name)]
        except OSError as e:
            yield _Found(path, rel, "", problem=f"cannot list folder: {os_error_reason(e)}")
            return
        inside = (*ancestors, path)
        for e in entries:
            is_link, is_dir = e.is_symlink(), e.is_dir(follow_symlinks=False)
            yield from self.entry(
                e.path, e.name, f"{rel}/{display_text(e.name)}", f"{raw}/{e.name}", is_link, is_dir, inside
            )

    def symlink(self, path: str, rel: str, raw: str, ancestors: tuple[str, ...]):
        name = os.path.basename(path)
        target = os.path.realpath(path)
        try:
            st, error = os.stat(path), None
        except OSError as e:
            st, error = None, e
        if error is not None and error.errno == errno.ELOOP:
            problem = "symlink loop"
        elif not (target == self.root_real or target.startswith(self.root_real + os.sep)):
            problem = f"symlink leaves the corpus (points to {display_text(target)})"
        elif error is not None:
            problem = f"broken symlink: {os_error_reason(error)}"
        elif stat.S_ISDIR(st.st_mode) and target in {os.path.realpath(a) for a in ancestors}:
            problem = "symlink loop (points to a folder that contains it)"
        elif ancestors and any(_overlaps(target, real) for real in self.unit_reals):
            return  # indexed under its real path, by the unit it belongs to
        elif stat.S_ISDIR(st.st_mode):
            yield from self.folder(path, rel, raw, ancestors)
            return
        else:
            if self.wants(name):
                yield self.file(path, rel, raw, os.stat)
            return
        # A bad link is worth a rejection only if it could have held something the reader wants.
        could_be_folder = stat.S_ISDIR(st.st_mode) if st else not Path(name).suffix
        if self.wants(name) or could_be_folder:
            yield _Found(path, rel, "", problem=problem)

    def file(self, path: str, rel: str, raw: str, stat_fn) -> _Found:
        try:
            st = stat_fn(path)
        except OSError as e:
            return _Found(path, rel, "", problem=os_error_reason(e))
        return _Found(path, rel, raw, st.st_size, st.st_mtime_ns)


def os_error_reason(error: OSError) -> str:
    """An OSError as a short reason for a rejection."""
    if isinstance(error, PermissionError):
        return "permission denied"
    return (error.strerror or str(error)).lower()


def unit_listing(unit: SourceUnit) -> list[_Found]:
    """The unit's files as the walk finds them, sorted by relative path: what its fingerprint hashes
    (plain tuples, cheap for the sensor's every tick), and what `unit_files` turns into UnitFiles."""
    path, root = str(unit.path), str(unit.root)
    if path.startswith(root + os.sep):  # as Path.relative_to says, for a tenth of its cost
        raw = path[len(root) + 1 :].replace(os.sep, "/")
    else:
        raw = unit.path.relative_to(unit.root).as_posix()
    rel = display_text(raw)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return []  # the unit left the corpus since discovery: it has no files now
    except OSError as e:
        return [_Found(path, rel, "", problem=os_error_reason(e))]
    found = _Walk(unit).entry(
        path, unit.path.name, rel, raw, stat.S_ISLNK(st.st_mode), stat.S_ISDIR(st.st_mode), ()
    )
    return sorted(found, key=_by_rel)


_by_rel = operator.attrgetter("rel")


def unit_files(unit: SourceUnit, listing: list[_Found] | None = None) -> list[UnitFile]:
    """The files the reader will read for this unit, sorted by relative path: a task's conversation and
    metadata files, or a tree's files of supported formats (hidden names skipped). `listing`: the unit's
    `unit_listing` when the caller already made it."""
    return [
        UnitFile(Path(f.path), f.rel, f.size, f.mtime_ns, f.problem, os.fsencode(f.raw))
        for f in (unit_listing(unit) if listing is None else listing)
    ]


# -- fingerprints ------------------------------------------------------------------------------


def unit_fingerprint(unit: SourceUnit) -> str:
    """A hash of (relative path, size, mtime_ns, problem) of the unit's files: changes when any file
    the reader uses is added, removed, rewritten or touched. No file is opened."""
    return files_fingerprint(unit_listing(unit))


def files_fingerprint(files: Iterable[UnitFile | _Found]) -> str:
    """`unit_fingerprint` of a listing already made: a reader that lists once both fingerprints and reads."""
    h = hashlib.blake2b(digest_size=16)
    for f in files:
        h.update(f"{f.rel}\0{f.size}\0{f.mtime_ns}\0{f.problem or ''}\0".encode())
    return h.hexdigest()


def unit_fingerprints(units: list[SourceUnit]) -> dict[str, str]:
    """key -> fingerprint of many units (at 50,000 task units, ~1 of its 1.2 CPU s are stat and scandir
    calls; threads to overlap them measured no faster on 2 cores)."""
    return {unit.key: unit_fingerprint(unit) for unit in units}


def corpus_fingerprints(roots: Iterable[Path]) -> dict[str, str]:
    return unit_fingerprints(discover_units(roots))
