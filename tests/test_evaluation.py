import json

import pytest
from conftest import REPO_ROOT

from plimsoll.common.errors import PlimsollError
from plimsoll.evaluation.eval_registry import EvalRegistry
from plimsoll.evaluation.evalsets import EvalSetError, load_evalset
from plimsoll.evaluation.metrics import ndcg_at, recall_at, reciprocal_rank
from plimsoll.serving.prompts import load_template

CI_SET = REPO_ROOT / "evalsets" / "python_docs_ci.jsonl"
DEV_SET = REPO_ROOT / "evalsets" / "python_docs_dev.jsonl"


def test_ranking_metrics_on_hand_computed_examples():
    ranked = ["a", "a", "b", "c", "d"]  # two chunks of doc a count once
    assert recall_at(ranked, ["b"], 1) == 0.0
    assert recall_at(ranked, ["b"], 2) == 1.0
    assert recall_at(ranked, ["b", "z"], 5) == 0.5
    assert reciprocal_rank(ranked, ["c"]) == pytest.approx(1 / 3)
    assert reciprocal_rank(ranked, ["z"]) == 0.0
    assert ndcg_at(ranked, ["a"], 10) == 1.0
    assert ndcg_at(ranked, ["b"], 10) == pytest.approx(1 / 1.5849625)


def test_ci_eval_set_is_big_enough_and_has_unanswerable_questions():
    evalset = load_evalset(CI_SET)
    answerable = [q for q in evalset.questions if q.answerable]
    assert len(evalset.questions) >= 50 and len(answerable) >= 50
    assert len(evalset.questions) - len(answerable) >= 10
    assert len(evalset.content_hash) == 64


@pytest.fixture(scope="module")
def corpus_texts() -> dict[str, str]:
    from plimsoll.datasets.manifests import load_manifest
    from plimsoll.datasets.slices import build_slice

    texts = {}
    for name in ("python_help_topics", "stdlib_docstrings", "example_faq"):
        frame = build_slice(load_manifest(REPO_ROOT / "data_manifests" / f"{name}.yaml")).frame
        texts.update(zip(frame["id"], frame["text"], strict=True))
    return texts


def test_ci_eval_set_ids_exist_in_the_reference_corpus(corpus_texts):
    load_evalset(CI_SET).check_doc_ids(corpus_texts)


def test_dev_set_is_real_style_checked_against_the_corpus_and_disjoint_from_ci(corpus_texts):
    """The dev set the recipe is chosen on: hand-written, checked, and not the CI set."""
    dev, ci = load_evalset(DEV_SET), load_evalset(CI_SET)
    answerable = [q for q in dev.questions if q.answerable]
    assert len(answerable) >= 120 and len(dev.questions) > len(answerable)
    dev.check_doc_ids(corpus_texts)
    for question in answerable:  # the hint is copied from the first gold document
        assert question.answer_hint in corpus_texts[question.gold_doc_ids[0]], question.qid
        first_line = corpus_texts[question.gold_doc_ids[0]].strip().split("\n")[0].lower()
        assert len(first_line) < 20 or first_line not in question.question.lower()

    def words(text: str) -> str:
        return " ".join(text.lower().replace("?", " ").split())

    assert not {words(q.question) for q in dev.questions} & {words(q.question)
                                                            for q in ci.questions}
    ci_gold = {q.gold_doc_ids[0] for q in ci.questions if q.answerable}
    # a few documents are asked about in both, on different facts; most are not
    assert sum(q.gold_doc_ids[0] in ci_gold for q in answerable) <= len(answerable) // 10


def test_unknown_doc_ids_name_the_question(tmp_path):
    path = tmp_path / "set.jsonl"
    path.write_text(json.dumps({"qid": "x1", "question": "q?", "answerable": True,
                                "gold_doc_ids": ["stdlib:nope"], "answer_hint": ""}) + "\n")
    with pytest.raises(EvalSetError) as caught:
        load_evalset(path).check_doc_ids({"stdlib:re.split"})
    assert caught.value.field == "x1.gold_doc_ids" and "stdlib:nope" in str(caught.value)


@pytest.mark.parametrize(("record", "message"), [
    ({"qid": "x", "question": "q", "answerable": True, "gold_doc_ids": []}, "answerable"),
    ({"qid": "x", "question": "q", "answerable": False, "gold_doc_ids": [], "extra": 1},
     "unknown"),
])
def test_malformed_eval_set(tmp_path, record, message):
    path = tmp_path / "set.jsonl"
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(EvalSetError, match=message):
        load_evalset(path)


def test_templates_render_only_their_declared_variables():
    answer = load_template(REPO_ROOT / "prompts" / "answer.md")
    text = answer.render(answer="Use re.split. [1]",
                         citations=[{"doc_id": "stdlib:re.split", "chunk_id": "stdlib:re.split#0"}])
    assert text.startswith("Use re.split. [1]") and "[1] stdlib:re.split" in text
    assert answer.ref.startswith("answer@1.0.0#")
    with pytest.raises(PlimsollError, match="declares"):
        answer.render(answer="x")


def test_eval_registry_on_sqlite(tmp_path):
    registry = EvalRegistry(f"sqlite:///{tmp_path / 'evals.sqlite'}")
    registry.record(commit_sha="abc", model_ref="models:/m/1", eval_set_hash="h" * 64, seed=42,
                    system="finetuned", metrics={"recall@5": 0.9})
    (row,) = registry.results("models:/m/1")
    assert row["seed"] == 42 and row["metrics"] == {"recall@5": 0.9}


@pytest.mark.postgres
def test_eval_registry_on_postgres(postgres_url):
    registry = EvalRegistry(postgres_url)
    registry.record(commit_sha="abc", model_ref="models:/m/2", eval_set_hash="h" * 64, seed=7,
                    system="base", metrics={"mrr": 0.5})
    assert registry.results("models:/m/2")[0]["metrics"] == {"mrr": 0.5}
    registry.close()
