"""The review card: a model version's description in MLflow, written for the reviewer.

MLflow renders a version's description as Markdown on the version page, so the card is what
a reviewer reads first: the verdict, the candidate against the champion, the base encoder and
BM25 on every gated metric, safety, latency and cost, the data, the training, the model
card's summary, the prompts it serves, the lineage digest and how to decide. It is rendered
from the lineage of record and the version's state tags only, so registration, the gate and
the approval tick all write the same card for the same state. The tags stay the machine's
record; the card is for people.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from plimsoll.common.hashing import sha256_json, sha256_text
from plimsoll.evaluation.metrics import BY_NAME
from plimsoll.release.gate import GateResult, Verdict
from plimsoll.release.policy import Policy
from plimsoll.release.registry import ModelRegistry, RegistryError

# MLflow keeps a version's description in a VARCHAR(5000) (PostgreSQL enforces it).
DESCRIPTION_LIMIT = 5000
LINEAGE = "plimsoll.lineage."
# The tags that decide what the card says: when one changes, the card is rendered again.
STATE_TAGS = ("gate.verdict", "gate.champion", "approval", "approval.by", "approval.error",
              "promotion.state", "promotion.reason")
CARD_TAG = "review.card"
NOT_MEASURED = "-"


@dataclass(frozen=True)
class Comparison:
    """Who the candidate is compared with: the champion (if any) and the baselines' scores."""

    champion_version: str | None
    champion: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class CardLinks:
    """Links a card holds, relative to the MLflow UI it is shown in (`#/...`)."""

    run: str = ""  # the training run
    prompts: Mapping[str, str] = field(default_factory=dict)  # template id -> prompt page


def card_stamp(tags: Mapping[str, str], description: str | None) -> str:
    """What the card tag holds: digests of the state it was rendered for and of its text.

    A version whose stamp differs from its tag has a card out of date (its state moved on)
    or edited by hand: the approval tick renders it again.
    """
    state = sha256_json({k: tags.get(k) for k in STATE_TAGS})[:16]
    return f"{state}:{sha256_text(description or '')[:16]}"


def card_links(registry: ModelRegistry, run_id: str) -> CardLinks:
    """The training run's page, relative to the MLflow UI (the card is shown there)."""
    try:
        experiment = registry.run_experiment(run_id)
    except RegistryError:  # a link is a convenience: the card stands without it
        return CardLinks()
    return CardLinks(run=f"#/experiments/{experiment}/runs/{run_id}")


def prompt_links(lineage: Mapping[str, str]) -> dict[str, str]:
    """Template id → its prompt version's page in the MLflow UI."""
    prompts = lineage_value(lineage, "prompt_versions", {})
    links = {}
    for template, uri in prompts.items() if isinstance(prompts, dict) else ():
        name, _, number = str(uri).removeprefix("prompts:/").partition("/")
        links[template] = f"#/prompts/{name}?promptVersion={number}"
    return links


def lineage_value(lineage: Mapping[str, str], key: str, default: object) -> object:
    """A lineage tag's JSON value (a string tag is returned as it is)."""
    raw = lineage.get(LINEAGE + key)
    if raw is None:
        return default
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def render_review_card(*, model: str, version: str, lineage: Mapping[str, str],
                       tags: Mapping[str, str], policy: Policy, verdict: Verdict,
                       comparison: Comparison, links: CardLinks) -> str:
    """The card's Markdown, at most DESCRIPTION_LIMIT characters."""
    scores = lineage_value(lineage, "eval_scores", {})
    scores = scores if isinstance(scores, dict) else {}
    baselines = lineage_value(lineage, "baselines", {})
    baselines = baselines if isinstance(baselines, dict) else {}
    parts = [
        _verdict_line(tags, verdict, comparison),
        _comparison(verdict, scores, comparison, baselines),
        _safety(scores, policy),
        _latency_cost(scores, policy),
        _data(lineage_value(lineage, "data_slices", [])),
        _training(lineage, links),
        _model_card(lineage),
        _prompts(lineage, links),
        _lineage(model, version, lineage),
        _decide(model, version, tags),
    ]
    card = "\n\n".join(p for p in parts if p)
    if len(card) > DESCRIPTION_LIMIT:
        # The model card's summary is the longest part and is in the artifacts in full.
        parts[6] = _model_card(lineage, short=True)
        card = "\n\n".join(p for p in parts if p)
    if len(card) > DESCRIPTION_LIMIT:
        tail = "\n\n… (cut to fit MLflow's description; the tags hold the full record)"
        card = card[:DESCRIPTION_LIMIT - len(tail)] + tail
    return card


def _verdict_line(tags: Mapping[str, str], verdict: Verdict, comparison: Comparison) -> str:
    state, reviewer = tags.get("promotion.state"), (tags.get("approval.by") or "").strip()
    gate = tags.get("gate.verdict")
    against = (f"the champion v{comparison.champion_version}"
               if comparison.champion_version else "no champion (a first release)")
    failed = [r for r in verdict.results if r.status == "fail"]
    if state == "promoted":
        line = f"**Verdict: promoted — approved by {reviewer}.** {tags.get('promotion.reason', '')}"
    elif state == "rejected":
        line = f"**Verdict: rejected by {reviewer}.** This version will not be promoted."
    elif state == "refused":
        line = (f"**Verdict: approved by {reviewer} but not promoted.** "
                f"{tags.get('promotion.reason', '')}")
    elif gate == "fail":
        line = (f"**Verdict: gate failed** against {against}: {len(failed)} gate(s) failed "
                f"({', '.join(sorted({r.metric for r in failed}))}). Not promotable.")
    elif gate == "pass":
        decision = tags.get("approval", "pending")
        line = (f"**Verdict: gate passed against {against} — {decision} approval.** "
                "It is the `challenger`; a reviewer decides (see *Decide* below).")
        if decision == "pending" or not decision:
            line = (f"**Verdict: gate passed against {against} — pending approval.** "
                    "It is the `challenger`; a reviewer decides (see *Decide* below).")
    else:
        line = (f"**Verdict: awaiting the gate** (the gate sensor evaluates it within a "
                f"minute). Measured now against {against}, {len(failed)} gate(s) would fail.")
    if tags.get("approval.error") and state is None:
        line += f"\n\n⚠ The decision was not acted on: {tags['approval.error']}"
    return line


def _show(metric: str, value: object) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return NOT_MEASURED
    found = BY_NAME.get(metric)
    return f"{value:{found.format}}" if found else f"{value:.4g}"


def _line(result: GateResult) -> str:
    if result.gate == "minimum":
        return f"≥ {_show(result.metric, result.threshold)}"
    if result.gate == "maximum" or result.gate == "safety":
        return f"≤ {_show(result.metric, result.threshold)}"
    return f"regression line {_show(result.metric, result.threshold)}"


def _delta(metric: str, value: object, champion: object) -> str:
    if not all(isinstance(v, int | float) for v in (value, champion)):
        return NOT_MEASURED
    delta = float(value) - float(champion)
    found = BY_NAME.get(metric)
    if delta == 0 or found is None or found.direction is None:
        return f"{delta:+.3g}" if delta else "0"
    better = (delta > 0) == (found.direction == "higher")
    return f"{delta:+.3g} {'▲' if better else '▼'}"


def _comparison(verdict: Verdict, scores: Mapping[str, object], comparison: Comparison,
                baselines: Mapping[str, Mapping[str, float]]) -> str:
    by_metric: dict[str, list[GateResult]] = {}
    for result in verdict.results:
        by_metric.setdefault(result.metric, []).append(result)
    champion = f"champion v{comparison.champion_version}" if comparison.champion_version \
        else "champion"
    lines = ["### Candidate against the champion, the base encoder and BM25",
             f"| metric | line | candidate | {champion} | Δ | base encoder | BM25 | gate |",
             "|---|---|---|---|---|---|---|---|"]
    for metric, results in by_metric.items():
        status = ("✘ fail" if any(r.status == "fail" for r in results) else
                  "✔ pass" if all(r.status == "pass" for r in results) else "– not measured")
        value = scores.get(metric)
        lines.append("| " + " | ".join((
            f"`{metric}`", "; ".join(_line(r) for r in results), _show(metric, value),
            _show(metric, comparison.champion.get(metric)),
            _delta(metric, value, comparison.champion.get(metric)),
            _show(metric, baselines.get("base", {}).get(metric)),
            _show(metric, baselines.get("bm25", {}).get(metric)), status)) + " |")
    lines.append("\nΔ is candidate − champion; ▲ better, ▼ worse. BM25 has no answers, so "
                 "only retrieval metrics. Lines come from `policies/slos.yaml`.")
    # A gate judged by more than a comparison (the soft-violation test, a stand-in metric)
    # says how, so a value over its line that passes is not read as a mistake.
    for result in verdict.results:
        if result.detail:
            lines.append(f"- `{result.metric}` ({result.status}): {result.detail}.")
    return "\n".join(lines)


def _safety(scores: Mapping[str, object], policy: Policy) -> str:
    attacks, through = scores.get("redteam_attacks"), scores.get("redteam_through")
    stopped = (f"{int(attacks) - int(through)} of {int(attacks)} red-team attacks stopped"
               if isinstance(attacks, int | float) and isinstance(through, int | float)
               else "red-team attacks: not recorded")
    soft, answers = scores.get("soft_violations"), scores.get("safety_answers")
    rate = _show("soft_violation_rate", scores.get("soft_violation_rate"))
    soft_line = (f"{int(soft)} soft violation{'' if int(soft) == 1 else 's'} in "
                 f"{int(answers)} answers"
                 if isinstance(soft, int | float) and isinstance(answers, int | float)
                 else f"soft violation rate {rate}")
    return ("### Safety\n"
            f"- {stopped}; critical violations "
            f"{_show('critical_violations', scores.get('critical_violations'))} "
            f"(allowed {policy.safety.critical_violations}).\n"
            f"- {soft_line} (the line is a rate of {policy.safety.soft_violation_rate:.1%} at "
            f"{policy.safety.soft_violation_confidence:.0%} confidence).")


def _latency_cost(scores: Mapping[str, object], policy: Policy) -> str:
    rows = []
    for metric in ("latency_p50_cpu_ms", "latency_p95_cpu_ms", "latency_p95_ms",
                   "cost_per_request"):
        if metric not in scores and metric not in policy.maximum:
            continue
        slo = policy.maximum.get(metric)
        value = scores.get(metric)
        within = "" if slo is None or not isinstance(value, int | float) else (
            " ✔" if value <= slo else " ✘")
        rows.append(f"| `{metric}` | {_show(metric, value)}{within} | "
                    f"{'≤ ' + _show(metric, slo) if slo is not None else 'for information'} |")
    return "### Latency and cost (eval, per request)\n| metric | candidate | SLO |\n" \
           "|---|---|---|\n" + "\n".join(rows)


def _data(slices: object) -> str:
    if not isinstance(slices, list) or not slices:
        return "### Data\nNot recorded for this version."
    lines = ["### Data", "| slice | rows | content hash | classification | TTL | expires |",
             "|---|---|---|---|---|---|"]
    for item in slices:
        if not isinstance(item, dict):
            continue
        rows = item.get("rows")
        lines.append(f"| `{item.get('name')}` | {rows if rows is not None else NOT_MEASURED} | "
                     f"`{str(item.get('content_hash', ''))[:12]}` | "
                     f"{item.get('classification', NOT_MEASURED)} | "
                     f"{item.get('ttl_days', NOT_MEASURED)} d | "
                     f"{item.get('expires') or NOT_MEASURED} |")
    lines.append("\n*Expires*: from that day the gateway answers from this version in short "
                 "form (the slice is past its TTL).")
    return "\n".join(lines)


def _training(lineage: Mapping[str, str], links: CardLinks) -> str:
    params = lineage_value(lineage, "hyperparameters", {})
    params = params if isinstance(params, dict) else {}
    training = lineage_value(lineage, "training", {})
    training = training if isinstance(training, dict) else {}
    shown = ", ".join(f"{k} {params[k]}" for k in (
        "epochs", "learning_rate", "batch_size", "hard_negatives", "selection_metric",
        "patience") if k in params)
    loss = training.get("final_loss")
    facts = [f"seed {lineage_value(lineage, 'seed', NOT_MEASURED)}",
             f"{training.get('steps', NOT_MEASURED)} steps",
             f"final loss {loss:.4f}" if isinstance(loss, int | float) else "final loss -"]
    if training.get("chosen_epoch"):
        facts.append(f"epoch {training['chosen_epoch']} chosen on the dev set")
    name, _, digest = lineage.get(LINEAGE + "base_model", NOT_MEASURED).partition("@")
    base = f"{name}@{digest[:12]}" if digest else name
    run = f" · [training run]({links.run})" if links.run else ""
    return (f"### Training\nFine-tuned from the base encoder `{base}`: {shown}.\n"
            f"{'; '.join(facts)}{run}. Trained by "
            f"{lineage.get(LINEAGE + 'trained_by') or NOT_MEASURED}.")


def _model_card(lineage: Mapping[str, str], *, short: bool = False) -> str:
    summary = lineage_value(lineage, "model_card_summary", {})
    ref = lineage.get(LINEAGE + "model_card")
    if not ref or not isinstance(summary, dict):
        return "### Model card\nNo model card was registered with this version."
    lines = ["### Model card", f"**Intended use.** {summary.get('intended_use', '')}"]
    if not short:
        for title, key in (("Non-goals", "non_goals"), ("Known failure modes",
                                                         "failure_modes")):
            items = summary.get(key) or []
            if items:
                lines.append(f"**{title}:**\n" + "\n".join(f"- {item}" for item in items))
    lines.append(f"Full card: `model_card.md` in this version's artifacts (`{ref}`).")
    return "\n\n".join(lines)


def _prompts(lineage: Mapping[str, str], links: CardLinks) -> str:
    prompts = lineage_value(lineage, "prompt_versions", {})
    if not isinstance(prompts, dict) or not prompts:
        return ""
    shown = [f"[{uri}]({links.prompts[name]})" if links.prompts.get(name) else f"`{uri}`"
             for name, uri in sorted(prompts.items())]
    return "### Prompts served\n" + " · ".join(shown)


def _lineage(model: str, version: str, lineage: Mapping[str, str]) -> str:
    digest = lineage.get("plimsoll.lineage_digest", "")
    return ("### Lineage\n"
            f"Digest `{digest[:16]}…` over the `plimsoll.lineage.*` tags and the artifact "
            f"hashes. Check it: `plimsoll verify {version} --model {model}`.")


def _decide(model: str, version: str, tags: Mapping[str, str]) -> str:
    if tags.get("promotion.state"):
        return ""
    if tags.get("gate.verdict") == "fail":
        return ("### Decide\nNothing to decide: the gate failed, so an approval would be "
                "refused. Fix what failed and register a new candidate.")
    # The gate sets approval=pending on a pass: that row is edited, not added.
    approval = ("edit the `approval` row (✎) from `pending` to `approved` or `rejected`, "
                "and Save" if "approval" in tags else
                "add `approval` = `approved` or `rejected`")
    return ("### Decide\nIn *Tags* below: first add `approval.by` = your name (Name, Value, "
            f"Add), then {approval}. Or from a shell: "
            f"`plimsoll review {version} approved --by \"<your name>\" --model {model}`.\n\n"
            "The approval sensor re-verifies the lineage and the gate, then moves "
            "`champion` and records it in the ledger. The trainer cannot approve; an "
            "`approval` without `approval.by` waits for it.")
