import json
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

from plimsoll.common.errors import PlimsollError


def _load():
    from platform_defs.definitions import defs

    return defs()


@pytest.mark.usefixtures("home")
def test_definitions_snapshot(monkeypatch):
    monkeypatch.delenv("PLIMSOLL_MANIFESTS", raising=False)
    definitions = _load()
    graph = definitions.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == {
        "dataset_slice", "embeddings_index", "training_pairs", "finetuned_encoder",
        "candidate_index", "eval_report", "candidate_model", "nightly_eval",
        "shadow_comparison", "request_features_daily", "drift_report", "golden_signals"}
    slice_checks = {key.name for key in graph.asset_check_keys
                    if key.asset_key.to_user_string() == "dataset_slice"}
    assert slice_checks == {"schema_and_types", "text_not_null", "ids_unique",
                            "text_length_bounds", "classification_allowed", "min_row_count"}
    assert all(graph.get_check_spec(key).blocking for key in graph.asset_check_keys
               if key.name in slice_checks)
    assert {key.name for key in graph.asset_check_keys} - slice_checks == {
        "no_regression", "drift_within_policy"}
    slices = definitions.get_assets_def("dataset_slice")
    assert slices.partitions_def.get_partition_keys() == [
        "example_faq", "python_help_topics", "stdlib_docstrings"]
    assert {job.name for job in definitions.jobs} == {
        "dataset_slices_job", "embeddings_index_job", "candidate_job", "rollback_job",
        "nightly_eval_job"}
    assert [s.name for s in definitions.sensors] == ["promotion_gate_sensor", "approval_sensor"]
    assert [s.name for s in definitions.schedules] == ["nightly_eval_schedule"]
    groups = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        groups.setdefault(node.group_name, set()).add(key.to_user_string())
        assert node.description and "\n" not in node.description.strip()
    assert groups == {"datasets": {"dataset_slice"},
                      "retrieval": {"embeddings_index", "candidate_index"},
                      "training": {"training_pairs", "finetuned_encoder"},
                      "evaluation": {"eval_report", "nightly_eval"},
                      "release": {"candidate_model"},
                      "serving": {"shadow_comparison"},
                      "observability": {"request_features_daily", "drift_report",
                                        "golden_signals"}}


def test_each_asset_group_is_a_core_package_and_an_assets_module():
    """A newcomer finds an asset's code in one guess: assets/<group>.py calls plimsoll.<group>."""
    packages = {p.parent.name for p in (REPO_ROOT / "plimsoll").glob("*/__init__.py")}
    modules = {p.stem for p in (REPO_ROOT / "assets").glob("*.py")} - {"__init__"}
    assert modules <= packages, modules - packages
    graph = _load().resolve_asset_graph()
    assert {graph.get(key).group_name for key in graph.get_all_asset_keys()} == modules


def test_loading_the_code_location_stays_light():
    """Heavy libraries stay inside asset bodies; a fresh interpreter proves it."""
    code = ("import sys, time; t = time.perf_counter();"
            "from platform_defs.definitions import defs; defs();"
            "heavy = [m for m in ('torch', 'transformers', 'great_expectations', 'mlflow', "
            "'faiss', 'dvc.repo') if m in sys.modules];"
            "print(time.perf_counter() - t, heavy)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                         text=True, check=True).stdout.split(maxsplit=1)
    assert out[1].strip() == "[]"


DATA_AND_ML_LIBRARIES = ("pandas", "pyarrow", "torch", "mlflow", "great_expectations", "sklearn")


def test_loading_the_definitions_imports_no_data_or_ml_library():
    """Declaring the slice checks once pulled in pandas and pyarrow (~0.4 s a load).

    Dagster itself imports none of these, so the whole list is ours to keep out.
    """
    code = ("import json, sys; from platform_defs.definitions import defs; defs();"
            f"print(json.dumps([m for m in {DATA_AND_ML_LIBRARIES!r} if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                          text=True, check=True)
    assert json.loads(done.stdout.splitlines()[-1]) == []


@pytest.mark.usefixtures("home")
def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PLIMSOLL_PROFILE", "staging")
    with pytest.raises(PlimsollError) as caught:
        _load()
    assert caught.value.field == "PLIMSOLL_PROFILE" and "local, prod" in caught.value.fix


PROD_ENV = {"PLIMSOLL_DVC_REMOTE": "s3://plimsoll-data/dvc",
            "DAGSTER_PG_URL": "postgresql+psycopg2://dagster@db:5432/dagster",
            "MLFLOW_TRACKING_URI": "https://mlflow.plimsoll.internal",
            "PLIMSOLL_EVAL_REGISTRY_URL": "postgresql+psycopg2://evals@db:5432/evals",
            "PLIMSOLL_SIGNING_KEY": "test-signing-key"}


@pytest.mark.usefixtures("home")
def test_prod_profile_is_configured_from_the_environment(monkeypatch):
    monkeypatch.setenv("PLIMSOLL_PROFILE", "prod")
    for name, value in PROD_ENV.items():
        monkeypatch.setenv(name, value)
    definitions = _load()
    storage = definitions.resources["slice_storage"]
    assert storage.remote_url == "s3://plimsoll-data/dvc"
    assert definitions.resources["mlflow"].tracking_uri == "https://mlflow.plimsoll.internal"
    assert definitions.resources["eval_registry"].url.startswith("postgresql+psycopg2://")
    tags = json.loads(definitions.get_assets_def("finetuned_encoder").op.tags["dagster-k8s/config"])
    assert tags["container_config"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert definitions.metadata["profile"].value == "prod"


@pytest.mark.parametrize(("name", "value", "message"), [
    ("PLIMSOLL_DVC_REMOTE", None, r"needs \$PLIMSOLL_DVC_REMOTE"),
    ("PLIMSOLL_DVC_REMOTE", "/mnt/data", "is not an S3 URL"),
    ("DAGSTER_PG_URL", "sqlite:///x.db", "must be PostgreSQL"),
    ("DAGSTER_PG_URL", "postgresql://dagster@db/dagster", "through psycopg2"),
    ("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db", "tracking server"),
    ("PLIMSOLL_EVAL_REGISTRY_URL", "sqlite:///evals.db", "must be PostgreSQL"),
    ("PLIMSOLL_LEDGER_URL", "sqlite:///ledger.db", "must be PostgreSQL"),
    ("PLIMSOLL_SIGNING_KEY", None, r"needs \$PLIMSOLL_SIGNING_KEY"),
])
@pytest.mark.usefixtures("home")
def test_prod_profile_validation(monkeypatch, name, value, message):
    monkeypatch.setenv("PLIMSOLL_PROFILE", "prod")
    for key, default in PROD_ENV.items():
        monkeypatch.setenv(key, default)
    if value is None:
        monkeypatch.delenv(name)
    else:
        monkeypatch.setenv(name, value)
    with pytest.raises(PlimsollError, match=message) as caught:
        _load()
    assert caught.value.field == name and caught.value.fix


@pytest.mark.parametrize("url", ["ledger.sqlite", "mysql://ledger@db/ledger", ""])
@pytest.mark.usefixtures("home")
def test_a_local_ledger_url_that_is_not_a_database_fails_definitions_load(monkeypatch, url):
    monkeypatch.setenv("PLIMSOLL_LEDGER_URL", url)
    if not url:
        assert _load().resources["promotion"].ledger_url.startswith("sqlite:///")
        return
    with pytest.raises(PlimsollError, match="not a database URL") as caught:
        _load()
    assert caught.value.field == "PLIMSOLL_LEDGER_URL"


def test_prod_instance_config_is_valid_dagster_config():
    from dagster._core.instance.config import dagster_instance_config

    config, _ = dagster_instance_config(str(REPO_ROOT / "platform_defs" / "instance" / "prod"))
    assert config["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_PG_URL"}
    assert config["run_launcher"]["class"] == "K8sRunLauncher"


def test_prod_run_and_step_pods_get_the_secrets():
    from dagster._core.instance.config import dagster_instance_config

    config, _ = dagster_instance_config(str(REPO_ROOT / "platform_defs" / "instance" / "prod"))
    # The prod profile needs DAGSTER_PG_URL, the eval registry URL and the signing key there.
    assert config["run_launcher"]["config"]["env_secrets"] == ["plimsoll-secrets"]


@pytest.mark.usefixtures("home")
def test_invalid_policy_fails_definitions_load(tmp_path, monkeypatch):
    from plimsoll.release.policy import PolicyError

    bad = tmp_path / "slos.yaml"
    bad.write_text("version: 1\nmodel: m\nminimum: {recall@50: 0.9}\n")
    monkeypatch.setenv("PLIMSOLL_POLICY", str(bad))
    with pytest.raises(PolicyError, match="unknown metric 'recall@50'"):
        _load()


@pytest.mark.usefixtures("home")
def test_invalid_fallback_policy_fails_definitions_load(tmp_path, monkeypatch):
    from plimsoll.serving.fallbacks import FallbackPolicyError

    text = (REPO_ROOT / "policies" / "fallbacks.yaml").read_text()
    bad = tmp_path / "fallbacks.yaml"
    bad.write_text(text.replace("max_snapshot_age_days: 30", "max_snapshot_age_days: -3"))
    monkeypatch.setenv("PLIMSOLL_FALLBACKS", str(bad))
    with pytest.raises(FallbackPolicyError) as error:
        _load()
    assert error.value.field == "retrieval_stale.max_snapshot_age_days"
    assert error.value.line is not None
