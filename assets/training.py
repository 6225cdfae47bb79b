"""training_pairs and finetuned_encoder: what the model learns from, and the checkpoint."""

from typing import Literal

import dagster as dg
from pydantic import Field

from platform_defs.resources import (
    DataManifests,
    EncoderModel,
    MlflowStore,
    PlimsollHome,
    SliceStorage,
)

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


def build_training_assets(slice_names: list[str], k8s_op_tags: dict | None
                          ) -> list[dg.AssetsDefinition]:
    """training_pairs and finetuned_encoder; prod passes the GPU step job's op tags."""

    @dg.asset(group_name=GROUP, deps=["dataset_slice"], kinds={"jsonl"}, code_version="1")
    def training_pairs(context: dg.AssetExecutionContext, config: PairsConfig,
                       home: PlimsollHome, slice_storage: SliceStorage,
                       manifests: DataManifests) -> dg.Output[dict]:
        """(query, passage) pairs derived from slices that passed their checks."""
        import json

        from plimsoll.errors import PlimsollError
        from plimsoll.hashing import sha256_file, sha256_json
        from plimsoll.manifests import load_manifest, manifest_digest
        from plimsoll.training_pairs import derive_pairs

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
        folder = home.layout.training_pairs
        folder.mkdir(parents=True, exist_ok=True)
        staging = folder / "pairs.jsonl.tmp"
        staging.write_text("".join(json.dumps({"query": p.query, "passage": p.passage}) + "\n"
                                   for p in pairs))
        digest = sha256_file(staging)
        path = folder / f"{digest}.jsonl"
        staging.replace(path)
        slices = {s.name: s.content_hash for s in published}
        data_manifest = {name: {"content_hash": slices[name], "manifest_digest": manifest_digest(
            load_manifest(manifests.manifest_path(name)))} for name in sorted(slices)}
        return dg.Output(
            {"path": str(path), "digest": digest, "count": len(pairs), "slices": slices,
             "data_manifest_digest": sha256_json(data_manifest)},
            data_version=dg.DataVersion(digest),
            metadata={"pair_count": dg.MetadataValue.int(len(pairs)), "digest": digest,
                      "slice_hashes": dg.MetadataValue.json(slices),
                      "sample": dg.MetadataValue.json(
                          [{"query": p.query, "passage": p.passage[:160]} for p in pairs[:3]])})

    @dg.asset(group_name=GROUP, kinds={"pytorch", "mlflow"}, code_version="1",
              op_tags=k8s_op_tags or None)
    def finetuned_encoder(context: dg.AssetExecutionContext, config: TrainingConfig,
                          training_pairs: dict, home: PlimsollHome, encoder: EncoderModel,
                          mlflow: MlflowStore) -> dg.Output[dict]:
        """The encoder fine-tuned for retrieval on the training pairs, as a hashed checkpoint."""
        import json
        from pathlib import Path

        from plimsoll.promotion import current_actor
        from plimsoll.provenance import container_image_digest, git_commit
        from plimsoll.training import (
            Pair,
            TrainingParams,
            fine_tune,
            pick_device,
            resolve_precision,
        )

        pairs = [Pair(**json.loads(line))
                 for line in Path(training_pairs["path"]).read_text().splitlines()]
        params = TrainingParams(**config.model_dump())
        device = pick_device()
        base = encoder.directory()
        registry = mlflow.registry()
        experiment_id = registry.ensure_reachable()
        from platform_defs.profiles import REPO_ROOT

        tags = {"plimsoll.asset": "finetuned_encoder", "plimsoll.dagster_run_id": context.run_id,
                "git_commit": git_commit(REPO_ROOT),
                "container_image_digest": container_image_digest(),
                "trained_by": current_actor(),
                "data_manifest_digest": training_pairs["data_manifest_digest"]}
        run = registry.client.create_run(experiment_id, run_name=f"finetune-{context.run_id[:8]}",
                                         tags=tags)
        run_id = run.info.run_id
        client = registry.client
        for key, value in {**params.as_dict(), "base_model_digest": base.digest,
                           "pair_count": len(pairs), "device": device,
                           "resolved_precision": resolve_precision(params.precision, device),
                           "training_pairs_digest": training_pairs["digest"]}.items():
            client.log_param(run_id, key, value)
        losses: list = []

        def on_step(step: int, loss: float, lr: float) -> None:
            losses.append((step, loss))
            client.log_metric(run_id, "loss", loss, step=step)
            client.log_metric(run_id, "learning_rate", lr, step=step)
            if step % 10 == 0:
                context.log.info(f"step {step}: loss {loss:.4f}")

        try:
            result = fine_tune(base, pairs, params, home.layout.training_work,
                               home.layout.checkpoints, on_step=on_step)
        except BaseException:
            client.set_terminated(run_id, status="FAILED")
            raise
        client.log_param(run_id, "checkpoint_digest", result.checkpoint.digest)
        client.log_artifacts(run_id, str(result.checkpoint.path), "checkpoint")
        client.log_metric(run_id, "final_loss", result.losses[-1])
        client.set_terminated(run_id, status="FINISHED")
        value = {"path": str(result.checkpoint.path), "digest": result.checkpoint.digest,
                 "tokenizer_hash": result.checkpoint.tokenizer_hash,
                 "base_digest": base.digest, "base_path": str(base.path),
                 "params": params.as_dict(), "mlflow_run_id": run_id,
                 "training_pairs_digest": training_pairs["digest"],
                 "slices": training_pairs["slices"], **tags}
        return dg.Output(value, data_version=dg.DataVersion(result.checkpoint.digest), metadata={
            "checkpoint_digest": result.checkpoint.digest,
            "checkpoint_path": dg.MetadataValue.path(str(result.checkpoint.path)),
            "steps": dg.MetadataValue.int(result.steps),
            "resumed_from_step": dg.MetadataValue.int(result.resumed_from_step),
            "final_loss": dg.MetadataValue.float(result.losses[-1]),
            "mlflow_run_id": run_id,
            "hyperparameters": dg.MetadataValue.json(params.as_dict())})

    return [training_pairs, finetuned_encoder]
