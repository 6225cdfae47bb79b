"""Open a model bundle as an Answerer, without MLflow's pyfunc.

From its files, or from a model directory downloaded from the registry (downloading is
ModelRegistry.download's part).
"""

from __future__ import annotations

import os
from pathlib import Path

from plimsoll.common.errors import PlimsollError
from plimsoll.common.settings import ABSTAIN_BELOW
from plimsoll.guard import Guard, load_guard_policy
from plimsoll.guard.classifier import MODEL_PATH as CLASSIFIER_PATH
from plimsoll.guard.classifier import load_classifier
from plimsoll.retrieval.encoder import Encoder, EncoderDirectory
from plimsoll.retrieval.snapshot import IndexSnapshot
from plimsoll.serving.answerer import MODES, Answerer
from plimsoll.serving.prompts import load_template

ANSWER_MODE_ENV = "PLIMSOLL_ANSWER_MODE"
GUARD_POLICY_FILE = "guard.yaml"


def answerer_from_model_dir(model_dir: Path, abstain_below: float = ABSTAIN_BELOW) -> Answerer:
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
                   abstain_template: Path, *, abstain_below: float = ABSTAIN_BELOW,
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
