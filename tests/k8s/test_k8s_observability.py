"""What watches the gateway on Kubernetes (k8s/base/observability/), as rendered: the rules,
the scrape, the dashboard and the trace path are there, wired to each other by the names,
ports and labels they use, fenced in by NetworkPolicies, and admitted by every policy."""

import copy
import json
import os
import re

import pytest
import yaml
from k8s_helpers import REPO_ROOT, k8s_check, need_module, rendered

OVERLAYS = ["staging", "prod"]
NAMESPACE = "plimsoll"
GATEWAY = "plimsoll-gateway"
COLLECTOR = "otel-collector"
OBSERVABILITY = REPO_ROOT / "k8s" / "base" / "observability"


@pytest.fixture(autouse=True)
def _tools():
    need_module("kubernetes_validate", "kubernetes-validate")
    need_module("regopy", "regopy")


def find(objs, kind, name, namespace=NAMESPACE):
    found = [o for o in objs if o["kind"] == kind and o["metadata"].get("namespace") == namespace
             and re.fullmatch(rf"{name}(-[a-z0-9]{{10}})?", o["metadata"]["name"])]
    assert len(found) == 1, f"{kind}/{namespace}/{name}: {len(found)} rendered"
    return found[0]


def template(objs, name):
    return find(objs, "Deployment", name)["spec"]["template"]


def container(objs, name):
    (main,) = template(objs, name)["spec"]["containers"]
    return main


def env(objs, name):
    return {e["name"]: e for e in container(objs, name)["env"]}


def selects(selector, labels):
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        value = labels.get(expr["key"])
        if expr["operator"] == "NotIn" and value in expr["values"]:
            return False
        if expr["operator"] == "In" and value not in expr["values"]:
            return False
    return True


def peers(objs, labels, direction):
    """Every (namespace labels, pod labels, port) a pod with these labels may reach / be
    reached from, over every NetworkPolicy of that direction that selects it."""
    key, side = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    found = set()
    for policy in objs:
        spec = policy.get("spec") or {}
        if (policy["kind"] != "NetworkPolicy" or policy["metadata"]["namespace"] != NAMESPACE
                or direction not in spec["policyTypes"] or not selects(spec["podSelector"],
                                                                     labels)):
            continue
        for rule in spec.get(key, []):
            for peer in rule[side]:
                assert "ipBlock" not in peer, f"{policy['metadata']['name']}: an ipBlock peer"
                ns = tuple(sorted(((peer.get("namespaceSelector") or {}).get("matchLabels")
                                   or {}).items()))
                pods = tuple(sorted(((peer.get("podSelector") or {}).get("matchLabels")
                                     or {}).items()))
                found |= {(ns, pods, p["port"]) for p in rule["ports"]}
    return found


def collector_config(objs):
    volume = next(v for v in template(objs, COLLECTOR)["spec"]["volumes"] if "configMap" in v)
    config_map = find(objs, "ConfigMap", volume["configMap"]["name"])
    assert config_map["metadata"]["name"] == volume["configMap"]["name"]
    return yaml.safe_load(config_map["data"]["config.yaml"])


def service_url(url):
    match = re.fullmatch(r"(?:http://)?([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local:(\d+)",
                         url)
    assert match, url
    return match.group(1), match.group(2), int(match.group(3))


# ---------------------------------------------------------------- rules and dashboard
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_prometheus_rule_ships_exactly_the_generated_groups(overlay):
    rule = find(rendered(overlay), "PrometheusRule", GATEWAY)
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    plain = yaml.safe_load((OBSERVABILITY / "prometheus-rules.yaml").read_text())
    assert rule["spec"] == plain
    alerts = [r for g in plain["groups"] for r in g["rules"] if "alert" in r]
    assert {"PlimsollAnswerLatencyDoubled", "PlimsollAvailabilityBurn1h",
            "PlimsollIndexSnapshotStale"} <= {a["alert"] for a in alerts}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_dashboard_config_map_carries_the_committed_dashboard_for_grafanas_sidecar(overlay):
    config_map = find(rendered(overlay), "ConfigMap", "plimsoll-gateway-dashboard")
    assert config_map["metadata"]["name"] == "plimsoll-gateway-dashboard"  # no hash suffix
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    (name, text), = config_map["data"].items()
    assert name.endswith(".json")
    assert json.loads(text) == json.loads((OBSERVABILITY / "grafana-dashboard.json").read_text())


# ---------------------------------------------------------------- metrics scrape
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pod_monitor_scrapes_the_gateways_metrics_on_its_serving_port(overlay):
    objs = rendered(overlay)
    monitor = find(objs, "PodMonitor", GATEWAY)
    assert selects(monitor["spec"]["selector"], template(objs, GATEWAY)["metadata"]["labels"])
    assert not selects(monitor["spec"]["selector"],
                       template(objs, COLLECTOR)["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["path"] == "/metrics"
    port = next(p for p in container(objs, GATEWAY)["ports"] if p["name"] == endpoint["port"])
    assert port["containerPort"] == 8080
    # Prometheus' pods may reach that port; nothing else new may.
    prometheus = ((("kubernetes.io/metadata.name", "monitoring"),),
                  (("app.kubernetes.io/name", "prometheus"),), 8080)
    gateway_in = peers(objs, template(objs, GATEWAY)["metadata"]["labels"], "Ingress")
    assert gateway_in == {((("plimsoll.io/segment", "internal-api"),), (), 8080), prometheus}


def test_one_worker_per_pod_is_stated_where_the_replicas_are_decided():
    """prometheus_client without multiprocess mode is right only with one process per pod."""
    text = (REPO_ROOT / "k8s" / "base" / "gateway" / "deployment.yaml").read_text()
    assert re.search(r"One uvicorn worker per pod", text)
    assert "--workers" not in container(rendered("prod"), GATEWAY)["args"]


# ---------------------------------------------------------------- traces
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_sends_traces_to_the_collector_service_and_its_otlp_http_receiver(overlay):
    objs = rendered(overlay)
    gateway_env = env(objs, GATEWAY)
    name, namespace, port = service_url(gateway_env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"])
    assert (name, namespace, port) == (COLLECTOR, NAMESPACE, 4318)
    assert gateway_env["OTEL_SERVICE_NAME"]["value"] == GATEWAY
    service = find(objs, "Service", name, namespace)
    (service_port,) = [p for p in service["spec"]["ports"] if p["port"] == port]
    collector_pod = template(objs, COLLECTOR)
    assert selects({"matchLabels": service["spec"]["selector"]},
                   collector_pod["metadata"]["labels"])
    target = next(p for p in container(objs, COLLECTOR)["ports"]
                  if p["name"] == service_port["targetPort"])
    config = collector_config(objs)
    receiver = config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert int(receiver.rsplit(":", 1)[1]) == target["containerPort"] == 4318
    (pipeline,) = config["service"]["pipelines"].values()
    assert pipeline["receivers"] == ["otlp"] and "batch" in pipeline["processors"]
    assert pipeline["processors"][0] == "memory_limiter"  # first, or it cannot refuse data


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_collector_exports_to_the_backend_its_env_names_and_is_probed_on_its_health_port(
        overlay):
    objs = rendered(overlay)
    config = collector_config(objs)
    exporter = config["exporters"]["otlp"]["endpoint"]
    variable = re.fullmatch(r"\$\{env:([A-Z_]+)\}", exporter).group(1)
    name, _, port = service_url(env(objs, COLLECTOR)[variable]["value"])
    # The host is the backend the egress policy lets the collector reach, on that port.
    backend = ((("plimsoll.io/platform", "true"),), (("app.kubernetes.io/name", name),), port)
    assert backend in peers(objs, template(objs, COLLECTOR)["metadata"]["labels"], "Egress")
    health = int(config["extensions"]["health_check"]["endpoint"].rsplit(":", 1)[1])
    main = container(objs, COLLECTOR)
    health_port = next(p["containerPort"] for p in main["ports"] if p["name"] == "health")
    assert health == health_port
    for probe in ("readinessProbe", "livenessProbe"):
        assert main[probe]["httpGet"]["port"] == "health"
    assert config["service"]["extensions"] == ["health_check"]


def test_the_segment_key_comes_from_the_gateways_own_secret():
    segment = env(rendered("prod"), GATEWAY)["PLIMSOLL_SEGMENT_KEY"]
    assert "value" not in segment
    assert segment["valueFrom"]["secretKeyRef"]["name"].startswith(f"{GATEWAY}-")


# ---------------------------------------------------------------- network
def test_the_collector_takes_spans_only_from_the_gateway_and_sends_them_only_to_the_backend():
    objs = rendered("prod")
    labels = template(objs, COLLECTOR)["metadata"]["labels"]
    assert peers(objs, labels, "Ingress") == {
        ((), (("app.kubernetes.io/name", GATEWAY),), 4318)}
    dns = ((("kubernetes.io/metadata.name", "kube-system"),), (("k8s-app", "kube-dns"),), 53)
    backend = ((("plimsoll.io/platform", "true"),),
               (("app.kubernetes.io/name", "trace-backend"),), 4317)
    assert peers(objs, labels, "Egress") == {dns, backend}


def test_the_gateway_may_reach_the_collector_on_otlp_http_and_nothing_else_new():
    objs = rendered("prod")
    out = peers(objs, template(objs, GATEWAY)["metadata"]["labels"], "Egress")
    assert ((), (("app.kubernetes.io/name", COLLECTOR),), 4318) in out
    assert {port for _, _, port in out} == {53, 4318, 5000, 5432, 9000}


# ---------------------------------------------------------------- policies
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_collector_passes_every_policy(overlay):
    objs = rendered(overlay)
    pod_template = template(objs, COLLECTOR)
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {**pod_template["metadata"], "name": f"{COLLECTOR}-7c9d8-x2k4p",
                        "namespace": NAMESPACE}, "spec": pod_template["spec"]}
    results = k8s_check().admit(objs, pod)
    assert {name.split("/")[0] for name in results} >= {
        "PlimsollRequiredLabels", "PlimsollPodSecurity", "PlimsollAllowedImages"}
    assert all(messages == [] for messages in results.values()), results
    image = container(objs, COLLECTOR)["image"]
    if overlay == "prod":
        assert re.fullmatch(r"registry\.plimsoll\.internal/opentelemetry-collector@sha256:"
                            r"[a-f0-9]{64}", image)
    main = container(objs, COLLECTOR)
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert main["resources"]["limits"]["memory"] and main["resources"]["requests"]["cpu"]


def need_promtool():
    """promtool (`make obs-tools`); CI installs it, so there its absence is a failure."""
    try:
        k8s_check().promtool()
    except k8s_check().ToolMissing as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))


def test_the_crd_objects_are_checked_structurally_and_by_promtool():
    """PrometheusRule and PodMonitor have no built-in schema: k8s_check says what is wrong."""
    need_promtool()
    objs = copy.deepcopy(rendered("prod"))
    assert k8s_check().check_monitoring(objs) == []
    rule = next(o for o in objs if o["kind"] == "PrometheusRule")
    rule["spec"]["groups"][1]["rules"][0]["expr"] = "rate(plimsoll_requests_total[5m]"
    monitor = next(o for o in objs if o["kind"] == "PodMonitor")
    monitor["spec"]["podMetricsEndpoints"][0]["port"] = "metrics"
    errors = "\n".join(k8s_check().check_monitoring(objs))
    assert "PrometheusRule/plimsoll/plimsoll-gateway: promtool check rules failed" in errors
    assert "port 'metrics' is not a container port of the pods it selects (['http'])" in errors
    monitor["spec"]["selector"]["matchLabels"] = {"app.kubernetes.io/name": "nothing"}
    rule["spec"]["extra"] = True
    errors = "\n".join(k8s_check().check_monitoring(objs))
    assert "selects no pod template in namespace plimsoll" in errors
    assert "spec holds exactly `groups`" in errors
