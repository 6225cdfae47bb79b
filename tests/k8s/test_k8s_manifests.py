"""Rendering, strict schema validation and the structural checks of k8s/."""

import copy

import pytest
from k8s_helpers import k8s_check, need_module, rendered

OVERLAYS = ["staging", "prod"]


@pytest.fixture(autouse=True)
def _tools():
    need_module("kubernetes_validate", "kubernetes-validate")
    need_module("regopy", "regopy")


def find(objs, kind, name, namespace=None):
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name
                and o["metadata"].get("namespace") == namespace)


def test_both_overlays_exist():
    assert k8s_check().overlays() == ["prod", "staging"]


def test_schema_version_is_the_newest_shipped_and_at_least_1_30():
    import os

    import kubernetes_validate

    shipped = os.listdir(os.path.join(os.path.dirname(kubernetes_validate.__file__),
                                      "kubernetes-json-schema"))
    versions = sorted(tuple(int(x) for x in v[1:].split("-")[0].split("."))
                      for v in shipped if v.endswith("-local-strict"))
    newest = ".".join(map(str, versions[-1]))
    assert newest == k8s_check().KUBE_VERSION and versions[-1] >= (1, 30, 0)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_passes_strict_schema_and_structure(overlay):
    objs = rendered(overlay)
    assert k8s_check().check_schemas(objs) == []
    kinds = {o["kind"] for o in objs}
    assert {"Namespace", "ResourceQuota", "LimitRange", "NetworkPolicy", "Deployment",
            "Service", "ConstraintTemplate", "Config"} <= kinds
    assert sum(o["kind"] == "ConstraintTemplate" for o in objs) == 5
    assert sum(1 for o in objs if k8s_check().is_gatekeeper(o)) == 11


def test_a_typo_in_a_manifest_field_is_caught_by_strict_schema():
    deployment = copy.deepcopy(find(rendered("prod"), "Deployment", "mlflow", "plimsoll"))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    (error,) = k8s_check().check_schemas([deployment])
    assert "imagePullPolcy" in error and "Deployment/plimsoll/mlflow" in error


def test_a_wrong_type_is_caught_too():
    quota = copy.deepcopy(find(rendered("prod"), "ResourceQuota", "ai-workloads", "plimsoll"))
    quota["spec"]["hard"] = ["cpu"]
    assert k8s_check().check_schemas([quota])


def test_gatekeeper_objects_get_a_structural_check():
    objs = copy.deepcopy(rendered("prod"))
    constraint = next(o for o in objs if o["kind"] == "PlimsollGpuNamespace")
    constraint["spec"]["parameters"]["gpuNamespace"] = "typo"
    constraint["spec"]["enforcementAction"] = "block"
    template = next(o for o in objs if o["kind"] == "ConstraintTemplate")
    template["spec"]["targets"][0]["rego"] = "package broken\nviolation[ {"
    errors = "\n".join(k8s_check().check_gatekeeper(objs))
    assert "Additional properties are not allowed ('gpuNamespace'" in errors
    assert "enforcementAction must be deny, dryrun or warn" in errors
    assert "Rego does not compile" in errors


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_quotas_allow_gpus_only_in_the_gpu_namespace(overlay):
    objs = rendered(overlay)
    cpu = find(objs, "ResourceQuota", "ai-workloads", "plimsoll")["spec"]["hard"]
    gpu = find(objs, "ResourceQuota", "ai-workloads", "plimsoll-gpu")["spec"]["hard"]
    assert cpu["requests.nvidia.com/gpu"] == "0"
    assert int(gpu["requests.nvidia.com/gpu"]) == {"staging": 1, "prod": 4}[overlay]
    for hard in (cpu, gpu):
        assert {"requests.cpu", "limits.cpu", "requests.memory", "limits.memory",
                "pods"} <= set(hard)
    for ns in ("plimsoll", "plimsoll-gpu"):
        limits = find(objs, "LimitRange", "container-defaults", ns)["spec"]["limits"][0]
        assert limits["default"] and limits["defaultRequest"]


def test_network_policies_deny_egress_by_default_and_allow_only_listed_paths():
    objs = rendered("prod")
    for ns in ("plimsoll", "plimsoll-gpu"):
        deny = find(objs, "NetworkPolicy", "default-deny-egress", ns)["spec"]
        assert deny == {"podSelector": {}, "policyTypes": ["Egress"]}
        allowed = [o for o in objs if o["kind"] == "NetworkPolicy"
                   and o["metadata"]["namespace"] == ns]
        ports = sorted(p["port"] for o in allowed for rule in o["spec"].get("egress", [])
                       for p in rule["ports"])
        # plimsoll also holds the trace path: gateway -> collector 4318 -> backend 4317.
        assert ports == {"plimsoll": [53, 53, 443, 4317, 4318, 5000, 5432, 9000],
                         "plimsoll-gpu": [53, 53, 443, 5000, 5432, 9000]}[ns]
        for o in allowed:  # no ipBlock: nothing reaches outside addresses
            assert all("ipBlock" not in peer for rule in o["spec"].get("egress", [])
                       for peer in rule["to"])


def test_prod_pins_images_by_digest_and_requires_it():
    objs = rendered("prod")
    image = find(objs, "Deployment", "mlflow", "plimsoll")["spec"]["template"]["spec"][
        "containers"][0]["image"]
    assert image.startswith("registry.plimsoll.internal/mlflow-server@sha256:")
    constraint = next(o for o in objs if o["kind"] == "PlimsollAllowedImages")
    assert constraint["spec"]["parameters"]["requireDigest"] is True
    staging = next(o for o in rendered("staging") if o["kind"] == "PlimsollAllowedImages")
    assert staging["spec"]["parameters"]["requireDigest"] is False


def test_rendered_workloads_pass_their_own_policies():
    objs = rendered("prod")
    exceptions = [o for o in objs if o["kind"] == "ConfigMap"
                  and o["metadata"]["namespace"] == "gatekeeper-system"]
    for obj in objs:
        if obj["kind"] in {"Deployment", "Service", "PersistentVolumeClaim", "Job"}:
            assert all(v == [] for v in k8s_check().admit(objs, obj, exceptions).values())


def test_helm_values_for_the_dagster_chart():
    import yaml

    values = yaml.safe_load((k8s_check().K8S / "helm" / "dagster-values.yaml").read_text())
    assert values["postgresql"]["enabled"] is False
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert launcher["jobNamespace"] == "plimsoll"
    assert launcher["labels"]["data-classification"] and launcher["labels"]["owner"]
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["image"]["repository"] == "registry.plimsoll.internal/plimsoll"
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "platform_defs.definitions"]
    for component in (values["dagsterWebserver"], values["dagsterDaemon"], deployment):
        assert component["image"]["repository"].startswith("registry.plimsoll.internal/")
        assert component["securityContext"]["allowPrivilegeEscalation"] is False


def test_the_image_recipe_pins_its_versions():
    recipe = (k8s_check().K8S / "image" / "Dockerfile").read_text()
    froms = [line.split()[1] for line in recipe.splitlines() if line.startswith("FROM ")]
    assert froms and all(":" in f and not f.endswith(":latest") for f in froms)
    assert recipe.count("--require-hashes --no-deps -r /tmp/") == 2  # the image and mlflow
    lock = (k8s_check().K8S / "image" / "requirements.lock").read_text().splitlines()
    pins = [line.split()[0] for line in lock if line[:1].isalnum()]
    assert all("==" in pin for pin in pins)
    assert any(pin.startswith("dagster-k8s==") for pin in pins)


def test_the_image_points_the_settings_at_the_project_files_it_copies():
    """An installed wheel finds the project only where PLIMSOLL_PROJECT_DIR says (settings)."""
    import re

    from plimsoll.common.settings import PROJECT_FILES

    recipe = (k8s_check().K8S / "image" / "Dockerfile").read_text()
    runtime = recipe[recipe.index("AS runtime"):]
    project = re.search(r"PLIMSOLL_PROJECT_DIR=(\S+)", runtime)
    assert project, "the runtime image must set PLIMSOLL_PROJECT_DIR"
    folders = {default.split("/")[0] for _, default in PROJECT_FILES.values()}
    for folder in folders:
        assert re.search(rf"COPY .*\b{folder} {re.escape(project.group(1))}/{folder}\b",
                         runtime), f"the image does not copy {folder}/ to the project folder"
