"""Nightly evals: the full eval set on champion and challenger, compared with last night."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from plimsoll.evaluation.eval_registry import EvalRegistry
from plimsoll.evaluation.evalsets import load_evalset
from plimsoll.evaluation.metrics import within_regression
from plimsoll.evaluation.scoring import evaluate_answerer
from plimsoll.release.policy import Policy
from plimsoll.release.promotion import CHALLENGER, CHAMPION, Promoter
from plimsoll.serving.bundles import answerer_from_model_dir


@dataclass(frozen=True)
class Regression:
    """A metric that got worse than the policy allows."""

    model_ref: str
    metric: str
    old: float
    new: float
    allowed: float
    against: str

    @property
    def alert(self) -> str:
        """The alert line."""
        return (f"ALERT {self.model_ref}: {self.metric} {self.old:.4f} → {self.new:.4f} "
                f"(allowed drop {self.allowed}) vs {self.against}")


@dataclass
class NightlyResult:
    """Scores per alias and every regression found."""

    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    regressions: list[Regression] = field(default_factory=list)


def _regressed(policy: Policy, metric: str, old: float, new: float) -> bool:
    """The gate's regression rule (plimsoll/evaluation/metrics.py), read as an alert."""
    return not within_regression(metric, old, new, policy.max_regression[metric])


def run_nightly(promoter: Promoter, evalset_path: Path, eval_registry: EvalRegistry,
                commit_sha: str, seed: int, cost_per_cpu_second: float) -> NightlyResult:
    """Evaluate champion and challenger bundles straight from the registry."""
    evalset = load_evalset(evalset_path)
    result = NightlyResult()
    for alias in (CHAMPION, CHALLENGER):
        version = promoter.alias(alias)
        if version is None:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            local, _ = promoter.registry.download(f"models:/{promoter.model}/{version}",
                                                  Path(tmp))
            answerer = answerer_from_model_dir(local)
            evalset.check_doc_ids(answerer.snapshot.chunks["doc_id"])
            scores = evaluate_answerer(alias, answerer, evalset, cost_per_cpu_second).metrics
        model_ref = f"models:/{promoter.model}/{version}"
        previous = [r for r in eval_registry.results(model_ref)
                    if r["eval_set_hash"] == evalset.content_hash and r["system"] == "nightly"]
        if previous:
            for metric in promoter.policy.max_regression:
                old, new = previous[-1]["metrics"].get(metric), scores.get(metric)
                if old is not None and new is not None and _regressed(
                        promoter.policy, metric, old, new):
                    result.regressions.append(Regression(
                        model_ref, metric, old, new, promoter.policy.max_regression[metric],
                        "last night"))
        eval_registry.record(commit_sha=commit_sha, model_ref=model_ref,
                             eval_set_hash=evalset.content_hash, seed=seed, system="nightly",
                             metrics=scores)
        result.scores[alias], result.versions[alias] = scores, version
    if CHAMPION in result.scores and CHALLENGER in result.scores:
        for metric in promoter.policy.max_regression:
            old = result.scores[CHAMPION].get(metric)
            new = result.scores[CHALLENGER].get(metric)
            if old is not None and new is not None and _regressed(promoter.policy, metric,
                                                                  old, new):
                result.regressions.append(Regression(
                    f"models:/{promoter.model}/{result.versions[CHALLENGER]}", metric, old, new,
                    promoter.policy.max_regression[metric], "the champion"))
    return result
