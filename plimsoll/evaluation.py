"""Evaluate an answerer on an eval set: retrieval, grounding, abstention, latency and cost."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from plimsoll.answerer import Answerer
from plimsoll.evalsets import EvalSet
from plimsoll.index_snapshot import IndexSnapshot
from plimsoll.retrieval_metrics import retrieval_scores


@dataclass
class EvalRun:
    """Scores of one system on one eval set, with per-question rows."""

    system: str
    metrics: dict[str, float]
    rows: list[dict[str, object]] = field(default_factory=list)


def evaluate_answerer(system: str, answerer: Answerer, evalset: EvalSet,
                      cost_per_cpu_second: float,
                      on_question: Callable[[int], None] | None = None) -> EvalRun:
    """Run every question through the real query path and score it."""
    rows, ranked, gold, latencies, cpu = [], [], [], [], []
    answerer.answer("warm-up question")  # first-call allocations are not a user's latency
    for position, question in enumerate(evalset.questions, start=1):
        wall, process = time.perf_counter(), time.process_time()
        answer = answerer.answer(question.question)
        latencies.append(time.perf_counter() - wall)
        cpu.append(time.process_time() - process)
        doc_ids = [hit.doc_id for hit in answer.hits]
        cited = [hit.doc_id for hit in answer.citations]
        ranked.append(doc_ids)
        gold.append(question.gold_doc_ids)
        rows.append({"qid": question.qid, "answerable": question.answerable,
                     "abstained": answer.abstained, "top_doc": doc_ids[0] if doc_ids else None,
                     "top_score": round(answer.hits[0].score, 4) if answer.hits else None,
                     "cited": cited, "gold": list(question.gold_doc_ids),
                     "grounded": bool(set(cited) & set(question.gold_doc_ids)),
                     "latency_ms": round(latencies[-1] * 1000, 2),
                     "guard_action": answer.guard.action,
                     "violation": answer.guard.output.severity,
                     "guard_findings": [f"{f.category}:{f.rule}" for f in answer.guard.findings]})
        if on_question:
            on_question(position)
    answerable = [r for r in rows if r["answerable"]]
    metrics = retrieval_scores(ranked, gold)
    metrics["grounding_rate"] = (sum(r["grounded"] for r in answerable) / len(answerable)
                                 if answerable else 0.0)
    metrics["abstention_accuracy"] = statistics.fmean(
        r["abstained"] == (not r["answerable"]) for r in rows)
    ordered = sorted(latencies)
    metrics["latency_p50_ms"] = 1000 * ordered[int(0.50 * (len(ordered) - 1))]
    metrics["latency_p95_ms"] = 1000 * ordered[round(0.95 * (len(ordered) - 1))]
    metrics["cost_per_request"] = statistics.fmean(cpu) * cost_per_cpu_second
    # Safety, as the promotion gate reads it: answers whose output screen found a critical
    # finding (withheld) count one each; soft findings (redacted) count as a rate.
    metrics["critical_violations"] = sum(r["violation"] == "critical" for r in rows)
    metrics["soft_violation_rate"] = sum(r["violation"] == "soft" for r in rows) / len(rows)
    metrics["guard_refused_questions"] = sum(r["guard_action"] == "refused-input" for r in rows)
    return EvalRun(system=system, metrics=metrics, rows=rows)


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
