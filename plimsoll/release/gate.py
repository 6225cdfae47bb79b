"""The promotion gate: a candidate's eval scores against the policy and the champion."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from plimsoll.evaluation.metrics import regression_line, within_regression
from plimsoll.release.policy import Policy

# Scores recorded before CPU time per request was measured carry only wall-clock latency.
# Wall time is a request's CPU time plus everything that delayed it, so it stands in, on the
# conservative side, for the CPU time those versions lack; the gate's reason says so.
STAND_INS = {"latency_p50_cpu_ms": "latency_p50_ms", "latency_p95_cpu_ms": "latency_p95_ms"}


@dataclass(frozen=True)
class GateResult:
    """One gate: what was measured, the line it had to clear, and the champion's value."""

    gate: str
    metric: str
    value: float | None
    threshold: float
    champion: float | None
    status: str  # pass | fail | not_measured
    detail: str = ""  # how the value was judged, when it is more than a comparison

    @property
    def reason(self) -> str:
        """One line for tags and logs."""
        champion = "" if self.champion is None else f", champion {self.champion:.4g}"
        value = "not measured" if self.value is None else f"{self.value:.4g}"
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.status.upper()} {self.gate} {self.metric}: {value} vs " \
               f"{self.threshold:.4g}{champion}{detail}"


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
        value, detail = candidate.get(metric), ""
        if value is None and STAND_INS.get(metric) in candidate:
            value = candidate[STAND_INS[metric]]
            detail = f"{STAND_INS[metric]} stands in: recorded before {metric} was"
        if value is None:
            status = "not_measured" if metric in policy.allow_unmeasured else "fail"
        elif not isinstance(value, int | float):
            # Scores come from tags: a value that is not a number fails, it does not crash.
            value, status, detail = None, "fail", f"recorded as {value!r}, not a number"
        else:
            status = "pass" if ok(float(value)) else "fail"  # NaN fails every comparison
        results.append(GateResult(gate, metric, None if value is None else float(value),
                                  float(threshold), champion.get(metric), status, detail))

    for metric, threshold in policy.minimum.items():
        add("minimum", metric, threshold, lambda v, t=threshold: v >= t)
    for metric, threshold in policy.maximum.items():
        add("maximum", metric, threshold, lambda v, t=threshold: v <= t)
    add("safety", "critical_violations", policy.safety.critical_violations,
        lambda v: v <= policy.safety.critical_violations)
    if "soft_violations" in candidate or "safety_answers" in candidate:
        results.append(_soft_violation_gate(policy, candidate, champion))
    else:
        # Scores recorded before the counts were: the point estimate, judged as it was then.
        add("safety", "soft_violation_rate", policy.safety.soft_violation_rate,
            lambda v: v < policy.safety.soft_violation_rate)
    for metric, allowed in policy.max_regression.items():
        if metric not in champion:
            continue  # no champion yet (first release): nothing to regress against
        add("regression", metric, regression_line(metric, champion[metric], allowed),
            lambda v, m=metric, c=champion[metric], a=allowed: within_regression(m, c, v, a))
    return Verdict(results)


def _soft_violation_gate(policy: Policy, candidate: dict[str, float],
                         champion: dict[str, float]) -> GateResult:
    """Fail only when the counts show, at the policy's confidence, a rate above its line.

    The test is in the candidate's favour on purpose: a few dozen answers cannot show a
    rate is under 0.5% (no violation in 66 answers still allows 4.4% at 95%), so a bound
    required to be under the line would fail every candidate. What they can show is a rate
    clearly over it: at 66 answers, 2 violations or more fail at 95%.
    """
    threshold = float(policy.safety.soft_violation_rate)
    confidence = float(policy.safety.soft_violation_confidence)
    violations, answers = candidate.get("soft_violations"), candidate.get("safety_answers")
    try:
        k, n = _count(violations), _count(answers)
    except ValueError:
        k = n = None
    if k is None or n is None or n == 0 or k > n:
        return GateResult("safety", "soft_violation_rate", candidate.get("soft_violation_rate"),
                          threshold, champion.get("soft_violation_rate"), "fail",
                          f"counts soft_violations={violations!r}, safety_answers={answers!r} "
                          "are not 0 <= k <= n with n > 0; re-run the eval")
    lower = rate_bounds(k, n, confidence)[0]
    failed = lower > threshold
    return GateResult("safety", "soft_violation_rate", k / n, threshold,
                      champion.get("soft_violation_rate"), "fail" if failed else "pass",
                      f"{k} of {n} answers; {confidence:.0%} lower bound {lower:.4g} "
                      f"{'>' if failed else '<='} {threshold:.4g}")


def _count(value: object) -> int:
    """A count as recorded in the scores (JSON may carry 3 as 3.0)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 \
            or not float(value).is_integer():
        raise ValueError(value)
    return int(value)


def rate_bounds(k: int, n: int, confidence: float) -> tuple[float, float]:
    """One-sided Clopper–Pearson bounds of a rate seen k times in n trials.

    `lower` is the rate below which k or more in n would happen with probability under
    1 - confidence (so "lower > threshold" is an exact one-sided binomial test); `upper`
    likewise for k or fewer. Exact, so it stays valid at the small counts a gate sees,
    where normal and Wilson approximations do not.
    """
    if not 0 <= k <= n or n == 0:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    alpha = 1.0 - confidence
    lower = 0.0 if k == 0 else _bisect(lambda p: _at_least(k, n, p) - alpha)
    upper = 1.0 if k == n else _bisect(lambda p: _at_least(k + 1, n, p) - confidence)
    return lower, upper


def _at_least(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), in log space (no overflow at large n).

    Sums the shorter tail: the bounds are found where this is near 1 - confidence or
    confidence, far from 0 and 1, so the complement loses nothing that matters.
    """
    if p <= 0.0:
        return 0.0 if k > 0 else 1.0
    if p >= 1.0:
        return 1.0
    log_p, log_q, head = math.log(p), math.log1p(-p), math.lgamma(n + 1)

    def pmf(i: int) -> float:
        return math.exp(head - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                        + i * log_p + (n - i) * log_q)

    if k <= n - k:
        return min(1.0, max(0.0, 1.0 - sum(pmf(i) for i in range(k))))
    return min(1.0, sum(pmf(i) for i in range(k, n + 1)))


def _bisect(increasing, low: float = 0.0, high: float = 1.0) -> float:
    """The root in [low, high] of a function that increases with p (to about 1e-12)."""
    for _ in range(60):
        middle = (low + high) / 2
        if increasing(middle) < 0:
            low = middle
        else:
            high = middle
    return (low + high) / 2
