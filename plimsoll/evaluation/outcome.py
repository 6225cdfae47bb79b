"""What an eval hands to registration: scores per system, the report, and what was evaluated."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class EvalOutcome:
    """The candidate's eval: scores of each system (finetuned, base, bm25, hybrid), the report."""

    systems: dict[str, dict[str, float]]
    eval_set_hash: str
    seed: int
    report_id: str
    report_digest: str
    paths: dict[str, str]  # json, markdown, plot
    markdown: str
    abstain_below: float
    answer_template: str
    abstain_template: str
    template_ref: str
    guard_policy: str
    guard_policy_digest: str
    guard_classifier: str
    guard_classifier_digest: str
    redteam_hash: str
    # The dev set's retrieval scores per system ({} when the eval had no dev set): the
    # recipe is chosen on it, the gate never reads it.
    dev_systems: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def candidate(self) -> dict[str, float]:
        """The fine-tuned candidate's scores."""
        return self.systems["finetuned"]
