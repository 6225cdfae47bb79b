"""The GPU step job that dagster-k8s would launch for finetuned_encoder, built offline."""

import json

import pytest
from conftest import PROD_ENV, REPO_ROOT, build_gpu_job


@pytest.fixture
def gpu_job(home, monkeypatch):  # noqa: ARG001 (home: an isolated PLIMSOLL_HOME)
    return build_gpu_job(monkeypatch)


def test_gpu_limits_node_selector_tolerations_and_labels(gpu_job):
    pod = gpu_job["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["resources"]["requests"]["nvidia.com/gpu"] == "1"
    assert container["securityContext"] == {"allowPrivilegeEscalation": False,
                                            "privileged": False}
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


@pytest.mark.usefixtures("home")
def test_prod_runs_each_step_as_a_kubernetes_job(monkeypatch):
    for key, value in PROD_ENV.items():
        monkeypatch.setenv(key, value)
    from platform_defs.definitions import defs

    executor = defs().executor
    assert executor.name == "k8s"
    # Step Jobs land in plimsoll-gpu, the only namespace where the run pods' service account
    # may create Jobs and Gatekeeper admits GPU pods, whatever namespace the run pod is in.
    from dagster_k8s.container_context import K8sContainerContext

    from platform_defs.k8s import GPU_NAMESPACE

    resolved = executor.config_schema.resolve_config({})
    assert resolved.success, resolved.errors
    step_namespace = resolved.value["config"]["job_namespace"]
    assert step_namespace == GPU_NAMESPACE == "plimsoll-gpu"
    run_pod = K8sContainerContext(namespace="plimsoll")  # PLIMSOLL_K8S_NAMESPACE
    assert run_pod.merge(K8sContainerContext(namespace=step_namespace)).namespace == GPU_NAMESPACE
    import yaml

    rbac = yaml.safe_load_all((REPO_ROOT / "k8s" / "base" / "serviceaccounts.yaml").read_text())
    roles = [doc for doc in rbac if doc["kind"] == "Role" and "jobs" in str(doc["rules"])]
    assert [role["metadata"]["namespace"] for role in roles] == [GPU_NAMESPACE]


@pytest.mark.usefixtures("home")
def test_local_profile_has_no_kubernetes_tags(monkeypatch):
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
