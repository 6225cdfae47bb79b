"""The gateway's deployment (k8s/base/gateway/) as rendered: what it runs, how it is probed,
scaled, spread and fenced in, and that the policies refuse a weakened copy of it."""

import copy
import re

import pytest
import yaml
from k8s_helpers import k8s_check, need_checkov, need_module, rendered

OVERLAYS = ["staging", "prod"]
NAMESPACE = "plimsoll"
NAME = "plimsoll-gateway"


@pytest.fixture(autouse=True)
def _tools():
    need_module("kubernetes_validate", "kubernetes-validate")
    need_module("regopy", "regopy")


def find(objs, kind, name, namespace=NAMESPACE):
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name
                and o["metadata"].get("namespace") == namespace)


def deployment(overlay="prod"):
    return find(rendered(overlay), "Deployment", NAME)


def pod_spec(overlay="prod"):
    return deployment(overlay)["spec"]["template"]["spec"]


def pod_labels(overlay="prod"):
    return deployment(overlay)["spec"]["template"]["metadata"]["labels"]


def container(overlay="prod"):
    (main,) = pod_spec(overlay)["containers"]
    return main


def container_port(port, main):
    """A probe's or Service's port (a number or a port name) as the container port number."""
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in main["ports"] if p["name"] == port)


def selects(selector, labels):
    """Whether a Kubernetes label selector (matchLabels, matchExpressions) selects labels."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, values = expr["key"], expr.get("values") or []
        present = key in labels
        holds = {"In": present and labels[key] in values,
                 "NotIn": not present or labels[key] not in values,
                 "Exists": present, "DoesNotExist": not present}[expr["operator"]]
        if not holds:
            return False
    return True


def policies_for(objs, labels, direction):
    """The NetworkPolicies in the namespace that govern pods with these labels one way."""
    return [o for o in objs if o["kind"] == "NetworkPolicy"
            and o["metadata"]["namespace"] == NAMESPACE
            and direction in o["spec"].get("policyTypes", [])
            and selects(o["spec"]["podSelector"], labels)]


def peer_name(peer):
    """A readable name for a NetworkPolicy peer: its namespace and pod selectors."""
    assert "ipBlock" not in peer, f"an ipBlock peer reaches addresses outside: {peer}"
    ns = (peer.get("namespaceSelector") or {}).get("matchLabels") or {}
    pods = (peer.get("podSelector") or {}).get("matchLabels") or {}
    return (tuple(sorted(ns.items())), tuple(sorted(pods.items())))


def egress(objs, labels):
    """Every (peer, protocol, port) a pod with these labels may open, all policies together."""
    allowed = set()
    for policy in policies_for(objs, labels, "Egress"):
        for rule in policy["spec"].get("egress", []):
            assert rule.get("to") and rule.get("ports"), f"{policy['metadata']['name']}: " \
                "a rule without `to` or `ports` allows every destination or every port"
            allowed |= {(peer_name(peer), p["protocol"], p["port"])
                        for peer in rule["to"] for p in rule["ports"]}
    return allowed


def quantity(value):
    """A CPU (cores) or memory (bytes) quantity as a number."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    number, unit = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value)).groups()
    return float(number) * units.get(unit, 1)


def as_pod(overlay="prod", spec=None):
    """The Pod the ReplicaSet creates from the Deployment's template (what Gatekeeper sees)."""
    template = deployment(overlay)["spec"]["template"]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {**template["metadata"], "name": f"{NAME}-5d8f7c9b4-x7k2p",
                         "namespace": NAMESPACE},
            "spec": spec or template["spec"]}


KUBE_DNS = ((("kubernetes.io/metadata.name", "kube-system"),), (("k8s-app", "kube-dns"),))


def platform(name):
    return ((("plimsoll.io/platform", "true"),), (("app.kubernetes.io/name", name),))


# ---------------------------------------------------------------- what runs
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_runs_plimsoll_serve_from_the_user_code_image(overlay):
    main = container(overlay)
    assert main["command"] + main["args"] == [
        "plimsoll", "serve", "--host", "0.0.0.0", "--port", "8080"]
    assert main["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert main["image"].startswith("registry.plimsoll.internal/plimsoll")
    assert main["imagePullPolicy"] == "Always"


def test_prod_pins_the_gateway_image_by_digest_and_staging_by_tag():
    assert re.fullmatch(r"registry\.plimsoll\.internal/plimsoll@sha256:[a-f0-9]{64}",
                        container("prod")["image"])
    assert container("staging")["image"] == "registry.plimsoll.internal/plimsoll:0.1.0"


def test_the_image_declares_the_gateway_port_and_keeps_dagster_as_its_default():
    recipe = (k8s_check().K8S / "image" / "Dockerfile").read_text()
    runtime = recipe[recipe.index("AS runtime"):]
    assert re.search(r"^EXPOSE .*\b8080\b", runtime, re.MULTILINE)
    assert runtime.rstrip().splitlines()[-1].startswith('CMD ["dagster", "api", "grpc"')


def test_the_gateway_reaches_mlflow_and_its_ledger_through_the_tree_and_secrets():
    objs = rendered("prod")
    env = {e["name"]: e for e in container()["env"]}
    uri = re.fullmatch(r"http://([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local:(\d+)",
                       env["MLFLOW_TRACKING_URI"]["value"])
    assert uri, env["MLFLOW_TRACKING_URI"]
    service = find(objs, "Service", uri.group(1), uri.group(2))
    assert int(uri.group(3)) in {p["port"] for p in service["spec"]["ports"]}
    for name in ("PLIMSOLL_LEDGER_URL", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                 "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert "value" not in env[name] and env[name]["valueFrom"]["secretKeyRef"]["name"]
    # The gateway's own credentials, not MLflow's (which may write every artifact).
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in env.values()
            if "secretKeyRef" in e.get("valueFrom", {})}
    assert refs and all(ref.startswith(f"{NAME}-") for ref in refs)


# ---------------------------------------------------------------- probes and resources
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_point_at_readyz_and_healthz_on_the_container_port(overlay):
    main = container(overlay)
    paths = {}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        http = main[probe]["httpGet"]
        assert container_port(http["port"], main) == 8080, probe
        paths[probe] = http["path"]
    assert paths["readinessProbe"] == "/readyz" and paths["livenessProbe"] == "/healthz"
    assert paths["startupProbe"] in {"/healthz", "/readyz"}
    startup = main["startupProbe"]
    # A bundle loads in 5-20 s on CPU, after torch imports: liveness must wait well past it.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120


def test_resources_are_requested_and_limited_within_the_namespace_limits():
    objs = rendered("prod")
    resources = container()["resources"]
    maximum = find(objs, "LimitRange", "container-defaults")["spec"]["limits"][0]["max"]
    for resource in ("cpu", "memory"):
        request, limit = resources["requests"][resource], resources["limits"][resource]
        assert 0 < quantity(request) <= quantity(limit) <= quantity(maximum[resource])
    sizes = sum(quantity(v["emptyDir"]["sizeLimit"]) for v in pod_spec()["volumes"])
    assert sizes <= quantity(resources["limits"]["ephemeral-storage"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_read_only_root_with_writable_emptydirs_at_plimsoll_home_and_tmp(overlay):
    main, spec = container(overlay), pod_spec(overlay)
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    home = next(e["value"] for e in main["env"] if e["name"] == "PLIMSOLL_HOME")
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in main["volumeMounts"]}
    assert set(mounts) == {home, "/tmp"}
    for path, volume in mounts.items():
        assert set(volume) == {"name", "emptyDir"}, f"{path} is not an emptyDir"
        assert quantity(volume["emptyDir"]["sizeLimit"]) > 0, f"{path} has no sizeLimit"


def test_the_pod_runs_unprivileged_without_an_api_token():
    objs = rendered("prod")
    spec, main = pod_spec(), container()
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = main["securityContext"]
    assert context["allowPrivilegeEscalation"] is False and not context.get("privileged")
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert spec["automountServiceAccountToken"] is False
    account = find(objs, "ServiceAccount", spec["serviceAccountName"])
    assert account["automountServiceAccountToken"] is False


# ---------------------------------------------------------------- replicas and spread
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_at_least_two_replicas_kept_by_the_hpa_on_cpu(overlay):
    objs = rendered(overlay)
    hpa = find(objs, "HorizontalPodAutoscaler", NAME)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": NAME}
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    # The HPA owns the count: a fixed spec.replicas would fight it on every apply.
    assert "replicas" not in deployment(overlay)["spec"]
    # CPU utilisation is measured against the request: without one the HPA cannot scale.
    assert container(overlay)["resources"]["requests"]["cpu"]


def test_two_replicas_never_share_a_node():
    constraints = pod_spec()["topologySpreadConstraints"]
    by_node = next(c for c in constraints if c["topologyKey"] == "kubernetes.io/hostname")
    assert by_node["maxSkew"] == 1 and by_node["whenUnsatisfiable"] == "DoNotSchedule"
    assert by_node.get("minDomains", 0) >= 2  # else one node would take both replicas
    assert selects(by_node["labelSelector"], pod_labels())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_service_and_the_pdb_select_exactly_the_gateway_pods(overlay):
    objs = rendered(overlay)
    service = find(objs, "Service", NAME)
    (port,) = service["spec"]["ports"]
    assert port["port"] == 80 and container_port(port["targetPort"], container(overlay)) == 8080
    pdb = find(objs, "PodDisruptionBudget", NAME)
    assert pdb["spec"]["minAvailable"] == 1
    selector = deployment(overlay)["spec"]["selector"]
    assert selects(selector, pod_labels(overlay))
    assert selects({"matchLabels": service["spec"]["selector"]}, pod_labels(overlay))
    assert selects(pdb["spec"]["selector"], pod_labels(overlay))
    mlflow = find(objs, "Deployment", "mlflow")["spec"]["template"]["metadata"]["labels"]
    assert not selects({"matchLabels": service["spec"]["selector"]}, mlflow)
    assert not selects(pdb["spec"]["selector"], mlflow)


def test_the_gateway_at_its_maximum_fits_the_namespace_quota_beside_mlflow_and_dagster():
    """Every limit in namespace plimsoll at full load: the HPA at max, MLflow, Dagster's chart."""
    objs = rendered("prod")
    hard = find(objs, "ResourceQuota", "ai-workloads")["spec"]["hard"]
    hpa_max = {h["spec"]["scaleTargetRef"]["name"]: h["spec"]["maxReplicas"]
               for h in objs if h["kind"] == "HorizontalPodAutoscaler"}
    workloads = []  # (replicas, resources of one pod)
    for d in objs:
        if d["kind"] == "Deployment" and d["metadata"]["namespace"] == NAMESPACE:
            count = hpa_max.get(d["metadata"]["name"], d["spec"].get("replicas", 1))
            for c in d["spec"]["template"]["spec"]["containers"]:
                workloads.append((count, c["resources"]))
    values = yaml.safe_load((k8s_check().K8S / "helm" / "dagster-values.yaml").read_text())
    workloads.append((values["dagsterWebserver"]["replicaCount"],
                      values["dagsterWebserver"]["resources"]))
    workloads.append((1, values["dagsterDaemon"]["resources"]))
    workloads += [(1, d["resources"])
                  for d in values["dagster-user-deployments"]["deployments"]]
    runs = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]
    workloads.append((runs["maxConcurrentRuns"], launcher["containerConfig"]["resources"]))
    for section, resource in (("requests", "cpu"), ("requests", "memory"),
                              ("limits", "cpu"), ("limits", "memory")):
        used = sum(n * quantity(r[section][resource]) for n, r in workloads)
        assert used <= quantity(hard[f"{section}.{resource}"]), (section, resource, used)
    assert sum(n for n, _ in workloads) <= int(hard["pods"])


# ---------------------------------------------------------------- network
def test_egress_reaches_only_mlflow_postgresql_the_object_store_dns_and_the_collector():
    allowed = egress(rendered("prod"), pod_labels())
    assert allowed == {
        (KUBE_DNS, "UDP", 53), (KUBE_DNS, "TCP", 53),
        (platform("mlflow"), "TCP", 5000),
        (platform("postgresql"), "TCP", 5432),
        (platform("object-store"), "TCP", 9000),
        (((), (("app.kubernetes.io/name", "otel-collector"),)), "TCP", 4318)}
    assert find(rendered("prod"), "NetworkPolicy", "default-deny-egress") in policies_for(
        rendered("prod"), pod_labels(), "Egress")


def test_leaving_the_gateway_out_of_the_internal_api_keeps_it_for_everyone_else():
    dagster_run = {"owner": "ml-platform", "data-classification": "internal",
                   "dagster/job": "nightly_evals"}
    ports = {port for _, _, port in egress(rendered("prod"), dagster_run)}
    assert ports == {53, 443, 5000, 5432, 9000}


def test_ingress_is_only_port_8080_from_the_internal_api_segment_and_prometheus():
    peers = []
    for policy in policies_for(rendered("prod"), pod_labels(), "Ingress"):
        for rule in policy["spec"]["ingress"]:
            assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
            peers += [peer_name(peer) for peer in rule["from"]]
    assert sorted(peers) == [
        ((("kubernetes.io/metadata.name", "monitoring"),),
         (("app.kubernetes.io/name", "prometheus"),)),
        ((("plimsoll.io/segment", "internal-api"),), ())]


# ---------------------------------------------------------------- policies
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_and_its_pods_pass_every_policy(overlay):
    objs = rendered(overlay)
    exceptions = [o for o in objs if o["kind"] == "ConfigMap"
                  and o["metadata"]["namespace"] == "gatekeeper-system"]
    results = k8s_check().admit(objs, as_pod(overlay), exceptions)
    assert {name.split("/")[0] for name in results} == {
        "PlimsollRequiredLabels", "PlimsollPodSecurity", "PlimsollAllowedImages",
        "PlimsollGpuNamespace", "PlimsollNoExternalEgress"}
    assert all(messages == [] for messages in results.values()), results
    for obj in objs:
        if obj["metadata"].get("name") == NAME and obj["kind"] in {"Deployment", "Service"}:
            assert all(m == [] for m in k8s_check().admit(objs, obj, exceptions).values())


def test_gatekeeper_refuses_a_gateway_that_routes_around_the_egress_policy():
    objs = rendered("prod")
    leaky = copy.deepcopy(pod_spec())
    leaky["containers"][0]["env"].append(
        {"name": "HTTPS_PROXY", "value": "http://proxy.example.net:3128"})
    leaky["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    results = k8s_check().admit(objs, as_pod(spec=leaky))
    (egress_msg,) = results["PlimsollNoExternalEgress/no-egress-around-networkpolicy"]
    assert "sets HTTPS_PROXY to http://proxy.example.net:3128, an outside proxy" in egress_msg
    (security_msg,) = results["PlimsollPodSecurity/no-privileged-or-host-access"]
    assert "container gateway allows privilege escalation" in security_msg


def test_checkov_refuses_a_gateway_with_a_writable_root_filesystem(tmp_path):
    """The whole prod render with this one change fails checkov on exactly that check."""
    need_checkov()
    objs = rendered("prod")
    broken = copy.deepcopy(deployment())
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"][
        "readOnlyRootFilesystem"] = False
    manifest = tmp_path / "prod.yaml"
    manifest.write_text(yaml.safe_dump_all([broken if o is deployment() else o for o in objs]))
    _, failures = k8s_check().run_checkov([manifest], "kubernetes",
                                          k8s_check().checkov_skips("prod"))
    assert [f.split()[0] for f in failures] == ["CKV_K8S_22"], failures
    assert f"Deployment.{NAMESPACE}.{NAME}" in failures[0]
