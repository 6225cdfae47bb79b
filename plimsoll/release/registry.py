"""The model registry: immutable candidate versions with write-once lineage tags in MLflow.

MLflow tags are mutable, so immutability is enforced here: lineage tags are written at
version creation, a lineage digest covers them and the artifact hashes, Plimsoll refuses
to rewrite them, and `verify` recomputes everything to catch edits made behind its back.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from plimsoll.common.errors import PlimsollError
from plimsoll.common.hashing import sha256_file, sha256_json
from plimsoll.release.lineage_record import LineageRecords

LINEAGE_PREFIX = "plimsoll.lineage."
DIGEST_TAG = "plimsoll.lineage_digest"
RECORDED_PREFIX = "plimsoll.lineage"  # the lineage tags and the digest over them
PIP_REQUIREMENTS = ("plimsoll",)


class RegistryError(PlimsollError):
    """The registry refused an operation, or could not be reached."""


@dataclass(frozen=True)
class Bundle:
    """What a candidate version is made of, on local disk."""

    encoder_dir: Path
    snapshot_dir: Path
    answer_template: Path
    abstain_template: Path
    abstain_below: float = 0.35
    guard_policy: Path | None = None
    # The guard's injection classifier (.npz; its card .json beside it), bundled so a version
    # serves with the classifier it was evaluated with, whatever package is installed.
    guard_classifier: Path | None = None


def bundle_artifacts(bundle: Bundle) -> dict[str, str]:
    """The pyfunc artifacts: encoder, snapshot, templates, the guard policy and classifier.

    The refusal, facts and system templates are the ones beside the answer template.
    """
    artifacts = {"encoder": str(bundle.encoder_dir), "index_snapshot": str(bundle.snapshot_dir),
                 "answer_template": str(bundle.answer_template),
                 "abstain_template": str(bundle.abstain_template)}
    prompts = Path(bundle.answer_template).parent
    for name, key in (("refuse", "refuse_template"), ("facts", "facts_template"),
                      ("system", "system_prompt")):
        if (prompts / f"{name}.md").is_file():
            artifacts[key] = str(prompts / f"{name}.md")
    if bundle.guard_policy is not None:
        artifacts["guard_policy"] = str(bundle.guard_policy)
    if bundle.guard_classifier is not None:
        artifacts["guard_classifier"] = str(bundle.guard_classifier)
        artifacts["guard_classifier_card"] = str(Path(bundle.guard_classifier).with_suffix(
            ".json"))
    return artifacts


@dataclass(frozen=True)
class Verification:
    """Result of re-checking a version's lineage and artifacts."""

    name: str
    version: str
    ok: bool
    problems: list[str] = field(default_factory=list)


def artifact_hashes(bundle_root: Path) -> dict[str, str]:
    """sha256 of every file in a model directory, by relative path (MLmodel excluded)."""
    root = Path(bundle_root)
    return {str(path.relative_to(root)): sha256_file(path)
            for path in sorted(root.rglob("*")) if path.is_file()}


def lineage_digest(lineage: dict[str, str]) -> str:
    """Digest over every lineage tag (which include the artifact hashes)."""
    return sha256_json({k: v for k, v in lineage.items() if k.startswith(LINEAGE_PREFIX)})


class ModelRegistry:
    """One small service object in front of MLflow's tracking and registry APIs."""

    def __init__(self, tracking_uri: str, registry_uri: str | None = None,
                 experiment: str = "plimsoll", artifact_root: str | None = None,
                 records: LineageRecords | None = None) -> None:
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        self.experiment = experiment
        self.artifact_root = artifact_root
        # Plimsoll's own lineage of record; registration writes it, verify checks against it.
        self.records = records
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=self.registry_uri)

    # -- reachability ----------------------------------------------------------------------
    def ensure_reachable(self) -> str:
        """Experiment id; an unreachable store is a clear error before anything is written."""
        try:
            found = self.client.get_experiment_by_name(self.experiment)
            if found is not None:
                return found.experiment_id
            return self.client.create_experiment(self.experiment,
                                                 artifact_location=self.artifact_root)
        except Exception as exc:  # MLflow raises several types for a dead store
            raise RegistryError(f"MLflow store unreachable ({type(exc).__name__}: "
                                f"{str(exc).splitlines()[0][:200]})", field="tracking_uri",
                                fix=f"start or fix the MLflow store at {self.tracking_uri}; "
                                "nothing was registered") from None

    # -- registration ----------------------------------------------------------------------
    def register(self, model_name: str, bundle: Bundle, lineage: dict[str, str],
                 run_id: str) -> str:
        """Log the bundle as a pyfunc model to the run and create a version with its lineage.

        The version's tags are written in the same call that creates it, so a failure leaves
        no half-tagged version.
        """
        import mlflow.pyfunc

        from plimsoll.serving.pyfunc import DocsAssistantModel, model_signature

        self.ensure_reachable()
        if self.records is None:
            raise RegistryError("no lineage record store to register into", field="records",
                                fix="pass records=LineageRecords(ledger_url) to ModelRegistry "
                                "(the Dagster resource does this); nothing was registered")
        bundle_key = lineage.get(LINEAGE_PREFIX + "bundle_key")
        if bundle_key:
            for existing in self.call(self.client.search_model_versions,
                                           f"name = '{model_name}'"):
                if existing.tags.get(LINEAGE_PREFIX + "bundle_key") == bundle_key and \
                        self.records.get(model_name, str(existing.version)) is not None:
                    return str(existing.version)  # this bundle is already a version
        if self._registered_model(model_name) is None:
            self.call(self.client.create_registered_model, model_name,
                        description="Plimsoll docs assistant candidates (encoder + index "
                        "snapshot + answer templates).")
        floor = 0  # MLflow never reuses a number, even of a deleted version
        for _attempt in range(3):
            expected = str(max(self._latest_version(model_name), floor) + 1)
            staging = Path(tempfile.mkdtemp(prefix="plimsoll-model-"))
            try:
                model_dir = staging / "model"
                with warnings.catch_warnings():
                    # We pickle a class importable from plimsoll, not ad-hoc code.
                    warnings.filterwarnings("ignore", message=".*CloudPickle.*")
                    warnings.filterwarnings("ignore", message=".*type hints.*")
                    warnings.filterwarnings("ignore", message=".*input example.*")
                    _quiet_mlflow_pyfunc_logger()
                    mlflow.pyfunc.save_model(
                        path=str(model_dir), python_model=DocsAssistantModel(),
                        artifacts=bundle_artifacts(bundle), signature=model_signature(),
                        model_config={"model_name": model_name, "model_version": expected,
                                      "abstain_below": bundle.abstain_below},
                        pip_requirements=list(PIP_REQUIREMENTS))
                tags = dict(lineage)
                tags[LINEAGE_PREFIX + "artifacts_digest"] = sha256_json(
                    artifact_hashes(model_dir / "artifacts"))
                tags[DIGEST_TAG] = lineage_digest(tags)
                artifact_path = f"model-v{expected}"
                self.call(self.client.log_artifacts, run_id, str(model_dir), artifact_path)
                run_info = self.call(self.client.get_run, run_id).info
                source = f"{run_info.artifact_uri}/{artifact_path}"
                version = self.call(self.client.create_model_version, model_name,
                                      source=source, run_id=run_id, tags=tags,
                                      description=f"Candidate from run {run_id}")
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            if str(version.version) == expected:
                self._record(model_name, expected, tags, run_info.user_id)
                return expected
            # Another registration took the number baked into the model config: retract ours.
            floor = int(version.version)
            self.call(self.client.delete_model_version, model_name, version.version)
        raise RegistryError("could not claim a version number after 3 tries",
                            field=model_name, fix="retry when other registrations finish")

    def _record(self, model_name: str, version: str, tags: dict[str, str],
                run_user: str | None) -> None:
        """The lineage of record, in the same step: a version without one is retracted."""
        # MLflow says "unknown" for a run created without the mlflow.user tag.
        trainers = [run_user if run_user != "unknown" else "",
                    tags.get(LINEAGE_PREFIX + "trained_by", "")]
        try:
            self.records.record(model_name, version, tags, trainers)
        except BaseException:
            # No record, no version: a version MLflow holds without one could never be
            # approved, and would look registered to a person reading the UI.
            self.call(self.client.delete_model_version, model_name, version)
            raise

    def _registered_model(self, model_name: str):
        """The registered model, or None when it does not exist (decided by error code)."""
        try:
            return self.client.get_registered_model(model_name)
        except Exception as exc:
            if error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise self.failure(exc) from None

    def version(self, model_name: str, version: str):
        """A model version; a missing or deleted one is a RegistryError that says so."""
        try:
            return self.client.get_model_version(model_name, str(version))
        except Exception as exc:
            if error_code(exc) in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise RegistryError(
                    f"{model_name} version {version} is not registered (or was deleted)",
                    field="version", fix=f"pick a version listed by `plimsoll status` or in "
                    f"the MLflow UI (Models → {model_name})") from None
            raise self.failure(exc) from None

    def failure(self, exc: Exception) -> RegistryError:
        """An MLflow failure as an error that names the store and the fix."""
        return RegistryError(f"MLflow call to {self.tracking_uri} failed "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
                             field="tracking_uri",
                             fix=f"check the MLflow store at {self.tracking_uri} "
                             "(--tracking-uri or $MLFLOW_TRACKING_URI)")

    def _latest_version(self, model_name: str) -> int:
        versions = self.call(self.client.search_model_versions, f"name = '{model_name}'")
        return max((int(v.version) for v in versions), default=0)

    def call(self, method, *args, **kwargs):
        """Call an MlflowClient method; any MLflow failure becomes a RegistryError."""
        try:
            return method(*args, **kwargs)
        except RegistryError:
            raise
        except Exception as exc:
            raise self.failure(exc) from None

    # -- tags ------------------------------------------------------------------------------
    def set_tag(self, model_name: str, version: str, key: str, value: str) -> None:
        """Set a tag on a version; lineage tags are write-once and refused here."""
        if key.startswith(LINEAGE_PREFIX) or key == DIGEST_TAG:
            raise RegistryError(f"'{key}' is a lineage tag and lineage is immutable",
                                field=key, fix="register a new version instead of editing "
                                "the lineage of an existing one")
        self.call(self.client.set_model_version_tag, model_name, version, key, value)

    # -- verification ----------------------------------------------------------------------
    def verify(self, model_name: str, version: str) -> Verification:
        """Recompute the lineage digest and the artifact hashes of a registered version."""
        import mlflow.artifacts

        found = self.version(model_name, version)
        tags = dict(found.tags)
        problems = []
        if DIGEST_TAG not in tags:
            problems.append(f"tag {DIGEST_TAG} is missing")
        elif lineage_digest(tags) != tags[DIGEST_TAG]:
            problems.append("lineage tags do not match the lineage digest (a tag was edited)")
        record = None
        if self.records is None:
            problems.append("no lineage record store given: the tags cannot be checked "
                            "against the lineage of record")
        else:
            record, found_problems = self.records.check(model_name, str(version), {
                k: v for k, v in tags.items() if k.startswith(LINEAGE_PREFIX) or
                k == DIGEST_TAG}, RECORDED_PREFIX)
            problems += found_problems
        recorded = (record.lineage if record is not None else tags).get(
            LINEAGE_PREFIX + "artifacts_digest")
        with tempfile.TemporaryDirectory() as tmp:
            try:
                local = Path(mlflow.artifacts.download_artifacts(
                    artifact_uri=found.source, dst_path=tmp, tracking_uri=self.tracking_uri))
            except Exception as exc:
                raise RegistryError(
                    f"the artifacts of {model_name} version {version} could not be read from "
                    f"{found.source} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
                    field="source", fix="check the artifact store; a version whose files are "
                    "gone cannot be verified or promoted") from None
            actual = sha256_json(artifact_hashes(local / "artifacts"))
            config = _model_config(local)
        if actual != recorded:
            problems.append("artifacts differ from the hashes recorded at registration "
                            "(weights, index snapshot or template changed)")
        if str(config.get("model_version")) != str(version):
            problems.append(f"model config names version {config.get('model_version')}")
        return Verification(model_name, str(version), not problems, problems)


def error_code(exc: BaseException) -> str | None:
    """MLflow's error code of an exception (RESOURCE_DOES_NOT_EXIST, ...), if it has one."""
    return getattr(exc, "error_code", None)


def _quiet_mlflow_pyfunc_logger() -> None:
    import logging

    logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)


def _model_config(model_dir: Path) -> dict[str, object]:
    import yaml

    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
    return (mlmodel.get("flavors", {}).get("python_function", {}).get("config")
            or mlmodel.get("model_config") or {})


def lineage_tags(values: dict[str, object]) -> dict[str, str]:
    """Lineage values as MLflow tags: prefixed keys, JSON for anything not a string."""
    return {LINEAGE_PREFIX + key: value if isinstance(value, str) else json.dumps(
        value, sort_keys=True) for key, value in values.items()}
