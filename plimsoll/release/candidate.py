"""Register an evaluated candidate: the bundle, its write-once lineage, and its version."""

from __future__ import annotations

from pathlib import Path

from plimsoll.common.hashing import sha256_json
from plimsoll.evaluation.outcome import EvalOutcome
from plimsoll.release.registry import Bundle, ModelRegistry, lineage_tags
from plimsoll.retrieval.reference import SnapshotRef
from plimsoll.training.checkpoint import Checkpoint


def register_candidate(*, registry: ModelRegistry, model_name: str, finetuned: Checkpoint,
                       index: SnapshotRef, report: EvalOutcome) -> tuple[str, dict[str, str]]:
    """Register the evaluated bundle with write-once lineage; returns (version, tags)."""
    scores = report.candidate
    lineage = lineage_tags({
        "git_commit": finetuned.git_commit,
        "data_manifest_digest": finetuned.data_manifest_digest,
        "slice_hashes": finetuned.slices,
        "index_slice_hashes": index.slices,
        "training_pairs_digest": finetuned.training_pairs_digest,
        "eval_set_hash": report.eval_set_hash,
        "index_snapshot_id": index.snapshot_id,
        "tokenizer_hash": finetuned.tokenizer_hash,
        "checkpoint_digest": finetuned.digest,
        "base_model": f"{Path(finetuned.base_path).name}@{finetuned.base_digest}",
        "hyperparameters": finetuned.params,
        "seed": str(finetuned.params["seed"]),
        "container_image_digest": finetuned.container_image_digest,
        "prompt_template": report.template_ref,
        "guard_policy_digest": report.guard_policy_digest,
        "guard_classifier_digest": report.guard_classifier_digest,
        "redteam_hash": report.redteam_hash,
        "mlflow_run_id": finetuned.mlflow_run_id,
        "eval_scores": {k: round(v, 6) for k, v in scores.items()},
        "trained_by": finetuned.trained_by,
        "bundle_key": sha256_json([finetuned.digest, index.snapshot_id,
                                   report.eval_set_hash, report.template_ref,
                                   report.abstain_below,
                                   report.guard_policy_digest,
                                   report.guard_classifier_digest]),
    })
    bundle = Bundle(encoder_dir=Path(finetuned.path), snapshot_dir=Path(index.path),
                    answer_template=Path(report.answer_template),
                    abstain_template=Path(report.abstain_template),
                    abstain_below=float(report.abstain_below),
                    guard_policy=Path(report.guard_policy) if report.guard_policy
                    else None,
                    guard_classifier=Path(report.guard_classifier)
                    if report.guard_classifier else None)
    from plimsoll.serving.pyfunc import pyfunc_model  # imports MLflow

    version = registry.register(model_name, bundle, lineage, finetuned.mlflow_run_id,
                                pyfunc_model())
    tags = dict(registry.version(model_name, version).tags)
    return version, tags

