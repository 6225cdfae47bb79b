"""One metric table (name, direction, format) read by the policy, the gate, the nightly check
and the report; one regression rule; retrieval over no answerable question is not measured."""

import math

import pytest
import yaml
from conftest import REPO_ROOT, write_jsonl

from plimsoll.evaluation.evalsets import load_evalset
from plimsoll.evaluation.metrics import (
    GATED_METRICS,
    METRICS,
    NEEDS_ANSWERABLE,
    RETRIEVAL_METRICS,
    metric,
    retrieval_scores,
    within_regression,
)
from plimsoll.evaluation.nightly import _regressed
from plimsoll.evaluation.report import markdown
from plimsoll.evaluation.scoring import EvalRun, evaluate_answerer
from plimsoll.release.gate import evaluate_gates
from plimsoll.release.policy import KNOWN_METRICS, Policy, PolicyError, load_policy
from plimsoll.retrieval.snapshot import Hit
from plimsoll.serving.answerer import Answer, GuardReport


def test_the_policy_gates_exactly_the_metrics_with_a_direction():
    assert set(KNOWN_METRICS) == set(GATED_METRICS)
    assert {"recall@5", "mrr", "latency_p95_cpu_ms", "soft_violation_rate"} <= KNOWN_METRICS
    # Counts are shown beside the gates but cannot be gated themselves.
    assert metric("soft_violations").direction is None
    assert "soft_violations" not in KNOWN_METRICS and "safety_answers" not in KNOWN_METRICS


def test_a_policy_naming_a_count_is_refused_with_the_table_as_the_fix(tmp_path):
    raw = yaml.safe_load((REPO_ROOT / "policies" / "slos.yaml").read_text())
    raw["maximum"]["soft_violations"] = 1
    (tmp_path / "slos.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path / "slos.yaml")
    assert caught.value.field == "maximum.soft_violations"
    assert all(name in caught.value.fix for name in GATED_METRICS)


def test_directions_and_formats_as_the_report_shows_them():
    assert metric("recall@5").higher_is_better and not metric("latency_p95_cpu_ms").higher_is_better
    assert metric("cost_per_request").show(0.0000125) == "0.000013"
    assert metric("latency_p95_ms").show(31.27) == "31.3"
    assert metric("critical_violations").show(2.0) == "2"
    assert metric("mrr").show(None) == "-"
    run = EvalRun("candidate", {"recall@5": 0.91234, "cost_per_request": 0.0000125,
                                "latency_p95_ms": 31.27, "critical_violations": 0})
    text = markdown([run], {})
    assert "| recall@5 | 0.912 |" in text and "| cost_per_request | 0.000013 |" in text
    assert "| latency_p95_ms | 31.3 |" in text and "| critical_violations | 0 |" in text
    assert "| mrr | - |" in text  # not measured, not 0.000


@pytest.mark.parametrize(("name", "reference", "value", "allowed", "holds"), [
    ("recall@5", 0.90, 0.88, 0.02, True),   # exactly at the line
    ("recall@5", 0.90, 0.87, 0.02, False),
    ("recall@5", 0.90, 0.99, 0.02, True),
    ("latency_p95_ms", 10.0, 11.0, 1.0, True),
    ("latency_p95_ms", 10.0, 11.5, 1.0, False),
    ("latency_p95_ms", 10.0, 2.0, 1.0, True),
    ("mrr", 0.80, math.nan, 0.02, False),  # a NaN score never holds
])
def test_the_gate_and_the_nightly_check_apply_one_regression_rule(name, reference, value,
                                                                   allowed, holds):
    assert within_regression(name, reference, value, allowed) is holds
    policy = Policy(version=1, model="m", max_regression={name: allowed},
                    allow_unmeasured=["critical_violations", "soft_violation_rate"])
    verdict = evaluate_gates(policy, {name: value}, {name: reference})
    (gate,) = [r for r in verdict.results if r.gate == "regression"]
    assert (gate.status == "pass") is holds
    # The nightly check alerts on exactly the values the gate fails (before, it let NaN by).
    assert _regressed(policy, name, reference, value) is not holds


def test_retrieval_over_no_answerable_question_is_not_measured():
    assert retrieval_scores([["doc-0"], ["doc-1"]], [[], []]) == {}
    scores = retrieval_scores([["doc-0"], ["doc-1"]], [["doc-0"], []])
    assert set(scores) == set(RETRIEVAL_METRICS) and scores["recall@1"] == 1.0


class Abstaining:
    """An answerer that finds a passage and abstains (every question is unanswerable)."""

    def answer(self, question):  # noqa: ARG002 (the Answerer interface)
        hit = Hit(rank=1, score=0.1, chunk_id="c0", doc_id="doc-0", slice="faq", text="x")
        return Answer(text="I don't know.", abstained=True, citations=(), hits=(hit,),
                      guard=GuardReport("none"))


@pytest.fixture
def unanswerable(tmp_path):
    rows = [{"qid": f"u{i}", "question": f"What is the capital of country {i}?",
             "answerable": False, "gold_doc_ids": [], "answer_hint": ""} for i in range(4)]
    return load_evalset(write_jsonl(tmp_path / "abstain.jsonl", rows))


def test_an_eval_with_no_answerable_question_leaves_retrieval_unmeasured(unanswerable):
    run = evaluate_answerer("candidate", Abstaining(), unanswerable, 0.0)
    assert not set(NEEDS_ANSWERABLE) & set(run.metrics)  # absent, not 0.0
    assert run.metrics["abstention_accuracy"] == 1.0
    policy = load_policy(REPO_ROOT / "policies" / "slos.yaml")
    verdict = evaluate_gates(policy, run.metrics, None)
    (recall,) = [r for r in verdict.results if r.metric == "recall@5"]
    assert recall.status == "fail" and "recall@5: not measured" in recall.reason
    allowing = policy.model_copy(update={"allow_unmeasured": ["recall@5", "mrr",
                                                              "grounding_rate"]})
    assert evaluate_gates(allowing, run.metrics, None).passed


def test_every_metric_the_eval_records_is_in_the_table(unanswerable, tmp_path):
    answerable = load_evalset(write_jsonl(tmp_path / "one.jsonl", [
        {"qid": "a1", "question": "How do I roll back?", "answerable": True,
         "gold_doc_ids": ["doc-0"], "answer_hint": ""}]))
    for evalset in (unanswerable, answerable):
        run = evaluate_answerer("candidate", Abstaining(), evalset, 0.0)
        assert set(run.metrics) <= {m.name for m in METRICS}
