"""PLIMSOLL_HOME: where the local profile keeps every store, and the layout inside it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = ".plimsoll"


def resolve_home(value: str | os.PathLike[str] | None = None) -> Path:
    """The home directory: the argument, else $PLIMSOLL_HOME, else the project's `.plimsoll/`.

    The project's, not the working directory's: `plimsoll rollback` run from another folder
    must find the same ledger and stores as `make demo` wrote.
    """
    from plimsoll.common.project import project_dir

    raw = value if value is not None else os.environ.get("PLIMSOLL_HOME")
    if not raw:
        return project_dir() / DEFAULT_HOME
    return Path(raw).expanduser().resolve()


@dataclass(frozen=True)
class HomeLayout:
    """Named locations under PLIMSOLL_HOME; creating them is the caller's choice."""

    root: Path

    @property
    def dagster(self) -> Path:
        """DAGSTER_HOME of the local profile."""
        return self.root / "dagster"

    @property
    def dvc_workspace(self) -> Path:
        """The DVC repository that stages published slices."""
        return self.root / "dvc"

    @property
    def dvc_remote(self) -> Path:
        """The default DVC remote (a directory) of the local profile."""
        return self.root / "dvc-remote"

    @property
    def embedding_cache(self) -> Path:
        """Embeddings keyed by (encoder digest, chunk hash)."""
        return self.root / "embedding_cache"

    @property
    def index_snapshots(self) -> Path:
        """Immutable, content-addressed index snapshots."""
        return self.root / "index_snapshots"

    @property
    def training_pairs(self) -> Path:
        """Content-addressed JSONL files of training pairs."""
        return self.root / "training_pairs"

    @property
    def training_work(self) -> Path:
        """Resumable training state, one folder per training fingerprint."""
        return self.root / "training"

    @property
    def checkpoints(self) -> Path:
        """Fine-tuned encoders, each named by its digest."""
        return self.root / "checkpoints"

    @property
    def eval_reports(self) -> Path:
        """Eval reports (JSON, Markdown, PNG)."""
        return self.root / "eval_reports"

    @property
    def mlflow(self) -> Path:
        """The embedded MLflow store: mlflow.db and artifacts/."""
        return self.root / "mlflow"

    @property
    def mlflow_db(self) -> Path:
        """The embedded store's SQLite file."""
        return self.mlflow / "mlflow.db"

    @property
    def mlflow_tracking_uri(self) -> str:
        """SQLite tracking and registry URI of the embedded store."""
        return f"sqlite:///{self.mlflow_db}"

    @property
    def eval_registry_url(self) -> str:
        """SQLite URL of the local eval registry."""
        return f"sqlite:///{self.root / 'eval_registry.sqlite'}"

    @property
    def ledger_file(self) -> Path:
        """The local promotion ledger (and lineage records)."""
        return self.root / "promotion_ledger.sqlite"

    @property
    def ledger_url(self) -> str:
        """SQLite URL of the local promotion ledger."""
        return f"sqlite:///{self.ledger_file}"
