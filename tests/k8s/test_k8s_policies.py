"""Gatekeeper policies through regopy: the suites, each bad input, and exception expiry."""

import datetime as dt

import pytest
from k8s_helpers import FIXTURES, k8s_check, need_module

TODAY = dt.date(2026, 11, 26)
IMAGE = "registry.plimsoll.internal/plimsoll:1.0"


@pytest.fixture(autouse=True)
def _tools():
    need_module("regopy", "regopy")


def template(name):
    return k8s_check().load_yaml(k8s_check().POLICIES / name / "template.yaml")


def defaults(name):
    return k8s_check().load_yaml(k8s_check().POLICIES / name / "constraint.yaml")["spec"].get(
        "parameters", {})


def pod(namespace="plimsoll", labels=None, **container):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "embed", "namespace": namespace,
                         "labels": {"data-classification": "internal", "owner": "ml-platform"}
                         if labels is None else labels},
            "spec": {"containers": [{"name": "main", "image": IMAGE, **container}]}}


def violations(name, obj, exceptions=None, **parameters):
    return k8s_check().evaluate(template(name), obj, {**defaults(name), **parameters},
                                exceptions)


@pytest.mark.parametrize("policy", [d.name for d in k8s_check().policy_dirs()])
def test_suite(policy):
    count, failures = k8s_check().run_suite(k8s_check().POLICIES / policy)
    assert failures == []
    assert count >= 4


def test_every_policy_has_a_suite_and_the_templates_match_their_sources():
    names = {d.name for d in k8s_check().policy_dirs()}
    assert names == {"required-labels", "pod-security", "allowed-images", "gpu-namespace",
                     "no-external-egress"}
    assert k8s_check().check_template_sources() == []


def test_rego_is_v1_syntax():
    for policy_dir in k8s_check().policy_dirs():
        rego = (policy_dir / "src.rego").read_text()
        assert "violation contains" in rego and "violation[" not in rego


def test_the_good_pod_passes_every_policy():
    for name in ("required-labels", "pod-security", "allowed-images", "gpu-namespace",
                 "no-external-egress"):
        assert violations(name, pod()) == []


def test_bad_pod_without_data_classification():
    (msg,) = violations("required-labels", pod(labels={"owner": "ml-platform"}))
    assert msg == "Pod embed is missing the label data-classification"


def test_bad_privileged_container():
    (msg,) = violations("pod-security", pod(securityContext={"privileged": True}))
    assert msg == "Pod embed: container main is privileged"


def test_bad_gpu_request_in_a_non_gpu_namespace():
    gpu = {"resources": {"limits": {"nvidia.com/gpu": "1"}}}
    (msg,) = violations("gpu-namespace", pod(**gpu))
    assert "asks for nvidia.com/gpu in namespace plimsoll;" in msg
    assert violations("gpu-namespace", pod(namespace="plimsoll-gpu", **gpu)) == []


def test_bad_image_from_an_unknown_registry():
    (msg,) = violations("allowed-images", pod(image="quay.io/someone/miner:latest"))
    assert "quay.io/someone/miner:latest, not from an allowed registry" in msg


def test_bad_external_name_service():
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "exfil", "namespace": "plimsoll"},
               "spec": {"type": "ExternalName", "externalName": "attacker.example.net"}}
    (msg,) = violations("no-external-egress", service)
    assert "ExternalName to attacker.example.net" in msg


def test_repo_exceptions_are_valid_today():
    count, errors = k8s_check().check_exceptions(TODAY)
    assert count >= 1 and errors == []


def test_bad_exception_past_its_expiry_fails_the_check():
    count, errors = k8s_check().check_exceptions(TODAY, [FIXTURES / "expired-exception.yaml"])
    assert count == 1
    (error,) = errors
    assert "gpu-node-profiler: expired on 2026-01-31 (owner ml-platform)" in error


def test_bad_exception_past_its_expiry_no_longer_exempts():
    exception = k8s_check().load_yaml(FIXTURES / "expired-exception.yaml")
    profiler = pod(namespace="plimsoll-gpu")
    profiler["metadata"]["name"] = "gpu-node-profiler-1"
    profiler["spec"]["volumes"] = [{"name": "nvidia", "hostPath": {"path": "/var/run/nvidia"}}]
    (msg,) = violations("pod-security", profiler, [exception])
    assert msg.endswith("(exception gpu-node-profiler expired on 2026-01-31)")
    renewed = {**exception, "data": {**exception["data"], "expires": "2099-01-01"}}
    assert violations("pod-security", profiler, [renewed]) == []


def test_exception_file_rules():
    good = k8s_check().load_yaml(k8s_check().EXCEPTIONS / "gpu-node-profiler.yaml")
    check = k8s_check().check_exception
    assert check(good, TODAY, {"PlimsollPodSecurity"}) == []
    no_owner = {**good, "data": {k: v for k, v in good["data"].items() if k != "owner"}}
    assert check(no_owner, TODAY) == ["gpu-node-profiler: missing owner"]
    forever = {**good, "data": {**good["data"], "expires": "2030-01-01"}}
    assert "more than 366 days ahead" in check(forever, TODAY)[0]
    bad_date = {**good, "data": {**good["data"], "expires": "next spring"}}
    assert "expires must be YYYY-MM-DD" in check(bad_date, TODAY)[0]
    assert "unknown policy" in check(good, TODAY, {"PlimsollAllowedImages"})[0]
    # On its expiry day the exception is already over.
    assert "expired on 2027-02-01" in check(good, dt.date(2027, 2, 1))[0]
