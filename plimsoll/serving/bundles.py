"""Open a registered (or downloaded) model bundle as an Answerer, without MLflow's pyfunc."""

from __future__ import annotations

import os
import re
from pathlib import Path

from plimsoll.common.errors import PlimsollError
from plimsoll.guard import Guard, load_guard_policy
from plimsoll.guard.classifier import MODEL_PATH as CLASSIFIER_PATH
from plimsoll.guard.classifier import load_classifier
from plimsoll.retrieval.encoder import Encoder, EncoderDirectory
from plimsoll.retrieval.snapshot import IndexSnapshot
from plimsoll.serving.answerer import MODES, Answerer
from plimsoll.serving.prompts import load_template

ANSWER_MODE_ENV = "PLIMSOLL_ANSWER_MODE"
GUARD_POLICY_FILE = "guard.yaml"

MODEL_REF = re.compile(
    r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+|latest)|@(?P<alias>[\w-]+))$")


def answerer_from_model_dir(model_dir: Path, abstain_below: float = 0.35) -> Answerer:
    """The bundle's encoder, snapshot and templates from a model directory (artifacts/)."""
    artifacts = Path(model_dir) / "artifacts"
    if not artifacts.is_dir():
        raise PlimsollError("not a Plimsoll model directory (no artifacts/)", file=model_dir,
                            field="--model", fix="pass models:/NAME/VERSION, "
                            "models:/NAME@ALIAS, or a downloaded model directory")
    snapshot_dir = next((p for p in artifacts.iterdir() if (p / "manifest.json").is_file()),
                        None)
    encoder_dir = next((p for p in artifacts.iterdir() if (p / "config.json").is_file()), None)
    if snapshot_dir is None or encoder_dir is None:
        raise PlimsollError("model directory lacks an encoder or an index snapshot",
                            file=artifacts, field="--model", fix="re-register the bundle")
    guard_policy = artifacts / GUARD_POLICY_FILE
    classifier = artifacts / CLASSIFIER_PATH.name
    return build_answerer(encoder_dir, snapshot_dir, artifacts / "answer.md",
                          artifacts / "abstain.md", abstain_below=abstain_below,
                          guard_policy=guard_policy if guard_policy.is_file() else None,
                          guard_classifier=classifier if classifier.is_file() else None)


def open_model(reference: str, destination: Path, tracking_uri: str | None = None
               ) -> tuple[Answerer, str]:
    """The guarded answerer of a model reference, and a label for reports.

    `models:/NAME/N|latest` and `models:/NAME@ALIAS` are downloaded to `destination`;
    anything else is a model directory.
    """
    if not reference.startswith("models:/"):
        return answerer_from_model_dir(Path(reference)), reference
    from plimsoll.common.home import HomeLayout, resolve_home
    from plimsoll.release.registry import ModelRegistry

    uri = (tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
           or HomeLayout(resolve_home()).mlflow_tracking_uri)
    model_dir, version = download_model(ModelRegistry(uri), reference, Path(destination))
    return answerer_from_model_dir(model_dir), f"{reference} (version {version})"


def answer_mode(requested: str | None = None) -> str:
    """The answer mode: as requested, else $PLIMSOLL_ANSWER_MODE, else 'answer'.

    Setting PLIMSOLL_ANSWER_MODE=facts is the on-call lever: every answer becomes verbatim
    cited quotes or a polite deferral, with no model restart needed beyond a reload.
    """
    mode = requested or os.environ.get(ANSWER_MODE_ENV) or "answer"
    if mode not in MODES:
        raise PlimsollError(f"unknown answer mode '{mode}'", field=ANSWER_MODE_ENV,
                            fix=f"use one of: {', '.join(MODES)}")
    return mode


def build_answerer(encoder_dir: Path, snapshot_dir: Path, answer_template: Path,
                   abstain_template: Path, *, abstain_below: float = 0.35,
                   guard_policy: Path | None = None, metadata: dict[str, str] | None = None,
                   mode: str | None = None, guard_classifier: Path | None = None) -> Answerer:
    """The guarded answerer of a bundle.

    The refusal, facts and system templates are read from beside the answer template
    (prompts/ in the repository, artifacts/ in a model directory). `guard_classifier` is a
    bundled injection classifier; without one the guard uses the one this package ships.
    """
    prompts = Path(answer_template).parent
    optional = {name: load_template(prompts / f"{name}.md")
                for name in ("refuse", "facts", "system") if (prompts / f"{name}.md").is_file()}
    system = optional.get("system")
    guard = Guard(load_guard_policy(guard_policy) if guard_policy else None,
                  system_prompt=system.render() if system else "",
                  classifier=load_classifier(guard_classifier) if guard_classifier
                  else "shipped")
    return Answerer(Encoder(EncoderDirectory.open(Path(encoder_dir))),
                    IndexSnapshot(Path(snapshot_dir)), load_template(answer_template),
                    load_template(abstain_template), abstain_below=abstain_below,
                    metadata=metadata, guard=guard, refuse_template=optional.get("refuse"),
                    facts_template=optional.get("facts"), mode=answer_mode(mode))


def download_model(registry, reference: str, destination: Path) -> tuple[Path, str]:
    """Download `models:/name/N|latest` or `models:/name@alias`; returns (dir, version)."""
    import mlflow.artifacts

    match = MODEL_REF.match(reference)
    if match is None:
        raise PlimsollError(f"'{reference}' is not a model reference", field="--model",
                            fix="use models:/NAME/VERSION, models:/NAME@ALIAS or a path")
    from plimsoll.release.registry import error_code

    name = match["name"]
    try:
        if match["alias"]:
            found = registry.client.get_model_version_by_alias(name, match["alias"])
        elif match["version"] == "latest":
            found = max(registry.client.search_model_versions(f"name = '{name}'"),
                        key=lambda v: int(v.version), default=None)
        else:
            found = registry.client.get_model_version(name, match["version"])
    except Exception as exc:
        # Missing is decided by MLflow's error code; any other failure is the store's.
        if error_code(exc) not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise registry.failure(exc) from None
        found = None
    if found is None:
        raise PlimsollError(f"{reference} is not in the registry at {registry.tracking_uri}",
                            field="--model", fix="list versions with `plimsoll status`")
    try:
        local = Path(mlflow.artifacts.download_artifacts(
            artifact_uri=found.source, dst_path=str(destination),
            tracking_uri=registry.tracking_uri))
    except Exception as exc:
        raise PlimsollError(f"the files of {reference} could not be downloaded from "
                            f"{found.source} ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:160]})", field="--model",
                            fix="check the artifact store; nothing was evaluated") from None
    return local, str(found.version)
