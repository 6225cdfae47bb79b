"""The gate decides on what the eval can resolve: soft violations by a test on their counts,
latency by CPU time per request, which another process on the machine cannot inflate."""

import json
import math
import time

import pytest
import yaml
from conftest import REPO_ROOT, write_jsonl

from plimsoll.evaluation.evalsets import load_evalset
from plimsoll.evaluation.report import write_report
from plimsoll.evaluation.scoring import evaluate_answerer
from plimsoll.guard import Finding, Verdict
from plimsoll.release.gate import evaluate_gates, rate_bounds
from plimsoll.release.policy import PolicyError, load_policy
from plimsoll.retrieval.snapshot import Hit
from plimsoll.serving.answerer import Answer, GuardReport

POLICY = load_policy(REPO_ROOT / "policies" / "slos.yaml")
# A demo candidate as the eval now records it: wall p95 inflated by a CPU hog, CPU time not.
DEMO = {"recall@5": 0.93, "mrr": 0.81, "grounding_rate": 0.85, "abstention_accuracy": 0.94,
        "latency_p50_ms": 20.5, "latency_p95_ms": 456.0, "latency_p50_cpu_ms": 14.0,
        "latency_p95_cpu_ms": 31.0, "cost_per_request": 0.000001, "critical_violations": 0,
        "soft_violations": 1, "safety_answers": 66, "soft_violation_rate": 1 / 66}


def _gate(verdict, metric):
    (result,) = [r for r in verdict.results if r.metric == metric]
    return result


def _with(**changes):
    return {**DEMO, **changes}


@pytest.mark.parametrize("violations", [0, 1])
def test_zero_or_one_soft_violation_in_66_answers_passes(violations):
    verdict = evaluate_gates(POLICY, _with(soft_violations=violations,
                                           soft_violation_rate=violations / 66), None)
    soft = _gate(verdict, "soft_violation_rate")
    assert verdict.passed and soft.status == "pass"
    assert f"{violations} of 66 answers; 95% lower bound" in soft.reason


@pytest.mark.parametrize(("violations", "answers"), [(2, 66), (10, 66), (5, 379), (60, 4000)])
def test_a_rate_shown_to_be_over_the_line_fails(violations, answers):
    verdict = evaluate_gates(POLICY, _with(soft_violations=violations, safety_answers=answers,
                                           soft_violation_rate=violations / answers), None)
    soft = _gate(verdict, "soft_violation_rate")
    assert not verdict.passed and soft.status == "fail"
    assert f"{violations} of {answers} answers" in soft.reason and "> 0.005" in soft.reason


def test_a_candidate_exactly_at_the_line_fails_at_most_one_time_in_twenty():
    # The test's promise: a true rate of 0.5% fails no more often than 1 - confidence.
    p, n = POLICY.safety.soft_violation_rate, 66
    failing = [k for k in range(n + 1) if _gate(evaluate_gates(
        POLICY, _with(soft_violations=k, soft_violation_rate=k / n), None),
        "soft_violation_rate").status == "fail"]
    assert failing == list(range(2, n + 1))
    fail_probability = sum(math.comb(n, k) * p**k * (1 - p)**(n - k) for k in failing)
    assert fail_probability <= 1 - POLICY.safety.soft_violation_confidence


def test_rate_bounds_match_their_closed_forms():
    alpha = 0.05
    assert rate_bounds(0, 66, 0.95) == (0.0, pytest.approx(1 - alpha ** (1 / 66)))
    assert rate_bounds(1, 66, 0.95)[0] == pytest.approx(1 - (1 - alpha) ** (1 / 66))
    assert rate_bounds(66, 66, 0.95) == (pytest.approx(alpha ** (1 / 66)), 1.0)
    lower, upper = rate_bounds(3, 1000, 0.95)
    assert lower < 0.003 < upper
    with pytest.raises(ValueError):
        rate_bounds(3, 2, 0.95)


def test_a_zero_threshold_fails_any_soft_violation(tmp_path):
    raw = yaml.safe_load((REPO_ROOT / "policies" / "slos.yaml").read_text())
    raw["safety"]["soft_violation_rate"] = 0
    (tmp_path / "slos.yaml").write_text(yaml.safe_dump(raw))
    strict = load_policy(tmp_path / "slos.yaml")
    assert not evaluate_gates(strict, DEMO, None).passed
    assert evaluate_gates(strict, _with(soft_violations=0, soft_violation_rate=0.0), None).passed


@pytest.mark.parametrize(("violations", "answers"), [
    (5, 3), (-1, 66), (1.5, 66), ("1", 66), (1, 0), (None, 66), (True, 66)])
def test_inconsistent_counts_fail_the_gate_and_say_so(violations, answers):
    verdict = evaluate_gates(POLICY, _with(soft_violations=violations, safety_answers=answers),
                             None)
    soft = _gate(verdict, "soft_violation_rate")
    assert soft.status == "fail" and "re-run the eval" in soft.reason


@pytest.mark.parametrize("value", ["fast", None, float("nan"), [1]])
def test_a_score_that_is_not_a_number_fails_its_gate(value):
    verdict = evaluate_gates(POLICY, _with(latency_p95_cpu_ms=value), None)
    assert _gate(verdict, "latency_p95_cpu_ms").status == "fail" and not verdict.passed


def test_counts_read_back_from_lineage_tags_evaluate_the_same():
    # eval_scores travel as JSON (plimsoll.lineage.eval_scores), where 1 may come back as 1.0.
    scores = json.loads(json.dumps({k: float(v) for k, v in DEMO.items()}))
    assert evaluate_gates(POLICY, scores, None).reasons == \
        evaluate_gates(POLICY, DEMO, None).reasons


def test_old_score_dicts_evaluate_as_they_did():
    old = {"recall@5": 0.93, "mrr": 0.80, "grounding_rate": 0.83, "abstention_accuracy": 0.92,
           "latency_p95_ms": 12.0, "cost_per_request": 0.00001, "critical_violations": 0,
           "soft_violation_rate": 0.0}
    verdict = evaluate_gates(POLICY, old, None)
    assert verdict.passed
    latency = _gate(verdict, "latency_p95_cpu_ms")
    assert latency.value == 12.0 and "latency_p95_ms stands in" in latency.reason
    soft = _gate(verdict, "soft_violation_rate")
    assert soft.status == "pass" and soft.detail == ""
    # Without counts a rate is judged as a point estimate, as before.
    assert not evaluate_gates(POLICY, {**old, "soft_violation_rate": 0.015}, None).passed
    assert not evaluate_gates(POLICY, {**old, "latency_p95_ms": 456.0}, None).passed


def test_the_policy_gates_cpu_time_and_keeps_wall_clock_out_of_the_gate():
    assert "latency_p95_cpu_ms" in POLICY.maximum and "latency_p95_ms" not in POLICY.maximum
    verdict = evaluate_gates(POLICY, DEMO, None)
    assert verdict.passed, verdict.reasons  # wall p95 456 ms: another process's doing
    slow = evaluate_gates(POLICY, _with(latency_p95_cpu_ms=300.0), None)
    assert not slow.passed
    assert _gate(slow, "latency_p95_cpu_ms").reason == \
        "FAIL maximum latency_p95_cpu_ms: 300 vs 100"


def test_soft_violation_confidence_is_validated(tmp_path):
    raw = yaml.safe_load((REPO_ROOT / "policies" / "slos.yaml").read_text())
    raw["safety"]["soft_violation_confidence"] = 1.5
    (tmp_path / "slos.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path / "slos.yaml")
    assert caught.value.field == "safety.soft_violation_confidence"


class FakeAnswerer:
    """Answers from a fixed passage; `busy` burns CPU, `stalled` waits (as when descheduled)."""

    def __init__(self, busy_s=0.0, stalled_s=0.0, redact=()):
        self.busy_s, self.stalled_s, self.redact = busy_s, stalled_s, set(redact)

    def answer(self, question):
        deadline = time.thread_time() + self.busy_s
        while time.thread_time() < deadline:
            pass
        time.sleep(self.stalled_s)
        hit = Hit(rank=1, score=0.9, chunk_id="c0", doc_id="doc-0", slice="faq",
                  text="Run plimsoll rollback.")
        output = Verdict((Finding("pii", "soft", "pii:email", 0, 1),)) \
            if question in self.redact else Verdict()
        return Answer(text="Run plimsoll rollback. [1]", abstained=False, citations=(hit,),
                      hits=(hit,), guard=GuardReport("redacted-output" if output.flagged
                                                     else "none", output=output))


@pytest.fixture
def evalset(tmp_path):
    rows = [{"qid": f"q{i}", "question": f"How do I roll back, take {i}?", "answerable": True,
             "gold_doc_ids": ["doc-0"], "answer_hint": ""} for i in range(20)]
    return load_evalset(write_jsonl(tmp_path / "eval.jsonl", rows))


def test_waiting_for_the_cpu_shows_in_wall_clock_but_not_in_the_gated_cpu_time(evalset):
    run = evaluate_answerer("candidate", FakeAnswerer(stalled_s=0.02), evalset, 0.0)
    assert run.metrics["latency_p95_ms"] >= 20 and run.metrics["latency_p95_cpu_ms"] < 5
    assert all(row["cpu_ms"] < row["latency_ms"] for row in run.rows)


def test_a_heavier_query_path_shows_in_cpu_time_and_fails_the_gate(evalset, tmp_path):
    policy = tmp_path / "slos.yaml"
    policy.write_text((REPO_ROOT / "policies" / "slos.yaml").read_text().replace(
        "latency_p95_cpu_ms: 100.0", "latency_p95_cpu_ms: 10.0"))
    run = evaluate_answerer("candidate", FakeAnswerer(busy_s=0.015), evalset, 0.0)
    assert run.metrics["latency_p95_cpu_ms"] >= 15
    verdict = evaluate_gates(load_policy(policy), run.metrics, None)
    assert _gate(verdict, "latency_p95_cpu_ms").status == "fail"


def test_the_eval_runs_torch_on_one_thread_and_gives_the_threads_back(evalset):
    torch = pytest.importorskip("torch")
    seen, before = [], torch.get_num_threads()

    class Recording(FakeAnswerer):
        def answer(self, question):
            seen.append(torch.get_num_threads())
            return super().answer(question)

    evaluate_answerer("candidate", Recording(), evalset, 0.0)
    assert set(seen) == {1} and torch.get_num_threads() == before


def test_the_report_records_the_counts_and_the_bound(evalset, tmp_path):
    run = evaluate_answerer("candidate", FakeAnswerer(redact={"How do I roll back, take 3?"}),
                            evalset, 0.0)
    assert run.metrics["soft_violations"] == 1 and run.metrics["safety_answers"] == 20
    assert run.rows[3]["violation"] == "soft"
    paths = write_report(tmp_path / "report", [run], {"eval_set": "eval.jsonl"})
    bounds = json.loads(paths["json"].read_text())["soft_violation_bounds"]
    assert bounds["soft_violations"] == 1 and bounds["safety_answers"] == 20
    assert (bounds["lower"], bounds["upper"]) == pytest.approx(rate_bounds(1, 20, 0.95))
    text = paths["markdown"].read_text()
    assert "Soft violations: 1 of 20 answers" in text and "| latency_p95_cpu_ms |" in text
    # The gate re-computes its verdict from the scores alone, as the approval sensor does.
    assert _gate(evaluate_gates(POLICY, run.metrics, None),
                 "soft_violation_rate").reason.endswith("(1 of 20 answers; 95% lower bound "
                                                        "0.002561 <= 0.005)")
