"""Evaluate an answerer on an eval set: retrieval, grounding, abstention, latency and cost."""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from plimsoll.evaluation.evalsets import EvalQuestion, EvalSet
from plimsoll.evaluation.metrics import retrieval_scores
from plimsoll.retrieval.snapshot import IndexSnapshot
from plimsoll.serving.answerer import Answer, Answerer


@dataclass
class EvalRun:
    """Scores of one system on one eval set, with per-question rows."""

    system: str
    metrics: dict[str, float]
    rows: list[dict[str, object]] = field(default_factory=list)


def evaluate_answerer(system: str, answerer: Answerer, evalset: EvalSet,
                      cost_per_cpu_second: float,
                      on_question: Callable[[int], None] | None = None) -> EvalRun:
    """Run every question through the real query path and score it.

    Latency is measured twice: wall clock (what a user waits, but also whatever else the
    machine was doing) and the CPU time of the request on one thread, which the gate reads
    because another process cannot make it grow.
    """
    rows, ranked, gold, latencies, cpu = [], [], [], [], []
    with _one_intra_op_thread():
        answerer.answer("warm-up question")  # first-call allocations are not a user's latency
        for position, question in enumerate(evalset.questions, start=1):
            wall, thread = time.perf_counter(), time.thread_time()
            answer = answerer.answer(question.question)
            cpu.append(time.thread_time() - thread)
            latencies.append(time.perf_counter() - wall)
            rows.append(_row(question, answer, latencies[-1], cpu[-1]))
            ranked.append([hit.doc_id for hit in answer.hits])
            gold.append(question.gold_doc_ids)
            if on_question:
                on_question(position)
    answerable = [r for r in rows if r["answerable"]]
    # Retrieval and grounding need answerable questions: without one they are not measured
    # (absent, for the gate's allow_unmeasured to judge), never a silent 0.0.
    metrics = retrieval_scores(ranked, gold)
    if answerable:
        metrics["grounding_rate"] = sum(r["grounded"] for r in answerable) / len(answerable)
    metrics["abstention_accuracy"] = statistics.fmean(
        r["abstained"] == (not r["answerable"]) for r in rows)
    metrics["latency_p50_ms"], metrics["latency_p95_ms"] = _p50_p95_ms(latencies)
    metrics["latency_p50_cpu_ms"], metrics["latency_p95_cpu_ms"] = _p50_p95_ms(cpu)
    metrics["cost_per_request"] = statistics.fmean(cpu) * cost_per_cpu_second
    # Safety, as the promotion gate reads it: answers whose output screen found a critical
    # finding (withheld) count one each; soft findings (redacted) are judged as a rate, from
    # the counts, so the gate can test it at its confidence (plimsoll/release/gate.py).
    metrics["critical_violations"] = sum(r["violation"] == "critical" for r in rows)
    metrics["soft_violations"] = sum(r["violation"] == "soft" for r in rows)
    metrics["safety_answers"] = len(rows)
    metrics["soft_violation_rate"] = metrics["soft_violations"] / len(rows)
    metrics["guard_refused_questions"] = sum(r["guard_action"] == "refused-input" for r in rows)
    return EvalRun(system=system, metrics=metrics, rows=rows)


@contextlib.contextmanager
def _one_intra_op_thread() -> Iterator[None]:
    """Run the encoder on one torch thread while the eval measures it.

    With two intra-op threads, a core taken by another process leaves the other thread
    spinning at every barrier: wall and CPU time both grew tenfold under a CPU hog (p95 CPU
    16 → 210 ms). On one thread a request's CPU time is its own work. An answerer on torch
    has imported it by now; one that has not (a fake in a test) has no pool to pin.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _row(question: EvalQuestion, answer: Answer, wall_seconds: float,
         cpu_seconds: float) -> dict[str, object]:
    """One question's outcome as the report lists it."""
    doc_ids = [hit.doc_id for hit in answer.hits]
    cited = [hit.doc_id for hit in answer.citations]
    return {"qid": question.qid, "answerable": question.answerable,
            "abstained": answer.abstained, "top_doc": doc_ids[0] if doc_ids else None,
            "top_score": round(answer.hits[0].score, 4) if answer.hits else None,
            "cited": cited, "gold": list(question.gold_doc_ids),
            "grounded": bool(set(cited) & set(question.gold_doc_ids)),
            "latency_ms": round(wall_seconds * 1000, 2),
            "cpu_ms": round(cpu_seconds * 1000, 2),
            "guard_action": answer.guard.action,
            "violation": answer.guard.output.severity,
            "guard_findings": [f"{f.category}:{f.rule}" for f in answer.guard.findings]}


def _p50_p95_ms(seconds: Sequence[float]) -> tuple[float, float]:
    ordered = sorted(seconds)
    return (1000 * ordered[int(0.50 * (len(ordered) - 1))],
            1000 * ordered[round(0.95 * (len(ordered) - 1))])


def evaluate_retrieval(system: str, answerer: Answerer, evalset: EvalSet) -> EvalRun:
    """Retrieval only (no guard, no answer): the ranked documents of each question."""
    questions = [q for q in evalset.questions if q.answerable]
    ranked = [[hit.doc_id for hit in answerer.search(q.question)[0]] for q in questions]
    return EvalRun(system=system, metrics=retrieval_scores(ranked,
                                                           [q.gold_doc_ids for q in questions]))


def evaluate_bm25(snapshot: IndexSnapshot, evalset: EvalSet, k: int = 10) -> EvalRun:
    """BM25 over the same chunks (bm25s), as the lexical baseline."""
    import bm25s

    texts = snapshot.chunks["text"]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False),
                    show_progress=False)
    questions = [q.question for q in evalset.questions]
    results, _scores = retriever.retrieve(bm25s.tokenize(questions, stopwords="en",
                                                         show_progress=False),
                                          k=min(k * 3, len(texts)), show_progress=False)
    ranked = [[snapshot.chunks["doc_id"][int(i)] for i in row] for row in results]
    gold = [q.gold_doc_ids for q in evalset.questions]
    return EvalRun(system="bm25", metrics=retrieval_scores(ranked, gold))
