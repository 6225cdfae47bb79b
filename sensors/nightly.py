"""The nightly evals: the job that runs nightly_eval and the schedule that starts it."""

import dagster as dg

nightly_eval_job = dg.define_asset_job("nightly_eval_job", selection=["nightly_eval"],
                                       description="Full evals of champion and challenger.")


def nightly_schedule(cron: str, timezone: str) -> dg.ScheduleDefinition:
    """The nightly schedule (02:00 by default; policies/slos.yaml sets it)."""
    return dg.ScheduleDefinition(name="nightly_eval_schedule", job=nightly_eval_job,
                                 cron_schedule=cron, execution_timezone=timezone,
                                 default_status=dg.DefaultScheduleStatus.RUNNING)
