#!/usr/bin/env python
"""Run the eval set on a model and compare it with the gates of policies/slos.yaml.

--model is a registry reference (models:/NAME/VERSION, models:/NAME/latest,
models:/NAME@ALIAS) or a local model directory (an MLflow model with artifacts/). The eval
is deterministic: --seed is recorded with the result. Exit 0 when every gate passes, 1 when
one fails, 2 on bad input (unknown model, malformed eval set or policy, unreachable
tracking store), 3 on an unexpected error (--debug shows its traceback).
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DEFAULT_EVALSET = "evalsets/python_docs_ci.jsonl"
DEFAULT_POLICY = "policies/slos.yaml"
PRINTED = ("recall@1", "recall@5", "recall@10", "mrr", "ndcg@10", "grounding_rate",
           "abstention_accuracy", "latency_p50_cpu_ms", "latency_p95_cpu_ms", "latency_p50_ms",
           "latency_p95_ms", "cost_per_request", "soft_violations", "safety_answers")


def main(argv: list[str] | None = None) -> int:
    """Evaluate, print a summary, optionally write JSON."""
    parser = argparse.ArgumentParser(prog="tools/run_eval.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="models:/NAME/N, models:/NAME@ALIAS "
                        "or a model directory")
    parser.add_argument("--limit", type=int, default=50, help="first N questions (0: all)")
    parser.add_argument("--seed", type=int, default=42, help="recorded with the result")
    parser.add_argument("--evalset", type=Path, default=None,
                        help=f"eval set (default: the project's {DEFAULT_EVALSET})")
    parser.add_argument("--policy", type=Path, default=None,
                        help=f"promotion policy (default: the project's {DEFAULT_POLICY})")
    parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: "
                        "$MLFLOW_TRACKING_URI or the embedded store under PLIMSOLL_HOME)")
    parser.add_argument("--json", type=Path, default=None, help="write the result here")
    parser.add_argument("--debug", action="store_true",
                        help="print the traceback of an unexpected error")
    args = parser.parse_args(argv)

    from plimsoll.common.boundary import debug_requested, run_guarded

    return run_guarded("run_eval", lambda: _main(args), debug=debug_requested(argv))


def _main(args: argparse.Namespace) -> int:
    from plimsoll.common.errors import PlimsollError

    if args.limit < 0:
        # A negative slice would quietly drop the last questions and still pass the gate.
        raise PlimsollError(f"a limit of {args.limit} questions", field="--limit",
                            fix="give 0 for every question, or a positive number N for the "
                            "first N")
    if args.json is not None and not args.json.parent.is_dir():
        raise PlimsollError(f"the folder {args.json.parent} does not exist", file=args.json,
                            field="--json", fix="create the folder, or write elsewhere")
    start = time.perf_counter()
    result = _evaluate(args)
    metrics, verdict = result["metrics"], result["verdict"]
    for name in PRINTED:
        print(f"  {name:<20} {metrics[name]:.4f}")
    for reason in verdict.reasons:
        print(f"  {reason}")
    passed = verdict.passed
    print(f"run_eval: {result['model']} on {result['questions']} questions "
          f"(eval set {result['eval_set_hash'][:12]}, seed {args.seed}): "
          f"{'PASS' if passed else 'FAIL'} in {time.perf_counter() - start:.1f}s")
    if args.json:
        _write_json(args.json, {**{k: v for k, v in result.items() if k != "verdict"},
                                "gates": verdict.as_dicts(), "passed": passed})
    return 0 if passed else 1


def _evaluate(args: argparse.Namespace) -> dict:
    from plimsoll.common.boundary import doing
    from plimsoll.common.project import project_path
    from plimsoll.evaluation.candidate import open_model_to_evaluate
    from plimsoll.evaluation.evalsets import load_evalset
    from plimsoll.evaluation.scoring import evaluate_answerer
    from plimsoll.release.gate import evaluate_gates

    policy_path = args.policy or project_path(DEFAULT_POLICY)
    evalset_path = args.evalset or project_path(DEFAULT_EVALSET)
    with doing(f"reading the policy {policy_path}"):
        policy = _load_policy(policy_path)
    with doing(f"reading the eval set {evalset_path}"):
        evalset = load_evalset(evalset_path).limited(args.limit or None)
    with tempfile.TemporaryDirectory() as tmp:
        with doing(f"opening the model {args.model}"):
            answerer, label = open_model_to_evaluate(args.model, Path(tmp), args.tracking_uri)
        evalset.check_doc_ids(answerer.snapshot.chunks["doc_id"])
        with doing(f"evaluating {label} on {evalset_path}"):
            run = evaluate_answerer("candidate", answerer, evalset, cost_per_cpu_second=0.00005)
    return {"model": label, "metrics": run.metrics, "questions": len(evalset.questions),
            "eval_set_hash": evalset.content_hash, "seed": args.seed,
            "verdict": evaluate_gates(policy, run.metrics, None)}


def _load_policy(path: Path):
    """load_policy; a problem with the file as a whole is named as --policy."""
    from plimsoll.release.policy import PolicyError, load_policy

    try:
        return load_policy(path)
    except PolicyError as exc:
        if exc.field is not None:
            raise
        raise PolicyError(exc.problem, file=exc.file, field="--policy", fix=exc.fix) from None


def _write_json(path: Path, result: dict) -> None:
    from plimsoll.common.errors import PlimsollError

    try:
        path.write_text(json.dumps(result, indent=2, default=str))
    except OSError as exc:
        raise PlimsollError(f"cannot write the result ({exc.strerror or exc})", file=path,
                            field="--json", fix="write to a writable file") from None


if __name__ == "__main__":
    sys.exit(main())
