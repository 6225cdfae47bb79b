"""The model registry: immutable candidate versions with write-once lineage tags in MLflow.

MLflow tags are mutable, so immutability is enforced here: lineage tags are written at
version creation, a lineage digest covers them and the artifact hashes, Plimsoll refuses
to rewrite them, and `verify` recomputes everything to catch edits made behind its back.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

from plimsoll.common.errors import PlimsollError
from plimsoll.common.hashing import sha256_file, sha256_json
from plimsoll.common.settings import ABSTAIN_BELOW
from plimsoll.release.lineage_record import LineageRecords

LINEAGE_PREFIX = "plimsoll.lineage."
DIGEST_TAG = "plimsoll.lineage_digest"
RECORDED_PREFIX = "plimsoll.lineage"  # the lineage tags and the digest over them
PIP_REQUIREMENTS = ("plimsoll",)
FAILURE_TAG = "plimsoll.failure"
PROMPT_HASH_TAG = "plimsoll.content_hash"

# MLflow's error codes that mean "not there" (a missing alias is INVALID_PARAMETER_VALUE).
MISSING = "RESOURCE_DOES_NOT_EXIST"
INVALID = "INVALID_PARAMETER_VALUE"

MODEL_REF = re.compile(
    r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+|latest)|@(?P<alias>[\w-]+))$")

# MLflow's HTTP client waits 120 s and retries 7 times by default: a dead store would hold
# a sensor tick or a CLI command for minutes. One retry and 10 s, and no progress bars.
MLFLOW_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
                        "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
                        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def bound_mlflow_calls(environ: MutableMapping[str, str] | None = None) -> None:
    """Bound MLflow's HTTP calls in this process (MLFLOW_HTTP_DEFAULTS); set values win.

    MLflow reads these from the environment on every request and takes no per-client
    setting, so each process sets them once at its entry point: `plimsoll` (cli.main),
    tools/run_eval.py, tools/threat_checks.py and the Dagster definitions function.
    ModelRegistry itself leaves the environment alone.
    """
    environ = os.environ if environ is None else environ
    for key, value in MLFLOW_HTTP_DEFAULTS.items():
        environ.setdefault(key, value)


class RegistryError(PlimsollError):
    """The registry refused an operation, or could not be reached."""


class VersionNotRegistered(RegistryError):
    """A model version that is not in the registry, or was deleted from it."""


@dataclass(frozen=True)
class PyfuncModel:
    """What MLflow saves as a version's model: the python model and its signature.

    The serving package builds it (plimsoll.serving.pyfunc.pyfunc_model); the registry only
    saves it, so the registry never imports what it registers.
    """

    python_model: object  # an mlflow.pyfunc.PythonModel
    signature: object  # an mlflow.models.ModelSignature


@dataclass(frozen=True)
class Bundle:
    """What a candidate version is made of, on local disk."""

    encoder_dir: Path
    snapshot_dir: Path
    answer_template: Path
    abstain_template: Path
    abstain_below: float = ABSTAIN_BELOW
    guard_policy: Path | None = None
    # The guard's injection classifier (.npz; its card .json beside it), bundled so a version
    # serves with the classifier it was evaluated with, whatever package is installed.
    guard_classifier: Path | None = None
    # The model card rendered with this version's numbers (policies/model_card.md).
    model_card: Path | None = None


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
    if bundle.model_card is not None:
        artifacts["model_card"] = str(bundle.model_card)
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
    """One small service object in front of MLflow's tracking and registry APIs.

    The only holder of an MlflowClient: the rest of Plimsoll registers, downloads, logs
    training and eval runs and moves aliases through these methods, and every MLflow
    failure comes out as a RegistryError that names the store and the fix.
    """

    def __init__(self, tracking_uri: str, registry_uri: str | None = None,
                 experiment: str = "plimsoll", artifact_root: str | None = None,
                 records: LineageRecords | None = None) -> None:
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        self.experiment = experiment
        self.artifact_root = artifact_root
        # Plimsoll's own lineage of record; registration writes it, verify checks against it.
        self.records = records
        try:  # a SQL store is opened (and its schema checked) here
            self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=self.registry_uri)
        except store_failures() as exc:
            raise self.failure(exc) from None

    # -- reachability ----------------------------------------------------------------------
    def ensure_reachable(self) -> str:
        """Experiment id; an unreachable store is a clear error before anything is written."""
        try:
            found = self.client.get_experiment_by_name(self.experiment)
            if found is not None:
                return found.experiment_id
            return self.client.create_experiment(self.experiment,
                                                 artifact_location=self.artifact_root)
        except store_failures() as exc:
            raise RegistryError(f"MLflow store unreachable ({_first_line(exc)})",
                                field="tracking_uri",
                                fix=f"start or fix the MLflow store at {self.tracking_uri}; "
                                "nothing was registered") from None

    def probe(self, source: str = "tracking_uri") -> None:
        """Read one registered model: a store that refuses or does not answer says how.

        `source` is what chose the tracking URI (--tracking-uri, $MLFLOW_TRACKING_URI, ...),
        named in the error so the person knows what to change. Nothing is written.
        """
        try:
            self.client.search_registered_models(max_results=1)
        except store_failures() as exc:
            fault = unanswered(exc)
            problem = (f"the MLflow server at {self.tracking_uri} {fault}" if fault else
                       f"the MLflow store at {self.tracking_uri} failed ({_first_line(exc)})")
            raise RegistryError(problem, field=source, fix=f"start the MLflow server at "
                                f"{self.tracking_uri}, or point --tracking-uri (or "
                                "$MLFLOW_TRACKING_URI) at the right one") from None

    # -- registration ----------------------------------------------------------------------
    def register(self, model_name: str, bundle: Bundle, lineage: dict[str, str],
                 run_id: str, model: PyfuncModel,
                 describe: Callable[[str, dict[str, str]], str] | None = None) -> str:
        """Save `model` with the bundle's files to the run and create a version with lineage.

        The version's tags, and its description (`describe(version, tags)`: the review
        card), are written in the same call that creates it, so a failure leaves no
        half-tagged or undescribed version.
        """
        import mlflow.pyfunc

        self.ensure_reachable()
        if self.records is None:
            raise RegistryError("no lineage record store to register into", field="records",
                                fix="pass records=LineageRecords(ledger_url) to ModelRegistry "
                                "(the Dagster resource does this); nothing was registered")
        bundle_key = lineage.get(LINEAGE_PREFIX + "bundle_key")
        if bundle_key:
            for existing in self.versions(model_name):
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
                        path=str(model_dir), python_model=model.python_model,
                        artifacts=bundle_artifacts(bundle), signature=model.signature,
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
                description = describe(expected, tags) if describe is not None else \
                    f"Candidate from run {run_id}"
                version = self.call(self.client.create_model_version, model_name,
                                    source=source, run_id=run_id, tags=tags,
                                    description=description)
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
        except store_failures() as exc:
            if error_code(exc) == MISSING:
                return None
            raise self.failure(exc) from None

    def run_experiment(self, run_id: str) -> str:
        """The id of the experiment a run belongs to (where a version's serving traces go)."""
        return str(self.call(self.client.get_run, run_id).info.experiment_id)

    def version(self, model_name: str, version: str):
        """A model version; a missing or deleted one is a VersionNotRegistered that says so."""
        try:
            return self.client.get_model_version(model_name, str(version))
        except store_failures() as exc:
            if error_code(exc) in (MISSING, INVALID):
                raise self._not_registered(model_name, version) from None
            raise self.failure(exc) from None

    def _not_registered(self, model_name: str, version: str) -> VersionNotRegistered:
        # MLflow answers the same for a number never used and for a deleted version.
        return VersionNotRegistered(
            f"{model_name} version {version} is not registered (or was deleted)",
            field="version", fix=f"pick a version listed by `plimsoll status` or in the "
            f"MLflow UI (Models → {model_name}); nothing was changed")

    def versions(self, model_name: str) -> list:
        """Every registered (not deleted) version of a model, oldest first; [] for none."""
        found, token = [], None
        while True:
            page = self.call(self.client.search_model_versions, f"name = '{model_name}'",
                             page_token=token)
            found += list(page)
            token = page.token
            if not token:
                return sorted(found, key=lambda v: int(v.version))

    def aliases(self, model_name: str) -> dict[str, str]:
        """Alias → version of a registered model; a model never registered says so."""
        model = self._registered_model(model_name)
        if model is None:
            raise RegistryError(f"no registered model '{model_name}' at {self.tracking_uri}",
                                field="--model", fix="check the model name, and that "
                                "--tracking-uri is the store it was registered in")
        return {alias: str(version) for alias, version in (model.aliases or {}).items()}

    def failure(self, exc: BaseException) -> RegistryError:
        """An MLflow failure as an error that names the store and the fix."""
        return RegistryError(f"MLflow call to {self.tracking_uri} failed ({_first_line(exc)})",
                             field="tracking_uri",
                             fix=f"check the MLflow store at {self.tracking_uri} "
                             "(--tracking-uri or $MLFLOW_TRACKING_URI)")

    def _latest_version(self, model_name: str) -> int:
        return max((int(v.version) for v in self.versions(model_name)), default=0)

    def call(self, method, *args, **kwargs):
        """Call an MlflowClient method; a store failure becomes a RegistryError."""
        try:
            return method(*args, **kwargs)
        except store_failures() as exc:
            raise self.failure(exc) from None

    # -- aliases ---------------------------------------------------------------------------
    def alias_version(self, model_name: str, alias: str) -> str | None:
        """The version an alias points at; None when the alias (or the model) is not set."""
        try:
            return str(self.client.get_model_version_by_alias(model_name, alias).version)
        except store_failures() as exc:
            if error_code(exc) not in (MISSING, INVALID):
                raise self.failure(exc) from None
        # MLflow says INVALID_PARAMETER_VALUE for a missing alias and for a malformed request
        # alike: the model's own alias list tells which. An alias in the list now was set
        # by another writer since the first read (two sensor ticks at once): it is the answer.
        model = self._registered_model(model_name)
        aliases = (model.aliases or {}) if model is not None else {}
        return str(aliases[alias]) if alias in aliases else None

    def set_alias(self, model_name: str, alias: str, version: str) -> None:
        """Point an alias at a version; a missing or deleted version changes nothing."""
        try:
            self.client.set_registered_model_alias(model_name, alias, str(version))
        except store_failures() as exc:
            if error_code(exc) == MISSING:
                raise self._not_registered(model_name, version) from None
            raise self.failure(exc) from None

    def delete_alias(self, model_name: str, alias: str) -> None:
        """Remove an alias (nothing to do when it is not set)."""
        self.call(self.client.delete_registered_model_alias, model_name, alias)

    # -- downloads -------------------------------------------------------------------------
    def find(self, reference: str):
        """The version a `models:/NAME/N|latest` or `models:/NAME@ALIAS` reference names."""
        match = MODEL_REF.match(reference)
        if match is None:
            raise RegistryError(f"'{reference}' is not a model reference", field="--model",
                                fix="use models:/NAME/VERSION, models:/NAME@ALIAS or a path")
        name = match["name"]
        found = None
        if match["alias"]:
            number = self.alias_version(name, match["alias"])
            found = self._find_version(name, number) if number is not None else None
        elif match["version"] == "latest":
            found = next(iter(reversed(self.versions(name))), None)
        else:
            found = self._find_version(name, match["version"])
        if found is None:
            raise RegistryError(f"{reference} is not in the registry at {self.tracking_uri}",
                                field="--model", fix="list versions with `plimsoll status`")
        return found

    def _find_version(self, name: str, number: str):
        try:
            return self.version(name, number)
        except VersionNotRegistered:
            return None

    def download(self, reference: str, destination: Path) -> tuple[Path, str]:
        """Download the files of a `models:/` reference; returns (model directory, version)."""
        found = self.find(reference)
        local = self._download_artifacts(found.source, Path(destination), what=reference,
                                         fix="check the artifact store; nothing was evaluated",
                                         field="--model")
        return local, str(found.version)

    def _download_artifacts(self, source: str, destination: Path, *, what: str, fix: str,
                            field: str) -> Path:
        import mlflow.artifacts

        try:
            return Path(mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=str(destination),
                tracking_uri=self.tracking_uri))
        except artifact_failures() as exc:
            raise RegistryError(f"the files of {what} could not be downloaded from {source} "
                                f"({_first_line(exc)})", field=field, fix=fix) from None

    # -- runs ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def training_run(self, experiment_id: str, run_name: str,
                     tags: Mapping[str, str]) -> Iterator[TrainingRun]:
        """A run to train in: FINISHED when the block ends, FAILED (and why) when it raises.

        Interrupts end it FAILED too: a run left RUNNING would look alive forever. The
        block's own error is what propagates, even when the store cannot be told.
        """
        run = self.call(self.client.create_run, experiment_id, run_name=run_name,
                        tags=dict(tags))
        handle = TrainingRun(self, run.info.run_id)
        try:
            yield handle
        except BaseException as error:
            with contextlib.suppress(RegistryError):  # a dead store must not hide the error
                self.end_run(handle.run_id, "FAILED", tags={FAILURE_TAG: (
                    f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:500]}")})
            raise
        self.end_run(handle.run_id, "FINISHED")

    def end_run(self, run_id: str, status: str, *, tags: Mapping[str, str] | None = None,
                end_time_ms: int | None = None) -> None:
        """Tag a run (why it ended) and end it with a status (FINISHED, FAILED, KILLED)."""
        for key, value in (tags or {}).items():
            self.call(self.client.set_tag, run_id, key, value)
        self.call(self.client.set_terminated, run_id, status=status, end_time=end_time_ms)

    def running_runs(self, experiment_id: str, tag: str, value: str) -> list:
        """The runs of an experiment still RUNNING whose tag `tag` is `value` (at most 200)."""
        return list(self.call(self.client.search_runs, [experiment_id],
                              filter_string=f"tags.`{tag}` = '{value}' "
                              "and attributes.status = 'RUNNING'", max_results=200))

    def last_logged_ms(self, run_id: str, metric: str) -> int | None:
        """When a run last logged a metric (ms since the epoch), or None if it never did."""
        history = self.call(self.client.get_metric_history, run_id, metric)
        return max((m.timestamp for m in history), default=None)

    def log_eval(self, run_id: str, metrics: Mapping[str, float], *,
                 tags: Mapping[str, str] | None = None, artifacts: Iterable[Path] = (),
                 artifact_path: str = "eval_report") -> None:
        """Log an evaluation to a run: its metrics and tags in one batch, then its files."""
        from mlflow.entities import Metric, RunTag

        now_ms = int(time.time() * 1000)
        self.call(self.client.log_batch, run_id,
                  metrics=[Metric(key, float(value), now_ms, 0)
                           for key, value in metrics.items()],
                  tags=[RunTag(key, str(value)) for key, value in (tags or {}).items()])
        for path in artifacts:
            self.call(self.client.log_artifact, run_id, str(path), artifact_path)

    # -- tags ------------------------------------------------------------------------------
    def set_tag(self, model_name: str, version: str, key: str, value: str) -> None:
        """Set a tag on a version; lineage tags are write-once and refused here."""
        if key.startswith(LINEAGE_PREFIX) or key == DIGEST_TAG:
            raise RegistryError(f"'{key}' is a lineage tag and lineage is immutable",
                                field=key, fix="register a new version instead of editing "
                                "the lineage of an existing one")
        self.call(self.client.set_model_version_tag, model_name, version, key, value)

    def set_description(self, model_name: str, version: str, description: str) -> None:
        """Replace a version's description (the review card); a missing version says so."""
        try:
            self.client.update_model_version(model_name, str(version), description=description)
        except store_failures() as exc:
            if error_code(exc) in (MISSING, INVALID):
                raise self._not_registered(model_name, version) from None
            raise self.failure(exc) from None

    # -- prompts ---------------------------------------------------------------------------
    def register_prompt(self, name: str, template: str, *, content_hash: str,
                        tags: Mapping[str, str], commit_message: str) -> str:
        """The `prompts:/NAME/N` version holding this content, registered if it is new.

        The content hash is the identity, as in answers and lineage: the same text
        registers once, however often it is asked; a changed text is a new version, so
        MLflow's prompt page shows its diff against the one before.
        """
        existing = None if self.call(self.client.get_prompt, name) is None else next(
            (v for v in self._prompt_versions(name)
             if (v.tags or {}).get(PROMPT_HASH_TAG) == content_hash), None)
        if existing is None:
            existing = self.call(self.client.register_prompt, name, template,
                                 commit_message=commit_message,
                                 tags={**tags, PROMPT_HASH_TAG: content_hash})
        return f"prompts:/{name}/{existing.version}"

    def _prompt_versions(self, name: str) -> list:
        found, token = [], None
        while True:
            page = self.call(self.client.search_prompt_versions, name, page_token=token)
            found += list(page)
            token = getattr(page, "token", None)
            if not token:
                return found

    # -- verification ----------------------------------------------------------------------
    def verify(self, model_name: str, version: str) -> Verification:
        """Recompute the lineage digest and the artifact hashes of a registered version."""
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
            local = self._download_artifacts(
                found.source, Path(tmp), what=f"{model_name} version {version}",
                field="source", fix="check the artifact store; a version whose files are "
                "gone cannot be verified or promoted")
            actual = sha256_json(artifact_hashes(local / "artifacts"))
            config = _model_config(local)
        if actual != recorded:
            problems.append("artifacts differ from the hashes recorded at registration "
                            "(weights, index snapshot or template changed)")
        if str(config.get("model_version")) != str(version):
            problems.append(f"model config names version {config.get('model_version')}")
        return Verification(model_name, str(version), not problems, problems)


class TrainingRun:
    """The MLflow run a fine-tune logs to (from ModelRegistry.training_run)."""

    def __init__(self, registry: ModelRegistry, run_id: str) -> None:
        self.registry = registry
        self.run_id = run_id

    def log_params(self, params: Mapping[str, object]) -> None:
        """Log parameters, in one batch."""
        from mlflow.entities import Param

        self.registry.call(self.registry.client.log_batch, self.run_id,
                           params=[Param(key, str(value)) for key, value in params.items()])

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        """Log metrics at a step, in one batch."""
        from mlflow.entities import Metric

        now_ms = int(time.time() * 1000)
        self.registry.call(self.registry.client.log_batch, self.run_id, metrics=[
            Metric(key, float(value), now_ms, step) for key, value in metrics.items()])

    def log_artifacts(self, local_dir: Path, artifact_path: str) -> None:
        """Upload a folder's files under `artifact_path`."""
        self.registry.call(self.registry.client.log_artifacts, self.run_id, str(local_dir),
                           artifact_path)

    def set_tag(self, key: str, value: str) -> None:
        """Tag the run."""
        self.registry.call(self.registry.client.set_tag, self.run_id, key, value)


def store_failures() -> tuple[type[BaseException], ...]:
    """What an MLflow store failure is raised as: MLflow's own error, or the transport's."""
    from mlflow.exceptions import MlflowException

    return (MlflowException, OSError)


def artifact_failures() -> tuple[type[BaseException], ...]:
    """Store failures, and those of an S3 artifact store (botocore's own types)."""
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        return store_failures()
    return (*store_failures(), BotoCoreError, ClientError)


def unanswered(exc: BaseException) -> str | None:
    """How a server failed to answer, read from the exception chain by type, if it did."""
    import urllib3.exceptions

    pending, seen = [exc], set()
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, urllib3.exceptions.NameResolutionError):
            return "cannot be found (its host name does not resolve)"
        if isinstance(error, urllib3.exceptions.NewConnectionError | ConnectionRefusedError):
            return "refused the connection"
        if isinstance(error, urllib3.exceptions.TimeoutError | TimeoutError):
            return (f"did not answer within {os.environ.get('MLFLOW_HTTP_REQUEST_TIMEOUT')} s "
                    "(MLFLOW_HTTP_REQUEST_TIMEOUT)")
        # requests and MLflow keep the transport error as a cause, a context or an argument.
        pending += [error.__cause__, error.__context__, getattr(error, "reason", None),
                    *(a for a in error.args if isinstance(a, BaseException))]
    return None


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"


def error_code(exc: BaseException) -> str | None:
    """MLflow's error code of an MlflowException (RESOURCE_DOES_NOT_EXIST, ...), else None."""
    from mlflow.exceptions import MlflowException

    return exc.error_code if isinstance(exc, MlflowException) else None


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
