"""The gateway's Grafana dashboard: the golden signals per model version, as JSON.

Generated with the alert rules (`plimsoll alerts render`) from the same metric names and the
same recording rules, so a panel never shows a series the gateway does not export. Shipped
to Grafana as a ConfigMap its dashboard sidecar loads (label grafana_dashboard: "1").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plimsoll.release.policy import ServingSlo

UID = "plimsoll-gateway"
VERSION = 'model_version=~"$model_version"'
ANSWER = 'endpoint="answer"'
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Panel:
    """One panel: a title, what it shows, its queries (expr, legend) and its unit."""

    title: str
    description: str
    queries: tuple[tuple[str, str], ...]
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 12


def _rate(metric: str, matchers: str = "", by: str = "model_version") -> str:
    selector = f"{metric}{{{matchers}}}" if matchers else metric
    return f"sum by ({by}) (rate({selector}[{RATE}]))"


def panels(slo: ServingSlo) -> list[tuple[str, list[Panel]]]:
    """The dashboard's rows and their panels."""
    threshold = f"{slo.latency.threshold_ms:g} ms"
    duration = "plimsoll_request_duration_seconds_bucket"
    hits = _rate("plimsoll_cache_lookups_total", 'result="hit"', "cache")
    return [
        ("Traffic and latency", [
            Panel("Answer requests per second", "POST /v1/answer by model version.",
                  ((_rate("plimsoll_requests_total", f"{ANSWER},{VERSION}"),
                    "v{{model_version}}"),), "reqps"),
            Panel("Responses by status code", "Every endpoint, by HTTP status code.",
                  ((_rate("plimsoll_requests_total", VERSION, "endpoint, code"),
                    "{{endpoint}} {{code}}"),), "reqps"),
            Panel("Answer latency p50 and p95", "Wall clock at the gateway, by model version.",
                  tuple((f"histogram_quantile({q}, sum by (model_version, le) "
                         f"(rate({duration}{{{ANSWER},{VERSION}}}[{RATE}])))",
                         f"p{name} v{{{{model_version}}}}")
                        for q, name in (("0.5", "50"), ("0.95", "95"))), "s"),
            Panel("Served version", "What each replica serves: model version, alias, prompt "
                  "template, index snapshot.",
                  (("max by (model, version, alias, prompt_template, index_snapshot) "
                    "(plimsoll_served_version_info)", ""),), kind="table"),
        ]),
        ("SLOs", [
            Panel("Availability SLI", f"Share of answer requests answered by the model "
                  f"(objective {slo.availability * 100:g}%), over 5m and 1h.",
                  (("1 - plimsoll:availability_errors:ratio_rate5m", "5m"),
                   ("1 - plimsoll:availability_errors:ratio_rate1h", "1h")), "percentunit"),
            Panel("Latency SLI", f"Share of answer requests within {threshold} (objective "
                  f"{slo.latency.target * 100:g}%), over 5m and 1h.",
                  (("1 - plimsoll:latency_errors:ratio_rate5m", "5m"),
                   ("1 - plimsoll:latency_errors:ratio_rate1h", "1h")), "percentunit"),
            Panel("Error budget burn rate (1h)", "1 spends the budget exactly over the SLO "
                  f"window ({slo.window_days} days); the page fires at 14.4 over 1h and 5m.",
                  ((f"plimsoll:availability_errors:ratio_rate1h / (1 - {slo.availability:g})",
                    "availability"),
                   (f"plimsoll:latency_errors:ratio_rate1h / (1 - {slo.latency.target:g})",
                    "latency")), "short"),
            Panel("Index snapshot age", "Hours since the served index snapshot was built.",
                  (("(time() - max by (model_version) "
                    "(plimsoll_index_snapshot_built_timestamp_seconds)) / 3600",
                    "v{{model_version}}"),), "h"),
        ]),
        ("Answers and failures", [
            Panel("Answerability", "Share of answers by outcome: cited, uncited, abstained, "
                  "refused, unavailable (static fallback).",
                  ((f"{_rate('plimsoll_answers_total', VERSION, 'outcome')}\n/ on () "
                    f"group_left\nsum(rate(plimsoll_answers_total{{{VERSION}}}[{RATE}]))",
                    "{{outcome}}"),), "percentunit"),
            Panel("Failures by reason", "Failed requests per second by endpoint and reason.",
                  ((_rate("plimsoll_request_failures_total", by="endpoint, reason"),
                    "{{endpoint}} {{reason}}"),), "reqps"),
            Panel("Fallbacks by kind", "Fallback answers per second by kind and reason.",
                  ((_rate("plimsoll_fallbacks_total", by="kind, reason"),
                    "{{kind}} ({{reason}})"),), "reqps"),
            Panel("Safety findings", "Guard findings per minute by stage and severity.",
                  ((f"60 * {_rate('plimsoll_safety_findings_total', by='stage, severity')}",
                    "{{stage}} {{severity}}"),), "short"),
        ]),
        ("Cost and efficiency", [
            Panel("Cost per request", "Currency units (CPU seconds x price) per answer "
                  "request, by model version.",
                  ((f"{_rate('plimsoll_cost_total', VERSION)}\n/\n"
                    f"{_rate('plimsoll_requests_total', f'{ANSWER},{VERSION}')}",
                    "v{{model_version}}"),), "currencyUSD"),
            Panel("Cost per 1k tokens", "Currency units per 1000 tokens (question, passages "
                  "and answer), by model version.",
                  ((f"1000 * {_rate('plimsoll_cost_total', VERSION)}\n/\n"
                    f"{_rate('plimsoll_tokens_total', VERSION)}",
                    "v{{model_version}}"),), "currencyUSD"),
            Panel("Cache hit rate", "Bundle and passage-verdict caches.",
                  ((f"{hits}\n/\n{_rate('plimsoll_cache_lookups_total', by='cache')}",
                    "{{cache}}"),), "percentunit"),
            Panel("Traces kept and dropped", "Tail sampling decisions per second by reason.",
                  ((_rate("plimsoll_traces_total", by="decision, reason"),
                    "{{decision}} ({{reason}})"),), "reqps"),
            Panel("Flags", "The serving flags each replica routes by.",
                  (("max by (flag, variant) (plimsoll_flag_info)", ""),), kind="table"),
            Panel("Bundle swaps", "Bundles swapped in (promotion, rollback, pin) per hour.",
                  (("sum(increase(plimsoll_bundle_swaps_total[1h]))", "swaps"),), "short"),
        ]),
    ]


def panel_queries(slo: ServingSlo) -> dict[str, list[str]]:
    """Every panel's PromQL by panel title (with Grafana's variables still in it)."""
    return {p.title: [expr for expr, _ in p.queries] for _, row in panels(slo) for p in row}


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> dict:
    datasource = {"type": "prometheus", "uid": "${datasource}"}
    targets = [{"datasource": datasource, "expr": expr, "legendFormat": legend,
                "refId": chr(ord("A") + i), **({"instant": True, "format": "table"}
                                               if panel.kind == "table" else {})}
               for i, (expr, legend) in enumerate(panel.queries)]
    return {"id": panel_id, "type": panel.kind, "title": panel.title,
            "description": panel.description, "datasource": datasource,
            "gridPos": {"h": 8, "w": panel.width, "x": x, "y": y},
            "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
            "targets": targets}


def dashboard(slo: ServingSlo) -> dict:
    """The dashboard as Grafana imports it (schema 39), ids and grid positions assigned."""
    out, next_id, y = [], 1, 0
    for title, row in panels(slo):
        out.append({"id": next_id, "type": "row", "title": title, "collapsed": False,
                    "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        next_id, y, x = next_id + 1, y + 1, 0
        for panel in row:
            if x + panel.width > 24:
                x, y = 0, y + 8
            out.append(_panel(panel, next_id, x, y))
            next_id, x = next_id + 1, x + panel.width
        y += 8
    return {
        "uid": UID, "title": "Plimsoll gateway", "tags": ["plimsoll", "slo"],
        "description": "Golden signals of `plimsoll serve` per model version; generated by "
        "`plimsoll alerts render` from policies/slos.yaml.",
        "schemaVersion": 39, "version": 1, "editable": False, "timezone": "utc",
        "refresh": "30s", "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "label": "Prometheus", "type": "datasource",
             "query": "prometheus", "current": {}, "hide": 0},
            {"name": "model_version", "label": "Model version", "type": "query",
             "datasource": {"type": "prometheus", "uid": "${datasource}"},
             "query": {"query": "label_values(plimsoll_requests_total, model_version)",
                       "refId": "model_version"},
             "definition": "label_values(plimsoll_requests_total, model_version)",
             "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2,
             "current": {"text": "All", "value": "$__all"}, "hide": 0}]},
        "annotations": {"list": []},
        "panels": out,
    }
