"""The two profiles, local and prod: one tiny helper picks one, each is a resources dict."""

from __future__ import annotations

import os

from platform_defs.resources import (
    DataManifests,
    EncoderModel,
    EvalRegistryStore,
    MlflowStore,
    PlimsollHome,
    ProjectFiles,
    PromotionSettings,
    SliceStorage,
)
from plimsoll.common.errors import PlimsollError
from plimsoll.common.settings import Settings

PROFILES = ("local", "prod")


def active_profile() -> str:
    """$PLIMSOLL_PROFILE, default local; anything else is a clear error."""
    profile = os.environ.get("PLIMSOLL_PROFILE", "local")
    if profile not in PROFILES:
        raise PlimsollError(f"unknown profile '{profile}'", field="PLIMSOLL_PROFILE",
                            fix=f"set PLIMSOLL_PROFILE to one of: {', '.join(PROFILES)}")
    return profile


def resources_for(profile: str) -> dict[str, object]:
    """The resources of a profile, read from the environment now (never at import time)."""
    settings = Settings.from_env()
    return _local(settings) if profile == "local" else _prod(settings)


def _common(settings: Settings) -> dict[str, object]:
    return {
        "home": PlimsollHome(path=str(settings.home)),
        "project": ProjectFiles(directory=str(settings.project_dir), evalset=str(settings.evalset),
                                dev_evalset=str(settings.dev_evalset),
                                redteam=str(settings.redteam),
                                guard_policy=str(settings.guard_policy),
                                prompts=str(settings.prompts),
                                model_card=str(settings.model_card),
                                fallbacks=str(settings.fallbacks)),
        "manifests": DataManifests(directory=str(settings.manifests)),
        "encoder": EncoderModel(path=settings.encoder_path),
    }


def _local(settings: Settings) -> dict[str, object]:
    layout = settings.layout
    remote = os.environ.get("PLIMSOLL_DVC_REMOTE", str(layout.dvc_remote))
    layout.mlflow.mkdir(parents=True, exist_ok=True)
    ledger_url = _checked_url("PLIMSOLL_LEDGER_URL", layout.ledger_url)
    return {**_common(settings),
            "slice_storage": SliceStorage(workspace=str(layout.dvc_workspace),
                                          remote_url=remote),
            "mlflow": MlflowStore(
                tracking_uri=settings.tracking_uri, model_name=settings.model_name,
                artifact_root=str(layout.mlflow / "artifacts"), lineage_url=ledger_url,
                ui_url=settings.mlflow_ui_url),
            "eval_registry": EvalRegistryStore(
                url=_checked_url("PLIMSOLL_EVAL_REGISTRY_URL", layout.eval_registry_url)),
            "promotion": PromotionSettings(policy_path=str(settings.policy),
                                           ledger_url=ledger_url)}


def _checked_url(name: str, default: str) -> str:
    """A database URL from the environment: SQLite or PostgreSQL, or a clear error now."""
    url = os.environ.get(name) or default
    if not url.startswith(("sqlite:///", PG_SCHEME)):
        raise PlimsollError(f"'{url}' is not a database URL Plimsoll can use", field=name,
                            fix="use sqlite:////absolute/path.sqlite locally or "
                            f"{PG_SCHEME}user:password@host:5432/db")
    return url


PG_SCHEME = "postgresql+psycopg2://"
PROD_REQUIRED = {
    "PLIMSOLL_HOME": "a path on the persistent volume mounted into every run pod",
    "PLIMSOLL_DVC_REMOTE": "the S3 URL of the DVC remote, e.g. s3://plimsoll-data/dvc",
    "DAGSTER_PG_URL": "the PostgreSQL URL of Dagster's storage, "
                      "postgresql+psycopg2://user:password@host:5432/dagster",
    "MLFLOW_TRACKING_URI": "the MLflow server, e.g. https://mlflow.plimsoll.internal",
    "PLIMSOLL_EVAL_REGISTRY_URL": "the PostgreSQL URL of the eval registry, "
                                  "postgresql+psycopg2://user:password@host:5432/evals",
    "PLIMSOLL_SIGNING_KEY": "a random secret from the plimsoll-secrets Secret (e.g. "
                            "`openssl rand -hex 32`); it signs every lineage record",
}


def _prod(settings: Settings) -> dict[str, object]:
    missing = [name for name in PROD_REQUIRED if not os.environ.get(name)]
    if missing:
        name = missing[0]
        raise PlimsollError(f"the prod profile needs ${name}", field=name,
                            fix=f"set {name} to {PROD_REQUIRED[name]}")
    remote = os.environ["PLIMSOLL_DVC_REMOTE"]
    if not remote.startswith("s3://") or len(remote) <= len("s3://"):
        raise PlimsollError(f"'{remote}' is not an S3 URL", field="PLIMSOLL_DVC_REMOTE",
                            fix="use s3://<bucket>/<prefix> (install the 's3' extra: "
                            "pip install '.[s3]')")
    if not os.environ["DAGSTER_PG_URL"].startswith(PG_SCHEME):
        # SQLAlchemy 2.1 opens a bare postgresql:// URL with psycopg 3, which
        # dagster-postgres does not support; its driver is psycopg2.
        raise PlimsollError("Dagster storage must be PostgreSQL through psycopg2 in prod",
                            field="DAGSTER_PG_URL",
                            fix=f"use {PG_SCHEME}user:password@host:5432/dagster")
    if not os.environ["PLIMSOLL_EVAL_REGISTRY_URL"].startswith(PG_SCHEME):
        raise PlimsollError("the eval registry must be PostgreSQL in prod",
                            field="PLIMSOLL_EVAL_REGISTRY_URL",
                            fix=f"use {PG_SCHEME}user:password@host:5432/evals")
    if not os.environ["MLFLOW_TRACKING_URI"].startswith(("http://", "https://")):
        raise PlimsollError("prod uses an MLflow tracking server", field="MLFLOW_TRACKING_URI",
                            fix="use the server's http(s):// URL")
    ledger_url = os.environ.get("PLIMSOLL_LEDGER_URL") or os.environ["PLIMSOLL_EVAL_REGISTRY_URL"]
    if not ledger_url.startswith(PG_SCHEME):
        raise PlimsollError("the promotion ledger must be PostgreSQL in prod",
                            field="PLIMSOLL_LEDGER_URL",
                            fix=f"use {PG_SCHEME}user:password@host:5432/db, or unset it to "
                            "share the eval registry's database")
    layout = settings.layout
    return {**_common(settings),
            "slice_storage": SliceStorage(workspace=str(layout.dvc_workspace),
                                          remote_url=remote),
            "mlflow": MlflowStore(tracking_uri=settings.tracking_uri,
                                  model_name=settings.model_name, lineage_url=ledger_url,
                                  ui_url=settings.mlflow_ui_url),
            "eval_registry": EvalRegistryStore(url=os.environ["PLIMSOLL_EVAL_REGISTRY_URL"]),
            "promotion": PromotionSettings(policy_path=str(settings.policy),
                                           ledger_url=ledger_url)}
