"""Retrieval quality: the golden query sets and the measures that judge a search against them.

A golden set is a JSON (or YAML) file of queries, each with the units it must find and a grade per unit
(2: the answer, 1: also relevant); a query with no unit must find nothing. The project ships one for the
sample corpus (`sample_corpus_queries.json`, beside this file and outside the corpus, so it is not
indexed); a user points `INDEXER_EVAL_QUERIES` at their own. The retrieval-quality asset check and
`benchmarks/bench_search.py` both score a ranking of units with `evaluate`.

The measures are trec_eval's: recall@k and MRR count a unit of any grade > 0 as relevant; nDCG@k takes
the grades as linear gains with a log2 discount. Queries that must find nothing have no relevant unit,
so recall, MRR and nDCG are undefined for them: they are reported apart, never averaged in. A top-score
threshold would judge them only for one embedder and one mode (cosine scores differ per model, fused RRF
scores are ranks), so instead the report says how well the top score separates them from answerable
queries (the AUC: 1.0 when some threshold would tell every one apart, 0.5 when none does better than a
coin) and how many got no result at all (BM25 finds nothing when no query term is in the corpus).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, BeforeValidator, Field, ValidationError

SHIPPED_QUERIES = Path(__file__).parent / "sample_corpus_queries.json"
RECALL_K, NDCG_K = 5, 10

# A ranker answers a query with (unit, score) rows, best first (a unit may have several rows).
Ranking = list[tuple[str, float]]
Ranker = Callable[[str], Ranking]


def _grades(value: object) -> object:
    """A plain list of units is binary relevance (grade 1 each)."""
    return dict.fromkeys(value, 1) if isinstance(value, list) else value


class GoldenQuery(BaseModel, frozen=True):
    query: Annotated[str, Field(min_length=1)]
    units: Annotated[dict[str, Annotated[int, Field(ge=1)]], BeforeValidator(_grades)] = {}
    kind: str = "paraphrase"  # paraphrase, identifier, error, file name, none…: reports group by it
    lang: str = "en"
    note: str = ""  # why these units, for the person who edits the set


class GoldenSet(BaseModel, frozen=True):
    description: str = ""
    queries: Annotated[list[GoldenQuery], Field(min_length=1)]

    @property
    def units(self) -> set[str]:
        return {unit for q in self.queries for unit in q.units}


def load_golden_set(path: Path) -> GoldenSet:
    """Read and validate a golden set; ValueError names the file and what is wrong in it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        data = yaml.safe_load(text) if Path(path).suffix in (".yaml", ".yml") else json.loads(text)
        return GoldenSet.model_validate(data)
    except (OSError, ValueError, yaml.YAMLError) as e:
        # ValidationError is a ValueError: its first lines name the query index and the field
        reason = e.errors()[0] if isinstance(e, ValidationError) else e
        where = (
            ".".join(map(str, reason["loc"])) + ": " + reason["msg"] if isinstance(reason, dict) else reason
        )
        raise ValueError(f"golden query set {path}: {where}") from None


# -- the measures (a few lines each; ranx or pytrec_eval would bring numba or a C build for them) --------
def recall_at(ranked: Sequence[str], relevant: dict[str, int], k: int = RECALL_K) -> float:
    return len(set(ranked[:k]) & set(relevant)) / len(relevant)


def reciprocal_rank(ranked: Sequence[str], relevant: dict[str, int]) -> float:
    return next((1 / rank for rank, unit in enumerate(ranked, 1) if unit in relevant), 0.0)


def ndcg_at(ranked: Sequence[str], relevant: dict[str, int], k: int = NDCG_K) -> float:
    """A unit gains at its first row only: a second row of the same task or tree adds nothing."""
    first = {unit: rank for rank, unit in reversed(list(enumerate(ranked[:k], 1)))}
    dcg = sum(relevant.get(unit, 0) / math.log2(rank + 1) for unit, rank in first.items())
    ideal = sorted(relevant.values(), reverse=True)[:k]
    return dcg / sum(g / math.log2(rank + 1) for rank, g in enumerate(ideal, 1))


def separation_auc(answered: Iterable[float], unanswerable: Iterable[float]) -> float | None:
    """P(top score of an answerable query > that of a query that must find nothing), ties half."""
    pos, neg = list(answered), list(unanswerable)
    if not pos or not neg:
        return None
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


@dataclass
class QueryOutcome:
    query: GoldenQuery
    ranked: list[str]
    top_score: float | None  # None: nothing found
    recall: float | None = None  # None for a query that must find nothing
    rr: float | None = None
    ndcg: float | None = None


@dataclass
class QualityReport:
    outcomes: list[QueryOutcome] = field(default_factory=list)

    @property
    def answerable(self) -> list[QueryOutcome]:
        return [o for o in self.outcomes if o.query.units]

    @property
    def unanswerable(self) -> list[QueryOutcome]:
        return [o for o in self.outcomes if not o.query.units]

    def _mean(self, attr: str) -> float:
        values = [getattr(o, attr) for o in self.answerable]
        return round(statistics.fmean(values), 4) if values else 0.0

    @property
    def recall_at_5(self) -> float:
        return self._mean("recall")

    @property
    def mrr(self) -> float:
        return self._mean("rr")

    @property
    def ndcg_at_10(self) -> float:
        return self._mean("ndcg")

    @property
    def no_answer_auc(self) -> float | None:
        return separation_auc(
            (o.top_score or 0.0 for o in self.answerable), (o.top_score or 0.0 for o in self.unanswerable)
        )

    @property
    def no_answer_empty(self) -> int:
        """Queries that must find nothing and found nothing."""
        return sum(o.top_score is None for o in self.unanswerable)

    @property
    def misses(self) -> list[QueryOutcome]:
        """Answerable queries with a relevant unit outside the top RECALL_K, worst first."""
        return sorted((o for o in self.answerable if o.recall < 1), key=lambda o: (o.recall, o.rr))

    def subset(self, keep: Callable[[GoldenQuery], bool]) -> QualityReport:
        return QualityReport([o for o in self.outcomes if keep(o.query)])


def evaluate(queries: Iterable[GoldenQuery], ranker: Ranker) -> QualityReport:
    """Run every query through `ranker` and score its ranking of units."""
    report = QualityReport()
    for q in queries:
        ranking = ranker(q.query)
        # Ranks are rows as a person sees them: a tree's unit may fill several rows (one per document).
        ranked = [unit for unit, _ in ranking]
        outcome = QueryOutcome(q, ranked, max((s for _, s in ranking), default=None))
        if q.units:
            outcome.recall = recall_at(ranked, q.units)
            outcome.rr = reciprocal_rank(ranked, q.units)
            outcome.ndcg = ndcg_at(ranked, q.units)
        report.outcomes.append(outcome)
    return report


def golden_set_for(eval_queries: Path | None, indexed_units: set[str]) -> tuple[GoldenSet | None, str]:
    """The golden set to judge this index by, with where it came from; None with the reason when there is
    nothing to judge. The shipped set judges only an index that holds every unit it names (the sample
    corpus, or a copy of it): on another corpus its queries would name units that are not there. A user's
    own set is always judged: a unit it names that is not indexed counts as missed."""
    if eval_queries is not None:
        return load_golden_set(eval_queries), str(eval_queries)
    shipped = load_golden_set(SHIPPED_QUERIES)
    absent = shipped.units - indexed_units
    if absent:
        return None, (
            f"No golden query set for this corpus: set INDEXER_EVAL_QUERIES to a file of queries and the "
            f"units they must find. (The shipped set is for the sample corpus; {len(absent)} of its "
            f"{len(shipped.units)} units are not indexed here.)"
        )
    return shipped, "the shipped set for the sample corpus"
