"""The training recipe: question-form queries, hard negatives, the dev set, early stopping."""

import json

import numpy as np
import pytest

from plimsoll.common.errors import PlimsollError
from plimsoll.retrieval.encoder import EncoderDirectory
from plimsoll.training.finetune import (
    Pair,
    TrainingInterrupted,
    TrainingParams,
    _false_negatives,
    fine_tune,
)
from plimsoll.training.negatives import MiningParams, mine_hard_negatives
from plimsoll.training.pairs import queries_for_document, question_from_sentence
from plimsoll.training.validation import DevSet

DOCS = {
    "stdlib:shutil.rmtree": ("shutil.rmtree", "Recursively delete a directory tree. If "
                             "ignore_errors is set, errors are ignored; otherwise, if onerror "
                             "is set, it is called to handle the error."),
    "stdlib:os.makedirs": ("os.makedirs", "makedirs(name, mode=0o777, exist_ok=False)\n\n"
                           "Super-mkdir; create a leaf directory and all intermediate ones. "
                           "Works like mkdir, except that any intermediate path segment (not "
                           "just the rightmost) will be created if it does not exist."),
    "stdlib:json.dumps": ("json.dumps", "Serialize obj to a JSON formatted str. If skipkeys "
                          "is true then dict keys that are not basic types will be skipped "
                          "instead of raising a TypeError."),
    "stdlib:shlex.quote": ("shlex.quote", "Return a shell-escaped version of the string s. "
                           "The returned value is a string that can safely be used as one "
                           "token in a shell command line."),
    "stdlib:textwrap.dedent": ("textwrap.dedent", "Remove any common leading whitespace from "
                               "every line in text. This can be used to make triple-quoted "
                               "strings line up with the left edge of the display."),
    "stdlib:time.perf_counter": ("time.perf_counter", "Performance counter for benchmarking. "
                                 "It has the highest available resolution to measure a short "
                                 "duration and includes time elapsed during sleep."),
}


def _pairs() -> list[Pair]:
    return [p for doc_id, (title, text) in DOCS.items()
            for p in queries_for_document(doc_id, title, text)]


def test_each_document_gives_several_queries_none_copied_into_its_passage():
    pairs = queries_for_document("stdlib:textwrap.dedent", *DOCS["stdlib:textwrap.dedent"])
    kinds = {p.kind: p for p in pairs}
    assert set(kinds) == {"sentence", "question", "name"}
    sentence = kinds["sentence"]
    assert sentence.query == "Remove any common leading whitespace from every line in text."
    assert sentence.query not in sentence.passage  # the sentence left its passage
    assert kinds["question"].query == "how do I remove any common leading whitespace from " \
                                      "every line in text?"
    assert kinds["question"].query.lower() not in kinds["question"].passage.lower()
    assert all(p.doc_id == "stdlib:textwrap.dedent" for p in pairs)


@pytest.mark.parametrize(("title", "sentence", "question"), [
    ("os.path.dirname", "Return the directory name of pathname path.",
     "how do I get the directory name of pathname path?"),
    ("json.dumps", "Serializes obj to a JSON formatted str, with options.",
     "how do I serialize obj to a JSON formatted str?"),
    ("configparser.DuplicateOptionError", "Raised by strict parsers when an option repeats.",
     "when is DuplicateOptionError raised?"),
    ("csv.excel", "A class that describes the usual properties of Excel files.",
     "what is csv.excel for?"),
    ("x.y", "If not specified, the default is used.", None),  # no verb: no question
])
def test_questions_from_docstring_sentences(title, sentence, question):
    assert question_from_sentence(title, sentence) == question


def test_signatures_and_help_topic_headings_make_questions():
    (sig,) = [p for p in queries_for_document("stdlib:os.makedirs", *DOCS["stdlib:os.makedirs"])
              if p.kind == "name"]
    assert sig.query == "what arguments does os.makedirs take?"
    topic = queries_for_document("pydoc:comparisons", "comparisons",
                                 "Comparisons\n***********\n\nUnlike C, all comparison "
                                 "operations in Python have the same priority, which is "
                                 "lower than that of any arithmetic operation.")
    named = [p.query for p in topic if p.kind == "name"]
    assert len(named) == 1 and "comparisons" in named[0]
    assert not [p for p in topic if p.kind == "question"]  # prose is not a docstring
    assert queries_for_document("stdlib:ast.Not", "ast.Not", "Not") == []


class _Guide:
    """A guide encoder with chosen vectors: unit vectors looked up by text."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = {k: np.asarray(v, np.float32) / np.linalg.norm(v)
                        for k, v in vectors.items()}

    def embed(self, texts):
        return np.stack([self.vectors[t] for t in texts])


def test_mining_drops_likely_false_negatives_and_near_duplicates():
    pairs = [Pair("q", "A passage about removing folders", "a"),
             Pair("q2", "B passage that answers it too", "b"),
             Pair("q3", "C passage word for word the same as A", "c"),
             Pair("q4", "D passage about something else", "d")]
    guide = _Guide({
        "q": [1, 0, 0, 0], "q2": [0, 1, 0, 0], "q3": [0, 0, 1, 0], "q4": [0, 0, 0, 1],
        "A passage about removing folders": [0.9, 0.1, 0, 0],
        "B passage that answers it too": [0.95, 0.3, 0, 0],  # closer to q than q's own: FN
        "C passage word for word the same as A": [0.9, 0.1, 0.01, 0],  # duplicate of A
        "D passage about something else": [0.5, 0, 0, 0.9]})
    mined, report = mine_hard_negatives(pairs, guide, MiningParams(choose_from=1))
    assert mined[0].negative_doc_id == "d"  # b is a likely answer, c a copy of a
    assert report.false_negatives_dropped >= 1 and report.duplicates_dropped >= 1
    assert all(p.negative_doc_id != p.doc_id for p in mined)
    again, _ = mine_hard_negatives(pairs, guide, MiningParams(choose_from=1))
    assert again == mined  # deterministic


def test_mining_real_pairs_with_the_base_encoder(encoder):
    mined, report = mine_hard_negatives(_pairs(), encoder)
    assert report.queries == len(mined) and report.with_negative > 0
    for pair in mined:
        if pair.negative:
            assert pair.negative_doc_id != pair.doc_id and pair.negative != pair.passage


def test_in_batch_duplicates_and_own_document_negatives_are_masked():
    batch = [Pair("q1", "p", "a"), Pair("q2", "p", "a", negative="n", negative_doc_id="b"),
             Pair("q3", "r", "b", negative="m", negative_doc_id="a")]
    negatives = [batch[1], batch[2]]
    mask = _false_negatives(batch, negatives, "cpu").tolist()
    # columns: passages of q1, q2, q3, then the negatives of q2 (doc b) and q3 (doc a)
    assert mask[0] == [False, True, False, False, True]
    assert mask[1] == [True, False, False, False, True]
    assert mask[2] == [False, False, False, True, False]


def _dev(pairs) -> DevSet:
    docs = {p.doc_id: p.passage for p in pairs}
    questions = ("How do I delete a folder with everything in it?",
                 "make nested directories in one call",
                 "turn a dict into a JSON string", "escape an argument for the shell",
                 "strip the indentation of a triple-quoted string",
                 "which clock should I use to time code?")
    gold = (("stdlib:shutil.rmtree",), ("stdlib:os.makedirs",), ("stdlib:json.dumps",),
            ("stdlib:shlex.quote",), ("stdlib:textwrap.dedent",), ("stdlib:time.perf_counter",))
    return DevSet(name="tiny-dev", eval_set_hash="h", questions=questions, gold=gold,
                  doc_ids=tuple(docs), doc_texts=tuple(docs.values()), skipped=0)


TINY = TrainingParams(batch_size=4, epochs=3, save_every=1, frozen_layers=4,
                      learning_rate=1e-3, patience=1)


def test_early_stopping_keeps_the_best_epoch_and_records_it(tmp_path):
    pairs = _pairs()
    dev = _dev(pairs)
    seen = []
    result = fine_tune(EncoderDirectory.open(None), pairs, TINY, tmp_path / "w",
                       tmp_path / "c", dev=dev, on_epoch=lambda e, s: seen.append((e, s)))
    metric = [s["mrr"] for s in result.epoch_scores]
    assert [e for e, _ in seen] == list(range(1, len(metric) + 1))
    assert result.chosen_epoch == metric.index(max(metric)) + 1
    assert result.base_scores and "mrr" in result.base_scores
    if len(metric) < TINY.epochs:  # stopped early: the epochs after the best did not beat it
        assert all(m <= max(metric) for m in metric[result.chosen_epoch:])
    training = json.loads((result.checkpoint.path / "plimsoll_training.json").read_text())
    assert training["selection"]["chosen_epoch"] == result.chosen_epoch
    assert training["selection"]["epoch_scores"] == [dict(s) for s in result.epoch_scores]
    assert training["selection"]["dev_set"] == "tiny-dev"
    assert any("kept epoch" in note for note in result.notes)


def test_a_run_killed_mid_epoch_resumes_to_the_same_checkpoint(tmp_path):
    pairs, base = _pairs(), EncoderDirectory.open(None)
    dev = _dev(pairs)
    params = TrainingParams(batch_size=4, epochs=2, save_every=1, frozen_layers=4,
                            patience=2)
    whole = fine_tune(base, pairs, params, tmp_path / "w1", tmp_path / "c1", dev=dev)
    per_epoch = len(pairs) // params.batch_size
    with pytest.raises(TrainingInterrupted):
        fine_tune(base, pairs, params, tmp_path / "w2", tmp_path / "c2", dev=dev,
                  stop_after_step=per_epoch + 1)  # inside the second epoch
    resumed = fine_tune(base, pairs, params, tmp_path / "w2", tmp_path / "c2", dev=dev)
    assert resumed.resumed_from_step == per_epoch + 1
    assert resumed.checkpoint.digest == whole.checkpoint.digest
    assert resumed.epoch_scores == whole.epoch_scores


def test_the_dev_set_is_part_of_the_fingerprint():
    from plimsoll.training.finetune import training_fingerprint

    pairs, base = _pairs(), EncoderDirectory.open(None)
    dev = _dev(pairs)
    other = DevSet(**{**dev.__dict__, "questions": (*dev.questions[:-1], "x")})
    prints = {training_fingerprint(base, pairs, TINY, "fp32", d) for d in (None, dev, other)}
    assert len(prints) == 3


def test_bad_selection_settings_are_named(tmp_path):
    base = EncoderDirectory.open(None)
    with pytest.raises(PlimsollError, match="selection metric") as error:
        fine_tune(base, _pairs(), TrainingParams(selection_metric="accuracy"), tmp_path,
                  tmp_path)
    assert error.value.field == "selection_metric"
    with pytest.raises(PlimsollError, match="patience"):
        fine_tune(base, _pairs(), TrainingParams(patience=0), tmp_path, tmp_path)


def test_dev_set_for_training_keeps_questions_about_the_training_slices(tmp_path):
    from conftest import write_jsonl, write_manifest

    from plimsoll.datasets.manifests import load_manifest
    from plimsoll.datasets.slices import build_slice
    from plimsoll.datasets.store import SliceStore
    from plimsoll.evaluation.evalsets import load_evalset
    from plimsoll.training.validation import dev_set_for_training

    write_manifest(tmp_path / "m", "std", source={"kind": "stdlib_docstrings",
                                                  "modules": ["textwrap", "shlex"]},
                   classification="public")
    store = SliceStore(tmp_path / "dvc", str(tmp_path / "remote"))
    published = store.publish(build_slice(load_manifest(tmp_path / "m" / "std.yaml")))
    rows = [{"qid": "a", "question": "dedent a block", "answerable": True,
             "gold_doc_ids": ["stdlib:textwrap.dedent", "faq-001"], "answer_hint": ""},
            {"qid": "b", "question": "only about the faq", "answerable": True,
             "gold_doc_ids": ["faq-001"], "answer_hint": ""},
            {"qid": "c", "question": "banana bread", "answerable": False,
             "gold_doc_ids": [], "answer_hint": ""}]
    dev = dev_set_for_training(load_evalset(write_jsonl(tmp_path / "dev.jsonl", rows)),
                               [published])
    assert dev.questions == ("dedent a block",) and dev.gold == (("stdlib:textwrap.dedent",),)
    assert dev.skipped == 1 and "stdlib:shlex.quote" in dev.doc_ids
    with pytest.raises(PlimsollError, match="no dev question") as error:
        dev_set_for_training(load_evalset(write_jsonl(tmp_path / "d2.jsonl", rows[1:])),
                             [published])
    assert str(error.value.file).endswith("d2.jsonl")


def test_the_dagster_config_defaults_are_the_recipe_defaults():
    from assets.training import TrainingConfig

    recipe = TrainingParams().as_dict()
    config = {name: field.default for name, field in TrainingConfig.model_fields.items()}
    shared = set(recipe) & set(config)
    assert {"epochs", "learning_rate", "patience", "hard_negatives"} <= shared
    assert {name: config[name] for name in shared} == {name: recipe[name] for name in shared}


def test_an_earlier_best_epoch_is_restored_and_a_lost_one_is_named(tmp_path, monkeypatch):
    import plimsoll.training.finetune as finetune

    scores = iter([{"mrr": 0.1}, {"mrr": 0.9}, {"mrr": 0.5}] * 2)  # before, epoch 1, epoch 2
    monkeypatch.setattr(finetune, "_dev_scores", lambda *_: next(scores))
    pairs, base = _pairs(), EncoderDirectory.open(None)
    params = TrainingParams(batch_size=4, epochs=2, save_every=1, frozen_layers=4,
                            patience=2)
    kept = fine_tune(base, pairs, params, tmp_path / "w1", tmp_path / "c1", dev=_dev(pairs))
    assert kept.chosen_epoch == 1 and len(kept.epoch_scores) == 2
    assert "kept epoch 1" in " ".join(kept.notes)

    scores = iter([{"mrr": 0.1}, {"mrr": 0.9}, {"mrr": 0.5}])
    with pytest.raises(TrainingInterrupted):
        fine_tune(base, pairs, params, tmp_path / "w2", tmp_path / "c2", dev=_dev(pairs),
                  stop_after_step=len(pairs) // 4 + 1)  # epoch 1 scored and saved as best
    (best,) = (tmp_path / "w2").glob("*/best_model.pt")
    best.write_bytes(b"not a torch file")
    with pytest.raises(PlimsollError, match="best epoch's weights") as error:
        fine_tune(base, pairs, params, tmp_path / "w2", tmp_path / "c2", dev=_dev(pairs))
    assert "delete the work folder" in error.value.fix and str(error.value.file) == str(best)


def test_a_missing_dev_set_names_the_file(tmp_path):
    from assets.training import _dev_set
    from platform_defs.resources import ProjectFiles, SliceStorage
    from plimsoll.evaluation.evalsets import EvalSetError
    from plimsoll.training.checkpoint import TrainingPairsFile

    project = ProjectFiles(directory=str(tmp_path), evalset="e.jsonl", redteam="r.jsonl",
                           guard_policy="g.yaml", prompts="prompts")
    pairs = TrainingPairsFile(path="p", digest="d", count=0, slices={"std": "h"},
                              data_manifest_digest="m")
    storage = SliceStorage(workspace=str(tmp_path / "dvc"), remote_url=str(tmp_path / "r"))
    with pytest.raises(EvalSetError, match="eval set not found") as error:
        _dev_set("missing-dev.jsonl", project, storage, pairs)
    assert str(error.value.file).endswith("missing-dev.jsonl")
    assert _dev_set("none", project, storage, pairs) is None
