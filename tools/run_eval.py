#!/usr/bin/env python
"""Run the eval set on a model and compare it with the gates of policies/slos.yaml.

--model is a registry reference (models:/NAME/VERSION, models:/NAME/latest,
models:/NAME@ALIAS) or a local model
directory (an MLflow model with artifacts/). Deterministic for a seed. Exit 0 when every
gate passes, 1 when one fails, 2 on bad input (unknown model, malformed eval set).
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    """Evaluate, print a summary, optionally write JSON."""
    parser = argparse.ArgumentParser(prog="tools/run_eval.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="models:/NAME/N, models:/NAME@ALIAS "
                        "or a model directory")
    parser.add_argument("--limit", type=int, default=50, help="first N questions (0: all)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--evalset", type=Path, default=REPO / "evalsets" /
                        "python_docs_ci.jsonl")
    parser.add_argument("--policy", type=Path, default=REPO / "policies" / "slos.yaml")
    parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: "
                        "$MLFLOW_TRACKING_URI or the embedded store under PLIMSOLL_HOME)")
    parser.add_argument("--json", type=Path, default=None, help="write the result here")
    args = parser.parse_args(argv)

    import random

    from plimsoll.errors import PlimsollError

    random.seed(args.seed)
    start = time.perf_counter()
    try:
        result = _evaluate(args)
    except PlimsollError as exc:
        print(f"run_eval: {exc.describe()}", file=sys.stderr)
        return 2
    metrics, verdict = result["metrics"], result["verdict"]
    for name in ("recall@1", "recall@5", "recall@10", "mrr", "ndcg@10", "grounding_rate",
                 "abstention_accuracy", "latency_p50_ms", "latency_p95_ms", "cost_per_request"):
        print(f"  {name:<20} {metrics[name]:.4f}")
    for reason in verdict.reasons:
        print(f"  {reason}")
    passed = verdict.passed
    print(f"run_eval: {result['model']} on {result['questions']} questions "
          f"(eval set {result['eval_set_hash'][:12]}, seed {args.seed}): "
          f"{'PASS' if passed else 'FAIL'} in {time.perf_counter() - start:.1f}s")
    if args.json:
        args.json.write_text(json.dumps({**{k: v for k, v in result.items() if k != "verdict"},
                                         "gates": verdict.as_dicts(), "passed": passed},
                                        indent=2, default=str))
    return 0 if passed else 1


def _evaluate(args: argparse.Namespace) -> dict:
    from plimsoll.bundles import open_model
    from plimsoll.evalsets import load_evalset
    from plimsoll.evaluation import evaluate_answerer
    from plimsoll.gate import evaluate_gates
    from plimsoll.policy import load_policy

    policy = load_policy(args.policy)
    evalset = load_evalset(args.evalset).limited(args.limit or None)
    with tempfile.TemporaryDirectory() as tmp:
        answerer, label = open_model(args.model, Path(tmp), args.tracking_uri)
        evalset.check_doc_ids(answerer.snapshot.chunks["doc_id"])
        run = evaluate_answerer("candidate", answerer, evalset, cost_per_cpu_second=0.00005)
    return {"model": label, "metrics": run.metrics, "questions": len(evalset.questions),
            "eval_set_hash": evalset.content_hash, "seed": args.seed,
            "verdict": evaluate_gates(policy, run.metrics, None)}


if __name__ == "__main__":
    sys.exit(main())
