"""The promotion gate: a candidate's eval scores against the policy and the champion."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from plimsoll.policy import HIGHER_IS_BETTER, Policy


@dataclass(frozen=True)
class GateResult:
    """One gate: what was measured, the line it had to clear, and the champion's value."""

    gate: str
    metric: str
    value: float | None
    threshold: float
    champion: float | None
    status: str  # pass | fail | not_measured

    @property
    def reason(self) -> str:
        """One line for tags and logs."""
        champion = "" if self.champion is None else f", champion {self.champion:.4g}"
        value = "not measured" if self.value is None else f"{self.value:.4g}"
        return f"{self.status.upper()} {self.gate} {self.metric}: {value} vs " \
               f"{self.threshold:.4g}{champion}"


@dataclass(frozen=True)
class Verdict:
    """All gates of one candidate; it passes when no gate fails."""

    results: list[GateResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every gate passed or is allowed to be unmeasured."""
        return all(r.status != "fail" for r in self.results)

    @property
    def reasons(self) -> list[str]:
        """Every gate, failures first."""
        return [r.reason for r in sorted(self.results, key=lambda r: r.status != "fail")]

    def as_dicts(self) -> list[dict[str, object]]:
        """Plain rows for reports and metadata."""
        return [asdict(r) for r in self.results]


def evaluate_gates(policy: Policy, candidate: dict[str, float],
                   champion: dict[str, float] | None) -> Verdict:
    """Minimums, maximums, safety targets and allowed regression against the champion."""
    champion = champion or {}
    results = []

    def add(gate: str, metric: str, threshold: float, ok) -> None:
        value = candidate.get(metric)
        if value is None:
            status = "not_measured" if metric in policy.allow_unmeasured else "fail"
        else:
            status = "pass" if ok(float(value)) else "fail"
        results.append(GateResult(gate, metric, None if value is None else float(value),
                                  float(threshold), champion.get(metric), status))

    for metric, threshold in policy.minimum.items():
        add("minimum", metric, threshold, lambda v, t=threshold: v >= t)
    for metric, threshold in policy.maximum.items():
        add("maximum", metric, threshold, lambda v, t=threshold: v <= t)
    add("safety", "critical_violations", policy.safety.critical_violations,
        lambda v: v <= policy.safety.critical_violations)
    add("safety", "soft_violation_rate", policy.safety.soft_violation_rate,
        lambda v: v < policy.safety.soft_violation_rate)
    for metric, allowed in policy.max_regression.items():
        if metric not in champion:
            continue  # no champion yet (first release): nothing to regress against
        floor = (champion[metric] - allowed if metric in HIGHER_IS_BETTER
                 else champion[metric] + allowed)
        add("regression", metric, floor,
            (lambda v, f=floor: v >= f) if metric in HIGHER_IS_BETTER
            else (lambda v, f=floor: v <= f))
    return Verdict(results)
