"""The release group: candidate_model, the evaluated bundle as a registered MLflow version."""

import dagster as dg

from platform_defs.resources import MlflowStore
from plimsoll.evaluation.outcome import EvalOutcome
from plimsoll.retrieval.reference import SnapshotRef
from plimsoll.training.checkpoint import Checkpoint

GROUP = "release"


def build_candidate_model() -> dg.AssetsDefinition:
    """candidate_model: registered with write-once lineage, for the gate and the reviewer."""

    @dg.asset(group_name=GROUP, kinds={"mlflow"}, code_version="1")
    def candidate_model(context: dg.AssetExecutionContext, finetuned_encoder: Checkpoint,
                        candidate_index: SnapshotRef, eval_report: EvalOutcome,
                        mlflow: MlflowStore) -> dg.MaterializeResult:
        """The evaluated bundle as an immutable, fully traced version in the MLflow registry."""
        from plimsoll.release.candidate import register_candidate

        version, tags = register_candidate(
            registry=mlflow.registry(), model_name=mlflow.model_name,
            finetuned=finetuned_encoder, index=candidate_index, report=eval_report)
        context.log.info(f"registered {mlflow.model_name} version {version}")
        return dg.MaterializeResult(metadata={
            "model_name": mlflow.model_name, "version": version,
            "model_uri": f"models:/{mlflow.model_name}/{version}",
            "lineage_digest": tags["plimsoll.lineage_digest"],
            "lineage": dg.MetadataValue.json(tags)})

    return candidate_model
