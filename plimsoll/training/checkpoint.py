"""What training hands to the next stage: the training pairs file and the checkpoint."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainingPairsFile:
    """A content-addressed JSONL file of (query, passage) pairs, and the slices it came from."""

    path: str
    digest: str
    count: int
    slices: dict[str, str]  # slice name -> content hash
    data_manifest_digest: str


@dataclass(frozen=True)
class Checkpoint:
    """A fine-tuned encoder checkpoint, the MLflow run that made it and where it came from."""

    path: str
    digest: str
    tokenizer_hash: str
    base_digest: str
    base_path: str
    params: dict[str, object]
    mlflow_run_id: str
    training_pairs_digest: str
    slices: dict[str, str]
    data_manifest_digest: str
    git_commit: str
    container_image_digest: str
    trained_by: str
    training_fingerprint: str
    # What the review card shows of the training (0 / None: not recorded).
    steps: int = 0
    final_loss: float | None = None
