"""The Job dagster-k8s would launch for finetuned_encoder passes the schema and every policy.

Built offline exactly as tests/test_k8s_job.py builds it (the prod profile's op tags through
dagster_k8s.construct_dagster_k8s_job), placed in the GPU namespace, then checked against the
rendered prod overlay: strict Kubernetes schema and every matching Gatekeeper Constraint.
"""

import copy

import pytest
from conftest import build_gpu_job
from k8s_helpers import k8s_check, need_module, rendered


@pytest.fixture
def gpu_job(home, monkeypatch):  # noqa: ARG001 (home: an isolated PLIMSOLL_HOME)
    need_module("kubernetes_validate", "kubernetes-validate")
    need_module("regopy", "regopy")
    from platform_defs.k8s import GPU_NAMESPACE

    job = build_gpu_job(monkeypatch)
    job["metadata"]["namespace"] = GPU_NAMESPACE  # the k8s executor's job_namespace
    return job


def pod_of(job):
    template = job["spec"]["template"]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {**template["metadata"], "name": job["metadata"]["name"] + "-x7k2p",
                         "namespace": job["metadata"]["namespace"]},
            "spec": template["spec"]}


def test_the_gpu_job_passes_the_strict_schema(gpu_job):
    assert gpu_job["kind"] == "Job" and gpu_job["metadata"]["namespace"] == "plimsoll-gpu"
    assert k8s_check().check_schemas([gpu_job]) == []
    assert k8s_check().check_schemas([pod_of(gpu_job)]) == []


def test_the_gpu_job_and_its_pod_pass_every_prod_policy(gpu_job):
    objs = rendered("prod")
    for obj in (gpu_job, pod_of(gpu_job)):
        results = k8s_check().admit(objs, obj)
        # every policy that can apply to a Job/Pod in plimsoll-gpu did apply
        assert {name.split("/")[0] for name in results} == {
            "PlimsollRequiredLabels", "PlimsollPodSecurity", "PlimsollAllowedImages",
            "PlimsollGpuNamespace", "PlimsollNoExternalEgress"}
        assert all(messages == [] for messages in results.values()), results


def test_the_same_job_outside_the_gpu_namespace_is_refused(gpu_job):
    job = copy.deepcopy(gpu_job)
    job["metadata"]["namespace"] = "plimsoll"
    results = k8s_check().admit(rendered("prod"), job)
    assert any("nvidia.com/gpu in namespace plimsoll;" in m
               for m in results["PlimsollGpuNamespace/gpus-only-in-the-gpu-namespace"])


def test_the_job_by_tag_is_refused_in_prod_but_not_in_staging(gpu_job):
    job = copy.deepcopy(gpu_job)
    job["spec"]["template"]["spec"]["containers"][0]["image"] = (
        "registry.plimsoll.internal/plimsoll:1.0")
    name = "PlimsollAllowedImages/images-from-plimsoll-registries"
    assert "not pinned by sha256 digest" in k8s_check().admit(rendered("prod"), job)[name][0]
    assert k8s_check().admit(rendered("staging"), job)[name] == []


def test_the_gpu_job_fits_the_gpu_namespace_limits(gpu_job):
    objs = rendered("prod")
    (container,) = gpu_job["spec"]["template"]["spec"]["containers"]
    limit_range = next(o for o in objs if o["kind"] == "LimitRange"
                       and o["metadata"]["namespace"] == "plimsoll-gpu")
    maximum = limit_range["spec"]["limits"][0]["max"]
    assert int(container["resources"]["limits"]["nvidia.com/gpu"]) <= int(
        maximum["nvidia.com/gpu"])
    assert int(container["resources"]["limits"]["cpu"]) <= int(maximum["cpu"])
