"""The Grafana dashboard: valid JSON Grafana can import, every panel with a query that
promtool parses, ids unique, panels on the grid without overlapping, and only series that the
gateway exports or the rules record."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from plimsoll.observability import alerts
from plimsoll.observability.dashboard import dashboard, panel_queries
from plimsoll.release.policy import load_policy

REPO = Path(__file__).resolve().parent.parent
COMMITTED = REPO / alerts.DASHBOARD_FILE
# The metric families the gateway exports (the observability contract), as exposed.
EXPORTED = {
    "plimsoll_request_duration_seconds_bucket", "plimsoll_request_duration_seconds_count",
    "plimsoll_request_duration_seconds_sum", "plimsoll_requests_total",
    "plimsoll_answers_total", "plimsoll_request_failures_total", "plimsoll_fallbacks_total",
    "plimsoll_safety_findings_total", "plimsoll_cpu_seconds_total", "plimsoll_cost_total",
    "plimsoll_tokens_total", "plimsoll_cache_lookups_total", "plimsoll_served_version_info",
    "plimsoll_flag_info", "plimsoll_index_snapshot_built_timestamp_seconds",
    "plimsoll_bundle_swaps_total", "plimsoll_traces_total"}


@pytest.fixture(scope="module")
def board():
    return json.loads(COMMITTED.read_text())


@pytest.fixture(scope="module")
def slo():
    return load_policy(REPO / "policies" / "slos.yaml").serving


def graph_panels(board):
    return [p for p in board["panels"] if p["type"] != "row"]


def expand(expr: str) -> str:
    """A panel query as Grafana sends it, with the variables at their widest."""
    return expr.replace("$__rate_interval", "1m").replace("$model_version", ".*")


def test_the_committed_dashboard_is_valid_json_and_the_generated_one(board, slo):
    assert board == dashboard(slo)
    assert board["uid"] and board["schemaVersion"] >= 36
    assert {v["name"] for v in board["templating"]["list"]} == {"datasource", "model_version"}


def test_every_panel_has_a_query_and_ids_are_unique(board):
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in graph_panels(board):
        assert panel["targets"], panel["title"]
        assert all(t["expr"].strip() for t in panel["targets"]), panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"
    titles = [p["title"] for p in graph_panels(board)]
    assert len(titles) == len(set(titles))


def test_panels_sit_on_the_24_column_grid_without_overlapping(board):
    taken = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                 for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_the_golden_signals_are_all_there(slo):
    titles = set(panel_queries(slo))
    assert {"Answer requests per second", "Answer latency p50 and p95", "Availability SLI",
            "Latency SLI", "Failures by reason", "Fallbacks by kind", "Answerability",
            "Safety findings", "Cost per request", "Cost per 1k tokens", "Cache hit rate",
            "Served version", "Traces kept and dropped"} <= titles


def test_queries_read_only_exported_series_and_recorded_rules(slo):
    document = yaml.safe_load((REPO / alerts.RULES_FILE).read_text())
    recorded = {r["record"] for g in document["groups"] for r in g["rules"] if "record" in r}
    for title, exprs in panel_queries(slo).items():
        for expr in exprs:
            names = set(re.findall(r"\bplimsoll[a-z0-9_:]*", expr))
            assert names and names <= EXPORTED | recorded, (title, names - EXPORTED - recorded)
    # The per-version panels filter by the dashboard's model_version variable.
    queries = panel_queries(slo)
    for title in ("Answer requests per second", "Answer latency p50 and p95",
                  "Cost per request"):
        assert all('model_version=~"$model_version"' in q for q in queries[title])


def test_every_query_is_promql_promtool_parses(tmp_path, slo):
    tool = shutil.which("promtool")
    if not tool:
        message = "promtool is not installed: run `make obs-tools`"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    exprs = [expand(e) for queries in panel_queries(slo).values() for e in queries]
    rules = tmp_path / "dashboard.yaml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}:check", "expr": e} for i, e in enumerate(exprs)]}]}))
    proc = subprocess.run([tool, "check", "rules", str(rules)], capture_output=True, text=True,
                          check=False, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
