"""The GPU step job that dagster-k8s would launch for finetuned_encoder, built offline."""

import json

import pytest
from conftest import REPO_ROOT

PROD_ENV = {"PLIMSOLL_PROFILE": "prod", "PLIMSOLL_DVC_REMOTE": "s3://plimsoll-data/dvc",
            "DAGSTER_PG_URL": "postgresql+psycopg2://dagster@db:5432/dagster",
            "MLFLOW_TRACKING_URI": "https://mlflow.plimsoll.internal",
            "PLIMSOLL_EVAL_REGISTRY_URL": "postgresql+psycopg2://evals@db:5432/evals"}


@pytest.fixture
def gpu_job(home, monkeypatch):
    for key, value in PROD_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PLIMSOLL_MANIFESTS", raising=False)
    from dagster_k8s.job import (
        DagsterK8sJobConfig,
        construct_dagster_k8s_job,
        get_user_defined_k8s_config,
    )
    from kubernetes.client import ApiClient

    from platform_defs.definitions import defs

    tags = defs().get_assets_def("finetuned_encoder").op.tags
    job = construct_dagster_k8s_job(
        job_config=DagsterK8sJobConfig(
            job_image="registry.plimsoll.internal/plimsoll@sha256:" + "0" * 64,
            dagster_home="/opt/dagster/dagster_home", image_pull_policy="IfNotPresent",
            instance_config_map="dagster-instance"),
        args=["dagster", "api", "execute_step"],
        job_name="dagster-step-finetuned-encoder",
        user_defined_k8s_config=get_user_defined_k8s_config(tags),
        component="step_worker")
    return ApiClient().sanitize_for_serialization(job)


def test_gpu_limits_node_selector_tolerations_and_labels(gpu_job):
    pod = gpu_job["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["resources"]["requests"]["nvidia.com/gpu"] == "1"
    assert pod["spec"]["nodeSelector"] == {"plimsoll.io/pool": "gpu"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in (
        pod["spec"]["tolerations"])
    for labels in (pod["metadata"]["labels"], gpu_job["metadata"]["labels"]):
        assert labels["owner"] == "ml-platform"
        # the strictest classification among data_manifests/ (example_faq is internal)
        assert labels["data-classification"] == "internal"


def test_the_job_is_a_valid_batch_v1_job(gpu_job):
    assert gpu_job["apiVersion"] == "batch/v1" and gpu_job["kind"] == "Job"
    assert gpu_job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    json.dumps(gpu_job)  # fully serialisable, as kubectl would receive it


def test_prod_runs_each_step_as_a_kubernetes_job(home, monkeypatch):
    for key, value in PROD_ENV.items():
        monkeypatch.setenv(key, value)
    from platform_defs.definitions import defs

    assert defs().executor.name == "k8s"


def test_local_profile_has_no_kubernetes_tags(home, monkeypatch):
    monkeypatch.delenv("PLIMSOLL_MANIFESTS", raising=False)
    from platform_defs.definitions import defs

    assert "dagster-k8s/config" not in defs().get_assets_def("finetuned_encoder").op.tags


def test_classification_label_follows_the_strictest_slice(tmp_path):
    from platform_defs.k8s import strictest_classification

    for name, level in [("a", "public"), ("b", "confidential"), ("c", "internal")]:
        (tmp_path / f"{name}.yaml").write_text(
            f"name: {name}\ndescription: d\nowner: o\nsource: {{kind: pydoc_topics}}\n"
            f"schema_version: 1\nclassification: {level}\nttl_days: 1\n")
    assert strictest_classification(tmp_path) == "confidential"
    (tmp_path / "d.yaml").write_text("not: [valid")
    assert strictest_classification(tmp_path) == "restricted"
    assert strictest_classification(REPO_ROOT / "data_manifests") == "internal"
