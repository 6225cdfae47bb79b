"""training_pairs and finetuned_encoder: what the model learns from, and the checkpoint."""

from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field

from platform_defs.resources import (
    DataManifests,
    EncoderModel,
    MlflowStore,
    PlimsollHome,
    ProjectFiles,
    SliceStorage,
)
from plimsoll.training.checkpoint import Checkpoint, TrainingPairsFile

GROUP = "training"
DEFAULT_TRAINING_SLICES = ["python_help_topics", "stdlib_docstrings"]


class PairsConfig(dg.Config):
    """Which slices teach the model."""

    training_slices: list[str] = Field(default_factory=lambda: list(DEFAULT_TRAINING_SLICES),
                                       description="Slices that pairs are derived from.")


class TrainingConfig(dg.Config):
    """Hyperparameters of the contrastive fine-tune (all recorded in lineage)."""

    epochs: int = Field(default=1, ge=1, description="Passes over the pairs.")
    learning_rate: float = Field(default=5e-5, gt=0, description="AdamW learning rate.")
    batch_size: int = Field(default=16, ge=2, description="Pairs per step; the other passages "
                            "of a batch are the negatives.")
    max_length: int = Field(default=128, ge=8, description="Token limit of passages.")
    query_max_length: int = Field(default=48, ge=4, description="Token limit of queries.")
    seed: int = Field(default=42, description="Seed of data order, dropout and init.")
    freeze_embeddings: bool = Field(default=True, description="Keep the token embedding "
                                    "table fixed (its dense update dominates CPU steps).")
    frozen_layers: int = Field(default=2, ge=0, description="Lower transformer layers kept "
                               "fixed.")
    passage_gradients: bool = Field(default=False, description="Back-propagate through the "
                                    "passage side too. Off: passages are encoded without "
                                    "gradients as targets the queries learn to meet (about "
                                    "twice as fast on CPU, same recall on the CI set).")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        default="auto", description="Precision of the forward passes: auto is bf16 on a CPU "
        "that computes it natively (AVX512-BF16 or AMX), else fp32 (on CUDA too, where this "
        "small encoder ran faster in fp32). Weights, optimizer, pooling and loss stay fp32.")
    warmup_ratio: float = Field(default=0.1, ge=0, le=1, description="Share of steps with "
                                "linear warm-up.")
    save_every: int = Field(default=25, ge=1, description="Steps between resumable saves.")


def slices_failing_checks(instance: dg.DagsterInstance, names: list[str]) -> list[str]:
    """Slices whose latest materialization failed its checks (and so was not published)."""
    failing = []
    for name in names:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("dataset_slice"),
                                  asset_partitions=[name]), limit=1).records
        if records:
            metadata = records[0].asset_materialization.metadata
            published = metadata.get("published")
            if published is not None and getattr(published, "value", published) is False:
                failing.append(name)
    return failing


def dagster_run_finished(instance: dg.DagsterInstance, run_id: str) -> bool | None:
    """Whether a Dagster run has ended; None when this instance does not know it."""
    record = instance.get_run_by_id(run_id)
    return None if record is None else record.is_finished


def _train_in_run(context: dg.AssetExecutionContext, run: object, base: object,
                  pairs: list, params: object, device: str, precision: str,
                  pairs_digest: str, home: PlimsollHome) -> object:
    """Log the run's inputs, fine-tune, and log its outputs (run: a registry TrainingRun)."""
    from plimsoll.training.finetune import fine_tune

    run.log_params({**params.as_dict(), "base_model_digest": base.digest,
                    "pair_count": len(pairs), "device": device,
                    "resolved_precision": precision, "training_pairs_digest": pairs_digest})

    def on_step(step: int, loss: float, lr: float) -> None:
        run.log_metrics({"loss": loss, "learning_rate": lr}, step=step)
        if step % 10 == 0:
            context.log.info(f"step {step}: loss {loss:.4f}")

    result = fine_tune(base, pairs, params, home.layout.training_work, home.layout.checkpoints,
                       on_step=on_step)
    run.log_params({"checkpoint_digest": result.checkpoint.digest})
    run.log_artifacts(result.checkpoint.path, "checkpoint")
    run.log_metrics({"final_loss": result.losses[-1]})
    run.set_tag("plimsoll.training_notes", " | ".join(result.notes)[:5000])
    return result


def build_training_assets(slice_names: list[str], k8s_op_tags: dict | None
                          ) -> list[dg.AssetsDefinition]:
    """training_pairs and finetuned_encoder; prod passes the GPU step job's op tags."""

    @dg.asset(group_name=GROUP, deps=["dataset_slice"], kinds={"jsonl"}, code_version="1")
    def training_pairs(context: dg.AssetExecutionContext, config: PairsConfig,
                       home: PlimsollHome, slice_storage: SliceStorage,
                       manifests: DataManifests) -> dg.Output[TrainingPairsFile]:
        """(query, passage) pairs derived from slices that passed their checks."""
        from plimsoll.common.errors import PlimsollError
        from plimsoll.common.hashing import sha256_json
        from plimsoll.datasets.manifests import load_manifest, manifest_digest
        from plimsoll.training.pairs import derive_pairs, write_pairs

        unknown = sorted(set(config.training_slices) - set(slice_names))
        if unknown:
            raise PlimsollError(f"unknown training slices {unknown}",
                                field="config.training_slices", fix=f"choose from {slice_names}")
        failing = slices_failing_checks(context.instance, config.training_slices)
        if failing:
            raise PlimsollError(
                f"slices {failing} failed their checks on the latest materialization; "
                "no training on them", field="config.training_slices",
                fix="fix the data and re-materialize those dataset_slice partitions, or "
                "leave them out of training_slices")
        store = slice_storage.store()
        published = [store.published(name) for name in config.training_slices]
        pairs = derive_pairs(published)
        path, digest = write_pairs(pairs, home.layout.training_pairs)
        slices = {s.name: s.content_hash for s in published}
        data_manifest = {name: {"content_hash": slices[name], "manifest_digest": manifest_digest(
            load_manifest(manifests.manifest_path(name)))} for name in sorted(slices)}
        return dg.Output(
            TrainingPairsFile(path=str(path), digest=digest, count=len(pairs), slices=slices,
                              data_manifest_digest=sha256_json(data_manifest)),
            data_version=dg.DataVersion(digest),
            metadata={"pair_count": dg.MetadataValue.int(len(pairs)), "digest": digest,
                      "slice_hashes": dg.MetadataValue.json(slices),
                      "sample": dg.MetadataValue.json(
                          [{"query": p.query, "passage": p.passage[:160]} for p in pairs[:3]])})

    @dg.asset(group_name=GROUP, kinds={"pytorch", "mlflow"}, code_version="1",
              op_tags=k8s_op_tags or None)
    def finetuned_encoder(context: dg.AssetExecutionContext, config: TrainingConfig,
                          training_pairs: TrainingPairsFile, home: PlimsollHome,
                          encoder: EncoderModel,
                          mlflow: MlflowStore, project: ProjectFiles) -> dg.Output[Checkpoint]:
        """The encoder fine-tuned for retrieval on the training pairs, as a hashed checkpoint."""
        from plimsoll.common.provenance import container_image_digest, git_commit
        from plimsoll.release.promotion import current_actor
        from plimsoll.training.finetune import (
            ASSET_TAG,
            DAGSTER_RUN_TAG,
            TrainingParams,
            close_abandoned_runs,
            pick_device,
            resolve_precision,
            training_fingerprint,
        )
        from plimsoll.training.pairs import read_pairs

        pairs = read_pairs(training_pairs)
        params = TrainingParams(**config.model_dump())
        device = pick_device()
        precision = resolve_precision(params.precision, device)
        base = encoder.directory()
        registry = mlflow.registry()
        experiment_id = registry.ensure_reachable()
        for note in close_abandoned_runs(registry, experiment_id, "finetuned_encoder",
                                         context.run_id,
                                         lambda owner: dagster_run_finished(context.instance,
                                                                            owner)):
            context.log.warning(note)
        tags = {ASSET_TAG: "finetuned_encoder", DAGSTER_RUN_TAG: context.run_id,
                "plimsoll.training_fingerprint": training_fingerprint(base, pairs, params,
                                                                      precision),
                "git_commit": git_commit(Path(project.directory)),
                "container_image_digest": container_image_digest(),
                "trained_by": current_actor(),
                # MLflow's own record of who ran it: registration counts it as a trainer.
                "mlflow.user": current_actor(),
                "data_manifest_digest": training_pairs.data_manifest_digest}
        # Ends FINISHED, or FAILED with the reason on any error or interrupt.
        with registry.training_run(experiment_id, f"finetune-{context.run_id[:8]}",
                                   tags) as run:
            result = _train_in_run(context, run, base, pairs, params, device, precision,
                                   training_pairs.digest, home)
        run_id = run.run_id
        for note in result.notes:
            context.log.info(note)
        value = Checkpoint(
            path=str(result.checkpoint.path), digest=result.checkpoint.digest,
            tokenizer_hash=result.checkpoint.tokenizer_hash, base_digest=base.digest,
            base_path=str(base.path), params=params.as_dict(), mlflow_run_id=run_id,
            training_pairs_digest=training_pairs.digest, slices=dict(training_pairs.slices),
            data_manifest_digest=training_pairs.data_manifest_digest,
            git_commit=tags["git_commit"], container_image_digest=tags["container_image_digest"],
            trained_by=tags["trained_by"],
            training_fingerprint=tags["plimsoll.training_fingerprint"])
        return dg.Output(value, data_version=dg.DataVersion(result.checkpoint.digest), metadata={
            "checkpoint_digest": result.checkpoint.digest,
            "checkpoint_path": dg.MetadataValue.path(str(result.checkpoint.path)),
            "steps": dg.MetadataValue.int(result.steps),
            "resumed_from_step": dg.MetadataValue.int(result.resumed_from_step),
            "training_notes": dg.MetadataValue.json(list(result.notes)),
            "final_loss": dg.MetadataValue.float(result.losses[-1]),
            "mlflow_run_id": run_id,
            "hyperparameters": dg.MetadataValue.json(params.as_dict())})

    return [training_pairs, finetuned_encoder]
