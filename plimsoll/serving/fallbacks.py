"""The fallback policy (policies/fallbacks.yaml) and the freshness of a served snapshot.

Two fallbacks, each named in every answer that used it: `static_suggestions` when the model
is unavailable (nothing loads, the registry is down at start, an answer raises or overruns
its budget) and `short_form` when retrieval is stale (strict cited quotes and a nudge to
search).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from plimsoll.common.errors import PlimsollError

STATIC = "static_suggestions"
SHORT_FORM = "short_form"
FALLBACKS_FILE = "policies/fallbacks.yaml"


class FallbackPolicyError(PlimsollError):
    """policies/fallbacks.yaml is invalid."""


class Suggestion(BaseModel):
    """One page of the static list."""

    model_config = ConfigDict(extra="forbid")
    title: Annotated[StrictStr, Field(min_length=1)]
    url: Annotated[StrictStr, Field(pattern=r"^https?://\S+$")]


class ModelUnavailable(BaseModel):
    """What users get when no model can answer."""

    model_config = ConfigDict(extra="forbid")
    answer_budget_ms: Annotated[StrictInt, Field(gt=0, le=120_000)] = 2000
    message: Annotated[StrictStr, Field(min_length=1)]
    suggestions: Annotated[list[Suggestion], Field(min_length=1)]


class RetrievalStale(BaseModel):
    """When retrieval counts as stale, and what a short-form answer says."""

    model_config = ConfigDict(extra="forbid")
    max_snapshot_age_days: Annotated[StrictInt, Field(ge=1)] = 30
    slice_ttl: StrictBool = True
    failed_checks: StrictBool = True
    nudge: Annotated[StrictStr, Field(min_length=1)]
    recheck_s: Annotated[StrictInt, Field(ge=1, le=3600)] = 30


class RequestLimits(BaseModel):
    """What is refused before any model code runs."""

    model_config = ConfigDict(extra="forbid")
    max_body_bytes: Annotated[StrictInt, Field(ge=256, le=10_000_000)] = 16384


class FallbackPolicy(BaseModel):
    """One page: the fallbacks of the gateway."""

    model_config = ConfigDict(extra="forbid")
    version: StrictInt
    model_unavailable: ModelUnavailable
    retrieval_stale: RetrievalStale
    request: RequestLimits = Field(default_factory=RequestLimits)

    def static_text(self) -> str:
        """The static answer: the message and the list of pages."""
        pages = "\n".join(f"- {s.title}: {s.url}" for s in self.model_unavailable.suggestions)
        return f"{self.model_unavailable.message}\n{pages}"


def load_fallback_policy(path: Path) -> FallbackPolicy:
    """Read policies/fallbacks.yaml; a wrong field names file:line, the field and the fix."""
    from plimsoll.common.files import load_yaml_model

    return load_yaml_model(Path(path), FallbackPolicy, error=FallbackPolicyError,
                           what="the fallback policy", allow_empty=False,
                           fix="see policies/fallbacks.yaml in the repository: budgets and "
                           "ages are whole numbers, suggestions have a title and an http(s) "
                           "url; remove unknown keys")


@dataclass(frozen=True)
class Freshness:
    """Why a snapshot's retrieval is stale (no reasons: fresh)."""

    reasons: tuple[str, ...] = ()
    checked_at: datetime | None = None
    # One kind per reason, for metrics: stale_snapshot | slice_ttl | failed_checks.
    kinds: tuple[str, ...] = ()

    @property
    def stale(self) -> bool:
        """Long-form answers must be suppressed."""
        return bool(self.reasons)


def snapshot_freshness(policy: RetrievalStale, *, built_at: datetime | None,
                       slices: Mapping[str, str], slice_ttl_days: Mapping[str, int],
                       latest_checks: Mapping[str, object],
                       now: datetime | None = None) -> Freshness:
    """Judge one snapshot: its age, its slices' TTLs, and their latest check runs.

    A snapshot holds its slices as they were when it was built, so a slice's age is at
    least the snapshot's. `latest_checks` maps a slice name to its latest check run (an
    object with `passed`, `at` and `failures`); a snapshot whose build time is unknown is
    judged by its slices' checks only.
    """
    now = now or datetime.now(UTC)
    reasons: list[str] = []
    kinds: list[str] = []
    age_days = (now - built_at).total_seconds() / 86400 if built_at else None
    if age_days is not None and age_days > policy.max_snapshot_age_days:
        reasons.append(f"the index snapshot is {age_days:.0f} days old (the policy's maximum "
                       f"is {policy.max_snapshot_age_days})")
        kinds.append("stale_snapshot")
    if policy.slice_ttl and age_days is not None:
        for name in sorted(slices):
            ttl = slice_ttl_days.get(name)
            if ttl is not None and age_days > ttl:
                reasons.append(f"slice {name} is past its TTL ({age_days:.0f} days old, "
                               f"ttl_days {ttl})")
                kinds.append("slice_ttl")
    if policy.failed_checks:
        for name in sorted(slices):
            run = latest_checks.get(name)
            if run is not None and not run.passed:
                reasons.append(f"the latest checks of slice {name} failed at "
                               f"{run.at:%Y-%m-%d %H:%M} UTC ({run.failures[:160]})")
                kinds.append("failed_checks")
    return Freshness(tuple(reasons), now, tuple(dict.fromkeys(kinds)))


def slice_ttls(manifests: Path) -> dict[str, int]:
    """ttl_days of each slice declared in a manifest folder ({} when there is none)."""
    from plimsoll.datasets.manifests import load_manifest, manifest_paths

    if not Path(manifests).is_dir():
        return {}
    ttls = {}
    for path in manifest_paths(Path(manifests)):
        try:
            manifest = load_manifest(path)
        except PlimsollError:
            continue  # a broken manifest is the dataset stage's error, not the gateway's
        ttls[manifest.name] = manifest.ttl_days
    return ttls
