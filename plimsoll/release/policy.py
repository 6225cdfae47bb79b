"""Promotion policy (policies/slos.yaml): SLOs and gates as code, validated strictly."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, ValidationError

from plimsoll.common.errors import PlimsollError
from plimsoll.common.hashing import sha256_file
from plimsoll.evaluation.metrics import GATED_METRICS

# The names a policy may gate, from the one metric table (plimsoll/evaluation/metrics.py).
KNOWN_METRICS = frozenset(GATED_METRICS)
Number = StrictFloat | StrictInt


class PolicyError(PlimsollError):
    """The policy file is invalid."""


class Safety(BaseModel):
    """Safety targets.

    The soft-violation gate fails only when the eval shows, with `soft_violation_confidence`,
    that the true rate is above `soft_violation_rate` (a one-sided exact binomial test on the
    recorded counts; see plimsoll/release/gate.py). A point estimate on a few dozen answers cannot
    resolve a rate of 0.5%: one answer in 66 is 1.5%.
    """

    model_config = ConfigDict(extra="forbid")
    critical_violations: Annotated[StrictInt, Field(ge=0)] = 0
    soft_violation_rate: Annotated[Number, Field(ge=0, le=1)] = 0.005
    soft_violation_confidence: Annotated[Number, Field(ge=0.5, lt=1)] = 0.95


class Nightly(BaseModel):
    """When and on what the nightly evals run."""

    model_config = ConfigDict(extra="forbid")
    cron: str = "0 2 * * *"
    timezone: str = "UTC"
    evalset: str = "evalsets/python_docs_nightly.jsonl"


class Approval(BaseModel):
    """Who may approve a promotion (the trainer of a version never may)."""

    model_config = ConfigDict(extra="forbid")
    # Names as reviewers write them in approval.by; compared case-, space- and
    # Unicode-insensitively. Empty: anyone but the version's trainer.
    approvers: list[str] = Field(default_factory=list)


Duration = Annotated[str, Field(pattern=r"^[1-9][0-9]*[smhd]$")]  # Prometheus style: 10m, 1h


class LatencySlo(BaseModel):
    """Share of answers within a wall-clock threshold at the gateway."""

    model_config = ConfigDict(extra="forbid")
    threshold_ms: Annotated[Number, Field(gt=0)] = 250
    target: Annotated[Number, Field(gt=0, lt=1)] = 0.99


class LatencyDoubling(BaseModel):
    """Page when p95 latency is `factor` times what it was `baseline` earlier, for `for`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    factor: Annotated[Number, Field(gt=1)] = 2.0
    baseline: Duration = "1h"
    for_: Duration = Field(default="10m", alias="for")


class ServingAlerts(BaseModel):
    """Thresholds of the gateway's alerts that are not SLO burn rates."""

    model_config = ConfigDict(extra="forbid")
    latency_doubling: LatencyDoubling = Field(default_factory=LatencyDoubling)
    failure_rate: Annotated[Number, Field(gt=0, lt=1)] = 0.02
    safety_critical_per_minute: Annotated[Number, Field(gt=0)] = 1.0
    fallback_rate: Annotated[Number, Field(gt=0, lt=1)] = 0.05
    stale_index_hours: Annotated[Number, Field(gt=0)] = 720


class ServingSlo(BaseModel):
    """The gateway's SLOs on live traffic; the alert rules are generated from them."""

    model_config = ConfigDict(extra="forbid")
    window_days: Annotated[StrictInt, Field(ge=1, le=90)] = 30
    availability: Annotated[Number, Field(gt=0, lt=1)] = 0.995
    latency: LatencySlo = Field(default_factory=LatencySlo)
    alerts: ServingAlerts = Field(default_factory=ServingAlerts)


class Policy(BaseModel):
    """One page of SLOs and promotion gates."""

    model_config = ConfigDict(extra="forbid")
    version: StrictInt
    model: str
    minimum: dict[str, Number] = Field(default_factory=dict)
    maximum: dict[str, Number] = Field(default_factory=dict)
    safety: Safety = Field(default_factory=Safety)
    max_regression: dict[str, Number] = Field(default_factory=dict)
    allow_unmeasured: list[str] = Field(default_factory=list)
    nightly: Nightly = Field(default_factory=Nightly)
    approval: Approval = Field(default_factory=Approval)
    serving: ServingSlo = Field(default_factory=ServingSlo)

    path: Path | None = Field(default=None, exclude=True)
    digest: str = Field(default="", exclude=True)


def load_policy(path: Path) -> Policy:
    """Read policies/slos.yaml; unknown metrics and wrong types name the field and the fix."""
    from plimsoll.common.files import read_yaml

    path = Path(path)
    if not path.is_file():
        raise PolicyError("policy file not found" if not path.exists() else
                          "the policy is not a file", file=path,
                          fix="point PLIMSOLL_POLICY (or --policy) at policies/slos.yaml "
                          "(see README, Promotion)")
    raw = read_yaml(path, PolicyError)
    if raw is not None and not isinstance(raw, dict):
        raise PolicyError(f"the policy must be a YAML mapping, not a {type(raw).__name__}",
                          file=path, fix="see policies/slos.yaml in the repository")
    try:
        policy = Policy.model_validate(raw or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise PolicyError(first["msg"], file=path, field=field,
                          fix="thresholds are numbers (e.g. 0.85), counts are integers; "
                          "remove unknown keys") from None
    for section in ("minimum", "maximum", "max_regression"):
        for metric in getattr(policy, section):
            if metric not in KNOWN_METRICS:
                raise PolicyError(f"unknown metric '{metric}'", file=path,
                                  field=f"{section}.{metric}",
                                  fix=f"use one of: {', '.join(sorted(KNOWN_METRICS))}")
    for metric in policy.allow_unmeasured:
        if metric not in KNOWN_METRICS:
            raise PolicyError(f"unknown metric '{metric}'", file=path, field="allow_unmeasured",
                              fix=f"use one of: {', '.join(sorted(KNOWN_METRICS))}")
    return policy.model_copy(update={"path": path, "digest": sha256_file(path)})
