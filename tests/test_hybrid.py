"""Hybrid retrieval: BM25 and the dense index fused by reciprocal rank, as an option."""

import numpy as np
import pytest
from conftest import REPO_ROOT

from plimsoll.retrieval.encoder import Encoder, EncoderDirectory
from plimsoll.retrieval.hybrid import LexicalIndex, hybrid_search, reciprocal_rank_fusion
from plimsoll.retrieval.snapshot import IndexSnapshot
from plimsoll.serving.answerer import Answerer
from plimsoll.serving.prompts import load_template


def test_reciprocal_rank_fusion_rewards_agreement_and_keeps_every_item():
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 4, 1]])
    assert fused[:2] == [1, 3]  # 1 and 3 tie (ranks 1+3 and 3+1): the first ranking's order
    assert set(fused) == {1, 2, 3, 4}
    assert reciprocal_rank_fusion([[5, 6], [6]])[0] == 6  # in both lists beats first in one
    assert reciprocal_rank_fusion([[], []]) == []


@pytest.fixture(scope="module")
def answerer(bundle):
    return Answerer(Encoder(EncoderDirectory.open(bundle.encoder_dir)),
                    IndexSnapshot(bundle.snapshot_dir),
                    load_template(REPO_ROOT / "prompts" / "answer.md"),
                    load_template(REPO_ROOT / "prompts" / "abstain.md"), k=3)


def test_hybrid_hits_keep_their_dense_scores(answerer):
    question = "which cache is keyed by encoder digest"
    vector = answerer.encoder.embed([question])
    lexical = LexicalIndex(answerer.snapshot.chunks["text"])
    (hits,) = hybrid_search(answerer.snapshot, lexical, vector, [question], k=3)
    assert hits[0].doc_id == "doc-3" and [h.rank for h in hits] == [1, 2, 3]
    dense = {h.chunk_id: h.score for h in answerer.snapshot.search(vector, 6)[0]}
    for hit in hits:  # the abstention threshold reads the same cosine as dense retrieval
        assert hit.score == pytest.approx(dense[hit.chunk_id], abs=1e-5)


def test_bm25_finds_an_exact_token_the_dense_ranking_puts_lower(answerer):
    lexical = LexicalIndex(answerer.snapshot.chunks["text"])
    rows = lexical.search(["re.split"], 3)[0]
    assert answerer.snapshot.chunks["doc_id"][rows[0]] == "doc-4"
    assert lexical.search(["zzzz qqqq"], 3) == [[]]  # no shared term: no lexical hit


def test_an_answerer_retrieves_either_way_on_the_same_bundle(answerer):
    hybrid = answerer.with_retrieval("hybrid")
    assert hybrid.encoder is answerer.encoder and hybrid.snapshot is answerer.snapshot
    assert answerer.with_retrieval("dense") is answerer
    dense_answer = answerer.answer("How do I undo a promotion and go back?")
    hybrid_answer = hybrid.answer("How do I undo a promotion and go back?")
    assert hybrid_answer.hits[0].doc_id == dense_answer.hits[0].doc_id == "doc-0"
    assert isinstance(hybrid_answer.query_vector, np.ndarray)
    assert hybrid.in_mode("facts" if hybrid.facts_template else "answer").retrieval == "hybrid"
    with pytest.raises(ValueError, match="retrieval 'sparse'"):
        answerer.with_retrieval("sparse")


def test_run_eval_measures_hybrid_retrieval(bundle, tmp_path, capsys):
    import json
    import shutil
    from pathlib import Path

    from conftest import write_jsonl

    from plimsoll.cli.evaluate import main

    artifacts = tmp_path / "model" / "artifacts"  # a downloaded model directory's layout
    shutil.copytree(bundle.encoder_dir, artifacts / Path(bundle.encoder_dir).name)
    shutil.copytree(bundle.snapshot_dir, artifacts / Path(bundle.snapshot_dir).name)
    for name in ("answer", "abstain"):
        shutil.copy(REPO_ROOT / "prompts" / f"{name}.md", artifacts / f"{name}.md")
    evalset = write_jsonl(tmp_path / "e.jsonl", [
        {"qid": "a", "question": "split a string on a regex", "answerable": True,
         "gold_doc_ids": ["doc-4"], "answer_hint": ""},
        {"qid": "b", "question": "banana bread", "answerable": False, "gold_doc_ids": [],
         "answer_hint": ""}])
    code = main(["--model", str(tmp_path / "model"), "--evalset", str(evalset), "--limit", "0",
                 "--retrieval", "hybrid", "--json", str(tmp_path / "out.json")])
    result = json.loads((tmp_path / "out.json").read_text())
    assert code == (0 if result["passed"] else 1)
    assert result["model"].endswith("hybrid retrieval")
    assert result["metrics"]["recall@5"] == 1.0
    assert "hybrid retrieval" in capsys.readouterr().out
