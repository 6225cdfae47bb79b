"""The metric table (name, direction, format) and the ranking metrics over doc ids.

Every reader of a score reads this table: the policy checks the names it gates, the gate and
the nightly check take each metric's direction from it, the eval report and `plimsoll eval`
print with its formats. A metric without a direction is a count the report shows beside the
gated ones (the soft-violation gate reads its counts); no policy line may name it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Direction = Literal["higher", "lower"]
Group = Literal["retrieval", "service", "safety"]


@dataclass(frozen=True)
class Metric:
    """One score an eval records: which way is better, how it is shown, where it is reported."""

    name: str
    direction: Direction | None  # None: a count shown beside the gated metrics
    format: str  # a format spec: f"{value:{metric.format}}"
    group: Group
    summary: bool = True  # printed in the `plimsoll eval` summary

    @property
    def higher_is_better(self) -> bool:
        """True for scores that should rise, False for costs, latencies and violations."""
        if self.direction is None:
            raise ValueError(f"{self.name} is a count with no direction")
        return self.direction == "higher"

    def show(self, value: float | None) -> str:
        """The value as reports print it ('-' when not measured)."""
        return "-" if value is None else f"{value:{self.format}}"


METRICS: tuple[Metric, ...] = (
    Metric("recall@1", "higher", ".3f", "retrieval"),
    Metric("recall@5", "higher", ".3f", "retrieval"),
    Metric("recall@10", "higher", ".3f", "retrieval"),
    Metric("mrr", "higher", ".3f", "retrieval"),
    Metric("ndcg@10", "higher", ".3f", "retrieval"),
    Metric("grounding_rate", "higher", ".3f", "service"),
    Metric("abstention_accuracy", "higher", ".3f", "service"),
    Metric("latency_p50_cpu_ms", "lower", ".1f", "service"),
    Metric("latency_p95_cpu_ms", "lower", ".1f", "service"),
    Metric("latency_p50_ms", "lower", ".1f", "service"),
    Metric("latency_p95_ms", "lower", ".1f", "service"),
    Metric("cost_per_request", "lower", ".6f", "service"),
    Metric("critical_violations", "lower", ".0f", "safety", summary=False),
    Metric("soft_violations", None, ".0f", "safety"),
    Metric("safety_answers", None, ".0f", "safety"),
    Metric("soft_violation_rate", "lower", ".3f", "safety", summary=False),
    Metric("guard_refused_questions", None, ".0f", "safety", summary=False),
    Metric("redteam_attacks", None, ".0f", "safety", summary=False),
    Metric("redteam_through", None, ".0f", "safety", summary=False),
)
BY_NAME: dict[str, Metric] = {metric.name: metric for metric in METRICS}
# The names a policy may gate: every metric that has a direction.
GATED_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.direction is not None)
RETRIEVAL_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.group == "retrieval")
# What needs at least one answerable question (gold doc ids) to be measured at all.
NEEDS_ANSWERABLE: tuple[str, ...] = (*RETRIEVAL_METRICS, "grounding_rate")


def metric(name: str) -> Metric:
    """The table's entry for a metric name (KeyError for a name it does not hold)."""
    return BY_NAME[name]


def in_group(group: Group) -> tuple[str, ...]:
    """The metric names of one report section, in table order."""
    return tuple(m.name for m in METRICS if m.group == group)


def regression_line(name: str, reference: float, allowed: float) -> float:
    """The worst value a metric may take: `allowed` worse than `reference`, in its direction."""
    return reference - allowed if metric(name).higher_is_better else reference + allowed


def within_regression(name: str, reference: float, value: float, allowed: float) -> bool:
    """The one regression rule: `value` is at most `allowed` worse than `reference`.

    The gate holds a candidate to it against the champion, the nightly check holds each
    alias to it against last night and the challenger against the champion. A value that
    is not a number (NaN) never holds.
    """
    line = regression_line(name, reference, allowed)
    return value >= line if metric(name).higher_is_better else value <= line


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
    """Mean retrieval metrics over answerable questions (ranked doc ids per question).

    With no answerable question there is nothing to measure, and the result is empty: the
    metrics are not measured (the gate fails them unless the policy's allow_unmeasured names
    them), never a score of 0.0 that reads like a model that found nothing.
    """
    pairs = [(r, g) for r, g in zip(ranked_per_question, gold_per_question, strict=True) if g]
    if not pairs:
        return {}
    return {
        "recall@1": statistics.fmean(recall_at(r, g, 1) for r, g in pairs),
        "recall@5": statistics.fmean(recall_at(r, g, 5) for r, g in pairs),
        "recall@10": statistics.fmean(recall_at(r, g, 10) for r, g in pairs),
        "mrr": statistics.fmean(reciprocal_rank(r, g) for r, g in pairs),
        "ndcg@10": statistics.fmean(ndcg_at(r, g, 10) for r, g in pairs),
    }
