"""The deletion guard: whole units leave the index in proportion, never because a folder vanished.

An unmounted or empty root, a `tasks/` folder that moved, an INDEXER_CORPUS_DIR pointed elsewhere:
to a sync each looks exactly like "every unit was deleted". So every deletion of whole units (the
change sensor, the nightly clean-up, `indexer-pipeline index`) is judged here first:
- a unit whose folder is gone or holds no units any more (root missing or empty, `tasks/` vanished
  or emptied, root no longer configured) is held, with that reason;
- when the others would delete more than the bound at once, they are all held;
- a unit held earlier stays held until a person confirms (`indexer-pipeline confirm-deletions`,
  `confirm_deletions_job`) or the unit comes back; new small deletions still go through at once.
Holds are recorded in the catalog (unit, why, when); the check `deletions_held` reports them.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from .catalog import Catalog, HeldDeletion
from .config import Settings
from .corpus import discover_units
from .models import SourceUnit

if TYPE_CHECKING:
    from .pipeline import Indexer

CONFIRM_HINT = (
    "if they are really gone, run `indexer-pipeline confirm-deletions` (or launch confirm_deletions_job "
    "in the UI); if their folder comes back, the holds clear by themselves"
)


def delete_limits() -> tuple[float, int]:
    """(share, units): one decision may delete at most this share of the indexed units and at most this
    many, whichever is smaller, and always one. The share protects small corpora, the count bounds what
    a large one can lose at once; a confirmation costs one command, a wrong deletion a re-embedding."""
    return Settings.read("max_delete_share"), Settings.read("max_delete_units")


def deletion_bound(indexed_units: int) -> int:
    """How many of `indexed_units` one decision may delete without a person's confirmation."""
    share, most = delete_limits()
    return max(1, min(most, math.floor(share * indexed_units)))


@dataclass
class CorpusView:
    """The corpus as listed now, with the configured roots that are not there (discovery would raise)."""

    roots: list[Path]
    missing: list[Path]
    empty: list[Path]
    units: list[SourceUnit]

    @cached_property
    def keys(self) -> set[str]:
        return {u.key for u in self.units}


def look(roots: list[Path]) -> CorpusView:
    configured = list(dict.fromkeys(Path(os.path.abspath(r)) for r in roots))
    missing = [r for r in configured if not r.is_dir()]
    present = [r for r in configured if r not in missing]
    # A root that cannot be listed raises CorpusError: the caller fails loudly, nothing is deleted.
    units = discover_units(present)
    empty = [r for r in present if not any(not name.startswith(".") for name in os.listdir(r))]
    return CorpusView(configured, missing, empty, units)


@dataclass
class Verdict:
    delete: list[str] = field(default_factory=list)  # may go now
    held: dict[str, HeldDeletion] = field(default_factory=dict)  # every open hold, new ones included


def _vanished(path: Path, view: CorpusView, per_folder: Counter) -> str | None:
    """Why the folder a unit lived in looks vanished rather than pruned, or None."""
    root = max((r for r in view.roots if path.is_relative_to(r)), key=lambda r: len(r.parts), default=None)
    folder = path.parent
    if root is None:
        return f"its folder {folder} is not under any corpus root now (INDEXER_CORPUS_DIR changed?)"
    if root in view.missing:
        return f"corpus root {root} is missing (unmounted, moved or renamed?)"
    if root in view.empty:
        return f"corpus root {root} is empty (unmounted?)"
    if not folder.is_dir():
        return f"folder {folder} is gone (moved or deleted?)"
    if not per_folder[folder]:
        return f"folder {folder} holds no units any more (emptied, or not synced yet?)"
    return None


def guard(catalog: Catalog, candidates: list[str], view: CorpusView, indexed: set[str]) -> Verdict:
    """Judge the deletion of `candidates` (units no longer in the corpus) and record what is held.

    `indexed` is what a deletion could lose (units with catalog records or points): candidates outside
    it have nothing to lose and always go. Holds of units back in the corpus are released."""
    before = catalog.held_deletions()
    present = view.keys
    catalog.release_holds([k for k in before if k in present])
    fresh = [k for k in candidates if k not in before]
    judged = [k for k in fresh if k in indexed]
    free = [k for k in fresh if k not in indexed]

    # Only when something is judged: a Counter over 10,000 paths costs a tenth of the sensor's tick.
    per_folder = Counter(u.path.parent for u in view.units) if judged else Counter()
    paths = {u.key: Path(u.path) for u in catalog.units()} if judged else {}
    reasons: dict[str, str] = {}
    for key in judged:
        why = _vanished(paths[key], view, per_folder) if key in paths else None
        if why:
            reasons[key] = why
    rest = [k for k in judged if k not in reasons]
    bound = deletion_bound(len(indexed))
    if len(rest) > bound:
        share, most = delete_limits()
        why = (
            f"{len(rest)} of {len(indexed)} indexed units would leave the index at once, more than the "
            f"bound of {bound} ({share:.0%} of the units, at most {most})"
        )
        reasons.update(dict.fromkeys(rest, why))
        rest = []
    catalog.hold_deletions(reasons)
    return Verdict(delete=free + rest, held=catalog.held_deletions())


def describe(held: dict[str, HeldDeletion], limit: int = 10) -> str:
    """The holds grouped by reason, for a check description, a log line or the CLI."""
    by_reason: dict[str, list[str]] = {}
    for h in held.values():
        by_reason.setdefault(h.reason, []).append(h.unit)
    parts = []
    for reason, units in by_reason.items():
        more = f", … ({len(units)} units)" if len(units) > limit else ""
        parts.append(f"{reason}: {', '.join(units[:limit])}{more}")
    return "; ".join(parts)


@dataclass
class Removal:
    deleted: list[str]
    points: int
    held: dict[str, HeldDeletion] = field(default_factory=dict)  # the open holds afterwards
    returned: list[str] = field(default_factory=list)  # held units back in the corpus, kept


def sync_deletions(ix: Indexer, view: CorpusView) -> Removal:
    """Delete, under the guard, every unit with points or catalog records that left the corpus."""
    indexed = ix.indexed_units()
    verdict = guard(ix.catalog, sorted(indexed - view.keys), view, indexed)
    points = ix.remove_units(verdict.delete)
    return Removal(verdict.delete, points, verdict.held)


def remove_absent(ix: Indexer, keys: list[str], view: CorpusView) -> Removal:
    """Delete units a sensor tick judged deletable, unless they came back since."""
    gone = [k for k in keys if k not in view.keys]
    return Removal(gone, ix.remove_units(gone))


def confirm_held(ix: Indexer, view: CorpusView, keys: list[str] | None = None) -> Removal:
    """A person's confirmation: delete the held units (all, or `keys`) that are still absent; units back in
    the corpus are kept and their holds released. A key that is not held is an error (ValueError)."""
    held = ix.catalog.held_deletions()
    chosen = list(keys) if keys else list(held)
    not_held = [k for k in chosen if k not in held]
    if not_held:
        raise ValueError(f"no deletion is held for: {', '.join(not_held)}")
    back = [k for k in chosen if k in view.keys]
    gone = [k for k in chosen if k not in view.keys]
    ix.catalog.release_holds(back)
    points = ix.remove_units(gone)
    return Removal(gone, points, ix.catalog.held_deletions(), returned=back)
