import importlib.util
import json

import pytest
from conftest import REPO_ROOT

from plimsoll.release.lineage_record import LineageRecords
from plimsoll.release.registry import ModelRegistry, lineage_tags
from plimsoll.serving.pyfunc import pyfunc_model

NAME = "plimsoll-docs-assistant"
QUESTIONS = [
    {"qid": "r1", "question": "How do I go back to the previous model version?",
     "answerable": True, "gold_doc_ids": ["doc-0"]},
    {"qid": "r2", "question": "How do I split text on a regular expression?",
     "answerable": True, "gold_doc_ids": ["doc-4"]},
    {"qid": "r3", "question": "What is a good banana bread recipe?", "answerable": False,
     "gold_doc_ids": []},
]
LENIENT = ("version: 1\nmodel: plimsoll-docs-assistant\nminimum: {recall@5: 0.5}\n"
           "allow_unmeasured: [critical_violations, soft_violation_rate]\n")


def _tool():
    spec = importlib.util.spec_from_file_location("run_eval", REPO_ROOT / "tools" /
                                                  "run_eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture
def setup(tmp_path, bundle, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    registry = ModelRegistry(uri, artifact_root=str(tmp_path / "artifacts"),
                             records=LineageRecords(f"sqlite:///{tmp_path / 'ledger.sqlite'}"))
    run = registry.client.create_run(registry.ensure_reachable())
    version = registry.register(NAME, bundle, lineage_tags({"seed": "1"}), run.info.run_id,
                                pyfunc_model())
    registry.client.set_registered_model_alias(NAME, "champion", version)
    evalset = tmp_path / "eval.jsonl"
    evalset.write_text("".join(json.dumps({**q, "answer_hint": ""}) + "\n" for q in QUESTIONS))
    policy = tmp_path / "slos.yaml"
    policy.write_text(LENIENT)
    return {"version": version, "evalset": evalset, "policy": policy, "tmp": tmp_path}


def test_registry_reference_passes_the_gates(setup, capsys):
    out = setup["tmp"] / "result.json"
    code = _tool()(["--model", f"models:/{NAME}@champion", "--evalset", str(setup["evalset"]),
                    "--policy", str(setup["policy"]), "--seed", "42", "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert f"models:/{NAME}@champion (version {setup['version']})" in printed and "PASS" in printed
    result = json.loads(out.read_text())
    assert result["passed"] and result["questions"] == 3 and result["seed"] == 42
    assert result["metrics"]["recall@5"] >= 0.5


def test_failing_gate_exits_one(setup, capsys):
    strict = setup["tmp"] / "strict.yaml"
    strict.write_text(LENIENT.replace("recall@5: 0.5", "recall@5: 0.5, mrr: 1.01"))
    code = _tool()(["--model", f"models:/{NAME}/latest", "--evalset",
                    str(setup["evalset"]), "--policy", str(strict)])
    assert code == 1 and "FAIL minimum mrr" in capsys.readouterr().out


@pytest.mark.parametrize(("model", "message"), [
    ("models:/nope@champion", "is not in the registry"),
    ("champion", "not a Plimsoll model directory"),
    ("models:/x/y/z", "is not a model reference"),
])
def test_unknown_model_reference(setup, capsys, model, message):
    code = _tool()(["--model", model, "--evalset", str(setup["evalset"]),
                    "--policy", str(setup["policy"])])
    assert code == 2 and message in capsys.readouterr().err


def test_malformed_eval_set_row(setup, capsys):
    bad = setup["tmp"] / "bad.jsonl"
    bad.write_text('{"qid": "b1", "question": "?"}\n')
    code = _tool()(["--model", f"models:/{NAME}@champion", "--evalset", str(bad),
                    "--policy", str(setup["policy"])])
    error = capsys.readouterr().err
    assert code == 2 and "line 1: missing" in error and "bad.jsonl" in error


def _deterministic(text):
    import re

    return [re.sub(r"in \d+\.\d+s$", "in …s", line) for line in text.splitlines()
            if "latency" not in line and "cost_per_request" not in line]


def test_plimsoll_eval_is_the_same_command(setup, capsys):
    from plimsoll.cli.main import main

    argv = ["--model", f"models:/{NAME}@champion", "--evalset", str(setup["evalset"]),
            "--policy", str(setup["policy"]), "--seed", "42"]
    assert _tool()(argv) == 0
    from_tool = capsys.readouterr().out
    assert main(["eval", *argv]) == 0
    from_cli = capsys.readouterr().out
    # The same lines; latency, cost and run time aside (they are measured again).
    assert [line.split()[0] for line in from_cli.splitlines()] == \
        [line.split()[0] for line in from_tool.splitlines()]
    assert _deterministic(from_cli) == _deterministic(from_tool)
    shown = "\n".join(_deterministic(from_cli))
    assert "  recall@5             1.0000" in shown and "PASS in …s" in shown
    strict = setup["tmp"] / "strict.yaml"
    strict.write_text(LENIENT.replace("recall@5: 0.5", "recall@5: 0.5, mrr: 1.01"))
    assert main(["eval", *argv[:-4], "--policy", str(strict)]) == 1


def test_no_answerable_question_is_not_measured_and_says_why(setup, capsys):
    only_unanswerable = setup["tmp"] / "abstain.jsonl"
    only_unanswerable.write_text(json.dumps({**QUESTIONS[2], "answer_hint": ""}) + "\n")
    code = _tool()(["--model", f"models:/{NAME}@champion", "--evalset",
                    str(only_unanswerable), "--policy", str(setup["policy"])])
    printed = capsys.readouterr().out
    # Retrieval is not measured (it was a silent 0.0), so the recall gate fails as such.
    assert code == 1 and "recall@5             not measured" in printed
    assert "FAIL minimum recall@5: not measured" in printed
    assert f"no answerable question in the 1 evaluated from {only_unanswerable}" in printed
    assert "fix: add answerable questions" in printed
    # When the limit cut the answerable questions off, the fix says so.
    reordered = setup["tmp"] / "reordered.jsonl"
    reordered.write_text("".join(json.dumps({**q, "answer_hint": ""}) + "\n"
                                 for q in [QUESTIONS[2], *QUESTIONS[:2]]))
    code = _tool()(["--model", f"models:/{NAME}@champion", "--evalset", str(reordered),
                    "--policy", str(setup["policy"]), "--limit", "1"])
    assert code == 1 and "fix: raise --limit" in capsys.readouterr().out
