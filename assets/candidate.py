"""candidate_index, eval_report and candidate_model: from checkpoint to registered version."""

import dagster as dg
from pydantic import Field

from assets.embeddings_index import IndexConfig, snapshot_output
from platform_defs.resources import (
    EncoderModel,
    EvalRegistryStore,
    MlflowStore,
    PlimsollHome,
    SliceStorage,
)

GROUP = "evaluation"


class EvalConfig(dg.Config):
    """What the eval runs on and how answers are scored."""

    evalset: str = Field(default="evalsets/python_docs_ci.jsonl",
                         description="Eval set (JSONL), relative to the repository root.")
    limit: int = Field(default=0, ge=0, description="First N questions only; 0 means all.")
    seed: int = Field(default=42, description="Seed recorded with the result (the eval "
                      "itself is deterministic).")
    abstain_below: float = Field(default=0.35, description="Answer only when the best "
                                 "passage scores at least this (cosine).")
    cost_per_cpu_second: float = Field(default=0.00005, ge=0, description="Currency units per "
                                       "CPU-second, for cost per request.")
    answer_template: str = Field(default="prompts/answer.md", description="Answer template.")
    abstain_template: str = Field(default="prompts/abstain.md",
                                  description="Abstention template.")
    guard_policy: str = Field(default="policies/guard.yaml", description="Query-time guard "
                              "policy (egress and email allowlists).")
    redteam: str = Field(default="evalsets/redteam.jsonl", description="Red-team set run "
                         "through the candidate's guarded query path; attacks that get "
                         "through count as critical violations.")


def _scores_table(systems: dict[str, dict[str, float]]) -> dg.TableMetadataValue:
    """One row per system; metrics a system lacks (BM25 has no answers) stay empty."""
    columns = list(dict.fromkeys(k for metrics in systems.values() for k in metrics))
    return dg.MetadataValue.table(records=[
        dg.TableRecord({"system": name, **{k: round(metrics[k], 4) if k in metrics else None
                                           for k in columns}})
        for name, metrics in systems.items()])


def build_candidate_assets(slice_names: list[str]) -> list[dg.AssetsDefinition]:
    """The evaluation half of the lineage graph."""

    @dg.asset(group_name="retrieval", deps=["dataset_slice"], kinds={"faiss", "pytorch"},
              code_version="1")
    def candidate_index(context: dg.AssetExecutionContext, config: IndexConfig,
                        finetuned_encoder: dict, home: PlimsollHome,
                        slice_storage: SliceStorage, encoder: EncoderModel) -> dg.Output[dict]:
        """Index snapshot of the published slices, embedded with the fine-tuned encoder."""
        return snapshot_output(context, config, slice_names, home, slice_storage,
                               finetuned_encoder["path"], encoder.batch_size)

    @dg.asset(group_name=GROUP, kinds={"mlflow", "sql"}, code_version="2")
    def eval_report(context: dg.AssetExecutionContext, config: EvalConfig,
                    finetuned_encoder: dict, candidate_index: dict, embeddings_index: dict,
                    home: PlimsollHome, mlflow: MlflowStore,
                    eval_registry: EvalRegistryStore) -> dg.Output[dict]:
        """How good the candidate is against the base encoder and BM25, on the eval set."""
        from platform_defs.profiles import REPO_ROOT
        from plimsoll.evaluation.candidate import run_candidate_eval

        outcome = run_candidate_eval(
            repo_root=REPO_ROOT, reports_dir=home.layout.eval_reports,
            evalset_path=REPO_ROOT / config.evalset, limit=config.limit or None,
            seed=config.seed, abstain_below=config.abstain_below,
            cost_per_cpu_second=config.cost_per_cpu_second,
            answer_template=REPO_ROOT / config.answer_template,
            abstain_template=REPO_ROOT / config.abstain_template,
            guard_policy=REPO_ROOT / config.guard_policy,
            redteam_path=REPO_ROOT / config.redteam,
            candidate={"encoder_path": finetuned_encoder["path"],
                       "snapshot_path": candidate_index["path"]},
            base={"encoder_path": embeddings_index["encoder_path"],
                  "snapshot_path": embeddings_index["path"]},
            registry=mlflow.registry(), mlflow_run_id=finetuned_encoder["mlflow_run_id"],
            eval_registry=eval_registry.open(),
            model_ref=f"checkpoint:{finetuned_encoder['digest']}",
            commit_sha=finetuned_encoder["git_commit"])
        candidate = outcome["systems"]["finetuned"]
        metrics_table = dg.MetadataValue.md(outcome["markdown"])
        return dg.Output(outcome, data_version=dg.DataVersion(outcome["report_digest"]),
                         metadata={
                             "report": metrics_table,
                             "plot": dg.MetadataValue.path(outcome["paths"]["plot"]),
                             "report_json": dg.MetadataValue.path(outcome["paths"]["json"]),
                             "scores": _scores_table(outcome["systems"]),
                             "recall@5": dg.MetadataValue.float(candidate["recall@5"]),
                             "mrr": dg.MetadataValue.float(candidate["mrr"]),
                             "eval_set_hash": outcome["eval_set_hash"],
                             "critical_violations": dg.MetadataValue.int(
                                 int(candidate["critical_violations"])),
                             "soft_violation_rate": dg.MetadataValue.float(
                                 candidate["soft_violation_rate"]),
                             # The counts the gate tests the rate on (see policies/slos.yaml).
                             "soft_violations": dg.MetadataValue.int(
                                 int(candidate["soft_violations"])),
                             "safety_answers": dg.MetadataValue.int(
                                 int(candidate["safety_answers"])),
                             "latency_p95_cpu_ms": dg.MetadataValue.float(
                                 candidate["latency_p95_cpu_ms"]),
                         })

    @dg.asset(group_name=GROUP, kinds={"mlflow"}, code_version="1")
    def candidate_model(context: dg.AssetExecutionContext, finetuned_encoder: dict,
                        candidate_index: dict, eval_report: dict,
                        mlflow: MlflowStore) -> dg.MaterializeResult:
        """The evaluated bundle as an immutable, fully traced version in the MLflow registry."""
        from plimsoll.evaluation.candidate import register_candidate

        version, tags = register_candidate(
            registry=mlflow.registry(), model_name=mlflow.model_name,
            finetuned=finetuned_encoder, index=candidate_index, report=eval_report)
        context.log.info(f"registered {mlflow.model_name} version {version}")
        return dg.MaterializeResult(metadata={
            "model_name": mlflow.model_name, "version": version,
            "model_uri": f"models:/{mlflow.model_name}/{version}",
            "lineage_digest": tags["plimsoll.lineage_digest"],
            "lineage": dg.MetadataValue.json(tags)})

    return [candidate_index, eval_report, candidate_model]
