"""Promotion sensors: the eval gate (cursor-based) and the approval watcher (state-based).

The gate sensor's cursor is the storage id of the last candidate_model materialization it
gated. The approval sensor keeps no cursor: what it has acted on is recorded in MLflow (the
version's approval.state tag) and in the promotion ledger, so a restart, a lost cursor or two
evaluations at once neither repeat a decision nor miss one, and a decision a reviewer corrects
later (an approval that named no reviewer) is still seen. No MLflow timestamp could serve as
its cursor: setting a tag, which is how a reviewer decides, leaves a version's
last_updated_timestamp as it was.
"""

import dagster as dg

from platform_defs.resources import MlflowStore, PromotionSettings

CANDIDATE = dg.AssetKey("candidate_model")


@dg.sensor(name="promotion_gate_sensor", minimum_interval_seconds=15,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Gates each newly registered candidate against policies/slos.yaml "
           "and the champion; a pass makes it the challenger, pending approval.")
def promotion_gate_sensor(context: dg.SensorEvaluationContext, mlflow: MlflowStore,
                          promotion: PromotionSettings) -> dg.SensorResult:
    """Evaluate the gates of every candidate_model materialization after the cursor."""
    after = int(context.cursor) if context.cursor else None
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=CANDIDATE, after_storage_id=after), limit=20,
        ascending=True).records
    if not records:
        return dg.SensorResult(skip_reason=dg.SkipReason("no new candidate versions"))
    promoter = promotion.promoter(mlflow)
    events, cursor = [], after
    for record in records:
        metadata = record.asset_materialization.metadata
        version = str(metadata["version"].value)
        verdict, fresh = promoter.gate(version)
        if fresh:
            context.log.info(f"{promoter.model} v{version}: gate "
                             f"{'PASS' if verdict.passed else 'FAIL'}")
            events.append(dg.AssetObservation(asset_key=CANDIDATE, metadata={
                "version": version,
                "gate_verdict": "pass" if verdict.passed else "fail",
                "gates": dg.MetadataValue.md(_gate_table(verdict)),
                "next_step": ("approve in the MLflow UI: set tag approval=approved (and "
                              "approval.by=<you>) on this version" if verdict.passed else
                              "not promotable; see the failing gates"),
            }))
        cursor = record.storage_id
    return dg.SensorResult(asset_events=events, cursor=str(cursor))


@dg.sensor(name="approval_sensor", minimum_interval_seconds=10,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Watches the `approval` tag reviewers set in the MLflow UI, "
           "re-verifies gate and lineage, moves `champion` and appends to the ledger.")
def approval_sensor(context: dg.SensorEvaluationContext, mlflow: MlflowStore,
                    promotion: PromotionSettings) -> dg.SensorResult:
    """One tick: act on reviewer decisions not yet acted on (MLflow's tags say which).

    MLflow errors fail the tick and it retries on the next one.
    """
    from plimsoll.release.promotion import MoveInProgress

    promoter = promotion.promoter(mlflow)
    try:
        outcomes = promoter.process_approvals()
    except MoveInProgress as exc:  # another evaluation is moving champion right now
        return dg.SensorResult(skip_reason=dg.SkipReason(exc.describe()))
    if not outcomes:
        return dg.SensorResult(skip_reason=dg.SkipReason("no new reviewer decisions"))
    events = []
    for outcome in outcomes:
        log = context.log.info if outcome.action == "promoted" else context.log.warning
        log(f"{promoter.model} v{outcome.version}: {outcome.action} ({outcome.reason})")
        events.append(dg.AssetObservation(asset_key=CANDIDATE, metadata={
            "version": outcome.version, "promotion": outcome.action,
            "reason": outcome.reason, "champion": promoter.alias("champion") or "none"}))
    return dg.SensorResult(asset_events=events)


def _gate_table(verdict) -> str:
    lines = ["| gate | metric | value | threshold | champion | status |",
             "|---|---|---|---|---|---|"]
    for row in verdict.results:
        value = "-" if row.value is None else f"{row.value:.4g}"
        champion = "-" if row.champion is None else f"{row.champion:.4g}"
        lines.append(f"| {row.gate} | {row.metric} | {value} | {row.threshold:.4g} | "
                     f"{champion} | {row.status} |")
    return "\n".join(lines)
