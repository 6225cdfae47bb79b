"""The gateway's Prometheus rules, generated from policies/slos.yaml (`serving:`).

One generation writes every committed artefact (`plimsoll alerts render`): the plain rules
file, the PrometheusRule manifest with the same groups, the promtool unit tests that prove
each alert fires and stays silent where it should, and the Grafana dashboard. A test fails
when a committed file differs from what the policy generates.

Recording rules follow Prometheus' `level:metric:operations` naming. The SLO alerts are the
SRE workbook's multiwindow, multi-burn-rate alerts (chapter 5, "Alerting on SLOs"): burn rate
= error ratio / (1 - target), alerting when both a long and a short window burn faster than
the budget allows; the short window lets an alert stop soon after the errors stop.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from plimsoll.common.errors import PlimsollError

if TYPE_CHECKING:
    from plimsoll.observability.policy import ObservabilityPolicy
    from plimsoll.release.policy import ServingSlo

# The folder the generated files live in, relative to the project folder.
OUTPUT_DIR = Path("k8s/base/observability")
RULES_FILE = OUTPUT_DIR / "prometheus-rules.yaml"
PROMETHEUS_RULE_FILE = OUTPUT_DIR / "prometheus-rule.yaml"
ALERT_TESTS_FILE = OUTPUT_DIR / "tests" / "alerts-test.yaml"
DASHBOARD_FILE = OUTPUT_DIR / "grafana-dashboard.json"
RUNBOOKS = Path("policies/runbooks")
# Alerts link to the runbook in the repository on-call reads (the default branch), so the
# link works from a phone; tests/test_alert_rules.py checks each file exists.
RUNBOOK_URL_BASE = "https://git.plimsoll.internal/plimsoll/plimsoll/-/blob/main/"
HEADER = ("# Generated from policies/slos.yaml (serving:) by `plimsoll alerts render`; "
          "do not edit.\n")

SLI_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
# (long window, short window, share of the budget spent in the long window, severity): the
# SRE workbook's table for a 30-day SLO, where these shares give burn rates 14.4, 6, 3, 1.
BURN_ALERTS = (("1h", "5m", 0.02, "page"), ("6h", "30m", 0.05, "page"),
               ("1d", "2h", 0.10, "ticket"), ("3d", "6h", 0.10, "ticket"))
# A p95, a failure share or a fallback share of a handful of requests is noise: those alerts
# need at least this many answer requests per second (30 in 5 minutes).
MIN_ANSWER_RATE = 0.1
FAILURE_WINDOW = "10m"
SAFETY_WINDOW = "10m"
FALLBACK_WINDOW = "15m"
# The gateway's own failures; guard_block and bad_request are the request's doing, and
# fallback has its own alert.
ALERTED_FAILURE_REASONS = ("model_error", "timeout", "internal", "unavailable")

ANSWER = 'endpoint="answer"'
REQUESTS = "plimsoll_requests_total"
DURATION = "plimsoll_request_duration_seconds"


class AlertPolicyError(PlimsollError):
    """policies/slos.yaml (serving:) describes alerts that could never fire."""


@dataclass(frozen=True)
class Recording:
    """A recording rule: a name and the PromQL it stores."""

    record: str
    expr: str

    def as_dict(self) -> dict:
        """The rule as Prometheus reads it."""
        return {"record": self.record, "expr": self.expr}


@dataclass(frozen=True)
class Alert:
    """An alerting rule with the labels and annotations on-call sees."""

    name: str
    expr: str
    severity: str
    summary: str
    description: str
    runbook: str
    for_: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def runbook_url(self) -> str:
        """Where on-call reads what to do."""
        return RUNBOOK_URL_BASE + (RUNBOOKS / self.runbook).as_posix()

    @property
    def annotations(self) -> dict[str, str]:
        """summary, description, runbook_url."""
        return {"summary": self.summary, "description": self.description,
                "runbook_url": self.runbook_url}

    def as_dict(self) -> dict:
        """The rule as Prometheus reads it."""
        rule: dict = {"alert": self.name, "expr": self.expr}
        if self.for_:
            rule["for"] = self.for_
        rule["labels"] = {"severity": self.severity, **self.labels}
        rule["annotations"] = self.annotations
        return rule


@dataclass(frozen=True)
class RuleSet:
    """Every rule generated from one policy, in evaluation order."""

    recording: list[Recording]
    alerts: list[Alert]
    slo: ServingSlo

    def groups(self) -> list[dict]:
        """The rule groups: recordings first, so alerts read this evaluation's values."""
        return [{"name": "plimsoll-gateway-recording",
                 "rules": [r.as_dict() for r in self.recording]},
                {"name": "plimsoll-gateway-alerts",
                 "rules": [a.as_dict() for a in self.alerts]}]


# ---------------------------------------------------------------------------- durations
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(duration: str) -> int:
    """A Prometheus duration such as 10m or 3d in seconds."""
    match = re.fullmatch(r"([1-9][0-9]*)([smhd])", duration)
    if not match:
        raise ValueError(f"not a duration: {duration!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


def burn_rate(budget_share: float, long_window: str, window_days: int) -> float:
    """The burn rate that spends `budget_share` of the SLO window's budget in `long_window`."""
    return round(budget_share * window_days * 86400 / seconds(long_window), 4)


def _number(value: float) -> str:
    return f"{value:g}"


def le_matcher(threshold_s: float) -> str:
    """A PromQL matcher for the bucket at `threshold_s`.

    Both spellings: prometheus_client writes le="1.0", Prometheus 3 normalises it to le="1".
    """
    forms = dict.fromkeys([repr(float(threshold_s)), f"{threshold_s:g}"])
    regex = "|".join(re.escape(form) for form in forms)
    return 'le=~"' + regex.replace("\\", "\\\\") + '"'


# ---------------------------------------------------------------------------- the rules
def check_policy(slo: ServingSlo, buckets: list[float], *, source: Path | str) -> None:
    """Refuse a policy whose alerts could never fire or whose SLI cannot be read."""
    threshold = slo.latency.threshold_ms / 1000
    if not any(math.isclose(threshold, b, rel_tol=1e-9) for b in buckets):
        raise AlertPolicyError(
            f"the latency threshold ({slo.latency.threshold_ms:g} ms) is not a latency bucket "
            f"({', '.join(_number(b) for b in buckets)} s), so no rule can count the answers "
            "within it", file=source, field="serving.latency.threshold_ms",
            fix="set it to a bucket of policies/observability.yaml (metrics.latency_buckets_s) "
            "or add the bucket there")
    for name, target in (("availability", slo.availability), ("latency.target",
                                                              slo.latency.target)):
        for long_window, _short, share, _severity in BURN_ALERTS:
            burn = burn_rate(share, long_window, slo.window_days)
            if burn * (1 - target) >= 1:
                raise AlertPolicyError(
                    f"with a target of {target:g} the {long_window} burn-rate alert needs an "
                    f"error ratio of {burn:g} x {1 - target:.4g} = {burn * (1 - target):.3g}, "
                    "more than every request failing: it could never fire",
                    file=source, field=f"serving.{name}",
                    fix="a serving SLO target is close to 1 (e.g. 0.99 or 0.995)")
    doubling = slo.alerts.latency_doubling
    if seconds(doubling.for_) + seconds("5m") >= seconds(doubling.baseline):
        raise AlertPolicyError(
            f"latency_doubling compares p95 over 5m with its value {doubling.baseline} earlier "
            f"and must hold for {doubling.for_}: by then the baseline has caught up with the "
            "slow period, so it could never fire", file=source,
            field="serving.alerts.latency_doubling",
            fix="make `baseline` longer than `for` plus 5m (e.g. baseline: 1h, for: 10m)")


def _ratio_rule(kind: str, window: str, threshold_le: str) -> Recording:
    if kind == "availability":
        errors = (f'(sum(rate(plimsoll_answers_total{{outcome="unavailable"}}[{window}])) '
                  f"or vector(0))\n+\n"
                  f'(sum(rate({REQUESTS}{{{ANSWER},code=~"5.."}}[{window}])) or vector(0))')
        # A 4xx is the client's request refused before the model: neither good nor bad.
        expr = (f"(\n{errors}\n)\n/\nsum(rate({REQUESTS}{{{ANSWER},code!~\"4..\"}}"
                f"[{window}]))")
    else:
        expr = (f"1 - (\n  sum(rate({DURATION}_bucket{{{ANSWER},{threshold_le}}}[{window}]))\n"
                f"  /\n  sum(rate({DURATION}_count{{{ANSWER}}}[{window}]))\n)")
    return Recording(f"plimsoll:{kind}_errors:ratio_rate{window}", expr)


def recording_rules(slo: ServingSlo) -> list[Recording]:
    """SLI error ratios per window, p50/p95 per model version, rates and shares."""
    threshold_le = le_matcher(slo.latency.threshold_ms / 1000)
    rules = [_ratio_rule(kind, w, threshold_le)
             for kind in ("availability", "latency") for w in SLI_WINDOWS]
    for quantile in ("0.5", "0.95"):
        name = "p" + quantile.split(".")[1].ljust(2, "0")
        rules.append(Recording(
            f"plimsoll:answer_latency_seconds:{name}_5m",
            f"histogram_quantile({quantile}, sum by (model_version, le) "
            f"(rate({DURATION}_bucket{{{ANSWER}}}[5m])))"))
    rules += [
        Recording("plimsoll:answer_requests:rate5m",
                  f"sum by (model_version) (rate({DURATION}_count{{{ANSWER}}}[5m]))"),
        Recording("plimsoll:requests:rate5m",
                  f"sum by (endpoint, model_version, code) (rate({REQUESTS}[5m]))"),
        Recording(f"plimsoll:answer_failures:ratio_rate{FAILURE_WINDOW}",
                  f"sum by (reason) (rate(plimsoll_request_failures_total{{{ANSWER}}}"
                  f"[{FAILURE_WINDOW}]))\n/ on () group_left\n"
                  f"sum(rate({REQUESTS}{{{ANSWER}}}[{FAILURE_WINDOW}]))"),
        Recording(f"plimsoll:fallbacks:ratio_rate{FALLBACK_WINDOW}",
                  f"(sum(rate(plimsoll_fallbacks_total[{FALLBACK_WINDOW}])) or vector(0))\n"
                  f"/\nsum(rate(plimsoll_answers_total[{FALLBACK_WINDOW}]))"),
        Recording(f"plimsoll:safety_critical_findings:per_minute{SAFETY_WINDOW}",
                  f'60 * (sum(rate(plimsoll_safety_findings_total{{severity="critical"}}'
                  f"[{SAFETY_WINDOW}])) or vector(0))"),
    ]
    return rules


def _enough_traffic(window: str) -> str:
    return (f"and on ()\nsum(rate({REQUESTS}{{{ANSWER}}}[{window}])) "
            f">= {_number(MIN_ANSWER_RATE)}")


def alert_rules(slo: ServingSlo) -> list[Alert]:
    """The alerts: latency doubling, SLO burn rates, failures, safety, fallbacks, staleness."""
    settings = slo.alerts
    doubling = settings.latency_doubling
    p95 = "plimsoll:answer_latency_seconds:p95_5m"
    alerts = [Alert(
        "PlimsollAnswerLatencyDoubled",
        f"{p95}\n  >= {_number(doubling.factor)} * ({p95} offset {doubling.baseline})\n"
        f"and on (model_version)\nplimsoll:answer_requests:rate5m >= {_number(MIN_ANSWER_RATE)}",
        "page", "p95 answer latency of model version {{ $labels.model_version }} is "
        f"{_number(doubling.factor)}x what it was {doubling.baseline} ago",
        f"p95 of POST /v1/answer over 5m has been at least {_number(doubling.factor)} times its "
        f"value {doubling.baseline} earlier for {doubling.for_} (with at least "
        f"{_number(MIN_ANSWER_RATE)} requests/s). A new version, index snapshot or prompt, or "
        "a slow dependency, is the usual cause.", "latency-doubled.md", for_=doubling.for_)]
    for kind, target, what in (
            ("availability", slo.availability, "answered by the model (not a 5xx, not the "
             "static fallback)"),
            ("latency", slo.latency.target,
             f"answered within {slo.latency.threshold_ms:g} ms")):
        budget = f"(1 - {_number(target)})"
        for long_window, short_window, share, severity in BURN_ALERTS:
            burn = burn_rate(share, long_window, slo.window_days)
            ratio = f"plimsoll:{kind}_errors:ratio_rate"
            alerts.append(Alert(
                f"Plimsoll{kind.capitalize()}Burn{long_window}",
                f"{ratio}{long_window} > ({_number(burn)} * {budget})\nand\n"
                f"{ratio}{short_window} > ({_number(burn)} * {budget})",
                severity, f"the {kind} SLO burns its error budget at {_number(burn)}x or "
                f"more over {long_window}",
                f"The {kind} SLO ({_number(target * 100)}% of answer requests {what}, over "
                f"{slo.window_days} days) is burning its error budget at {_number(burn)}x or "
                f"more over both {long_window} and {short_window}: at this rate "
                f"{_number(share * 100)}% of the budget is gone in {long_window}.",
                f"{kind}-burn.md", labels={"slo": kind}))
    reasons = "|".join(ALERTED_FAILURE_REASONS)
    alerts += [
        Alert("PlimsollAnswerFailures",
              f'plimsoll:answer_failures:ratio_rate{FAILURE_WINDOW}{{reason=~"{reasons}"}} '
              f"> {_number(settings.failure_rate)}\n{_enough_traffic(FAILURE_WINDOW)}",
              "page", "{{ $labels.reason }} fails more than "
              f"{_number(settings.failure_rate * 100)}% of answer requests",
              "The share of POST /v1/answer requests failing with reason {{ $labels.reason }} "
              f"has been over {_number(settings.failure_rate * 100)}% for {FAILURE_WINDOW}.",
              "answer-failures.md"),
        Alert("PlimsollSafetyCriticalSpike",
              f"plimsoll:safety_critical_findings:per_minute{SAFETY_WINDOW} > "
              f"{_number(settings.safety_critical_per_minute)}",
              "page", "more than "
              f"{_number(settings.safety_critical_per_minute)} critical guard findings a minute",
              "The query-time guard has found more than "
              f"{_number(settings.safety_critical_per_minute)} critical findings per minute "
              f"over {SAFETY_WINDOW} (input, passage and output stages): an attack wave or a "
              "poisoned index snapshot.", "safety-spike.md"),
        Alert("PlimsollFallbackRate",
              f"plimsoll:fallbacks:ratio_rate{FALLBACK_WINDOW} > "
              f"{_number(settings.fallback_rate)}\n{_enough_traffic(FALLBACK_WINDOW)}",
              "ticket", "more than "
              f"{_number(settings.fallback_rate * 100)}% of answers are fallbacks",
              "The share of answers served by a fallback (static suggestions or the short form) "
              f"has been over {_number(settings.fallback_rate * 100)}% for {FALLBACK_WINDOW}.",
              "fallback-rate.md"),
        Alert("PlimsollIndexSnapshotStale",
              "time() - max by (model_version) "
              "(plimsoll_index_snapshot_built_timestamp_seconds)\n"
              f"  > {_number(settings.stale_index_hours)} * 3600",
              "ticket", "the index snapshot of model version {{ $labels.model_version }} is "
              f"older than {_number(settings.stale_index_hours)} hours",
              "The served index snapshot was built more than "
              f"{_number(settings.stale_index_hours)} hours ago: answers miss newer "
              "documentation.", "stale-index.md"),
    ]
    return alerts


def rule_set(slo: ServingSlo, observability: ObservabilityPolicy, *,
             source: Path | str = "policies/slos.yaml") -> RuleSet:
    """Every rule for one policy, after checking that each alert can fire."""
    check_policy(slo, observability.metrics.latency_buckets_s, source=source)
    return RuleSet(recording_rules(slo), alert_rules(slo), slo)


# ---------------------------------------------------------------------------- documents
class _Block(str):
    """A string YAML writes as a literal block (multi-line PromQL stays readable)."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Block, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style="|"))


def _blocks(value):
    if isinstance(value, dict):
        return {k: _blocks(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_blocks(v) for v in value]
    if isinstance(value, str) and "\n" in value:
        return _Block(value)
    return value


def dump_yaml(document: dict) -> str:
    """YAML with multi-line strings as literal blocks, keys in the order given."""
    return yaml.dump(_blocks(document), Dumper=_Dumper, sort_keys=False, width=100,
                     allow_unicode=True)


def rules_document(rules: RuleSet) -> dict:
    """The plain rules file (`groups:`), for promtool and a Prometheus without the operator."""
    return {"groups": rules.groups()}


def prometheus_rule(rules: RuleSet) -> dict:
    """The same groups as a Prometheus Operator PrometheusRule."""
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": {"name": "plimsoll-gateway", "namespace": "plimsoll",
                         "labels": {"app.kubernetes.io/name": "plimsoll-gateway",
                                    "app.kubernetes.io/component": "alerting"}},
            "spec": {"groups": rules.groups()}}


def render_files(slo: ServingSlo, observability: ObservabilityPolicy, *,
                 source: Path | str = "policies/slos.yaml") -> dict[Path, str]:
    """Every generated file (relative to the project folder) and its text."""
    from plimsoll.observability.dashboard import dashboard

    rules = rule_set(slo, observability, source=source)
    rules_text = dump_yaml(rules_document(rules))
    files = {RULES_FILE: HEADER + rules_text,
             PROMETHEUS_RULE_FILE: HEADER + dump_yaml(prometheus_rule(rules))}
    for path, tests in promtool_tests(rules).items():
        files[path] = (HEADER + f"# Run: promtool test rules {path.as_posix()} (the rule file "
                       "path is relative to this file).\n" + dump_yaml(tests))
    files[DASHBOARD_FILE] = json.dumps(dashboard(slo), indent=2) + "\n"
    return files


def stale_files(project: Path, files: dict[Path, str]) -> list[Path]:
    """The generated files whose committed copy under `project` is missing or different."""
    return [path for path, text in files.items()
            if not (project / path).is_file() or (project / path).read_text() != text]


# ---------------------------------------------------------------------------- promtool tests
def _plain(value: float) -> str:
    """A number without an exponent (promtool's series notation reads `+` as a step)."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


def _series(*phases: tuple[float, int]) -> str:
    """A counter in promtool's expanding notation: (increase per step, steps) per phase."""
    parts, value, first = [], 0.0, True
    for per_step, steps in phases:
        if first:
            parts.append(f"{_plain(value)}+{_plain(per_step)}x{steps}")
            value += per_step * steps
            first = False
        else:
            value += per_step
            parts.append(f"{_plain(value)}+{_plain(per_step)}x{steps - 1}")
            value += per_step * (steps - 1)
    return " ".join(parts)


def _expected(alert: Alert, labels: dict[str, str]) -> dict:
    def fill(text: str) -> str:
        return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], text)

    return {"exp_labels": {"severity": alert.severity, **alert.labels, **labels},
            "exp_annotations": {k: fill(v) for k, v in alert.annotations.items()}}


def _minutes(duration: str) -> int:
    return max(1, seconds(duration) // 60)


def _group(name: str, series: dict[str, str],
           checks: list[tuple[Alert, int, dict[str, str] | None]],
           expr_checks: list[dict] | None = None, step_minutes: int = 1) -> dict:
    """One promtool test group: input series and (alert, minute, labels or None) checks.

    The labels are those the alert fires with; None means it must be silent then.
    """
    test: dict = {
        "name": name, "interval": f"{step_minutes}m",
        "input_series": [{"series": s, "values": v} for s, v in series.items()],
        "alert_rule_test": [{"eval_time": f"{minute}m", "alertname": alert.name,
                             "exp_alerts": [] if fires is None else [_expected(alert, fires)]}
                            for alert, minute, fires in checks]}
    if expr_checks:
        test["promql_expr_test"] = expr_checks
    return test


def _case(name: str, series: dict[str, str], alert: Alert, eval_minutes: int,
          fires: dict[str, str] | None) -> dict:
    return _group(f"{alert.name}: {name}", series, [(alert, eval_minutes, fires)])


def _availability_series(total: float, error_phases: list[tuple[float, int]]) -> dict[str, str]:
    """Answer requests per minute, a third of the errors as the static fallback (HTTP 200)."""
    five = [(2 * e / 3, n) for e, n in error_phases]
    unavailable = [(e / 3, n) for e, n in error_phases]
    ok = [(total - 2 * e / 3, n) for e, n in error_phases]
    version = 'model_version="3"'
    return {
        f'{REQUESTS}{{{ANSWER},{version},code="200"}}': _series(*ok),
        f'{REQUESTS}{{{ANSWER},{version},code="500"}}': _series(*five),
        f'plimsoll_answers_total{{{version},outcome="unavailable"}}': _series(*unavailable),
    }


def _latency_series(total: float, slow_phases: list[tuple[float, int]],
                    threshold_le: str) -> dict[str, str]:
    version = 'model_version="3"'
    good = [(total - s, n) for s, n in slow_phases]
    everything = [(total, n) for _, n in slow_phases]
    return {
        f'{DURATION}_bucket{{{ANSWER},{version},le="{threshold_le}"}}': _series(*good),
        f'{DURATION}_bucket{{{ANSWER},{version},le="+Inf"}}': _series(*everything),
        f'{DURATION}_count{{{ANSWER},{version}}}': _series(*everything),
    }


def _burn_cases(rules: RuleSet, long_window: str) -> list[dict]:
    """Both SLOs' burn alerts over one long window (their series differ, so one timeline).

    Errors at 1.5x the burn rate fire them, and once the errors stop the short window silences
    them while the long one still burns; errors at 0.8x never fire them.
    """
    slo = rules.slo
    _, short_window, share, _ = next(b for b in BURN_ALERTS if b[0] == long_window)
    burn = burn_rate(share, long_window, slo.window_days)
    long_m, short_m = _minutes(long_window), _minutes(short_window)
    step = _burn_step(long_window)
    per_step = 1000.0 * step
    threshold_le = f"{slo.latency.threshold_ms / 1000:g}"
    kinds = {"availability": slo.availability, "latency": slo.latency.target}
    alerts = {kind: next(a for a in rules.alerts if a.name == f"Plimsoll{kind.capitalize()}"
                         f"Burn{long_window}") for kind in kinds}

    def series(multiple: float, phases: list[tuple[bool, int]]) -> dict[str, str]:
        out: dict[str, str] = {}
        for kind, target in kinds.items():
            errors = [(per_step * multiple * burn * (1 - target) * on, minutes // step)
                      for on, minutes in phases]
            out |= (_availability_series(per_step, errors) if kind == "availability"
                    else _latency_series(per_step, errors, threshold_le))
        return out

    fire_at = long_m + 5 * step
    quiet_at = fire_at + short_m + 5 * step
    still_burning = [{"expr": f"plimsoll:{kind}_errors:ratio_rate{long_window} > bool "
                      f"{burn * (1 - target)!r}", "eval_time": f"{quiet_at}m",
                      "exp_samples": [{"labels": "{}", "value": 1}]} for kind, target in
                     kinds.items()]
    names = " and ".join(a.name for a in alerts.values())
    return [
        _group(f"{names}: errors at 1.5x the burn rate for {long_window} fire them; "
               f"{short_window} after the errors stop they are silent while {long_window} "
               "still burns", series(1.5, [(True, fire_at), (False, short_m + 10 * step)]),
               [(alert, fire_at, {}) for alert in alerts.values()]
               + [(alert, quiet_at, None) for alert in alerts.values()],
               still_burning, step),
        _group(f"{names}: errors at 0.8x the burn rate for {long_window} stay silent",
               series(0.8, [(True, long_m + 10 * step)]),
               [(alert, fire_at, None) for alert in alerts.values()], step_minutes=step),
    ]


def _latency_doubling_cases(rules: RuleSet, alert: Alert) -> list[dict]:
    doubling = rules.slo.alerts.latency_doubling
    baseline_m, for_m = _minutes(doubling.baseline), _minutes(doubling.for_)
    slow_from = baseline_m + 10
    fast, slow = 0.1, round(0.4 * doubling.factor, 6)  # p95 0.095 s, then >= 1.5x factor

    def histogram(per_minute: float, slow_minutes: int) -> dict[str, str]:
        version = 'model_version="3"'
        phases = [(per_minute, slow_from), (per_minute, slow_minutes)]
        fast_counts = [(per_minute, slow_from), (0.0, slow_minutes)]
        return {
            f'{DURATION}_bucket{{{ANSWER},{version},le="{fast:g}"}}': _series(*fast_counts),
            f'{DURATION}_bucket{{{ANSWER},{version},le="{slow:g}"}}': _series(*phases),
            f'{DURATION}_bucket{{{ANSWER},{version},le="+Inf"}}': _series(*phases),
            f'{DURATION}_count{{{ANSWER},{version}}}': _series(*phases)}

    busy = 60 * MIN_ANSWER_RATE * 10
    quiet = 60 * MIN_ANSWER_RATE * 0.8
    fire_at = slow_from + 5 + for_m + 5
    cases = [
        _case(f"p95 up {_number(doubling.factor)}x+ for longer than {doubling.for_} fires",
              histogram(busy, fire_at - slow_from + 5), alert, fire_at,
              {"model_version": "3"}),
        _case("the same slowdown on a trickle of traffic stays silent",
              histogram(quiet, fire_at - slow_from + 5), alert, fire_at, None),
    ]
    if for_m >= 2:
        cases.append(_case(f"a slowdown not yet {doubling.for_} old stays silent (pending)",
                           histogram(busy, for_m + 5), alert, slow_from + for_m // 2, None))
    return cases


def _failure_cases(rules: RuleSet, alert: Alert) -> list[dict]:
    limit = rules.slo.alerts.failure_rate
    total, minutes = 1000.0, _minutes(FAILURE_WINDOW) + 10

    def series(reason: str, ratio: float, per_minute: float = total) -> dict[str, str]:
        return {f'{REQUESTS}{{{ANSWER},model_version="3",code="200"}}':
                _series((per_minute, minutes)),
                f'plimsoll_request_failures_total{{{ANSWER},reason="{reason}"}}':
                _series((per_minute * ratio, minutes))}

    return [
        _case("model errors at 2x the threshold fire it", series("model_error", 2 * limit),
              alert, minutes, {"reason": "model_error"}),
        _case("model errors under the threshold stay silent",
              series("model_error", 0.5 * limit), alert, minutes, None),
        _case("guard blocks (the request's doing) stay silent",
              series("guard_block", min(0.5, 10 * limit)), alert, minutes, None),
        _case("timeouts on a trickle of traffic stay silent",
              series("timeout", 0.5, 60 * MIN_ANSWER_RATE * 0.5), alert, minutes, None),
    ]


def _safety_cases(rules: RuleSet, alert: Alert) -> list[dict]:
    limit = rules.slo.alerts.safety_critical_per_minute
    minutes = _minutes(SAFETY_WINDOW) + 5

    def series(critical: float, soft: float) -> dict[str, str]:
        return {'plimsoll_safety_findings_total{stage="input",severity="critical",'
                'category="prompt_injection"}': _series((critical, minutes)),
                'plimsoll_safety_findings_total{stage="output",severity="soft",'
                'category="pii"}': _series((soft, minutes))}

    return [
        _case("critical findings at 2x the limit fire it", series(2 * limit, 0), alert,
              minutes, {}),
        _case("soft findings, however many, and few critical ones stay silent",
              series(0.5 * limit, 20 * limit), alert, minutes, None),
    ]


def _fallback_cases(rules: RuleSet, alert: Alert) -> list[dict]:
    limit = rules.slo.alerts.fallback_rate
    total, minutes = 1000.0, _minutes(FALLBACK_WINDOW) + 5

    def series(ratio: float, per_minute: float = total) -> dict[str, str]:
        return {f'{REQUESTS}{{{ANSWER},model_version="3",code="200"}}':
                _series((per_minute, minutes)),
                'plimsoll_answers_total{model_version="3",outcome="answered_cited"}':
                _series((per_minute * (1 - ratio), minutes)),
                'plimsoll_answers_total{model_version="3",outcome="unavailable"}':
                _series((per_minute * ratio, minutes)),
                'plimsoll_fallbacks_total{kind="static_suggestions",reason="timeout"}':
                _series((per_minute * ratio, minutes))}

    return [
        _case("fallbacks at 2x the threshold fire it", series(2 * limit), alert, minutes, {}),
        _case("fallbacks under the threshold stay silent", series(0.5 * limit), alert,
              minutes, None),
    ]


def _stale_cases(rules: RuleSet, alert: Alert) -> list[dict]:
    hours = rules.slo.alerts.stale_index_hours
    gauge = 'plimsoll_index_snapshot_built_timestamp_seconds{model_version="3",instance="a"}'
    # promtool's clock starts at the epoch: a snapshot built "before" it is a negative time.
    old, fresh = -(hours + 1) * 3600, 0
    return [
        _case(f"a snapshot built {_number(hours + 1)} hours ago fires it",
              {gauge: f"{_plain(old)}+0x20"}, alert, 10, {"model_version": "3"}),
        _case("a snapshot built minutes ago stays silent",
              {gauge: f"{_plain(fresh)}+0x20"}, alert, 10, None),
    ]


CASES: dict[str, Callable[[RuleSet, Alert], list[dict]]] = {
    "latency-doubled.md": _latency_doubling_cases,
    "answer-failures.md": _failure_cases,
    "safety-spike.md": _safety_cases,
    "fallback-rate.md": _fallback_cases,
    "stale-index.md": _stale_cases,
}


def _burn_step(long_window: str) -> int:
    """Minutes between samples (and evaluations) for a burn window's tests.

    promtool evaluates every rule at every step, and three days of 1-minute steps take
    minutes; the ratios are the same at 10 or 30 minutes.
    """
    hours = seconds(long_window) / 3600
    return 1 if hours < 6 else 10 if hours < 72 else 30


def alert_test_file(step_minutes: int) -> Path:
    """The promtool test file evaluated every `step_minutes`."""
    if step_minutes == 1:
        return ALERT_TESTS_FILE
    return ALERT_TESTS_FILE.with_name(f"alerts-test-every-{step_minutes}m.yaml")


def promtool_tests(rules: RuleSet) -> dict[Path, dict]:
    """`promtool test rules` files, one per evaluation interval.

    For every alert an input that fires it and ones that must not, each named as what
    on-call would see.
    """
    by_step: dict[int, list[dict]] = {1: [case for alert in rules.alerts
                                          if alert.runbook in CASES
                                          for case in CASES[alert.runbook](rules, alert)]}
    for long_window, *_ in BURN_ALERTS:
        by_step.setdefault(_burn_step(long_window), []).extend(_burn_cases(rules, long_window))
    # Recordings first at each step, as in Prometheus; promtool's own order is random.
    order = [group["name"] for group in rules.groups()]
    return {alert_test_file(step): {"rule_files": [f"../{RULES_FILE.name}"],
                                    "evaluation_interval": f"{step}m",
                                    "group_eval_order": order, "tests": tests}
            for step, tests in sorted(by_step.items())}
