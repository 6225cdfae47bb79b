"""training_pairs and finetuned_encoder: what the model learns from, and the checkpoint."""

from collections import Counter
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
# TrainingParams' defaults (tests/test_training_recipe.py checks they agree); the module
# is not imported here, so that the definitions load without torch or numpy.
EPOCHS, LEARNING_RATE = 3, 2e-5
DEFAULT_TRAINING_SLICES = ["python_help_topics", "stdlib_docstrings"]


class PairsConfig(dg.Config):
    """Which slices teach the model."""

    training_slices: list[str] = Field(default_factory=lambda: list(DEFAULT_TRAINING_SLICES),
                                       description="Slices that pairs are derived from.")
    hard_negatives: bool = Field(default=True, description="Mine a hard negative per query "
                                 "with BM25 and the base encoder (likely false negatives and "
                                 "near-duplicates filtered by the base encoder as guide).")


class TrainingConfig(dg.Config):
    """Hyperparameters of the contrastive fine-tune (all recorded in lineage)."""

    epochs: int = Field(default=EPOCHS, ge=1, description="Most passes over the pairs; with a "
                        "dev set, training stops earlier once `patience` epochs in a row have "
                        "not beaten the best, and the best epoch is kept.")
    patience: int = Field(default=1, ge=1, description="Epochs without a better dev score "
                          "before training stops.")
    selection_metric: Literal["mrr", "recall@5"] = Field(
        default="mrr", description="The dev-set score that chooses the epoch.")
    hard_negatives: bool = Field(default=True, description="Use the pairs' mined hard "
                                 "negatives beside the in-batch ones.")
    dev_evalset: str = Field(default="", description="Dev set for early stopping; empty means "
                             "the project's ($PLIMSOLL_DEV_EVALSET, default "
                             "evalsets/python_docs_dev.jsonl); 'none' trains every epoch and "
                             "keeps the last.")
    learning_rate: float = Field(default=LEARNING_RATE, gt=0, description="AdamW learning rate "
                                 "(chosen on the dev set).")
    batch_size: int = Field(default=32, ge=2, description="Pairs per step; the other passages "
                            "of a batch are the negatives.")
    max_length: int = Field(default=128, ge=8, description="Token limit of passages.")
    query_max_length: int = Field(default=48, ge=4, description="Token limit of queries.")
    seed: int = Field(default=42, description="Seed of data order, dropout and init.")
    freeze_embeddings: bool = Field(default=True, description="Keep the token embedding "
                                    "table fixed (its dense update dominates CPU steps).")
    frozen_layers: int = Field(default=2, ge=0, description="Lower transformer layers kept "
                               "fixed.")
    passage_gradients: bool = Field(default=False, description="Back-propagate through the "
                                    "passage side too. Off: every passage is encoded once per "
                                    "epoch, without gradients, as a target the queries learn "
                                    "to meet (several times faster on CPU).")
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


def _dev_set(dev_evalset: str, project: ProjectFiles, slice_storage: SliceStorage,
             training_pairs: TrainingPairsFile) -> object | None:
    """The dev set over the very slices the pairs came from (None: 'none' was asked)."""
    from plimsoll.common.errors import PlimsollError
    from plimsoll.evaluation.evalsets import load_evalset
    from plimsoll.training.validation import dev_set_for_training

    if dev_evalset == "none":
        return None
    evalset = load_evalset(project.path(dev_evalset or project.dev_evalset))
    store = slice_storage.store()
    published = [store.published(name) for name in sorted(training_pairs.slices)]
    changed = [p.name for p in published if p.content_hash != training_pairs.slices[p.name]]
    if changed:
        raise PlimsollError(f"slices {changed} were published again after these training "
                            "pairs were derived", field="training_pairs",
                            fix="re-materialize training_pairs, then finetuned_encoder")
    return dev_set_for_training(evalset, published)


def _train_in_run(context: dg.AssetExecutionContext, run: object, base: object,
                  pairs: list, params: object, device: str, precision: str,
                  pairs_digest: str, home: PlimsollHome, dev: object | None) -> object:
    """Log the run's inputs, fine-tune, and log its outputs (run: a registry TrainingRun)."""
    from plimsoll.training.finetune import fine_tune

    run.log_params({**params.as_dict(), "base_model_digest": base.digest,
                    "pair_count": len(pairs), "device": device,
                    "resolved_precision": precision, "training_pairs_digest": pairs_digest,
                    "hard_negative_count": sum(bool(p.negative) for p in pairs),
                    "dev_set": dev.name if dev else "none",
                    "dev_set_hash": dev.eval_set_hash if dev else "",
                    "dev_questions": len(dev.questions) if dev else 0})

    def on_step(step: int, loss: float, lr: float) -> None:
        run.log_metrics({"loss": loss, "learning_rate": lr}, step=step)
        if step % 10 == 0:
            context.log.info(f"step {step}: loss {loss:.4f}")

    def on_epoch(epoch: int, scores: dict[str, float]) -> None:
        shown = ", ".join(f"{k} {v:.3f}" for k, v in scores.items())
        context.log.info(f"epoch {epoch}: dev set {shown}")
        run.log_metrics({f"dev_{k.replace('@', '_at_')}": v for k, v in scores.items()},
                        step=epoch)

    result = fine_tune(base, pairs, params, home.layout.training_work, home.layout.checkpoints,
                       on_step=on_step, dev=dev, on_epoch=on_epoch)
    run.log_params({"checkpoint_digest": result.checkpoint.digest,
                    "chosen_epoch": result.chosen_epoch,
                    "epochs_run": len(result.epoch_scores) or params.epochs})
    run.log_artifacts(result.checkpoint.path, "checkpoint")
    run.log_metrics({"final_loss": result.losses[-1],
                     **{f"chosen_dev_{k.replace('@', '_at_')}": v
                        for k, v in result.chosen_score.items()},
                     **{f"base_dev_{k.replace('@', '_at_')}": v
                        for k, v in result.base_scores.items()}})
    run.set_tag("plimsoll.training_notes", " | ".join(result.notes)[:5000])
    return result


def build_training_assets(slice_names: list[str], k8s_op_tags: dict | None
                          ) -> list[dg.AssetsDefinition]:
    """training_pairs and finetuned_encoder; prod passes the GPU step job's op tags."""

    @dg.asset(group_name=GROUP, deps=["dataset_slice"], kinds={"jsonl"}, code_version="1")
    def training_pairs(context: dg.AssetExecutionContext, config: PairsConfig,
                       home: PlimsollHome, slice_storage: SliceStorage,
                       manifests: DataManifests,
                       encoder: EncoderModel) -> dg.Output[TrainingPairsFile]:
        """(query, passage, hard negative) triples from slices that passed their checks."""
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
        mining = None
        if config.hard_negatives and pairs:
            from plimsoll.retrieval.encoder import Encoder
            from plimsoll.training.negatives import MiningParams, mine_hard_negatives

            context.log.info(f"mining hard negatives for {len(pairs)} queries (BM25 and the "
                             "base encoder)")
            pairs, mining = mine_hard_negatives(pairs, Encoder(encoder.directory()),
                                                MiningParams())
            context.log.info(f"hard negatives: {mining.as_dict()}")
        path, digest = write_pairs(pairs, home.layout.training_pairs)
        slices = {s.name: s.content_hash for s in published}
        data_manifest = {name: {"content_hash": slices[name], "manifest_digest": manifest_digest(
            load_manifest(manifests.manifest_path(name)))} for name in sorted(slices)}
        return dg.Output(
            TrainingPairsFile(path=str(path), digest=digest, count=len(pairs), slices=slices,
                              data_manifest_digest=sha256_json(data_manifest)),
            data_version=dg.DataVersion(digest),
            metadata={"pair_count": dg.MetadataValue.int(len(pairs)), "digest": digest,
                      "query_kinds": dg.MetadataValue.json(dict(Counter(p.kind for p in pairs))),
                      "hard_negatives": dg.MetadataValue.json(
                          {**mining.as_dict(), **MiningParams().as_dict()} if mining else None),
                      "slice_hashes": dg.MetadataValue.json(slices),
                      "sample": dg.MetadataValue.json(
                          [{"query": p.query, "kind": p.kind, "passage": p.passage[:160],
                            "negative": p.negative[:160]} for p in pairs[:6]])})

    @dg.asset(group_name=GROUP, kinds={"pytorch", "mlflow"}, code_version="1",
              op_tags=k8s_op_tags or None)
    def finetuned_encoder(context: dg.AssetExecutionContext, config: TrainingConfig,
                          training_pairs: TrainingPairsFile, home: PlimsollHome,
                          encoder: EncoderModel, slice_storage: SliceStorage,
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
        settings = config.model_dump()
        dev_evalset = settings.pop("dev_evalset")
        params = TrainingParams(**settings)
        dev = _dev_set(dev_evalset, project, slice_storage, training_pairs)
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
                                                                      precision, dev),
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
                                   training_pairs.digest, home, dev)
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
            training_fingerprint=tags["plimsoll.training_fingerprint"],
            steps=result.steps, final_loss=float(result.losses[-1]))
        return dg.Output(value, data_version=dg.DataVersion(result.checkpoint.digest), metadata={
            "checkpoint_digest": result.checkpoint.digest,
            "checkpoint_path": dg.MetadataValue.path(str(result.checkpoint.path)),
            "steps": dg.MetadataValue.int(result.steps),
            "resumed_from_step": dg.MetadataValue.int(result.resumed_from_step),
            "training_notes": dg.MetadataValue.json(list(result.notes)),
            "final_loss": dg.MetadataValue.float(result.losses[-1]),
            "chosen_epoch": dg.MetadataValue.int(result.chosen_epoch),
            "dev_scores_by_epoch": dg.MetadataValue.json(
                {"before training": result.base_scores,
                 **{f"epoch {i}": s for i, s in enumerate(result.epoch_scores, 1)}}),
            "mlflow_run_id": run_id,
            "hyperparameters": dg.MetadataValue.json(params.as_dict())})

    return [training_pairs, finetuned_encoder]
