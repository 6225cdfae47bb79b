"""nightly_eval: the full eval set on champion and challenger, every night."""

import dagster as dg
from pydantic import Field

from platform_defs.resources import EvalRegistryStore, MlflowStore, PromotionSettings

NIGHTLY_CHECK = "no_regression"


class NightlyConfig(dg.Config):
    """Eval settings of the nightly run."""

    seed: int = Field(default=42, description="Recorded with each result.")
    cost_per_cpu_second: float = Field(default=0.00005, ge=0)


@dg.asset(group_name="evaluation", kinds={"mlflow", "sql"},
          check_specs=[dg.AssetCheckSpec(NIGHTLY_CHECK, asset="nightly_eval",
                                         description="No metric regressed beyond "
                                         "policies/slos.yaml since last night, and the "
                                         "challenger is within the policy of the champion.")])
def nightly_eval(context: dg.AssetExecutionContext, config: NightlyConfig, mlflow: MlflowStore,
                 promotion: PromotionSettings,
                 eval_registry: EvalRegistryStore) -> dg.MaterializeResult:
    """Tonight's scores of the champion and the challenger on the full (nightly) eval set."""
    from platform_defs.profiles import REPO_ROOT
    from plimsoll.common.provenance import git_commit
    from plimsoll.evaluation.nightly import run_nightly

    promoter = promotion.promoter(mlflow)
    result = run_nightly(promoter, REPO_ROOT / promoter.policy.nightly.evalset,
                         eval_registry.open(), git_commit(REPO_ROOT), config.seed,
                         config.cost_per_cpu_second)
    for regression in result.regressions:
        context.log.error(regression.alert)
    return dg.MaterializeResult(
        metadata={"versions": dg.MetadataValue.json(result.versions),
                  "scores": dg.MetadataValue.json(result.scores)},
        check_results=[dg.AssetCheckResult(
            check_name=NIGHTLY_CHECK, passed=not result.regressions,
            severity=dg.AssetCheckSeverity.ERROR,
            description="; ".join(r.alert for r in result.regressions) or "no regression",
            metadata={"regressions": dg.MetadataValue.json([
                {"model": r.model_ref, "metric": r.metric, "old": r.old, "new": r.new,
                 "allowed": r.allowed, "against": r.against} for r in result.regressions])})])


nightly_eval_job = dg.define_asset_job("nightly_eval_job", selection=[nightly_eval],
                                       description="Full evals of champion and challenger.")


def nightly_schedule(cron: str, timezone: str) -> dg.ScheduleDefinition:
    """The nightly schedule (02:00 by default; policies/slos.yaml sets it)."""
    return dg.ScheduleDefinition(name="nightly_eval_schedule", job=nightly_eval_job,
                                 cron_schedule=cron, execution_timezone=timezone,
                                 default_status=dg.DefaultScheduleStatus.RUNNING)
