"""The model card in the repository: checked and rendered at registration, or registration stops."""

import datetime as dt
import json
import shutil

import pytest
from conftest import REPO_ROOT

from plimsoll.release.model_card import (
    SECTIONS,
    ModelCardError,
    SliceFacts,
    checked_card,
    load_model_card,
    summary,
)

CARD = REPO_ROOT / "policies" / "model_card.md"
TODAY = dt.date(2026, 12, 2)
SLICES = [SliceFacts("stdlib_docstrings", "public", 365, "2027-12-02"),
          SliceFacts("example_faq", "internal", 180, "2027-05-31")]
FALLBACKS = ["model_unavailable", "retrieval_stale"]
LEVERS = ["pin", "canary", "answer_mode", "strict_safety", "shadow"]
VALUES = {"model_name": "plimsoll-docs-assistant", "abstain_below": 0.35, "seed": 42,
          "eval_questions": 50, "eval_set_hash": "abc", "slices": SLICES,
          "scores": {"recall@5": "0.930", "mrr": "0.790", "grounding_rate": "0.900",
                     "abstention_accuracy": "0.920", "latency_p95_cpu_ms": "30.1",
                     "critical_violations": "0"}}


def check(path=CARD, *, slices=SLICES, fallbacks=FALLBACKS, levers=LEVERS, today=TODAY,
          values=VALUES):
    return checked_card(load_model_card(path), values, slices=slices, fallbacks=fallbacks,
                        levers=levers, today=today)


def edited(tmp_path, old, new):
    path = tmp_path / "model_card.md"
    text = CARD.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))
    return path


def test_the_repositorys_card_renders_with_the_versions_numbers():
    rendered = check()
    assert "{{" not in rendered and "{%" not in rendered
    assert "recall@5\n0.930" in rendered or "recall@5 0.930" in " ".join(rendered.split())
    assert "- `stdlib_docstrings`: public, kept 365 days (the gateway answers in short form " \
           "from 2027-12-02)." in rendered
    shown = summary(rendered)
    assert shown["intended_use"].startswith("Answer questions about Python")
    assert len(shown["non_goals"]) == 3 and len(shown["failure_modes"]) == 3
    assert shown["failure_modes"][0].endswith("lower than on the CI set.")  # a wrapped bullet


def test_the_repositorys_card_is_not_stale_today():
    card = load_model_card(CARD)
    assert card.due() >= dt.date.today(), (
        f"{CARD} is due for review since {card.due()}: review it, move last_reviewed")
    assert card.ref.startswith("model-card@1.0.0#")


@pytest.mark.parametrize("section", SECTIONS)
def test_a_missing_section_names_it(tmp_path, section):
    path = edited(tmp_path, f"## {section}\n", "## Something else\n")
    with pytest.raises(ModelCardError) as caught:
        check(path)
    assert f"'## {section}'" in caught.value.problem
    assert caught.value.field == section and str(path) in str(caught.value)


def test_a_section_that_renders_empty_counts_as_missing(tmp_path):
    text = CARD.read_text()
    start = text.index("## Users\n") + len("## Users\n")
    path = tmp_path / "model_card.md"
    path.write_text(text[:start] + "\n" + text[text.index("## Non-goals"):])
    with pytest.raises(ModelCardError, match="'## Users'"):
        check(path)


def test_a_card_past_its_review_date_is_stale():
    with pytest.raises(ModelCardError) as caught:
        check(today=TODAY + dt.timedelta(days=181))
    assert "stale: last reviewed 2026-12-02" in caught.value.problem
    assert "due 2027-05-31" in caught.value.problem
    assert "set last_reviewed to today's date" in caught.value.fix


def test_data_of_a_classification_the_card_does_not_describe_is_stale(tmp_path):
    path = edited(tmp_path, "{% for slice in slices %}- `{{ slice.name }}`: "
                  "{{ slice.classification }},", "{% for slice in slices %}- `{{ slice.name }}`:")
    restricted = [*SLICES, SliceFacts("tickets", "restricted", 30)]
    with pytest.raises(ModelCardError) as caught:
        check(path, slices=restricted)
    assert "tickets (restricted)" in caught.value.problem


@pytest.mark.parametrize("missing", ["retrieval_stale", "strict_safety"])
def test_a_fallback_or_lever_the_card_does_not_name_is_stale(tmp_path, missing):
    path = edited(tmp_path, f"`{missing}`", missing.replace("_", " "))
    with pytest.raises(ModelCardError) as caught:
        check(path)
    assert f"does not name {missing}" in caught.value.problem


def test_a_new_lever_the_card_does_not_know_is_stale():
    with pytest.raises(ModelCardError, match="does not name kill_switch"):
        check(levers=[*LEVERS, "kill_switch"])


def test_a_number_the_card_uses_and_registration_does_not_give_names_the_values(tmp_path):
    path = edited(tmp_path, "## Users\n", "## Users\nCost {{ cost_per_answer }}.\n")
    with pytest.raises(ModelCardError) as caught:
        check(path)
    assert "'cost_per_answer' is undefined" in caught.value.problem
    assert "model_name" in caught.value.fix


@pytest.mark.parametrize(("old", "new", "field"), [
    ("last_reviewed: 2026-12-02", "last_reviewed: last week", "last_reviewed"),
    ("review_every_days: 180", "review_every_days: 0", "review_every_days"),
    ("owner: docs-assistant@plimsoll\n", "", "owner"),
    ("---\nid: model-card", "id: model-card", "front matter"),
])
def test_bad_front_matter_names_the_field(tmp_path, old, new, field):
    with pytest.raises(ModelCardError) as caught:
        load_model_card(edited(tmp_path, old, new))
    assert caught.value.field == field


def test_a_missing_card_says_where_it_is_looked_for(tmp_path):
    with pytest.raises(ModelCardError, match="model card not found") as caught:
        load_model_card(tmp_path / "nope.md")
    assert "PLIMSOLL_MODEL_CARD" in caught.value.fix


# -- registration refuses a card not fit to ship, before anything is written ---------------
def test_a_stale_card_stops_registration_and_leaves_no_version(tmp_path, monkeypatch):
    from plimsoll.evaluation.outcome import EvalOutcome
    from plimsoll.release.candidate import ReviewInputs, register_candidate
    from plimsoll.release.ledger import PromotionLedger
    from plimsoll.release.lineage_record import LineageRecords
    from plimsoll.release.policy import load_policy
    from plimsoll.release.registry import ModelRegistry
    from plimsoll.retrieval.reference import SnapshotRef
    from plimsoll.training.checkpoint import Checkpoint

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    ledger = PromotionLedger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    registry = ModelRegistry(uri, artifact_root=str(tmp_path / "artifacts"),
                             records=LineageRecords(ledger.url))
    manifests = tmp_path / "manifests"
    shutil.copytree(REPO_ROOT / "data_manifests", manifests)
    checkpoint = Checkpoint(path=str(tmp_path), digest="d", tokenizer_hash="t",
                            base_digest="b", base_path="model", params={"seed": 42},
                            mlflow_run_id="r", training_pairs_digest="p", slices={},
                            data_manifest_digest="m", git_commit="g",
                            container_image_digest="local", trained_by="alice",
                            training_fingerprint="f")
    index = SnapshotRef(snapshot_id="s", path=str(tmp_path), encoder_digest="d",
                        tokenizer_hash="t", slices={"example_faq": "h"}, encoder_path="model")
    report = EvalOutcome(systems={"finetuned": {"recall@5": 0.93, "mrr": 0.8}},
                         eval_set_hash="e", seed=42, report_id="x", report_digest="y",
                         paths={"json": str(tmp_path / "none.json")}, markdown="",
                         abstain_below=0.35,
                         answer_template=str(REPO_ROOT / "prompts" / "answer.md"),
                         abstain_template=str(REPO_ROOT / "prompts" / "abstain.md"),
                         template_ref="answer@1", guard_policy="", guard_policy_digest="g",
                         guard_classifier="", guard_classifier_digest="c", redteam_hash="")
    review = ReviewInputs(model_card=CARD, fallbacks=REPO_ROOT / "policies" / "fallbacks.yaml",
                          manifests=manifests,
                          policy=load_policy(REPO_ROOT / "policies" / "slos.yaml"),
                          today=TODAY + dt.timedelta(days=400))
    with pytest.raises(ModelCardError, match="stale: last reviewed"):
        register_candidate(registry=registry, model_name="m", finetuned=checkpoint,
                           index=index, report=report, review=review)
    assert registry.client.search_registered_models() == []  # no model, no prompt, nothing
    assert not json.dumps([m.name for m in registry.client.search_prompts()]).count("plimsoll")
