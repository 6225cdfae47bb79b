"""The release group: candidate_model, the evaluated bundle as a registered MLflow version."""

import dagster as dg

from platform_defs.resources import (
    DataManifests,
    MlflowStore,
    ProjectFiles,
    PromotionSettings,
    SliceStorage,
)
from plimsoll.evaluation.outcome import EvalOutcome
from plimsoll.retrieval.reference import SnapshotRef
from plimsoll.training.checkpoint import Checkpoint

GROUP = "release"


def build_candidate_model() -> dg.AssetsDefinition:
    """candidate_model: registered with write-once lineage, for the gate and the reviewer."""

    @dg.asset(group_name=GROUP, kinds={"mlflow"}, code_version="2")
    def candidate_model(context: dg.AssetExecutionContext, finetuned_encoder: Checkpoint,
                        candidate_index: SnapshotRef, eval_report: EvalOutcome,
                        mlflow: MlflowStore, project: ProjectFiles, manifests: DataManifests,
                        slice_storage: SliceStorage,
                        promotion: PromotionSettings) -> dg.MaterializeResult:
        """The evaluated bundle as an immutable, fully traced version in the MLflow registry."""
        from pathlib import Path

        from plimsoll.release.candidate import ReviewInputs, register_candidate, slice_rows
        from plimsoll.release.policy import load_policy

        review = ReviewInputs(
            model_card=project.path(project.model_card),
            fallbacks=project.path(project.fallbacks), manifests=Path(manifests.directory),
            policy=load_policy(Path(promotion.policy_path)),
            slice_rows=slice_rows(slice_storage.store(), candidate_index.slices))
        version, tags = register_candidate(
            registry=mlflow.registry(), model_name=mlflow.model_name,
            finetuned=finetuned_encoder, index=candidate_index, report=eval_report,
            review=review)
        context.log.info(f"registered {mlflow.model_name} version {version}: "
                         f"{mlflow.version_page(version)}")
        return dg.MaterializeResult(metadata={
            "MLflow version page": dg.MetadataValue.url(mlflow.version_page(version)),
            "model_name": mlflow.model_name, "version": version,
            "model_uri": f"models:/{mlflow.model_name}/{version}",
            "model_card": tags.get("plimsoll.lineage.model_card", ""),
            "prompt_versions": dg.MetadataValue.json(json_value(
                tags.get("plimsoll.lineage.prompt_versions", "{}"))),
            "lineage_digest": tags["plimsoll.lineage_digest"],
            "lineage": dg.MetadataValue.json(tags)})

    return candidate_model


def json_value(raw: str) -> object:
    """A JSON tag as a value for metadata ({} when it is not JSON)."""
    import json

    try:
        return json.loads(raw)
    except ValueError:
        return {}
