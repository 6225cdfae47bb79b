"""The serving group: shadow_comparison, how each challenger answered the champion's traffic."""

import dagster as dg
from pydantic import Field

from platform_defs.resources import MlflowStore, PromotionSettings

GROUP = "serving"

# The numbers of one summary shown on the asset; a number with nothing to measure is left out.
SUMMARY_NUMBERS = ("requests", "errors", "mean_agreement", "exact_agreement_rate",
                   "served_abstention_rate", "challenger_abstention_rate",
                   "served_refusal_rate", "challenger_refusal_rate",
                   "served_latency_p50_ms", "served_latency_p95_ms",
                   "challenger_latency_p50_ms", "challenger_latency_p95_ms")


class ShadowComparisonConfig(dg.Config):
    """Which registered model's shadow traffic to compare."""

    model: str = Field(default="", description="Registered model name; empty means the "
                       "mlflow resource's model (the one the gateway serves).")


@dg.asset(group_name=GROUP, kinds={"sql"})
def shadow_comparison(config: ShadowComparisonConfig, mlflow: MlflowStore,
                      promotion: PromotionSettings) -> dg.MaterializeResult:
    """How often each challenger agrees with the served champion on real, shadowed traffic."""
    from plimsoll.serving.shadow import HOW_TO_START, ShadowStore, as_markdown_table

    model = config.model or mlflow.model_name
    store = ShadowStore(promotion.ledger_url)  # the promotion ledger's database
    try:
        summaries = store.summarise(model)
    finally:
        store.close()
    if not summaries:
        return dg.MaterializeResult(metadata={
            "model": model, "pairs": 0, "status": "no shadow traffic recorded yet",
            "how_to_start": HOW_TO_START,
            "summary": dg.MetadataValue.md(
                f"No shadow traffic recorded yet for `{model}`. Start it with "
                f"`{HOW_TO_START}`.")})
    metadata: dict[str, object] = {
        "model": model, "pairs": sum(s.requests for s in summaries),
        "summary": dg.MetadataValue.md(as_markdown_table(summaries)),
        "verdicts": dg.MetadataValue.md("\n".join(f"- {s.verdict}" for s in summaries))}
    for summary in summaries:
        prefix = f"v{summary.challenger_version}_vs_v{summary.served_version}"
        metadata[f"{prefix}/verdict"] = summary.verdict
        for name in SUMMARY_NUMBERS:
            value = getattr(summary, name)
            if value is not None:
                metadata[f"{prefix}/{name}"] = value
        metadata[f"{prefix}/first_at"] = dg.MetadataValue.timestamp(summary.first_at)
        metadata[f"{prefix}/last_at"] = dg.MetadataValue.timestamp(summary.last_at)
    return dg.MaterializeResult(metadata=metadata)
