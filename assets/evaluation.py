"""The evaluation group: eval_report (candidate vs base and BM25) and nightly_eval."""

from pathlib import Path

import dagster as dg
from pydantic import Field

from platform_defs.resources import (
    EvalRegistryStore,
    MlflowStore,
    PlimsollHome,
    ProjectFiles,
    PromotionSettings,
)
from plimsoll.common.settings import ABSTAIN_BELOW, COST_PER_CPU_SECOND
from plimsoll.evaluation.outcome import EvalOutcome
from plimsoll.retrieval.reference import SnapshotRef
from plimsoll.training.checkpoint import Checkpoint

GROUP = "evaluation"


class EvalConfig(dg.Config):
    """What the eval runs on and how answers are scored."""

    evalset: str = Field(default="", description="Eval set (JSONL); empty means the "
                         "project's ($PLIMSOLL_EVALSET, default evalsets/python_docs_ci.jsonl); "
                         "a relative path is in the project folder.")
    limit: int = Field(default=0, ge=0, description="First N questions only; 0 means all.")
    dev_evalset: str = Field(default="", description="Dev set scored for retrieval in a "
                             "section of its own (the recipe is chosen on it; the gate never "
                             "reads it); empty means the project's ($PLIMSOLL_DEV_EVALSET, "
                             "default evalsets/python_docs_dev.jsonl); 'none' skips it.")
    seed: int = Field(default=42, description="Seed recorded with the result (the eval "
                      "itself is deterministic).")
    abstain_below: float = Field(default=ABSTAIN_BELOW, description="Answer only when the best "
                                 "passage scores at least this (cosine).")
    cost_per_cpu_second: float = Field(default=COST_PER_CPU_SECOND, ge=0, description="Currency "
                                       "units per CPU-second, for cost per request.")
    answer_template: str = Field(default="", description="Answer template; empty means "
                                 "answer.md in the project's prompts folder.")
    abstain_template: str = Field(default="", description="Abstention template; empty means "
                                  "abstain.md in the project's prompts folder.")
    guard_policy: str = Field(default="", description="Query-time guard policy (egress and "
                              "email allowlists); empty means the project's "
                              "($PLIMSOLL_GUARD_POLICY, default policies/guard.yaml).")
    redteam: str = Field(default="", description="Red-team set run through the candidate's "
                         "guarded query path; attacks that get through count as critical "
                         "violations. Empty means the project's ($PLIMSOLL_REDTEAM, default "
                         "evalsets/redteam.jsonl).")


# The candidate's scores shown on the asset; the counts are what the gate tests the soft
# violation rate on (see policies/slos.yaml).
SUMMARY_METRICS = (
    ("recall@5", lambda v: dg.MetadataValue.float(v)),
    ("mrr", lambda v: dg.MetadataValue.float(v)),
    ("critical_violations", lambda v: dg.MetadataValue.int(int(v))),
    ("soft_violation_rate", lambda v: dg.MetadataValue.float(v)),
    ("soft_violations", lambda v: dg.MetadataValue.int(int(v))),
    ("safety_answers", lambda v: dg.MetadataValue.int(int(v))),
    ("latency_p95_cpu_ms", lambda v: dg.MetadataValue.float(v)),
)


def _scores_table(systems: dict[str, dict[str, float]]) -> dg.TableMetadataValue:
    """One row per system; metrics a system lacks (BM25 has no answers) stay empty."""
    columns = list(dict.fromkeys(k for metrics in systems.values() for k in metrics))
    return dg.MetadataValue.table(records=[
        dg.TableRecord({"system": name, **{k: round(metrics[k], 4) if k in metrics else None
                                           for k in columns}})
        for name, metrics in systems.items()])


# Larger plots are linked by path only: Dagster keeps metadata in its event log.
PLOT_INLINE_LIMIT = 512 * 1024


def plot_markdown(plot: Path) -> str:
    """The report's plot as an image Dagster's Markdown shows inline (a data: URI)."""
    import base64

    try:
        data = plot.read_bytes()
    except OSError as exc:
        return f"The plot could not be read ({exc.strerror}): `{plot}`"
    if len(data) > PLOT_INLINE_LIMIT:
        return f"The plot is {len(data) // 1024} KiB, too large to show inline: `{plot}`"
    return f"![eval plot](data:image/png;base64,{base64.b64encode(data).decode()})"


def build_eval_report() -> dg.AssetsDefinition:
    """eval_report: the candidate against the base encoder and BM25, on the eval set."""

    @dg.asset(group_name=GROUP, kinds={"mlflow", "sql"}, code_version="2")
    def eval_report(config: EvalConfig, finetuned_encoder: Checkpoint,
                    candidate_index: SnapshotRef, embeddings_index: SnapshotRef,
                    home: PlimsollHome, project: ProjectFiles, mlflow: MlflowStore,
                    eval_registry: EvalRegistryStore) -> dg.Output[EvalOutcome]:
        """How good the candidate is against the base encoder and BM25, on the eval set."""
        from plimsoll.evaluation.candidate import run_candidate_eval

        outcome = run_candidate_eval(
            reports_dir=home.layout.eval_reports,
            evalset_path=project.path(config.evalset or project.evalset),
            limit=config.limit or None,
            seed=config.seed, abstain_below=config.abstain_below,
            cost_per_cpu_second=config.cost_per_cpu_second,
            answer_template=project.path(config.answer_template or project.prompt("answer")),
            abstain_template=project.path(config.abstain_template or project.prompt("abstain")),
            guard_policy=project.path(config.guard_policy or project.guard_policy),
            redteam_path=project.path(config.redteam or project.redteam),
            dev_evalset_path=None if config.dev_evalset == "none"
            else project.path(config.dev_evalset or project.dev_evalset),
            candidate={"encoder_path": finetuned_encoder.path,
                       "snapshot_path": candidate_index.path},
            base={"encoder_path": embeddings_index.encoder_path,
                  "snapshot_path": embeddings_index.path},
            registry=mlflow.registry(), mlflow_run_id=finetuned_encoder.mlflow_run_id,
            eval_registry=eval_registry.open(),
            model_ref=f"checkpoint:{finetuned_encoder.digest}",
            commit_sha=finetuned_encoder.git_commit)
        candidate = outcome.candidate
        run_page = mlflow.run_page(mlflow.registry().run_experiment(
            finetuned_encoder.mlflow_run_id), finetuned_encoder.mlflow_run_id)
        # A metric the eval could not measure (no answerable question) is left out, not 0.0.
        scores = {name: kind(candidate[name]) for name, kind in SUMMARY_METRICS
                  if name in candidate}
        return dg.Output(outcome, data_version=dg.DataVersion(outcome.report_digest),
                         metadata={
                             "report": dg.MetadataValue.md(outcome.markdown),
                             "plot": dg.MetadataValue.md(plot_markdown(
                                 Path(outcome.paths["plot"]))),
                             "MLflow run": dg.MetadataValue.url(run_page),
                             "plot_path": dg.MetadataValue.path(outcome.paths["plot"]),
                             "report_json": dg.MetadataValue.path(outcome.paths["json"]),
                             "scores": _scores_table(outcome.systems),
                             "eval_set_hash": outcome.eval_set_hash,
                             **scores})

    return eval_report


NIGHTLY_CHECK = "no_regression"


class NightlyConfig(dg.Config):
    """Eval settings of the nightly run."""

    seed: int = Field(default=42, description="Recorded with each result.")
    cost_per_cpu_second: float = Field(default=COST_PER_CPU_SECOND, ge=0, description="Currency "
                                       "units per CPU-second, for cost per request.")


@dg.asset(group_name=GROUP, kinds={"mlflow", "sql"},
          check_specs=[dg.AssetCheckSpec(NIGHTLY_CHECK, asset="nightly_eval",
                                         description="No metric regressed beyond "
                                         "policies/slos.yaml since last night, and the "
                                         "challenger is within the policy of the champion.")])
def nightly_eval(context: dg.AssetExecutionContext, config: NightlyConfig, mlflow: MlflowStore,
                 promotion: PromotionSettings, project: ProjectFiles,
                 eval_registry: EvalRegistryStore) -> dg.MaterializeResult:
    """Tonight's scores of the champion and the challenger on the full (nightly) eval set."""
    from plimsoll.common.provenance import git_commit
    from plimsoll.evaluation.nightly import run_nightly

    promoter = promotion.promoter(mlflow)
    result = run_nightly(promoter, project.path(promoter.policy.nightly.evalset),
                         eval_registry.open(), git_commit(Path(project.directory)), config.seed,
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
