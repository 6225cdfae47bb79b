"""The observability policy (policies/observability.yaml): metrics, tracing, sampling, drift.

One page, checked when the gateway starts and at definitions load. The SLOs the alerts
protect live in policies/slos.yaml (`serving:`); the latency SLO's threshold must be one of
the latency buckets here, or no rule could read its burn rate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt

from plimsoll.common.errors import PlimsollError

OBSERVABILITY_FILE = "policies/observability.yaml"
Number = StrictFloat | StrictInt


class ObservabilityPolicyError(PlimsollError):
    """policies/observability.yaml is invalid."""


class MetricsPolicy(BaseModel):
    """Prometheus metrics of the gateway."""

    model_config = ConfigDict(extra="forbid")
    latency_buckets_s: Annotated[list[Annotated[Number, Field(gt=0)]], Field(min_length=3)] = [
        0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
    max_versions: Annotated[StrictInt, Field(ge=1, le=64)] = 8


class TracingPolicy(BaseModel):
    """Where traces go."""

    model_config = ConfigDict(extra="forbid")
    exporter: Literal["auto", "mlflow", "otlp", "none"] = "auto"
    mlflow_experiment: Annotated[str, Field(min_length=1)] = "plimsoll-gateway-traces"
    export_queue: Annotated[StrictInt, Field(ge=1, le=100_000)] = 512


class SamplingPolicy(BaseModel):
    """Which finished traces are kept (tail sampling in the gateway)."""

    model_config = ConfigDict(extra="forbid")
    slowest_n: Annotated[StrictInt, Field(ge=0, le=10_000)] = 10
    window_s: Annotated[Number, Field(gt=0, le=86_400)] = 60
    rate: Annotated[Number, Field(ge=0, le=1)] = 0.01
    first_seen_capacity: Annotated[StrictInt, Field(ge=1, le=10_000_000)] = 100_000


class FeaturesPolicy(BaseModel):
    """The request features the gateway records for drift."""

    model_config = ConfigDict(extra="forbid")
    enabled: StrictBool = True
    queue: Annotated[StrictInt, Field(ge=1, le=1_000_000)] = 2048


class DriftPolicy(BaseModel):
    """How a day of request features is compared with its reference window."""

    model_config = ConfigDict(extra="forbid")
    reference_days: Annotated[StrictInt, Field(ge=1, le=90)] = 7
    min_requests: Annotated[StrictInt, Field(ge=1)] = 200
    psi_alert: Annotated[Number, Field(gt=0)] = 0.25
    rate_delta_alert: Annotated[Number, Field(gt=0, le=1)] = 0.10


class ObservabilityPolicy(BaseModel):
    """One page: what the gateway measures and what Dagster alarms on."""

    model_config = ConfigDict(extra="forbid")
    version: StrictInt
    metrics: MetricsPolicy = Field(default_factory=MetricsPolicy)
    tracing: TracingPolicy = Field(default_factory=TracingPolicy)
    sampling: SamplingPolicy = Field(default_factory=SamplingPolicy)
    features: FeaturesPolicy = Field(default_factory=FeaturesPolicy)
    drift: DriftPolicy = Field(default_factory=DriftPolicy)


def load_observability_policy(path: Path, *, latency_threshold_ms: float | None = None
                              ) -> ObservabilityPolicy:
    """Read policies/observability.yaml; a wrong field names file:line, the field and the fix.

    With `latency_threshold_ms` (policies/slos.yaml, serving.latency.threshold_ms), a
    threshold that is not a latency bucket is an error here rather than a silent alert gap.
    """
    from plimsoll.common.files import load_yaml_model

    path = Path(path)
    policy = load_yaml_model(path, ObservabilityPolicy, error=ObservabilityPolicyError,
                             what="the observability policy", allow_empty=False,
                             fix="see policies/observability.yaml in the repository: rates "
                             "are within 0..1, counts are whole numbers; remove unknown keys")
    buckets = policy.metrics.latency_buckets_s
    if sorted(set(buckets)) != list(buckets):
        raise ObservabilityPolicyError("latency buckets must be strictly increasing",
                                       file=path, field="metrics.latency_buckets_s",
                                       fix="list them from the smallest up, each once")
    if latency_threshold_ms is not None and not any(
            abs(b * 1000 - latency_threshold_ms) < 1e-6 for b in buckets):
        raise ObservabilityPolicyError(
            f"the latency SLO's threshold ({latency_threshold_ms:g} ms, policies/slos.yaml "
            "serving.latency.threshold_ms) is not a latency bucket", file=path,
            field="metrics.latency_buckets_s",
            fix=f"add {latency_threshold_ms / 1000:g} to the buckets, or set the threshold to "
            "one of them")
    return policy
