"""`plimsoll eval` (and tools/run_eval.py): a model on an eval set, against the policy's gates."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from plimsoll.cli.options import (
    TRACKING_URI_HELP,
    check_json_destination,
    standalone,
    write_json,
)
from plimsoll.common.boundary import doing
from plimsoll.common.errors import PlimsollError
from plimsoll.common.settings import PROJECT_FILES, Settings

DESCRIPTION = """\
Run the eval set on a model and compare it with the gates of policies/slos.yaml.

--model is a registry reference (models:/NAME/VERSION, models:/NAME/latest,
models:/NAME@ALIAS) or a local model directory (an MLflow model with artifacts/). The eval
is deterministic: --seed is recorded with the result. Exit 0 when every gate passes, 1 when
one fails, 2 on bad input (unknown model, malformed eval set or policy, unreachable
tracking store), 3 on an unexpected error (--debug shows its traceback).
"""
HELP = "run the eval set on a model and check the policy's gates"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `plimsoll eval`, as tools/run_eval.py has them."""
    parser.add_argument("--model", required=True, help="models:/NAME/N, models:/NAME@ALIAS "
                        "or a model directory")
    parser.add_argument("--limit", type=int, default=50, help="first N questions (0: all)")
    parser.add_argument("--seed", type=int, default=42, help="recorded with the result")
    parser.add_argument("--evalset", type=Path, default=None,
                        help="eval set (default: $PLIMSOLL_EVALSET, else the project's "
                        f"{PROJECT_FILES['evalset'][1]})")
    parser.add_argument("--policy", type=Path, default=None,
                        help="promotion policy (default: $PLIMSOLL_POLICY, else the project's "
                        f"{PROJECT_FILES['policy'][1]})")
    parser.add_argument("--retrieval", choices=("dense", "hybrid"), default="dense",
                        help="dense (the served default) or hybrid: BM25 fused with the "
                        "dense index by reciprocal rank, to see whether it helps")
    parser.add_argument("--tracking-uri", default=None, help=TRACKING_URI_HELP)
    parser.add_argument("--json", type=Path, default=None, help="write the result here")


def main(argv: list[str] | None = None, prog: str = "plimsoll eval",
         label: str = "run_eval") -> int:
    """The command on its own (tools/run_eval.py): parse, evaluate, exit code."""
    return standalone(argv, prog=prog, label=label, description=DESCRIPTION,
                      add_arguments=add_arguments, run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Evaluate, print a summary, optionally write JSON; 0 when every gate passes, else 1."""
    from plimsoll.evaluation.metrics import METRICS

    if args.limit < 0:
        # A negative slice would quietly drop the last questions and still pass the gate.
        raise PlimsollError(f"a limit of {args.limit} questions", field="--limit",
                            fix="give 0 for every question, or a positive number N for the "
                            "first N")
    check_json_destination(args.json)
    start = time.perf_counter()
    result = _evaluate(args, settings)
    metrics, verdict = result["metrics"], result["verdict"]
    for entry in METRICS:  # the table's summary metrics, at the 4 decimals CI logs have kept
        if entry.summary:
            value = metrics.get(entry.name)
            print(f"  {entry.name:<20} {'not measured' if value is None else f'{value:.4f}'}")
    if result["unmeasured"]:
        print(f"  note: {result['unmeasured']}")
    for reason in verdict.reasons:
        print(f"  {reason}")
    passed = verdict.passed
    print(f"run_eval: {result['model']} on {result['questions']} questions "
          f"(eval set {result['eval_set_hash'][:12]}, seed {args.seed}): "
          f"{'PASS' if passed else 'FAIL'} in {time.perf_counter() - start:.1f}s")
    if args.json:
        write_json(args.json, {**{k: v for k, v in result.items()
                                  if k not in ("verdict", "unmeasured")},
                               "gates": verdict.as_dicts(), "passed": passed})
    return 0 if passed else 1


def _evaluate(args: argparse.Namespace, settings: Settings) -> dict:
    from plimsoll.evaluation import evalsets
    from plimsoll.evaluation.candidate import open_model_to_evaluate
    from plimsoll.evaluation.scoring import evaluate_answerer
    from plimsoll.release.gate import evaluate_gates

    policy_path = args.policy or settings.policy
    evalset_path = args.evalset or settings.evalset
    with doing(f"reading the policy {policy_path}"):
        policy = _load_policy(policy_path)
    with doing(f"reading the eval set {evalset_path}"):
        whole = evalsets.load_evalset(evalset_path)
        evalset = whole.limited(args.limit or None)
    with tempfile.TemporaryDirectory() as tmp:
        with doing(f"opening the model {args.model}"):
            answerer, label = open_model_to_evaluate(args.model, Path(tmp), settings)
        answerer = answerer.with_retrieval(args.retrieval)
        if args.retrieval != "dense":
            label = f"{label}, {args.retrieval} retrieval"
        evalset.check_doc_ids(answerer.snapshot.chunks["doc_id"])
        with doing(f"evaluating {label} on {evalset_path}"):
            run = evaluate_answerer("candidate", answerer, evalset,
                                    cost_per_cpu_second=settings.cost_per_cpu_second)
    return {"model": label, "metrics": run.metrics, "questions": len(evalset.questions),
            "eval_set_hash": evalset.content_hash, "seed": args.seed,
            "verdict": evaluate_gates(policy, run.metrics, None),
            "unmeasured": _unmeasured(evalset, whole, evalset_path)}


def _unmeasured(evalset, whole, path: Path) -> str:
    """Why retrieval and grounding were not measured, and the fix; '' when they were."""
    from plimsoll.evaluation.metrics import NEEDS_ANSWERABLE

    if any(question.answerable for question in evalset.questions):
        return ""
    fix = ("raise --limit (0 for every question): later questions are answerable"
           if any(question.answerable for question in whole.questions) else
           "add answerable questions (with gold_doc_ids) to the eval set")
    return (f"no answerable question in the {len(evalset.questions)} evaluated from {path}, "
            f"so {', '.join(NEEDS_ANSWERABLE)} are not measured; fix: {fix}")


def _load_policy(path: Path):
    """load_policy; a problem with the file as a whole is named as --policy."""
    from plimsoll.release.policy import PolicyError, load_policy

    try:
        return load_policy(path)
    except PolicyError as exc:
        if exc.field is not None:
            raise
        raise PolicyError(exc.problem, file=exc.file, field="--policy", fix=exc.fix) from None
