"""Open a registered (or downloaded) model bundle as an Answerer, without MLflow's pyfunc."""

from __future__ import annotations

import re
from pathlib import Path

from plimsoll.answerer import Answerer
from plimsoll.encoder import Encoder, EncoderDirectory
from plimsoll.errors import PlimsollError
from plimsoll.index_snapshot import IndexSnapshot
from plimsoll.prompts import load_template

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
    snapshot = IndexSnapshot(snapshot_dir)
    return Answerer(Encoder(EncoderDirectory.open(encoder_dir)), snapshot,
                    load_template(artifacts / "answer.md"),
                    load_template(artifacts / "abstain.md"), abstain_below=abstain_below)


def download_model(registry, reference: str, destination: Path) -> tuple[Path, str]:
    """Download `models:/name/N|latest` or `models:/name@alias`; returns (dir, version)."""
    import mlflow.artifacts

    match = MODEL_REF.match(reference)
    if match is None:
        raise PlimsollError(f"'{reference}' is not a model reference", field="--model",
                            fix="use models:/NAME/VERSION, models:/NAME@ALIAS or a path")
    name = match["name"]
    try:
        if match["alias"]:
            found = registry.client.get_model_version_by_alias(name, match["alias"])
        elif match["version"] == "latest":
            found = max(registry.client.search_model_versions(f"name = '{name}'"),
                        key=lambda v: int(v.version))
        else:
            found = registry.client.get_model_version(name, match["version"])
    except Exception as exc:
        raise PlimsollError(f"{reference} is not in the registry at {registry.tracking_uri} "
                            f"({str(exc).splitlines()[0][:160]})", field="--model",
                            fix="list versions with `plimsoll status`") from None
    local = Path(mlflow.artifacts.download_artifacts(
        artifact_uri=found.source, dst_path=str(destination),
        tracking_uri=registry.tracking_uri))
    return local, str(found.version)
