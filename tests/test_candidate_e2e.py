"""A small end-to-end run: tiny slices, one short epoch, a registered and verified candidate."""

import json
import tempfile
from pathlib import Path

import dagster as dg
import pytest
from conftest import FAQ_ROWS, QUIET, write_jsonl, write_manifest

from plimsoll.guard.classifier import classifier_digest
from plimsoll.training.finetune import resolve_precision

QUESTIONS = [
    {"qid": "t1", "question": "How do I go back to the previous model version?",
     "answerable": True, "gold_doc_ids": ["doc-0"], "answer_hint": ""},
    {"qid": "t2", "question": "How can I remove the common indentation of a block of text?",
     "answerable": True, "gold_doc_ids": ["stdlib:textwrap.dedent"], "answer_hint": ""},
    {"qid": "t3", "question": "How do I escape a string so it is safe in a shell command?",
     "answerable": True, "gold_doc_ids": ["stdlib:shlex.quote"], "answer_hint": ""},
    {"qid": "t4", "question": "What is a good recipe for banana bread?",
     "answerable": False, "gold_doc_ids": [], "answer_hint": ""},
]
# The dev set: other questions on the same documents (early stopping reads it).
DEV = [
    {"qid": "d1", "question": "strip the indentation all lines share", "answerable": True,
     "gold_doc_ids": ["stdlib:textwrap.dedent"], "answer_hint": ""},
    {"qid": "d2", "question": "make a string safe to pass to bash", "answerable": True,
     "gold_doc_ids": ["stdlib:shlex.quote"], "answer_hint": ""},
    {"qid": "d3", "question": "turn a python dict into json text", "answerable": True,
     "gold_doc_ids": ["stdlib:json.dumps", "stdlib:json.dump"], "answer_hint": ""},
]


@pytest.fixture
def setup(home, manifests, tmp_path, monkeypatch):  # noqa: ARG001 (home: an isolated home)
    write_manifest(manifests, "std", source={"kind": "stdlib_docstrings",
                                             "modules": ["textwrap", "shlex", "json"]},
                   classification="public")
    evalset = tmp_path / "tiny_eval.jsonl"
    evalset.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    monkeypatch.setenv("PLIMSOLL_DEV_EVALSET", str(write_jsonl(tmp_path / "dev.jsonl", DEV)))
    from platform_defs.definitions import defs

    with dg.instance_for_test() as instance:
        yield defs(), instance, evalset


def _run_config(evalset, training_slices=("std",)):
    return {**QUIET, "ops": {
        "training_pairs": {"config": {"training_slices": list(training_slices)}},
        "finetuned_encoder": {"config": {"batch_size": 4, "frozen_layers": 5, "epochs": 2}},
        "eval_report": {"config": {"evalset": str(evalset)}},
    }}


def _materialize_inputs(definitions, instance):
    for name in ("faq", "notes", "std"):
        assert definitions.resolve_job_def("dataset_slices_job").execute_in_process(
            partition_key=name, instance=instance, run_config=QUIET).success
    assert definitions.resolve_job_def("embeddings_index_job").execute_in_process(
        instance=instance, run_config=QUIET).success


def _metadata(result, node):
    (materialization,) = result.asset_materializations_for_node(node)
    return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}


def test_candidate_end_to_end(setup, home):
    definitions, instance, evalset = setup
    _materialize_inputs(definitions, instance)
    result = definitions.resolve_job_def("candidate_job").execute_in_process(
        instance=instance, run_config=_run_config(evalset))
    assert result.success

    trained = _metadata(result, "finetuned_encoder")
    report = _metadata(result, "eval_report")
    model = _metadata(result, "candidate_model")
    systems = {row.data["system"] for row in report["scores"].records}
    assert systems == {"finetuned", "base", "bm25", "hybrid"}
    assert 0.0 <= report["recall@5"] <= 1.0
    assert "| recall@5 |" in report["report"]
    assert "## Dev set (dev.jsonl" in report["report"]
    # the recipe: mined hard negatives, question-form queries, a dev score per epoch
    pairs = _metadata(result, "training_pairs")
    assert pairs["hard_negatives"]["with_negative"] >= 1
    assert {"question", "name"} <= set(pairs["query_kinds"])
    by_epoch = trained["dev_scores_by_epoch"]
    assert "before training" in by_epoch and "epoch 1" in by_epoch
    assert 1 <= trained["chosen_epoch"] <= 2
    assert (home / "eval_reports").is_dir() and report["plot_path"].endswith("report.png")
    # the plot shows as a picture on the asset page, and the run and version are one click
    assert report["plot"].startswith("![eval plot](data:image/png;base64,")
    assert report["MLflow run"].startswith("http://127.0.0.1:5000/#/experiments/")
    assert report["MLflow run"].endswith(f"/runs/{trained['mlflow_run_id']}")
    assert model["MLflow version page"] == ("http://127.0.0.1:5000/#/models/"
                                            f"plimsoll-docs-assistant/versions/{model['version']}")

    from plimsoll.common.home import HomeLayout
    from plimsoll.release.lineage_record import LineageRecords
    from plimsoll.release.registry import LINEAGE_PREFIX, ModelRegistry

    layout = HomeLayout(home)
    registry = ModelRegistry(layout.mlflow_tracking_uri,
                             records=LineageRecords(layout.ledger_url, create=False))
    version = model["version"]
    assert registry.verify("plimsoll-docs-assistant", version).ok
    tags = registry.client.get_model_version("plimsoll-docs-assistant", version).tags
    for key in ("git_commit", "data_manifest_digest", "slice_hashes", "eval_set_hash",
                "index_snapshot_id", "tokenizer_hash", "base_model", "hyperparameters", "seed",
                "container_image_digest", "eval_scores", "checkpoint_digest"):
        assert LINEAGE_PREFIX + key in tags, key
    assert tags[LINEAGE_PREFIX + "container_image_digest"] == "local"
    # the guard's classifier that screened the eval and red-team runs, exactly
    assert tags[LINEAGE_PREFIX + "guard_classifier_digest"] == classifier_digest()
    assert json.loads(tags[LINEAGE_PREFIX + "slice_hashes"]).keys() == {"std"}
    _check_review_card(registry, version, tags, trained)

    run = registry.client.get_run(trained["mlflow_run_id"])
    assert run.data.params["learning_rate"] == "2e-05" and run.data.params["seed"] == "42"
    assert run.data.params["passage_gradients"] == "False"
    assert run.data.params["precision"] == "auto"
    assert run.data.params["resolved_precision"] == resolve_precision("auto", "cpu")
    assert run.data.tags["container_image_digest"] == "local"
    losses = registry.client.get_metric_history(run.info.run_id, "loss")
    assert len(losses) == trained["steps"] >= 1
    assert "eval.recall_at_5" in run.data.metrics and "base.mrr" in run.data.metrics
    assert "hybrid.mrr" in run.data.metrics and "dev.finetuned.recall_at_5" in run.data.metrics
    assert run.data.params["chosen_epoch"] == str(trained["chosen_epoch"])
    assert run.data.params["dev_set"] == "dev.jsonl"
    dev_history = registry.client.get_metric_history(run.info.run_id, "dev_mrr")
    assert [m.step for m in dev_history] == list(range(1, len(dev_history) + 1))
    logged = {a.path for a in registry.client.list_artifacts(run.info.run_id, "eval_report")}
    assert logged == {"eval_report/report.json", "eval_report/report.md",
                      "eval_report/report.html", "eval_report/report.png"}
    checkpoint = {a.path for a in registry.client.list_artifacts(run.info.run_id, "checkpoint")}
    assert "checkpoint/model.safetensors" in checkpoint

    from plimsoll.evaluation.eval_registry import EvalRegistry

    rows = EvalRegistry(layout.eval_registry_url).results()
    assert {r["system"] for r in rows} == {"finetuned", "base"}
    assert all(r["eval_set_hash"] == report["eval_set_hash"] for r in rows)

    from plimsoll.cli.main import main

    assert main(["verify", version]) == 0
    registry.client.set_model_version_tag("plimsoll-docs-assistant", version,
                                          LINEAGE_PREFIX + "seed", "7")
    assert main(["verify", version]) == 1


def _check_review_card(registry, version, tags, trained):
    """The version page a reviewer opens: the card, the model card and the prompts."""
    card = registry.client.get_model_version("plimsoll-docs-assistant", version).description
    assert card.startswith("**Verdict: awaiting the gate**")
    assert len(card) <= 5000
    for part in ("### Candidate against the champion, the base encoder and BM25",
                 "| `recall@5` | ≥ 0.850 |", "### Safety", "red-team attacks stopped",
                 "### Data", "| `std` |", "public", "### Training", f"{trained['steps']} steps",
                 "### Model card", "**Intended use.**", "### Lineage",
                 f"plimsoll verify {version}", "add `approval.by` = your name",
                 "### Prompts served", "prompts:/plimsoll-answer/"):
        assert part in card, part
    prompts = json.loads(tags["plimsoll.lineage.prompt_versions"])
    assert set(prompts) == {"answer", "abstain", "refuse", "facts", "system"}
    answer = registry.client.load_prompt(prompts["answer"])
    assert answer.tags["plimsoll.content_hash"] == registry_template_hash("answer")
    assert tags["plimsoll.lineage.model_card"].startswith("model-card@1.0.0#")
    with tempfile.TemporaryDirectory() as tmp:
        local, _ = registry.download(f"models:/plimsoll-docs-assistant/{version}", Path(tmp))
        rendered = (local / "artifacts" / "model_card.md").read_text()
    assert "## Evaluation summary" in rendered and "{{" not in rendered
    assert "`std`: public, kept 30 days" in rendered


def registry_template_hash(name):
    from plimsoll.common.hashing import sha256_file
    from plimsoll.common.project import project_path

    return sha256_file(project_path("prompts") / f"{name}.md")


def test_no_training_on_a_slice_whose_checks_failed(setup, manifests):
    definitions, instance, evalset = setup
    _materialize_inputs(definitions, instance)
    write_jsonl(manifests / "sources" / "faq.jsonl", [*FAQ_ROWS, FAQ_ROWS[0]])  # duplicate id
    assert not definitions.resolve_job_def("dataset_slices_job").execute_in_process(
        partition_key="faq", instance=instance, run_config=QUIET,
        raise_on_error=False).success
    result = definitions.resolve_job_def("candidate_job").execute_in_process(
        instance=instance, run_config=_run_config(evalset, ("std", "faq")),
        raise_on_error=False)
    assert not result.success
    failure = result.failure_data_for_node("training_pairs")
    assert "['faq'] failed their checks" in failure.error.cause.message
    assert result.asset_materializations_for_node("finetuned_encoder") == []


def test_eval_set_with_unknown_doc_ids_fails_the_report(setup, tmp_path):
    definitions, instance, _ = setup
    _materialize_inputs(definitions, instance)
    bad = tmp_path / "bad_eval.jsonl"
    bad.write_text(json.dumps({"qid": "b1", "question": "?", "answerable": True,
                               "gold_doc_ids": ["stdlib:does.not.exist"]}) + "\n")
    result = definitions.resolve_job_def("candidate_job").execute_in_process(
        instance=instance, run_config=_run_config(bad), raise_on_error=False)
    assert not result.success
    message = result.failure_data_for_node("eval_report").error.cause.message
    assert "b1" in message and "stdlib:does.not.exist" in message
    assert result.asset_materializations_for_node("candidate_model") == []
