import time

import mlflow.pyfunc
import pandas as pd
import pytest

from plimsoll.release.lineage_record import LineageRecords
from plimsoll.release.registry import (
    DIGEST_TAG,
    LINEAGE_PREFIX,
    MLFLOW_HTTP_DEFAULTS,
    ModelRegistry,
    RegistryError,
    VersionNotRegistered,
    bound_mlflow_calls,
    lineage_tags,
)
from plimsoll.serving.pyfunc import pyfunc_model

NAME = "docs-assistant-test"


@pytest.fixture
def registry(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return ModelRegistry(uri, artifact_root=str(tmp_path / "artifacts"),
                         records=LineageRecords(f"sqlite:///{tmp_path / 'ledger.sqlite'}"))


def _register(registry, bundle, **extra):
    run = registry.client.create_run(registry.ensure_reachable())
    lineage = lineage_tags({"git_commit": "abc123", "seed": "42",
                            "hyperparameters": {"lr": 3e-5}, **extra})
    return registry.register(NAME, bundle, lineage, run.info.run_id, pyfunc_model())


def test_register_load_predict_and_verify(registry, bundle):
    version = _register(registry, bundle)
    tags = registry.client.get_model_version(NAME, version).tags
    assert tags[LINEAGE_PREFIX + "git_commit"] == "abc123"
    assert tags[LINEAGE_PREFIX + "hyperparameters"] == '{"lr": 3e-05}'
    assert DIGEST_TAG in tags and LINEAGE_PREFIX + "artifacts_digest" in tags
    assert registry.verify(NAME, version).ok

    model = mlflow.pyfunc.load_model(f"models:/{NAME}/{version}")
    answers = model.predict(pd.DataFrame({"question": [
        "How do I roll back to the previous model?", "Best sourdough hydration?"]}))
    first, second = answers.to_dict("records")
    assert not first["abstained"] and "doc-0" in first["citations"]
    assert "[1]" in first["answer"] and "Sources:" in first["answer"]
    assert second["abstained"] and second["citations"] == []
    for row in (first, second):  # model metadata travels with every answer
        assert row["model_name"] == NAME and row["model_version"] == version
        assert row["index_snapshot_id"] == bundle.snapshot_dir.name
        assert row["prompt_template"].startswith("answer@1.0.0#")


def test_same_bundle_is_registered_once(registry, bundle):
    first = _register(registry, bundle, bundle_key="k1")
    assert _register(registry, bundle, bundle_key="k1") == first
    assert _register(registry, bundle, bundle_key="k2") != first


def test_lineage_tags_are_write_once_through_plimsoll(registry, bundle):
    version = _register(registry, bundle)
    with pytest.raises(RegistryError, match="lineage is immutable"):
        registry.set_tag(NAME, version, LINEAGE_PREFIX + "git_commit", "rewritten")
    registry.set_tag(NAME, version, "approval", "pending")  # ordinary tags are fine
    assert registry.verify(NAME, version).ok


def test_tag_edited_behind_plimsoll_is_detected(registry, bundle):
    version = _register(registry, bundle)
    registry.client.set_model_version_tag(NAME, version, LINEAGE_PREFIX + "seed", "43")
    result = registry.verify(NAME, version)
    assert not result.ok and "a tag was edited" in result.problems[0]


def test_checkpoint_tampered_after_registration_is_detected(registry, bundle, tmp_path):
    version = _register(registry, bundle)
    (weights,) = (tmp_path / "artifacts").rglob("model.safetensors")
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    result = registry.verify(NAME, version)
    assert not result.ok
    assert any("artifacts differ" in problem for problem in result.problems)


def test_unreachable_store_fails_fast_and_registers_nothing(bundle, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    dead = ModelRegistry("http://127.0.0.1:9")
    start = time.monotonic()
    with pytest.raises(RegistryError) as caught:
        dead.register(NAME, bundle, lineage_tags({"seed": "1"}), "none", pyfunc_model())
    assert time.monotonic() - start < 30
    assert caught.value.field == "tracking_uri" and "nothing was registered" in caught.value.fix


def test_failure_while_creating_the_version_leaves_nothing_half_registered(
        registry, bundle, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise ConnectionError("store went away")

    monkeypatch.setattr(registry.client, "create_model_version", refuse)
    with pytest.raises(RegistryError, match="store went away"):
        _register(registry, bundle)
    monkeypatch.undo()
    assert registry.client.search_model_versions(f"name = '{NAME}'") == []


def test_verify_unknown_version(registry, bundle):
    _register(registry, bundle)
    with pytest.raises(RegistryError, match="is not registered") as caught:
        registry.verify(NAME, "99")
    assert caught.value.field == "version"


def test_the_guard_classifier_travels_with_the_version(registry, bundle, tmp_path):
    """A version serves with the classifier it was registered with, not the installed one."""
    import dataclasses
    import json
    import shutil

    from plimsoll.common.settings import Settings
    from plimsoll.evaluation.candidate import open_model_to_evaluate
    from plimsoll.guard.classifier import CARD_PATH, MODEL_PATH, load_classifier

    own = tmp_path / "own" / MODEL_PATH.name
    own.parent.mkdir()
    shutil.copyfile(MODEL_PATH, own)
    card = json.loads(CARD_PATH.read_text())
    own.with_suffix(".json").write_text(json.dumps({**card, "threshold": 0.987}))
    version = _register(registry, dataclasses.replace(bundle, guard_classifier=own))
    assert load_classifier().threshold != 0.987  # the installed one differs

    model = mlflow.pyfunc.load_model(f"models:/{NAME}/{version}")
    assert model.unwrap_python_model().answerer.guard.classifier.threshold == 0.987
    answerer, _ = open_model_to_evaluate(f"models:/{NAME}/{version}", tmp_path / "download",
                                         Settings.from_env(tracking_uri=registry.tracking_uri))
    assert answerer.guard.classifier.threshold == 0.987
    assert registry.verify(NAME, version).ok  # its files are in the artifacts digest


def test_constructing_a_registry_leaves_the_environment_alone(tmp_path, monkeypatch):
    for key in MLFLOW_HTTP_DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    import os

    before = dict(os.environ)
    ModelRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}")
    ModelRegistry("http://127.0.0.1:9")
    assert dict(os.environ) == before


def test_the_entry_points_bound_mlflow_calls_and_keep_what_is_set():
    environ = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "3"}
    bound_mlflow_calls(environ)
    assert environ == {**MLFLOW_HTTP_DEFAULTS, "MLFLOW_HTTP_REQUEST_TIMEOUT": "3"}


def test_a_bug_is_not_reported_as_the_stores_fault(registry, bundle, monkeypatch):
    """Only MLflow's errors and transport errors are the store's; anything else propagates."""
    def broken(*_args, **_kwargs):
        raise TypeError("a bug in the caller")

    monkeypatch.setattr(registry.client, "get_registered_model", broken)
    with pytest.raises(TypeError, match="a bug in the caller"):
        _register(registry, bundle)


def test_a_store_failure_reading_an_alias_is_not_read_as_no_alias(registry, monkeypatch):
    from mlflow.exceptions import MlflowException

    def failing(*_args, **_kwargs):
        raise MlflowException("database is locked", error_code="INTERNAL_ERROR")

    monkeypatch.setattr(registry.client, "get_model_version_by_alias", failing)
    with pytest.raises(RegistryError, match="database is locked") as caught:
        registry.alias_version(NAME, "champion")
    assert registry.tracking_uri in caught.value.fix


def test_an_alias_set_by_another_writer_between_two_reads_is_returned(registry, bundle,
                                                                      monkeypatch):
    """Two sensor ticks at once: the first read says "not found", the alias list has it."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    version = _register(registry, bundle)
    real_set = registry.client.set_registered_model_alias

    def set_meanwhile(*_args, **_kwargs):
        real_set(NAME, "champion", version)  # the other tick moves the alias now
        raise MlflowException("Registered model alias champion not found.",
                              error_code=INVALID_PARAMETER_VALUE)

    monkeypatch.setattr(registry.client, "get_model_version_by_alias", set_meanwhile)
    assert registry.alias_version(NAME, "champion") == version


def test_aliases_and_downloads_through_the_registry(registry, bundle, tmp_path):
    first, second = _register(registry, bundle), _register(registry, bundle)
    assert registry.alias_version("never-registered", "champion") is None
    assert registry.alias_version(NAME, "champion") is None
    registry.set_alias(NAME, "champion", first)
    assert registry.aliases(NAME) == {"champion": first}
    assert [str(v.version) for v in registry.versions(NAME)] == [first, second]
    local, version = registry.download(f"models:/{NAME}@champion", tmp_path / "a")
    assert version == first and (local / "artifacts").is_dir()
    assert registry.download(f"models:/{NAME}/latest", tmp_path / "b")[1] == second
    with pytest.raises(RegistryError, match="is not in the registry") as caught:
        registry.download(f"models:/{NAME}@challenger", tmp_path / "c")
    assert caught.value.field == "--model"

    registry.client.delete_model_version(NAME, second)
    with pytest.raises(VersionNotRegistered, match=f"version {second} is not registered"):
        registry.set_alias(NAME, "champion", second)
    assert registry.alias_version(NAME, "champion") == first  # nothing changed
    registry.delete_alias(NAME, "champion")
    assert registry.aliases(NAME) == {}


def test_a_training_run_ends_finished_or_failed_with_the_reason(registry):
    experiment = registry.ensure_reachable()
    with registry.training_run(experiment, "ok", {"plimsoll.asset": "x"}) as run:
        run.log_params({"seed": 42})
        run.log_metrics({"loss": 0.5}, step=3)
    finished = registry.client.get_run(run.run_id)
    assert finished.info.status == "FINISHED" and finished.data.params == {"seed": "42"}
    assert registry.last_logged_ms(run.run_id, "loss") is not None

    with pytest.raises(KeyboardInterrupt), registry.training_run(experiment, "bad", {}) as run:
        raise KeyboardInterrupt  # an interrupt too: a run left RUNNING would never end
    failed = registry.client.get_run(run.run_id)
    assert failed.info.status == "FAILED"
    assert failed.data.tags["plimsoll.failure"].startswith("KeyboardInterrupt")


def test_an_eval_is_logged_to_its_run(registry, tmp_path):
    experiment = registry.ensure_reachable()
    run_id = registry.client.create_run(experiment).info.run_id
    report = tmp_path / "report.json"
    report.write_text("{}")
    registry.log_eval(run_id, {"eval.mrr": 0.8, "base.mrr": 0.7}, tags={"eval_set_hash": "h"},
                      artifacts=[report])
    run = registry.client.get_run(run_id)
    assert run.data.metrics == {"eval.mrr": 0.8, "base.mrr": 0.7}
    assert run.data.tags["eval_set_hash"] == "h"
    assert [a.path for a in registry.client.list_artifacts(run_id, "eval_report")] == [
        "eval_report/report.json"]
