"""Write an eval report as JSON, Markdown and a PNG plot."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from plimsoll.evaluation.metrics import RETRIEVAL_METRICS, in_group, metric
from plimsoll.evaluation.redteam import ThreatReport
from plimsoll.evaluation.scoring import EvalRun
from plimsoll.release.gate import rate_bounds

# The shipped policy's confidence (policies/slos.yaml); the gate recomputes the bound at
# its own policy's confidence from the counts, which the report and the scores both carry.
REPORT_CONFIDENCE = 0.95


def write_report(directory: Path, runs: Sequence[EvalRun], context: dict[str, object],
                 threats: ThreatReport | None = None,
                 dev_runs: Sequence[EvalRun] = ()) -> dict[str, Path]:
    """report.json, report.md and report.png in `directory`; the first run is the candidate."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"json": directory / "report.json", "markdown": directory / "report.md",
             "html": directory / "report.html", "plot": directory / "report.png"}
    paths["json"].write_text(json.dumps({
        "context": context,
        "systems": {run.system: run.metrics for run in runs},
        "questions": runs[0].rows,
        "soft_violation_bounds": soft_violation_bounds(runs[0].metrics),
        "threat_checks": threats.as_dict() if threats else None,
        "dev_set": {run.system: run.metrics for run in dev_runs} or None,
    }, indent=2, sort_keys=True, default=str))
    text = markdown(runs, context, threats, dev_runs)
    paths["markdown"].write_text(text)
    paths["html"].write_text(html(text))
    plot(runs, paths["plot"])
    return paths


def soft_violation_bounds(metrics: dict[str, float]) -> dict[str, float] | None:
    """The counts of the soft-violation rate and its one-sided bounds, for people and audits."""
    k, n = metrics.get("soft_violations"), metrics.get("safety_answers")
    if k is None or not n:
        return None
    lower, upper = rate_bounds(int(k), int(n), REPORT_CONFIDENCE)
    return {"soft_violations": int(k), "safety_answers": int(n), "rate": k / n,
            "confidence": REPORT_CONFIDENCE, "lower": lower, "upper": upper}


def markdown(runs: Sequence[EvalRun], context: dict[str, object],
             threats: ThreatReport | None = None, dev_runs: Sequence[EvalRun] = ()) -> str:
    """The report people read in MLflow and Dagster."""
    systems = [run.system for run in runs]
    lines = ["# Eval report", ""]
    lines += [f"- **{key}**: `{value}`" for key, value in context.items()]
    lines += ["", "## Retrieval", "", "| metric | " + " | ".join(systems) + " |",
              "|---|" + "---|" * len(systems)]
    for name in RETRIEVAL_METRICS:
        lines.append(f"| {name} | " + " | ".join(
            metric(name).show(run.metrics.get(name)) for run in runs) + " |")
    if dev_runs:
        names = [run.system for run in dev_runs]
        lines += ["", f"## Dev set ({context.get('dev_set', 'dev')}: the recipe is chosen on "
                  "it; the gate reads the eval set above)", "",
                  "| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for name in RETRIEVAL_METRICS:
            lines.append(f"| {name} | " + " | ".join(
                metric(name).show(run.metrics.get(name)) for run in dev_runs) + " |")
    lines += ["", "## Answers and service", "", "| metric | " + " | ".join(systems) + " |",
              "|---|" + "---|" * len(systems)]
    for name in in_group("service"):
        lines.append(f"| {name} | " + " | ".join(
            metric(name).show(run.metrics.get(name)) for run in runs) + " |")
    lines += _safety(runs[0], threats)
    misses = [row for row in runs[0].rows
              if (row["answerable"] and not row["grounded"])
              or (row["abstained"] != (not row["answerable"]))]
    if misses:
        lines += ["", f"## Misses of {runs[0].system} ({len(misses)})", "",
                  "| qid | answerable | abstained | top doc | score | gold |",
                  "|---|---|---|---|---|---|"]
        for row in misses[:25]:
            lines.append(f"| {row['qid']} | {row['answerable']} | {row['abstained']} | "
                         f"{row['top_doc']} | {row['top_score']} | {', '.join(row['gold'])} |")
    return "\n".join(lines) + "\n"


def _safety(run: EvalRun, threats: ThreatReport | None) -> list[str]:
    """Guard violations of the candidate, and the red-team outcome per category."""
    lines = ["", f"## Safety ({run.system})", "", "| metric | value |", "|---|---|"]
    lines += [f"| {m} | {metric(m).show(run.metrics[m])} |" for m in in_group("safety")
              if m in run.metrics]
    bounds = soft_violation_bounds(run.metrics)
    if bounds is not None:
        lines.append(f"\nSoft violations: {bounds['soft_violations']} of "
                     f"{bounds['safety_answers']} answers; at {bounds['confidence']:.0%} "
                     f"confidence the rate is at least {bounds['lower']:.4f} and at most "
                     f"{bounds['upper']:.4f}. The gate fails only when the lower bound is "
                     "over the policy's line (policies/slos.yaml, safety).")
    if threats is not None:
        lines += ["", "| threat category | cases | stopped | through | benign flagged |",
                  "|---|---|---|---|---|"]
        for category, counts in threats.by_category().items():
            lines.append(f"| {category} | {counts.get('cases', 0)} | "
                         f"{counts.get('stopped', '-')} | {counts.get('through', '-')} | "
                         f"{counts.get('flagged', '-')} |")
        for result in threats.through[:10]:
            lines.append(f"\n- through: `{result.case.case_id}` ({result.case.category})"
                         f"{': ' + '; '.join(result.leaked) if result.leaked else ''}")
    return lines


def html(markdown_text: str) -> str:
    """A standalone HTML page of the report (MLflow's artifact view renders it)."""
    import mistune

    body = mistune.create_markdown(plugins=["table"])(markdown_text)
    return ("<!doctype html><html><head><meta charset='utf-8'><title>Eval report</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}</style></head>"
            f"<body>{body}<p><img src='report.png' alt='retrieval metrics'></p></body></html>")


def plot(runs: Sequence[EvalRun], destination: Path) -> None:
    """Grouped bars of the retrieval metrics, one colour per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4), dpi=100)
    width = 0.8 / len(runs)
    for offset, run in enumerate(runs):
        xs = [i + offset * width for i in range(len(RETRIEVAL_METRICS))]
        # A metric not measured draws no bar (NaN), not a bar at 0.
        axis.bar(xs, [run.metrics.get(m, math.nan) for m in RETRIEVAL_METRICS], width,
                 label=run.system)
    axis.set_xticks([i + 0.4 - width / 2 for i in range(len(RETRIEVAL_METRICS))],
                    RETRIEVAL_METRICS)
    axis.set_ylim(0, 1)
    axis.set_ylabel("score")
    axis.set_title("Retrieval quality on the eval set")
    axis.legend()
    figure.tight_layout()
    figure.savefig(destination)
    plt.close(figure)
