"""Register an evaluated candidate: the bundle, its write-once lineage, its card and its version."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from plimsoll.common.hashing import sha256_json
from plimsoll.evaluation.metrics import BY_NAME, GATED_METRICS
from plimsoll.evaluation.outcome import EvalOutcome
from plimsoll.release.gate import evaluate_gates
from plimsoll.release.model_card import SliceFacts, checked_card, load_model_card, summary
from plimsoll.release.policy import Policy
from plimsoll.release.registry import Bundle, ModelRegistry, lineage_tags
from plimsoll.release.review_card import (
    CardLinks,
    Comparison,
    card_links,
    prompt_links,
    render_review_card,
)
from plimsoll.retrieval.encoder import encoder_name
from plimsoll.retrieval.reference import SnapshotRef
from plimsoll.training.checkpoint import Checkpoint

PROMPT_PREFIX = "plimsoll-"  # MLflow prompt name of template `answer`: plimsoll-answer
# The templates a version serves, beside the answer template (bundle_artifacts bundles them).
SERVED_TEMPLATES = ("answer", "abstain", "refuse", "facts", "system")


@dataclass(frozen=True)
class ReviewInputs:
    """What the card and the model card are made of, beyond the eval outcome."""

    model_card: Path
    fallbacks: Path
    manifests: Path
    policy: Policy
    slice_rows: Mapping[str, int] = field(default_factory=dict)  # content hash -> rows
    today: dt.date | None = None


def register_candidate(*, registry: ModelRegistry, model_name: str, finetuned: Checkpoint,
                       index: SnapshotRef, report: EvalOutcome,
                       review: ReviewInputs | None = None) -> tuple[str, dict[str, str]]:
    """Register the evaluated bundle with write-once lineage; returns (version, tags).

    With `review`, the model card is checked and rendered first (a card missing a section,
    past its review date or describing another system stops registration before anything
    is written), the served prompts are registered in MLflow's prompt registry, and the
    version is created with the review card as its description.
    """
    scores = report.candidate
    values: dict[str, object] = {
        "git_commit": finetuned.git_commit,
        "data_manifest_digest": finetuned.data_manifest_digest,
        "slice_hashes": finetuned.slices,
        "index_slice_hashes": index.slices,
        "training_pairs_digest": finetuned.training_pairs_digest,
        "eval_set_hash": report.eval_set_hash,
        "index_snapshot_id": index.snapshot_id,
        "tokenizer_hash": finetuned.tokenizer_hash,
        "checkpoint_digest": finetuned.digest,
        "base_model": f"{encoder_name(finetuned.base_path)}@{finetuned.base_digest}",
        "hyperparameters": finetuned.params,
        "seed": str(finetuned.params["seed"]),
        "container_image_digest": finetuned.container_image_digest,
        "prompt_template": report.template_ref,
        "guard_policy_digest": report.guard_policy_digest,
        "guard_classifier_digest": report.guard_classifier_digest,
        "redteam_hash": report.redteam_hash,
        "mlflow_run_id": finetuned.mlflow_run_id,
        "eval_scores": {k: round(v, 6) for k, v in scores.items()},
        "trained_by": finetuned.trained_by,
        "bundle_key": sha256_json([finetuned.digest, index.snapshot_id,
                                   report.eval_set_hash, report.template_ref,
                                   report.abstain_below,
                                   report.guard_policy_digest,
                                   report.guard_classifier_digest]),
    }
    with tempfile.TemporaryDirectory(prefix="plimsoll-card-") as tmp:
        card_file, describe = None, None
        if review is not None:
            slices = _slice_facts(review, index)
            card = load_model_card(review.model_card)
            rendered = checked_card(card, _card_values(model_name, report, slices),
                                    slices=slices, fallbacks=_fallback_names(review.fallbacks),
                                    levers=_lever_names(), today=review.today)
            card_file = Path(tmp) / "model_card.md"
            card_file.write_text(rendered)
            values.update({
                "baselines": {system: _gated(report.systems.get(system, {}))
                              for system in ("base", "bm25")},
                "data_slices": [{"name": s.name, "classification": s.classification,
                                 "ttl_days": s.ttl_days, "expires": s.expires,
                                 "content_hash": index.slices.get(s.name, ""),
                                 "rows": review.slice_rows.get(index.slices.get(s.name, ""))}
                                for s in slices],
                "training": _training_facts(finetuned),
                "model_card": card.ref,
                "model_card_summary": summary(rendered),
                "prompt_versions": register_prompts(registry, Path(report.answer_template)
                                                    .parent),
            })
            describe = _describer(registry, model_name, review.policy, finetuned)
        lineage = lineage_tags(values)
        bundle = Bundle(encoder_dir=Path(finetuned.path), snapshot_dir=Path(index.path),
                        answer_template=Path(report.answer_template),
                        abstain_template=Path(report.abstain_template),
                        abstain_below=float(report.abstain_below),
                        guard_policy=Path(report.guard_policy) if report.guard_policy
                        else None,
                        guard_classifier=Path(report.guard_classifier)
                        if report.guard_classifier else None, model_card=card_file)
        from plimsoll.serving.pyfunc import pyfunc_model  # imports MLflow

        version = registry.register(model_name, bundle, lineage, finetuned.mlflow_run_id,
                                    pyfunc_model(), describe=describe)
    tags = dict(registry.version(model_name, version).tags)
    return version, tags


def _describer(registry: ModelRegistry, model_name: str, policy: Policy,
               finetuned: Checkpoint):
    """The review card of the version being created, against the champion of now."""
    champion = registry.alias_version(model_name, "champion")
    champion_scores = {}
    if champion is not None and registry.records is not None:
        record = registry.records.get(model_name, champion)
        if record is not None:
            champion_scores = json.loads(record.lineage.get(
                "plimsoll.lineage.eval_scores", "{}"))
    links = card_links(registry, finetuned.mlflow_run_id)

    def describe(version: str, tags: dict[str, str]) -> str:
        scores = json.loads(tags.get("plimsoll.lineage.eval_scores", "{}"))
        comparison = Comparison(champion if champion != version else None,
                                champion_scores if champion != version else {})
        verdict = evaluate_gates(policy, scores, comparison.champion or None)
        return render_review_card(model=model_name, version=version, lineage=tags, tags={},
                                  policy=policy, verdict=verdict, comparison=comparison,
                                  links=CardLinks(links.run, prompt_links(tags)))

    return describe


def register_prompts(registry: ModelRegistry, prompts_dir: Path) -> dict[str, str]:
    """Each served template as an MLflow prompt version (new only when its content changed)."""
    from plimsoll.serving.prompts import load_template

    versions = {}
    for name in SERVED_TEMPLATES:
        path = Path(prompts_dir) / f"{name}.md"
        if not path.is_file():
            continue
        template = load_template(path)
        versions[template.template_id] = registry.register_prompt(
            PROMPT_PREFIX + template.template_id, template.body.strip(),
            content_hash=template.content_hash,
            commit_message=f"{template.template_id}@{template.version} "
                           f"({path.name}, {template.content_hash[:12]})",
            tags={"plimsoll.template": template.ref, "plimsoll.owner": template.owner,
                  "plimsoll.variables": ",".join(template.variables)})
    return versions


def _gated(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: round(v, 6) for k, v in metrics.items() if k in GATED_METRICS}


def _slice_facts(review: ReviewInputs, index: SnapshotRef) -> list[SliceFacts]:
    """Each slice of the index: its manifest's classification and TTL, and when it expires."""
    from plimsoll.common.errors import PlimsollError
    from plimsoll.datasets.manifests import load_manifest

    built_at = _built_at(Path(index.path))
    facts = []
    for name in sorted(index.slices):
        path = Path(review.manifests) / f"{name}.yaml"
        try:
            manifest = load_manifest(path)
        except PlimsollError as exc:
            raise PlimsollError(f"the manifest of slice '{name}' cannot be read for the model "
                                f"card ({exc.problem})", file=path, field=exc.field,
                                fix=(exc.fix or "fix the manifest") + "; nothing was "
                                "registered") from None
        expires = (built_at + dt.timedelta(days=manifest.ttl_days)).date().isoformat() \
            if built_at else ""
        facts.append(SliceFacts(name, str(manifest.classification), manifest.ttl_days, expires))
    return facts


def _built_at(snapshot: Path) -> dt.datetime | None:
    try:
        manifest = json.loads((snapshot / "manifest.json").read_text())
        return dt.datetime.fromisoformat(manifest["built_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a snapshot from before built_at was recorded


def _card_values(model_name: str, report: EvalOutcome,
                 slices: list[SliceFacts]) -> dict[str, object]:
    """What a model card may use: the version's numbers, formatted as the report shows them."""
    candidate = report.candidate
    shown = {name: BY_NAME[name].show(candidate.get(name)) for name in BY_NAME}
    try:
        questions = json.loads(Path(report.paths["json"]).read_text())["context"]["questions"]
    except (OSError, ValueError, KeyError, TypeError):
        questions = "the"
    return {"model_name": model_name, "abstain_below": report.abstain_below,
            "scores": shown, "seed": report.seed, "eval_questions": questions,
            "eval_set_hash": report.eval_set_hash[:12], "slices": slices}


def _training_facts(finetuned: Checkpoint) -> dict[str, object]:
    """Steps, final loss and the chosen epoch, from the checkpoint's own record."""
    facts: dict[str, object] = {"steps": finetuned.steps or None,
                                "final_loss": finetuned.final_loss}
    try:
        record = json.loads((Path(finetuned.path) / "plimsoll_training.json").read_text())
    except (OSError, ValueError):
        return facts
    selection = record.get("selection") or {}
    if isinstance(selection, dict) and selection.get("chosen_epoch"):
        facts["chosen_epoch"] = selection["chosen_epoch"]
    return facts


def _fallback_names(path: Path) -> list[str]:
    from plimsoll.serving.fallbacks import load_fallback_policy

    policy = load_fallback_policy(path)
    return [name for name in type(policy).model_fields if name not in ("version", "request")]


def _lever_names() -> list[str]:
    from plimsoll.serving.flags import FLAGS

    return list(FLAGS)


def slice_rows(store: object, slices: Mapping[str, str]) -> dict[str, int]:
    """Rows of each slice the store holds at the content hash the index was built from.

    `store` is a plimsoll.datasets.store.SliceStore. A slice published again since (another
    content hash) or unreadable now is left out: the card shows its rows as not known.
    """
    from plimsoll.common.errors import PlimsollError

    rows = {}
    for name, content in slices.items():
        try:
            published = store.published(name)
        except PlimsollError:
            continue
        if published.content_hash == content:
            rows[content] = published.row_count
    return rows
