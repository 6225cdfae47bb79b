"""The gateway's golden metrics (prometheus_client), served at GET /metrics.

A lean set aligned to the SLOs (policies/slos.yaml `serving:`) and the risks: latency and
traffic per endpoint and model version, failures by reason, cost (CPU seconds × the price per
CPU second, and per 1k tokens), cache hits, safety findings, answerability, fallbacks, and what
is served (version and flag state as info metrics). The alert rules and the dashboard
(plimsoll/observability/alerts.py, dashboard.py) read these names.

Label values are bounded, so the series count is too: endpoints are a fixed list (unknown
paths count as `other`), status codes are the few the app sends, reasons, kinds, stages and
severities are enumerations, guard categories come from the guard's own table, and
`model_version` keeps the first `metrics.max_versions` versions a process serves (later ones
count as `other`; a process is restarted long before that matters). With every label at its
bound the gateway exposes a few thousand series at most.

Each registry belongs to one Gateway (tests run several in one process). A pod runs one
uvicorn worker (scale is replicas behind the Service, k8s/base/gateway/), so the numbers are
one process's and prometheus_client's multiprocess mode is not needed.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from plimsoll.observability.policy import MetricsPolicy

ENDPOINTS = {"/v1/answer": "answer", "/v1/model": "model", "/healthz": "healthz",
             "/readyz": "readyz", "/metrics": "metrics", "/v1/hooks/mlflow": "webhook"}
OTHER = "other"
NONE = "none"
# Answerability of one answer (POST /v1/answer): what the user got.
OUTCOMES = ("answered_cited", "answered_uncited", "abstained", "refused", "unavailable")
FAILURE_REASONS = ("model_error", "timeout", "unavailable", "guard_block", "fallback",
                   "bad_request", "internal")
FALLBACK_REASONS = ("unavailable", "timeout", "model_error", "stale_snapshot", "slice_ttl",
                    "failed_checks")
STAGES = ("input", "passage", "output")
SEVERITIES = ("critical", "soft")
TOKEN_KINDS = ("question", "passages", "answer")


class GatewayMetrics:
    """The metrics of one gateway, in a registry of its own."""

    def __init__(self, policy: MetricsPolicy, *, price_per_cpu_second: float,
                 model_name: str, categories: Sequence[str] = ()) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.price = price_per_cpu_second
        self.model_name = model_name
        self.max_versions = policy.max_versions
        self._versions: set[str] = set()
        self._categories = frozenset(categories)
        self._lock = threading.Lock()
        self._served_labels: tuple[str, ...] | None = None
        self._flag_labels: set[tuple[str, str]] = set()
        r = self.registry
        ProcessCollector(registry=r)  # process_cpu_seconds_total, resident memory, fds
        self.duration = Histogram(
            "plimsoll_request_duration_seconds", "Wall-clock time of a request at the gateway",
            ["endpoint", "model_version"], buckets=list(policy.latency_buckets_s), registry=r)
        self.requests = Counter("plimsoll_requests", "Requests by endpoint, version and status",
                                ["endpoint", "model_version", "code"], registry=r)
        self.answers = Counter("plimsoll_answers", "Answers by what the user got (answered "
                               "with or without citations, abstained, refused, unavailable)",
                               ["model_version", "outcome"], registry=r)
        self.failures = Counter("plimsoll_request_failures", "Requests that failed, by reason",
                                ["endpoint", "reason"], registry=r)
        self.fallbacks = Counter("plimsoll_fallbacks", "Answers served by a fallback",
                                 ["kind", "reason"], registry=r)
        self.findings = Counter("plimsoll_safety_findings", "Guard findings by stage, severity "
                                "and category", ["stage", "severity", "category"], registry=r)
        self.cpu = Counter("plimsoll_cpu_seconds", "CPU seconds spent answering",
                           ["model_version"], registry=r)
        self.cost = Counter("plimsoll_cost", "Cost of answering (CPU seconds x the price per "
                            "CPU second)", ["model_version"], registry=r)
        self.tokens = Counter("plimsoll_tokens", "Tokens of questions, cited passages and "
                              "answers", ["model_version", "kind"], registry=r)
        self.cache = Counter("plimsoll_cache_lookups", "Cache lookups (bundle on disk, passage "
                             "verdicts)", ["cache", "result"], registry=r)
        self.served = Gauge("plimsoll_served_version_info", "The version the alias serves "
                            "(1 for the current one)", ["model", "version", "alias",
                                                       "prompt_template", "index_snapshot"],
                            registry=r)
        self.flags = Gauge("plimsoll_flag_info", "Flag state (1 for each flag's variant)",
                           ["flag", "variant"], registry=r)
        self.snapshot_built = Gauge("plimsoll_index_snapshot_built_timestamp_seconds",
                                    "When the served index snapshot was built (unix seconds)",
                                    ["model_version"], registry=r)
        self.swaps = Counter("plimsoll_bundle_swaps", "Times the served version changed",
                             registry=r)
        self.traces = Counter("plimsoll_traces", "Finished traces kept or dropped by the tail "
                              "sampler, by reason", ["decision", "reason"], registry=r)

    # -- label bounds ----------------------------------------------------------------------
    def version(self, version: object) -> str:
        """The model_version label: the version, `none`, or `other` past the bound."""
        if version is None or version == "":
            return NONE
        text = str(version)
        with self._lock:
            if text in self._versions:
                return text
            if len(self._versions) < self.max_versions:
                self._versions.add(text)
                return text
        return OTHER

    def category(self, category: str) -> str:
        """A guard category from the guard's table, else `other`."""
        return category if category in self._categories else OTHER

    # -- what the HTTP layer and the gateway report ----------------------------------------
    def observe_request(self, path: str, code: int, seconds: float,
                        model_version: object = None) -> None:
        """One HTTP request, at the end of its response."""
        endpoint = ENDPOINTS.get(path, OTHER)
        version = self.version(model_version)
        # A refused request (4xx) is counted, not timed: the latency SLI is of answers.
        if not 400 <= code < 500:
            self.duration.labels(endpoint, version).observe(seconds)
        self.requests.labels(endpoint, version, str(code)).inc()
        if code in (400, 413, 422):
            self.failures.labels(endpoint, "bad_request").inc()
        elif code >= 500:
            self.failures.labels(endpoint, "internal").inc()

    def observe_answer(self, *, model_version: object, outcome: str,
                       failure: str | None, fallback: str | None,
                       fallback_reasons: Sequence[str],
                       findings: Sequence[tuple[str, object]],
                       cpu_seconds: float) -> None:
        """One answer: what the user got, why it failed or fell back, what it cost."""
        version = self.version(model_version)
        self.answers.labels(version, outcome).inc()
        if failure:
            self.failures.labels("answer", failure).inc()
        if outcome == "refused":
            self.failures.labels("answer", "guard_block").inc()
        if fallback:
            self.failures.labels("answer", "fallback").inc()
            for reason in fallback_reasons or (failure or "unavailable",):
                self.fallbacks.labels(fallback, reason).inc()
        for stage, finding in findings:  # (input|passage|output, a guard Finding)
            self.findings.labels(stage if stage in STAGES else OTHER,
                                 finding.severity if finding.severity in SEVERITIES
                                 else "soft", self.category(finding.category)).inc()
        if cpu_seconds > 0:
            self.cpu.labels(version).inc(cpu_seconds)
            self.cost.labels(version).inc(cpu_seconds * self.price)

    def observe_answer_tokens(self, model_version: object, tokens: Mapping[str, int]) -> None:
        """The tokens of one answer's question, cited passages and answer (counted later)."""
        version = self.version(model_version)
        for kind, count in tokens.items():
            if kind in TOKEN_KINDS and count > 0:
                self.tokens.labels(version, kind).inc(count)

    def cache_lookup(self, cache: str, hit: bool, count: int = 1) -> None:
        """`count` lookups of one cache that hit (or missed)."""
        if count > 0:
            self.cache.labels(cache, "hit" if hit else "miss").inc(count)

    def set_served(self, *, version: str, alias: str | None, prompt_template: str,
                   index_snapshot: str, built_at_unix: float | None) -> None:
        """The version now served: its info series is 1, the previous one's is removed."""
        labels = (self.model_name, str(version), alias or NONE, prompt_template or NONE,
                  index_snapshot or NONE)
        with self._lock:
            if self._served_labels and self._served_labels != labels:
                self.served.remove(*self._served_labels)
            self._served_labels = labels
        self.served.labels(*labels).set(1)
        if built_at_unix is not None:
            self.snapshot_built.labels(self.version(version)).set(built_at_unix)
        self.swaps.inc()

    def set_flags(self, variants: Mapping[str, str]) -> None:
        """The flags' current variants, one series per flag."""
        current = {(flag, variant) for flag, variant in variants.items()}
        with self._lock:
            for gone in self._flag_labels - current:
                self.flags.remove(*gone)
            self._flag_labels = current
        for flag, variant in current:
            self.flags.labels(flag, variant).set(1)

    def count_trace(self, decision: str, reason: str) -> None:
        """A finished trace the tail sampler kept or dropped, and why (Tracing's on_decision)."""
        self.traces.labels(decision, reason).inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
