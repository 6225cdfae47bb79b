"""The default training recipe against the base encoder and BM25, on the dev and CI sets.

Real corpus, real training with the default recipe: question-form queries, mined hard
negatives, up to three epochs with early stopping on the dev set (5 to 8 minutes on 2 CPU
cores with the index builds). Deterministic for the fixed seed on CPU. Marked slow: it
runs in the nightly job; CI's `make ai-ci` builds and gates a quicker candidate on the real
corpus, and `benchmarks/finetune_speed.py` measures the recipe over three seeds.

What is asserted is what the recipe was measured to do at seed 42 (README, "Fine-tuning
and eval"): it must not fall behind the base encoder on the dev set it is chosen on, and
both encoders beat BM25. The issue's +0.03 target is the benchmark's, over seeds.
"""

import pytest
from conftest import REPO_ROOT

from plimsoll.datasets.manifests import load_manifest
from plimsoll.datasets.slices import build_slice
from plimsoll.datasets.store import SliceStore
from plimsoll.evaluation.evalsets import load_evalset
from plimsoll.evaluation.scoring import evaluate_answerer, evaluate_bm25, evaluate_retrieval
from plimsoll.retrieval.chunking import ChunkingParams
from plimsoll.retrieval.encoder import Encoder, EncoderDirectory
from plimsoll.retrieval.snapshot import IndexSnapshot, SnapshotBuilder
from plimsoll.serving.answerer import Answerer
from plimsoll.serving.prompts import load_template
from plimsoll.training.finetune import TrainingParams, fine_tune
from plimsoll.training.negatives import mine_hard_negatives
from plimsoll.training.pairs import derive_pairs
from plimsoll.training.validation import dev_set_for_training

pytestmark = pytest.mark.slow
SETS = {"ci": REPO_ROOT / "evalsets" / "python_docs_ci.jsonl",
        "dev": REPO_ROOT / "evalsets" / "python_docs_dev.jsonl"}


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    home = tmp_path_factory.mktemp("quality")
    store = SliceStore(home / "dvc", str(home / "remote"))
    published = [store.publish(build_slice(load_manifest(
        REPO_ROOT / "data_manifests" / f"{name}.yaml")))
        for name in ("example_faq", "python_help_topics", "stdlib_docstrings")]
    training = [p for p in published if p.name != "example_faq"]
    base = EncoderDirectory.open(None)
    pairs, _ = mine_hard_negatives(derive_pairs(training), Encoder(base))
    dev = dev_set_for_training(load_evalset(SETS["dev"]), training)
    result = fine_tune(base, pairs, TrainingParams(), home / "work", home / "ckpt", dev=dev)
    templates = [load_template(REPO_ROOT / "prompts" / f"{n}.md") for n in ("answer", "abstain")]
    scores = {name: {} for name in SETS}
    for system, encoder_dir in (("base", base), ("finetuned", result.checkpoint)):
        snapshot = IndexSnapshot(SnapshotBuilder(home / "snaps", home / "cache", encoder_dir,
                                                 ChunkingParams()).build(published).path)
        answerer = Answerer(Encoder(encoder_dir), snapshot, *templates)
        for name, path in SETS.items():
            evalset = load_evalset(path)
            scores[name][system] = (evaluate_answerer(system, answerer, evalset, 0.0).metrics
                                    if name == "ci" else
                                    evaluate_retrieval(system, answerer, evalset).metrics)
    for name, path in SETS.items():
        scores[name]["bm25"] = evaluate_bm25(snapshot, load_evalset(path)).metrics
    return result, scores


def test_early_stopping_chose_an_epoch_on_the_dev_set(outcome):
    result, _ = outcome
    mrr = [s["mrr"] for s in result.epoch_scores]
    assert 1 <= result.chosen_epoch <= len(mrr) <= TrainingParams().epochs
    assert mrr[result.chosen_epoch - 1] == max(mrr)


def test_finetuned_is_not_behind_base_on_the_dev_set(outcome):
    _, scores = outcome
    dev = scores["dev"]
    assert dev["finetuned"]["mrr"] >= dev["base"]["mrr"]
    assert dev["finetuned"]["recall@5"] >= dev["base"]["recall@5"] - 0.01


def test_both_encoders_beat_bm25_on_both_sets(outcome):
    _, scores = outcome
    for name in SETS:
        for system in ("base", "finetuned"):
            assert scores[name][system]["recall@5"] > scores[name]["bm25"]["recall@5"]
            assert scores[name][system]["mrr"] > scores[name]["bm25"]["mrr"]


def test_answers_are_grounded_and_unanswerable_questions_abstain(outcome):
    _, scores = outcome
    assert scores["ci"]["finetuned"]["grounding_rate"] >= 0.75
    assert scores["ci"]["finetuned"]["abstention_accuracy"] >= 0.85
