"""The observability group: live requests by day, their drift, and the gateway's golden signals."""

import base64
import re
from datetime import date
from pathlib import Path

import dagster as dg
from pydantic import Field

from platform_defs.resources import MlflowStore, PlimsollHome, PromotionSettings
from plimsoll.common.settings import COST_PER_CPU_SECOND

GROUP = "observability"
DRIFT_CHECK = "drift_within_policy"
# UTC days from when the gateway first recorded features; end_offset=1 includes today, so
# the day in progress can be looked at before it ends.
DAYS = dg.DailyPartitionsDefinition(start_date="2026-11-01", end_offset=1)
DAILY_RATES = ("abstention_rate", "refusal_rate", "fallback_rate", "guard_rate",
               "citation_rate")
SIGNAL_NUMBERS = ("requests", "latency_p50_ms", "latency_p95_ms", *DAILY_RATES,
                  "cpu_seconds", "cost", "cost_per_request")


class TrafficConfig(dg.Config):
    """Whose traffic to read."""

    model: str = Field(default="", description="Registered model name; empty means the "
                       "mlflow resource's model (the one the gateway serves).")


class DriftConfig(TrafficConfig):
    """Whose traffic, and by which policy."""

    policy: str = Field(default="", description="Observability policy (YAML); empty means the "
                        "project's ($PLIMSOLL_OBSERVABILITY, default policies/observability.yaml);"
                        " a relative path is in the project folder.")


class SignalsConfig(TrafficConfig):
    """Whose traffic, and what a CPU-second costs."""

    cost_per_cpu_second: float = Field(default=COST_PER_CPU_SECOND, ge=0, description="Currency "
                                       "units per CPU-second, for cost per request.")


def _day_rows(ledger_url: str, model: str, day: date) -> list:
    """The day's request features, read without writing (the gateway's recorder writes)."""
    from datetime import timedelta

    from plimsoll.observability.features import RequestFeatureStore

    store = RequestFeatureStore(ledger_url, create=False)
    try:
        return store.read(model, day, day + timedelta(days=1))
    finally:
        store.close()


def _plots_dir(home: PlimsollHome, model: str) -> Path:
    return home.layout.root / "observability" / re.sub(r"[^\w.-]", "_", model)


def _image(path: Path, title: str) -> dg.MarkdownMetadataValue:
    """The PNG inline (a data URI), so the UI shows it without serving files."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{data})")


@dg.asset(group_name=GROUP, kinds={"sql"}, partitions_def=DAYS)
def request_features_daily(context: dg.AssetExecutionContext, config: TrafficConfig,
                           mlflow: MlflowStore, promotion: PromotionSettings
                           ) -> dg.MaterializeResult:
    """One day of live traffic as recorded features: requests per model version and outcomes."""
    from plimsoll.observability.features import signals_by_version, signals_markdown, signals_of

    day = date.fromisoformat(context.partition_key)
    model = config.model or mlflow.model_name
    rows = _day_rows(promotion.ledger_url, model, day)
    overall = signals_of(rows, "all", COST_PER_CPU_SECOND)
    if overall is None:
        return dg.MaterializeResult(metadata={
            "model": model, "day": day.isoformat(), "requests": 0,
            "status": "no requests recorded on this day"})
    versions = signals_by_version(rows, COST_PER_CPU_SECOND)
    return dg.MaterializeResult(metadata={
        "model": model, "day": day.isoformat(), "requests": overall.requests,
        "requests_per_version": dg.MetadataValue.json(
            {s.model_version: s.requests for s in versions}),
        "latency_p50_ms": overall.latency_p50_ms, "latency_p95_ms": overall.latency_p95_ms,
        **{name: getattr(overall, name) for name in DAILY_RATES},
        "summary": dg.MetadataValue.md(signals_markdown([overall, *versions]))})


@dg.asset(group_name=GROUP, kinds={"sql"}, partitions_def=DAYS, deps=[request_features_daily],
          check_specs=[dg.AssetCheckSpec(
              DRIFT_CHECK, asset="drift_report", blocking=False,
              description="No request feature moved beyond policies/observability.yaml "
              "(drift:) against the reference window; days with too few requests are not "
              "judged.")])
def drift_report(context: dg.AssetExecutionContext, config: DriftConfig, mlflow: MlflowStore,
                 promotion: PromotionSettings, home: PlimsollHome) -> dg.MaterializeResult:
    """Whether the day's questions and answers still look like the days before it."""
    from plimsoll.common.settings import Settings
    from plimsoll.observability.drift import drift_for_day
    from plimsoll.observability.features import RequestFeatureStore
    from plimsoll.observability.policy import load_observability_policy

    settings = Settings.from_env()
    policy_path = settings.project_dir / config.policy if config.policy else \
        settings.observability
    policy = load_observability_policy(policy_path).drift
    day = date.fromisoformat(context.partition_key)
    model = config.model or mlflow.model_name
    store = RequestFeatureStore(promotion.ledger_url, create=False)
    try:
        outcome = drift_for_day(store, model, day, policy, _plots_dir(home, model))
    finally:
        store.close()
    report = outcome.report
    if not report.judged:
        context.log.warning(report.summary)
    for row in report.alerts:
        context.log.error(row.alert_line)
    metadata: dict[str, object] = {
        "model": model, "day": day.isoformat(), "judged": report.judged,
        "day_requests": report.day_requests, "reference_requests": report.reference_requests,
        "reference_window": report.window, "alerts": [row.name for row in report.alerts],
        "report": dg.MetadataValue.md(report.as_markdown())}
    if outcome.plot is not None:
        metadata["plot"] = _image(outcome.plot, f"drift on {day.isoformat()}")
        metadata["plot_path"] = dg.MetadataValue.path(str(outcome.plot))
    return dg.MaterializeResult(metadata=metadata, check_results=[dg.AssetCheckResult(
        check_name=DRIFT_CHECK, passed=not report.alerts,
        severity=dg.AssetCheckSeverity.WARN, description=report.summary,
        metadata={"judged": report.judged,
                  "alerts": dg.MetadataValue.md("\n".join(
                      f"- {row.alert_line}" for row in report.alerts) or "none"),
                  **{f"{row.name}/statistic": row.statistic for row in report.rows
                     if row.statistic is not None}})])


@dg.asset(group_name=GROUP, kinds={"sql"}, partitions_def=DAYS, deps=[request_features_daily])
def golden_signals(context: dg.AssetExecutionContext, config: SignalsConfig,
                   mlflow: MlflowStore, promotion: PromotionSettings,
                   home: PlimsollHome) -> dg.MaterializeResult:
    """The gateway's golden signals per model version for the day, drawn without Grafana."""
    from plimsoll.observability.features import (
        plot_golden_signals,
        signals_by_version,
        signals_markdown,
    )

    day = date.fromisoformat(context.partition_key)
    model = config.model or mlflow.model_name
    rows = _day_rows(promotion.ledger_url, model, day)
    if not rows:
        return dg.MaterializeResult(metadata={
            "model": model, "day": day.isoformat(), "requests": 0,
            "status": "no requests recorded on this day"})
    versions = signals_by_version(rows, config.cost_per_cpu_second)
    plot = plot_golden_signals(rows, versions, _plots_dir(home, model) /
                               f"golden-signals-{day.isoformat()}.png")
    metadata: dict[str, object] = {
        "model": model, "day": day.isoformat(), "requests": len(rows),
        "signals": dg.MetadataValue.md(signals_markdown(versions)),
        "plot": _image(plot, f"golden signals on {day.isoformat()}"),
        "plot_path": dg.MetadataValue.path(str(plot))}
    for signals in versions:
        prefix = f"v{signals.model_version}" if signals.model_version.isdigit() else \
            signals.model_version
        metadata.update({f"{prefix}/{name}": getattr(signals, name) for name in SIGNAL_NUMBERS})
    return dg.MaterializeResult(metadata=metadata)
