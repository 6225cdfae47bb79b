"""The rollback job: the same lever as `plimsoll rollback`, from the Dagster UI."""

import dagster as dg
from pydantic import Field

from platform_defs.resources import MlflowStore, PromotionSettings


class RollbackConfig(dg.Config):
    """Where champion goes back to, and why."""

    to_version: str = Field(default="", description="An earlier champion; empty means the "
                            "one the current champion replaced.")
    reason: str = Field(default="rollback from the Dagster UI", description="Ledger reason.")


@dg.op(description="Move `champion` back along the promotion ledger.")
def rollback_champion(context: dg.OpExecutionContext, config: RollbackConfig,
                      mlflow: MlflowStore, promotion: PromotionSettings) -> None:
    """Roll back; the ledger records the run that did it."""
    promoter = promotion.promoter(mlflow)
    entry = promoter.rollback(to_version=config.to_version or None,
                              actor=f"dagster-run:{context.run_id[:8]}", reason=config.reason)
    context.log.info(f"champion: v{entry.from_version} → v{entry.to_version}")
    context.add_output_metadata({"from_version": entry.from_version or "",
                                 "to_version": entry.to_version}, output_name="result")


@dg.job(description="Roll the champion back to the previous (or a given) version.")
def rollback_job() -> None:
    """One op: rollback_champion."""
    rollback_champion()
