"""Item 5 (issue 11), the core: the measures on hand-computed rankings, the golden-set file format, and
the shipped set's fit to the sample corpus it is shipped for."""

from __future__ import annotations

import json
import math

import pytest

from indexer_pipeline.config import SAMPLE_CORPUS
from indexer_pipeline.corpus import discover_units
from indexer_pipeline.retrieval_quality import (
    SHIPPED_QUERIES,
    GoldenQuery,
    evaluate,
    golden_set_for,
    load_golden_set,
    ndcg_at,
    recall_at,
    reciprocal_rank,
    separation_auc,
)


def test_measures_match_hand_computed_values():
    ranked = ["x", "a", "y", "z", "w", "b"]
    graded = {"a": 2, "b": 1}
    assert recall_at(ranked, graded, 5) == 0.5  # b is sixth
    assert recall_at(ranked, graded, 10) == 1.0
    assert reciprocal_rank(ranked, graded) == 0.5
    assert reciprocal_rank(["x"], graded) == 0.0
    dcg = 2 / math.log2(3) + 1 / math.log2(7)
    assert ndcg_at(ranked, graded, 10) == pytest.approx(dcg / (2 + 1 / math.log2(3)))
    assert ndcg_at(["a", "b"], graded) == 1.0 and ndcg_at(["b", "a"], graded) < 1.0
    assert ndcg_at(["a", "a", "b"], graded) == ndcg_at(["a", "x", "b"], graded)  # a unit gains once
    assert ndcg_at(ranked, graded, 5) == pytest.approx((2 / math.log2(3)) / (2 + 1 / math.log2(3)))


def test_queries_that_must_find_nothing_are_reported_apart():
    queries = [
        GoldenQuery(query="found", units=["a"]),
        GoldenQuery(query="missed", units={"b": 2}),
        GoldenQuery(query="nothing here", units={}),
    ]
    answers = {"found": [("a", 0.9), ("a", 0.8)], "missed": [("c", 0.7)], "nothing here": [("c", 0.5)]}
    report = evaluate(queries, answers.__getitem__)
    assert [o.ranked for o in report.outcomes] == [["a", "a"], ["c"], ["c"]]
    assert (report.recall_at_5, report.mrr, report.ndcg_at_10) == (0.5, 0.5, 0.5)  # the third not averaged
    assert [o.query.query for o in report.misses] == ["missed"]
    assert report.no_answer_auc == 1.0 and report.no_answer_empty == 0
    assert separation_auc([0.5], [0.5]) == 0.5 and separation_auc([0.9], []) is None


def test_a_golden_set_file_is_validated_with_its_name_and_the_faulty_query(tmp_path):
    good = tmp_path / "queries.yaml"
    good.write_text("queries:\n  - query: where is the runbook\n    units: [doc-runbooks]\n")
    assert load_golden_set(good).queries[0].units == {"doc-runbooks": 1}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"queries": [{"query": "ok", "units": {"u": 1}}, {"query": "", "units": {}}]}))
    with pytest.raises(ValueError, match=r"bad\.json: queries\.1\.query"):
        load_golden_set(bad)
    bad.write_text(json.dumps({"queries": [{"query": "q", "units": {"u": 0}}]}))
    with pytest.raises(ValueError, match=r"bad\.json: queries\.0\.units\.u"):
        load_golden_set(bad)
    with pytest.raises(ValueError, match=r"missing\.json"):
        load_golden_set(tmp_path / "missing.json")


def test_the_shipped_set_names_only_units_of_the_sample_corpus_and_judges_only_it():
    golden = load_golden_set(SHIPPED_QUERIES)
    units = {u.key for u in discover_units([SAMPLE_CORPUS])}
    assert golden.units <= units and len(golden.queries) >= 20
    assert {q.kind for q in golden.queries} >= {"paraphrase", "identifier", "error", "file name", "none"}
    assert not SHIPPED_QUERIES.is_relative_to(SAMPLE_CORPUS)  # never indexed as a document

    assert golden_set_for(None, units)[0] == golden
    other, why = golden_set_for(None, {"doc-notes", *sorted(units)[:3]})
    assert other is None and "INDEXER_EVAL_QUERIES" in why
    assert golden_set_for(SHIPPED_QUERIES, set())[0] == golden  # a user's set is always judged
