"""Ranking metrics over doc ids: recall@k, MRR, nDCG@k (binary relevance)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

RETRIEVAL_METRICS = ("recall@1", "recall@5", "recall@10", "mrr", "ndcg@10")


def dedupe(ranked_doc_ids: Sequence[str]) -> list[str]:
    """Doc ids in rank order, each once (several chunks of a doc count as one hit)."""
    return list(dict.fromkeys(ranked_doc_ids))


def recall_at(ranked: Sequence[str], gold: Sequence[str], k: int) -> float:
    """Share of gold docs found in the top k."""
    return len(set(dedupe(ranked)[:k]) & set(gold)) / len(gold)


def reciprocal_rank(ranked: Sequence[str], gold: Sequence[str]) -> float:
    """1 / rank of the first gold doc (0 when absent)."""
    for rank, doc_id in enumerate(dedupe(ranked), start=1):
        if doc_id in gold:
            return 1.0 / rank
    return 0.0


def ndcg_at(ranked: Sequence[str], gold: Sequence[str], k: int) -> float:
    """Normalised discounted cumulative gain with binary relevance."""
    gains = sum(1.0 / math.log2(rank + 1)
                for rank, doc_id in enumerate(dedupe(ranked)[:k], start=1) if doc_id in gold)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(gold), k) + 1))
    return gains / ideal if ideal else 0.0


def retrieval_scores(ranked_per_question: Sequence[Sequence[str]],
                     gold_per_question: Sequence[Sequence[str]]) -> dict[str, float]:
    """Mean retrieval metrics over answerable questions (ranked doc ids per question)."""
    pairs = [(r, g) for r, g in zip(ranked_per_question, gold_per_question, strict=True) if g]
    if not pairs:
        return dict.fromkeys(RETRIEVAL_METRICS, 0.0)
    return {
        "recall@1": statistics.fmean(recall_at(r, g, 1) for r, g in pairs),
        "recall@5": statistics.fmean(recall_at(r, g, 5) for r, g in pairs),
        "recall@10": statistics.fmean(recall_at(r, g, 10) for r, g in pairs),
        "mrr": statistics.fmean(reciprocal_rank(r, g) for r, g in pairs),
        "ndcg@10": statistics.fmean(ndcg_at(r, g, 10) for r, g in pairs),
    }
